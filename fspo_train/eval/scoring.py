"""In-process scoring for evaluation: completion log-probabilities and greedy generation.

One base model is loaded once, with every adapter the evaluation needs loaded beside it under
a name (PEFT multi-adapter); `PolicySet.use(name)` switches between them and `use(None)` runs
the base model with the adapters disabled.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]

from langchain_fspo._quiet import quiet_loading

__all__ = ["PolicySet"]

logger = logging.getLogger(__name__)


class PolicySet:
    """A base causal LM with named LoRA adapters, for scoring and generation on one device.

    Example:
        ```python
        from fspo_train.data.tokenization import completion_token_ids, prompt_token_ids

        policies = PolicySet("meta-llama/Llama-3.2-1B-Instruct", {"fspo": "out/run"})
        fmt = PromptFormat.from_pretrained("out/run")
        rendered = fmt.render(shots, "Review 'Heat'.")
        prompt = prompt_token_ids(fmt, policies.tokenizer, rendered)
        answer = completion_token_ids(
            fmt, policies.tokenizer, rendered, fmt.completion("Tense!"), prompt
        )
        with policies.use("fspo"):
            (logp,) = policies.logprobs([(prompt, answer)])
        ```
    """

    def __init__(
        self,
        base_model: str | Path,
        adapters: dict[str, str | Path],
        *,
        tokenizer: str | Path | None = None,
        device: str | None = None,
        dtype: str = "auto",
    ) -> None:
        """Load `base_model` and each adapter of `adapters` (name -> folder)."""
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer or base_model))
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.adapters = dict(adapters)
        names = list(self.adapters)
        with quiet_loading():
            model: Any = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=dtype)
            if names:
                model = PeftModel.from_pretrained(model, str(self.adapters[names[0]]), names[0])
                for name in names[1:]:
                    model.load_adapter(str(self.adapters[name]), adapter_name=name)
        self.model = model.to(self.device).eval()

    @contextmanager
    def use(self, adapter: str | None) -> Iterator[None]:
        """Run the block with adapter `adapter` active, or the bare base model for None."""
        if adapter is not None and adapter not in self.adapters:
            msg = f"No adapter named {adapter!r} is loaded; loaded: {sorted(self.adapters)}."
            raise KeyError(msg)
        if not self.adapters:
            yield
        elif adapter is None:
            with self.model.disable_adapter():
                yield
        else:
            self.model.set_adapter(adapter)
            yield

    def sequence_logprobs(self, batch: Sequence[tuple[list[int], list[int]]]) -> torch.Tensor:
        """Summed completion log-probs of a batch of (prompt ids, completion ids); keeps grads."""
        pad = int(self.tokenizer.pad_token_id)
        width = max(len(p) + len(c) for p, c in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.zeros((len(batch), width), dtype=torch.bool)
        for row, (p, c) in enumerate(batch):
            ids[row, : len(p) + len(c)] = torch.tensor(p + c)
            mask[row, : len(p) + len(c)] = 1
            labels[row, len(p) : len(p) + len(c)] = True
        ids, mask, labels = ids.to(self.device), mask.to(self.device), labels.to(self.device)
        logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        token_logp = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        return (token_logp * labels[:, 1:]).sum(dim=-1)

    @torch.no_grad()
    def logprobs(
        self,
        pairs: Sequence[tuple[list[int], list[int]]],
        *,
        batch_size: int = 8,
        desc: str = "log-probs",
    ) -> list[float]:
        """Sum of log pi(completion token | prefix) over the completion tokens, per pair.

        Args:
            pairs: (prompt ids, completion ids), e.g. from `tokenize_items`.
            batch_size: Sequences per forward pass.
            desc: Progress bar label.
        """
        for prompt, completion in pairs:
            if not completion:
                msg = f"A completion has no tokens to score (prompt of {len(prompt)} tokens)."
                raise ValueError(msg)
        out: list[float] = []
        starts = range(0, len(pairs), batch_size)
        for start in tqdm(starts, desc=desc, leave=False, disable=len(starts) <= 1):
            summed = self.sequence_logprobs(pairs[start : start + batch_size])
            out += [float(v) for v in summed.cpu()]
        return out

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[list[int]],
        *,
        max_new_tokens: int = 128,
        batch_size: int = 8,
        desc: str = "generating",
    ) -> list[str]:
        """Greedy completions of prompt token ids (left-padded batches), special tokens removed."""
        pad = int(self.tokenizer.pad_token_id)
        encoded = list(prompts)
        out: list[str] = []
        for start in tqdm(range(0, len(encoded), batch_size), desc=desc, leave=False):
            batch = encoded[start : start + batch_size]
            width = max(len(e) for e in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, e in enumerate(batch):
                ids[row, width - len(e) :] = torch.tensor(e)
                mask[row, width - len(e) :] = 1
            generated = self.model.generate(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
            new_tokens = generated[:, width:].cpu()
            out += self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return out
