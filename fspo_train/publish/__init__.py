"""Publishing: check an adapter folder, write its model card, push it to the Hub."""

from fspo_train.publish.hub import (
    REQUIRED_FILES,
    PublishResult,
    check_adapter_folder,
    check_engine_limits,
    publish_adapter,
)
from fspo_train.publish.model_card import build_model_card, write_model_card

__all__ = [
    "REQUIRED_FILES",
    "PublishResult",
    "build_model_card",
    "check_adapter_folder",
    "check_engine_limits",
    "publish_adapter",
    "write_model_card",
]
