"""`quiet_loading()`: no "Loading weights" progress bar while we load a model we asked for.

transformers draws a progress bar for every `from_pretrained`, which in a CLI or a chat
server is noise around each load; the bars of training and downloads stay as they are outside
the block.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["quiet_loading"]


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Turn transformers' progress bars off inside the block, then back to what they were."""
    from transformers.utils import logging as hf_logging  # noqa: TID251 - lazily, when loading

    # transformers' own switch only: its public `disable/enable_progress_bar` also flip the Hub
    # client's bars, and enabling those warns when HF_HUB_DISABLE_PROGRESS_BARS is set.
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging._tqdm_active = False  # noqa: SLF001
    try:
        yield
    finally:
        hf_logging._tqdm_active = was_enabled  # noqa: SLF001
