"""Per-user preference memory: the examples FSPO personalises with, on a LangGraph store.

Example:
    >>> from langchain_fspo.memory import PreferenceMemory
    >>> memory = PreferenceMemory()
    >>> _ = memory.add("ada", prompt="Tea or coffee?", chosen="Tea.", rejected="Coffee.")
    >>> [e.chosen for e in memory.select("ada", "Breakfast drink?", k=4)]
    ['Tea.']
"""

from langchain_fspo.memory._core import DEFAULT_FETCH_K, DEFAULT_WINDOW
from langchain_fspo.memory._inputs import MAX_EXAMPLE_ID_CHARS
from langchain_fspo.memory._layout import DEFAULT_ROOT, decode_user_id, encode_user_id
from langchain_fspo.memory._memory import PreferenceMemory
from langchain_fspo.memory._plans import EXPORT_FORMAT
from langchain_fspo.memory._records import CHOICES, MAX_METADATA_BYTES, Choice, ChoiceRecord
from langchain_fspo.memory._vector_search import VectorSearch

__all__ = [
    "CHOICES",
    "DEFAULT_FETCH_K",
    "DEFAULT_ROOT",
    "DEFAULT_WINDOW",
    "EXPORT_FORMAT",
    "MAX_EXAMPLE_ID_CHARS",
    "MAX_METADATA_BYTES",
    "Choice",
    "ChoiceRecord",
    "PreferenceMemory",
    "VectorSearch",
    "decode_user_id",
    "encode_user_id",
]
