"""Evaluation: one core for `fspo eval` and the Reviews-mini benchmark."""
