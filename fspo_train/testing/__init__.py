"""Kits for tests, demos and benchmarks that cannot download models: tiny offline models."""

from fspo_train.testing.tiny import build_tiny_adapter, build_tiny_base_model

__all__ = ["build_tiny_adapter", "build_tiny_base_model"]
