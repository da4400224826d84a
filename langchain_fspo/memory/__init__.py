"""Per-user preference memory: the examples FSPO personalises with, on a LangGraph store.

Example:
    >>> from langchain_fspo.memory import PreferenceMemory
    >>> memory = PreferenceMemory()
    >>> _ = memory.add("ada", prompt="Tea or coffee?", chosen="Tea.", rejected="Coffee.")
    >>> [e.chosen for e in memory.select("ada", "Breakfast drink?", k=4)]
    ['Tea.']
"""

from langchain_fspo.memory._layout import DEFAULT_ROOT, decode_user_id, encode_user_id
from langchain_fspo.memory._memory import PreferenceMemory
from langchain_fspo.memory._plans import EXPORT_FORMAT
from langchain_fspo.memory._records import CHOICES, RECENT_CAP, Choice, ChoiceRecord

__all__ = [
    "CHOICES",
    "DEFAULT_ROOT",
    "EXPORT_FORMAT",
    "RECENT_CAP",
    "Choice",
    "ChoiceRecord",
    "PreferenceMemory",
    "decode_user_id",
    "encode_user_id",
]
