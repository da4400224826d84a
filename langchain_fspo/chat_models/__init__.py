"""`ChatFSPO`, the LangChain chat model of langchain-fspo, over small pure modules."""

from langchain_fspo.chat_models.base import ChatFSPO, ShotSource

__all__ = ["ChatFSPO", "ShotSource"]
