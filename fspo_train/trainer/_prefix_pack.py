"""Packing of a TRL preference batch into one prefix-shared sequence per pair.

TRL's `DataCollatorForPreference` lays a batch of ``B`` pairs out as ``2B`` right-padded rows: the
``B`` sequences ``prompt + chosen`` first, then the ``B`` sequences ``prompt + rejected``. This
module turns that batch into ``B`` rows of the form::

    [ shared (S tokens) | chosen branch (Lc - S tokens) | rejected branch (Lr - S tokens) | pad ]

where ``S`` is one less than the length of the longest common prefix of the two sequences of the
pair (the prompt, in practice). The last shared token is *repeated* as the first token of each
branch, so that every next-token prediction of the standard layout has exactly one position in the
packed row that makes it, and the shift-by-one labels of the fused LM head stay valid: the chosen
branch's first token predicts ``chosen[0]`` and the rejected branch's first token predicts
``rejected[0]`` although both follow the same prompt.

Position ids restart at ``S`` in both branches, and segment ids (0 shared, 1 chosen, 2 rejected,
3 padding) define the attention pattern built by `_prefix_forward`. A gather index maps
every next-token position of the standard ``(2B, L - 1)`` layout to its packed position, so outputs
of the packed forward can be put back in TRL's layout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "PACKED_KEYS",
    "SEGMENT_CHOSEN",
    "SEGMENT_PAD",
    "SEGMENT_REJECTED",
    "SEGMENT_SHARED",
    "PrefixSharingCollator",
    "pack_preference_batch",
]

SEGMENT_SHARED = 0
SEGMENT_CHOSEN = 1
SEGMENT_REJECTED = 2
SEGMENT_PAD = 3

KEY_INPUT_IDS = "prefix_sharing_input_ids"
KEY_POSITION_IDS = "prefix_sharing_position_ids"
KEY_SEGMENT_IDS = "prefix_sharing_segment_ids"
KEY_INDEX = "prefix_sharing_index"
PACKED_KEYS = (KEY_INPUT_IDS, KEY_POSITION_IDS, KEY_SEGMENT_IDS, KEY_INDEX)
"""Batch keys added by `pack_preference_batch`; the model forward wrapper consumes them."""


def _common_prefix_length(a: torch.Tensor, b: torch.Tensor) -> int:
    n = min(a.numel(), b.numel())
    differ = (a[:n] != b[:n]).nonzero()
    return int(differ[0, 0]) if differ.numel() else n


def pack_preference_batch(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    pad_token_id: int = 0,
    pad_to_multiple_of: int | None = None,
) -> dict[str, torch.Tensor]:
    """Pack a ``[chosen rows; rejected rows]`` batch into one prefix-shared row per pair.

    Args:
        input_ids: ``(2B, L)`` token ids, right-padded; rows ``i`` and ``B + i`` are a pair.
        attention_mask: ``(2B, L)``, 1 on real tokens (a prefix of each row), 0 on padding.
        pad_token_id: id written in the packed padding.
        pad_to_multiple_of: pad the packed length up to a multiple of this.

    Returns:
        ``prefix_sharing_input_ids``, ``prefix_sharing_position_ids`` and
        ``prefix_sharing_segment_ids`` of shape ``(B, Lp)``, and ``prefix_sharing_index`` of shape
        ``(2B, L - 1)``: for the prediction of token ``t + 1`` of standard row ``r``, the flat index
        (``row * Lp + column``) of the packed position that makes it, or -1 on padding.

    Raises:
        ValueError: the batch has an odd number of rows, or a padding mask that is not right-padded.

    Example:
        >>> import torch
        >>> ids = torch.tensor([[5, 6, 7, 8], [5, 6, 9, 0]])
        >>> mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
        >>> packed = pack_preference_batch(ids, mask)
        >>> packed["prefix_sharing_input_ids"].tolist()
        [[5, 6, 7, 8, 6, 9]]
        >>> packed["prefix_sharing_position_ids"].tolist()
        [[0, 1, 2, 3, 1, 2]]
    """
    rows, length = input_ids.shape
    if rows % 2:
        msg = (
            f"a preference batch has 2B rows (chosen then rejected); got {rows} rows. Pass the "
            "output of trl's DataCollatorForPreference."
        )
        raise ValueError(msg)
    lengths = attention_mask.sum(dim=1)
    expected = torch.arange(length, device=attention_mask.device)[None, :] < lengths[:, None]
    if not torch.equal(attention_mask.bool(), expected):
        msg = "prefix sharing needs right-padded rows (attention_mask = ones then zeros)"
        raise ValueError(msg)
    pairs = rows // 2
    packed_rows: list[tuple[list[int], list[int], list[int]]] = []
    shared_lengths: list[int] = []
    for i in range(pairs):
        len_c, len_r = int(lengths[i]), int(lengths[pairs + i])
        chosen, rejected = input_ids[i, :len_c], input_ids[pairs + i, :len_r]
        # The last shared token is repeated in both branches (see the module docstring).
        shared = max(_common_prefix_length(chosen, rejected) - 1, 0)
        ids = chosen.tolist() + rejected[shared:].tolist()
        positions = list(range(len_c)) + list(range(shared, len_r))
        segments = (
            [SEGMENT_SHARED] * shared
            + [SEGMENT_CHOSEN] * (len_c - shared)
            + [SEGMENT_REJECTED] * (len_r - shared)
        )
        packed_rows.append((ids, positions, segments))
        shared_lengths.append(shared)
    packed_length = max(len(ids) for ids, _, _ in packed_rows)
    if pad_to_multiple_of:
        packed_length = -(-packed_length // pad_to_multiple_of) * pad_to_multiple_of
    packed_ids = torch.full((pairs, packed_length), pad_token_id, dtype=input_ids.dtype)
    packed_positions = torch.zeros((pairs, packed_length), dtype=torch.long)
    packed_segments = torch.full((pairs, packed_length), SEGMENT_PAD, dtype=torch.long)
    index = torch.full((rows, max(length - 1, 0)), -1, dtype=torch.long)
    for i, (ids, positions, segments) in enumerate(packed_rows):
        n = len(ids)
        packed_ids[i, :n] = torch.tensor(ids, dtype=input_ids.dtype)
        packed_positions[i, :n] = torch.tensor(positions)
        packed_segments[i, :n] = torch.tensor(segments)
        len_c, len_r, shared = int(lengths[i]), int(lengths[pairs + i]), shared_lengths[i]
        base = i * packed_length
        # Chosen row: token t sits at column t, for every t.
        index[i, : len_c - 1] = base + torch.arange(len_c - 1)
        # Rejected row: shared tokens at their column, branch tokens after the chosen branch.
        t = torch.arange(len_r - 1)
        index[pairs + i, : len_r - 1] = base + torch.where(t < shared, t, len_c + t - shared)
    return {
        KEY_INPUT_IDS: packed_ids.to(input_ids.device),
        KEY_POSITION_IDS: packed_positions.to(input_ids.device),
        KEY_SEGMENT_IDS: packed_segments.to(input_ids.device),
        KEY_INDEX: index.to(input_ids.device),
    }


@dataclass
class PrefixSharingCollator:
    """Wrap a TRL preference collator and add the prefix-shared packing to each batch.

    The standard keys (``input_ids``, ``attention_mask``, ``completion_mask``) stay, so TRL's loss
    code reads the batch as usual; the packed keys are consumed by the model forward that
    `fspo_train.trainer.prefix_sharing.install_prefix_sharing_forward` installs.

    Example:
        >>> from trl.trainer.dpo_trainer import DataCollatorForPreference
        >>> collate = PrefixSharingCollator(DataCollatorForPreference(pad_token_id=0), 0)
        >>> batch = collate([{"prompt_ids": [1, 2, 3], "chosen_ids": [4], "rejected_ids": [5, 6]}])
        >>> batch["prefix_sharing_input_ids"].tolist()
        [[1, 2, 3, 4, 3, 5, 6]]
    """

    base: Callable[[list[dict[str, Any]]], Mapping[str, Any]]
    """The collator that builds TRL's standard ``[chosen; rejected]`` batch."""
    pad_token_id: int
    """Token id used to pad the packed rows."""
    pad_to_multiple_of: int | None = None
    """Pad the packed length up to a multiple of this (as `DPOConfig.pad_to_multiple_of`)."""

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        """Collate ``examples`` with the base collator, then add the packed keys."""
        batch = dict(self.base(examples))
        batch.update(
            pack_preference_batch(
                batch["input_ids"],
                batch["attention_mask"],
                pad_token_id=self.pad_token_id,
                pad_to_multiple_of=self.pad_to_multiple_of,
            )
        )
        return batch
