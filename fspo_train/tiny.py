"""Deprecated alias of `fspo_train.testing` (the tiny offline models), for old imports.

`langchain_fspo`'s `ChatFSPO` docstring example still imports `fspo_train.tiny`; import from
`fspo_train.testing` instead. This module goes once no example names it.
"""

from fspo_train.testing import build_tiny_adapter, build_tiny_base_model

__all__ = ["build_tiny_adapter", "build_tiny_base_model"]
