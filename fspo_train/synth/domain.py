"""Domain configs: who the users are, where questions come from, how responses are diversified.

The paper's three domains ship as YAML files in `fspo_train/synth/domains/` (`reviews`, `elix`,
`roleplay`); `load_domain` also accepts a path to your own file. Every count in a config can be
overridden from the command line, so the same recipe runs at any size.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fspo_train.synth.errors import SynthConfigError
from fspo_train.synth.ids import digest
from langchain_fspo.preference import validate_user_id

__all__ = [
    "DomainConfig",
    "FixedUser",
    "FixedUsers",
    "LabelsConfig",
    "QuestionsConfig",
    "ResponsesConfig",
    "SplitsConfig",
    "TraitUsers",
    "available_domains",
    "load_domain",
]

NonEmpty = Annotated[str, Field(min_length=1)]


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FixedUser(_Cfg):
    """A user given in the config (ELIX levels, Reviews preferences)."""

    id: NonEmpty
    description: NonEmpty
    held_out: bool = False
    """Held-out users are never in the training split (Reviews' interpolated users)."""
    steer: bool = True
    """Whether responses are steered towards this user (persona steering)."""


class FixedUsers(_Cfg):
    """A fixed list of users."""

    kind: Literal["fixed"] = "fixed"
    users: list[FixedUser] = Field(min_length=2)

    @model_validator(mode="after")
    def _unique(self) -> FixedUsers:
        ids = [u.id for u in self.users]
        if len(set(ids)) != len(ids):
            msg = f"user ids must be unique, got {ids}"
            raise ValueError(msg)
        for user_id in ids:
            validate_user_id(user_id)
        return self


class TraitUsers(_Cfg):
    """Personas generated from every combination of trait values (Roleplay)."""

    kind: Literal["traits"] = "traits"
    traits: dict[str, list[NonEmpty]] = Field(min_length=1)
    personas_per_combination: int = Field(default=30, ge=1)


class QuestionsConfig(_Cfg):
    """Seed questions and their LLM augmentation."""

    seeds: list[NonEmpty] = Field(min_length=1)
    instructions: str = ""
    """Domain-specific instructions for writing new questions."""
    global_count: int = Field(default=100, ge=1)
    """Global questions in total, seeds included (anyone might ask them)."""
    specific_per_user: int = Field(default=0, ge=0)
    """Questions written for each persona from its traits (Roleplay); 0 disables."""
    batch_size: int = Field(default=10, ge=1, le=100)
    """New questions asked for per augmentation request."""
    examples_per_batch: int = Field(default=5, ge=1)
    """Seed questions shown in each augmentation request."""


class ResponsesConfig(_Cfg):
    """How responses are diversified."""

    mode: Literal["persona", "view"]
    """`persona`: steer each response towards a sampled user; `view`: condition on viewpoints."""
    per_question: int = Field(default=4, ge=2)
    """Responses per question (in `view` mode: viewpoints asked for, one response each)."""


class LabelsConfig(_Cfg):
    """Which pairs each user labels, and the labeller's guidance."""

    guidelines: NonEmpty
    pairs_per_question: int = Field(default=1, ge=1)
    questions_per_user: int | None = Field(default=None, ge=1)
    """Global questions each user labels (None: all); the user's own specific ones are added."""


class SplitsConfig(_Cfg):
    """User-level and question-level held-out fractions."""

    test_user_fraction: float = Field(default=0.1, ge=0, lt=1)
    test_question_fraction: float = Field(default=0.1, ge=0, lt=1)


class DomainConfig(_Cfg):
    """One domain's recipe.

    Example:
        >>> cfg = load_domain("reviews")
        >>> cfg.users.kind, len(cfg.users.users)
        ('fixed', 8)
        >>> cfg.with_overrides(global_count=12).questions.global_count
        12
    """

    name: NonEmpty
    description: NonEmpty
    users: FixedUsers | TraitUsers = Field(discriminator="kind")
    questions: QuestionsConfig
    responses: ResponsesConfig
    labels: LabelsConfig
    refine_rounds: int = Field(default=0, ge=0)
    """Rounds of iterative persona improvement (0 disables)."""
    refine_pairs_per_call: int = Field(default=3, ge=1)
    """Unexplained choices shown in one refinement request."""
    disagreement_threshold: float = Field(default=0.75, ge=0, le=1)
    """Mean cross-user disagreement above which the data is flagged for regeneration."""
    max_users: int | None = Field(default=None, ge=2)
    """Keep a seeded sample of this many users (None: all)."""
    splits: SplitsConfig = SplitsConfig()

    @property
    def sha256(self) -> str:
        """Hash of the canonical config (recorded in `run.json`)."""
        return digest(self.model_dump_json(), length=64)

    def with_overrides(self, **overrides: Any) -> DomainConfig:
        """A copy with counts replaced; None values are ignored.

        Keys: `global_count`, `specific_per_user`, `batch_size`, `per_question`,
        `pairs_per_question`, `questions_per_user`, `personas_per_combination`, `refine_rounds`,
        `disagreement_threshold`, `max_users`, `test_user_fraction`, `test_question_fraction`.
        """
        data = self.model_dump()
        sections = {
            "global_count": "questions",
            "specific_per_user": "questions",
            "batch_size": "questions",
            "per_question": "responses",
            "pairs_per_question": "labels",
            "questions_per_user": "labels",
            "personas_per_combination": "users",
            "test_user_fraction": "splits",
            "test_question_fraction": "splits",
        }
        for key, value in overrides.items():
            if value is None:
                continue
            section = sections.get(key)
            if section is None and key not in data:
                msg = f"Unknown domain override {key!r}; known: {sorted([*sections, *data])}."
                raise SynthConfigError(msg)
            if key == "personas_per_combination" and self.users.kind != "traits":
                msg = (
                    f"--personas-per-combination needs a trait domain; {self.name} has fixed users."
                )
                raise SynthConfigError(msg)
            if section is None:
                data[key] = value
            else:
                data[section][key] = value
        return _validate(data, f"{self.name} with overrides {overrides}")


def _validate(data: Any, where: str) -> DomainConfig:
    try:
        return DomainConfig.model_validate(data)
    except ValidationError as e:
        msg = f"Invalid domain config {where}: {e}"
        raise SynthConfigError(msg) from e


def available_domains() -> list[str]:
    """Names of the packaged domain configs."""
    folder = resources.files("fspo_train.synth") / "domains"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def load_domain(name_or_path: str | Path) -> DomainConfig:
    """Load a packaged domain (`reviews`, `elix`, `roleplay`) or a YAML/JSON file.

    Raises:
        SynthConfigError: unknown name, unreadable file or invalid config.
    """
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml", ".json"}:
        if not path.is_file():
            msg = f"Domain config file {path} does not exist."
            raise SynthConfigError(msg)
        text = path.read_text(encoding="utf-8")
        where = str(path)
    else:
        name = str(name_or_path)
        if name not in available_domains():
            msg = f"Unknown domain {name!r}; packaged: {available_domains()}, or pass a .yaml path."
            raise SynthConfigError(msg)
        text = (resources.files("fspo_train.synth") / "domains" / f"{name}.yaml").read_text("utf-8")
        where = name
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        msg = f"Domain config {where} is not valid YAML: {e}"
        raise SynthConfigError(msg) from e
    return _validate(data, where)
