"""Speed benchmarks: scripts, and the fixed-latency server and rules they and tests import."""
