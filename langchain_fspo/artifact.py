"""The FSPO adapter's files: one owner for their names, for finding them and for reading them.

An FSPO adapter is a folder (or a Hub repo) holding PEFT's LoRA adapter and the prompt
contract beside it. Serving (`ChatFSPO.from_pretrained`, the backends) reads it through this
module, and so do `fspo_train`'s evaluation and publishing:

```python
from langchain_fspo.artifact import (
    ADAPTER_CONFIG_FILENAME,  # "adapter_config.json": PEFT's LoRA config
    ADAPTER_FILES,  # the three files serving needs
    ADAPTER_WEIGHTS_FILENAME,  # "adapter_model.safetensors": the LoRA weights
    FORMAT_FILENAME,  # "fspo_format.json": the prompt contract (`PromptFormat`)
    MODEL_CARD_FILENAME,  # "README.md": the model card written by publishing
    adapter_folder,  # a local folder holding the adapter (a Hub repo is downloaded first)
    base_model_path,  # the local folder a base model name means (None for a Hub id)
    check_base_model,  # fspo_format.json and adapter_config.json name the same base model
    check_base_model_exists,  # a base model named by a path is a folder on this machine
    find_adapters,  # the adapter folders directly under a folder (e.g. a run's stage1/)
    missing_files,  # which of ADAPTER_FILES a folder lacks
    read_adapter_config,  # adapter_config.json as a dict, with its base model checked
    read_json_object,  # a small JSON object file, every failure a typed error naming it
    resolve_file,  # one file from a folder or a Hub repo (revision, token, offline cache)
    same_model,  # two Hub ids or paths name the same model
)
from langchain_fspo.prompt_format import PromptFormat  # from_pretrained reads fspo_format.json
```

`PromptFormat.from_pretrained` / `save_pretrained` read and write `fspo_format.json` with the
names and `resolve_file` of this module (as PEFT's config class loads `adapter_config.json`
with its `utils/constants.py`); this module never parses the format itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langchain_fspo.errors import AdapterNotFoundError, PromptFormatError

__all__ = [
    "ADAPTER_CONFIG_FILENAME",
    "ADAPTER_FILES",
    "ADAPTER_WEIGHTS_FILENAME",
    "FORMAT_FILENAME",
    "MODEL_CARD_FILENAME",
    "adapter_folder",
    "base_model_path",
    "check_base_model",
    "check_base_model_exists",
    "find_adapters",
    "missing_files",
    "read_adapter_config",
    "read_json_object",
    "resolve_file",
    "same_model",
]

ADAPTER_CONFIG_FILENAME = "adapter_config.json"
"""PEFT's adapter config; names the base model in `base_model_name_or_path`."""
ADAPTER_WEIGHTS_FILENAME = "adapter_model.safetensors"
"""The LoRA weights (TGI and vLLM load safetensors only)."""
FORMAT_FILENAME = "fspo_format.json"
"""The prompt contract, `PromptFormat.save_pretrained`'s file."""
MODEL_CARD_FILENAME = "README.md"
"""The model card of a published adapter."""
ADAPTER_FILES = (ADAPTER_CONFIG_FILENAME, ADAPTER_WEIGHTS_FILENAME, FORMAT_FILENAME)
"""What a folder must hold to be served (and published)."""
PICKLED_WEIGHTS_FILENAME = "adapter_model.bin"
"""PEFT's legacy pickled weights: never loaded (unpickling can run code)."""
MAX_JSON_BYTES = 4 * 1024 * 1024
"""Largest `fspo_format.json` / `adapter_config.json` read (real ones are a few KB)."""


def resolve_file(
    directory_or_repo_id: str | Path,
    filename: str,
    *,
    revision: str | None = None,
    token: str | None = None,
) -> Path:
    """Return a local path to `filename` from a folder or a Hub repo id.

    A path that exists on disk is read as a folder. Anything else is taken as a Hub repo id
    and fetched with `huggingface_hub.hf_hub_download`, which honours `HF_ENDPOINT`,
    `HF_HUB_OFFLINE` and the local cache.

    Raises:
        AdapterNotFoundError: The folder or repo has no such file, or the repo is unknown.
    """
    local = Path(directory_or_repo_id).expanduser()
    if local.is_dir():
        path = local / filename
        if not path.is_file():
            msg = f"No {filename} in {local}; was this adapter trained and saved with fspo_train?"
            raise AdapterNotFoundError(msg)
        return path
    repo_id = str(directory_or_repo_id)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, token=token))
    except HFValidationError as e:
        msg = (
            f"{repo_id!r} is not a folder on this machine, and not a valid Hub repo id "
            f"(`org/name`) either ({e}). Check the path, or pass the repo id."
        )
        raise AdapterNotFoundError(msg) from e
    except LocalEntryNotFoundError as e:  # a subclass of EntryNotFoundError: catch it first
        msg = (
            f"{filename} of {repo_id!r} is not in the local cache and the Hub cannot be reached "
            f"(offline?): {e}"
        )
        raise AdapterNotFoundError(msg) from e
    except EntryNotFoundError as e:
        msg = (
            f"The Hub repo {repo_id!r} (revision {revision or 'main'}) has no {filename}; "
            "publish it with `fspo publish` or add the file."
        )
        raise AdapterNotFoundError(msg) from e
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        msg = f"{repo_id!r} is neither a local folder nor a Hub repo (revision {revision}): {e}"
        raise AdapterNotFoundError(msg) from e


def read_json_object(
    path: Path,
    *,
    error: type[AdapterNotFoundError | PromptFormatError],
    fix: str,
    max_bytes: int = MAX_JSON_BYTES,
) -> dict[str, Any]:
    """The JSON object in `path`; any failure raises `error` naming the file and `fix`.

    Failures: unreadable, over `max_bytes`, not UTF-8, not JSON, nested too deep for the
    parser, or not an object.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "x.json"
        >>> _ = path.write_text("[1]")
        >>> try:
        ...     read_json_object(path, error=PromptFormatError, fix="Save it again.")
        ... except PromptFormatError as e:
        ...     print(str(e).split(" ", 1)[1])
        must hold a JSON object, got list. Save it again.
    """
    try:
        size = path.stat().st_size
        if size > max_bytes:
            msg = f"{path} is {size:,} bytes, over the {max_bytes:,} bytes allowed. {fix}"
            raise error(msg)
        raw = path.read_bytes()
    except OSError as e:
        msg = f"{path} cannot be read ({e}). {fix}"
        raise error(msg) from e
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        msg = f"{path} is not UTF-8 text ({e}). {fix}"
        raise error(msg) from e
    except json.JSONDecodeError as e:
        msg = f"{path} is not valid JSON ({e}). {fix}"
        raise error(msg) from e
    except RecursionError as e:
        msg = f"{path} is nested too deeply to be a valid file. {fix}"
        raise error(msg) from e
    if not isinstance(data, dict):
        msg = f"{path} must hold a JSON object, got {type(data).__name__}. {fix}"
        raise error(msg)
    return data


def read_adapter_config(
    adapter_dir_or_repo: str | Path,
    revision: str | None = None,
    *,
    token: str | None = None,
    require_base_model: bool = True,
) -> dict[str, Any]:
    """The adapter's `adapter_config.json` (folder or Hub repo), which must name its base model.

    Args:
        adapter_dir_or_repo: The adapter's folder or Hub repo id.
        revision: The Hub revision.
        token: A Hub token.
        require_base_model: Raise when `base_model_name_or_path` is missing (off: the dict
            as it is, e.g. for a model card).

    Raises:
        AdapterNotFoundError: No such file, not a UTF-8 JSON object of sane size, or (with
            `require_base_model`) no `base_model_name_or_path` string in it.
    """
    path = resolve_file(
        adapter_dir_or_repo, ADAPTER_CONFIG_FILENAME, revision=revision, token=token
    )
    data = read_json_object(
        path, error=AdapterNotFoundError, fix="Save the adapter again with PEFT or fspo_train."
    )
    base = data.get("base_model_name_or_path")
    if require_base_model and not (isinstance(base, str) and base):
        msg = (
            f"{path} has no `base_model_name_or_path` string; pass the base model explicitly: "
            "LocalBackend(base_model, adapters={...})."
        )
        raise AdapterNotFoundError(msg)
    return data


def adapter_folder(
    adapter_dir_or_repo: str | Path, revision: str | None = None, *, token: str | None = None
) -> Path:
    """A local folder holding the adapter (a Hub repo is downloaded to the cache first).

    A local folder must hold `adapter_config.json` (a JSON object) and
    `adapter_model.safetensors`; a folder with only pickled `adapter_model.bin` weights is
    refused without reading them (unpickling can run code).

    Raises:
        AdapterNotFoundError: A file is missing or unreadable, or the repo is unknown.
    """
    local = Path(adapter_dir_or_repo).expanduser()
    if local.is_dir():
        read_adapter_config(local, require_base_model=False)
        if not (local / ADAPTER_WEIGHTS_FILENAME).is_file():
            if (local / PICKLED_WEIGHTS_FILENAME).is_file():
                msg = (
                    f"{local} holds pickled weights ({PICKLED_WEIGHTS_FILENAME}), which are not "
                    "loaded: unpickling can run code. Convert them to "
                    f"{ADAPTER_WEIGHTS_FILENAME} where you trust the file (load it with PEFT "
                    "and `save_pretrained(..., safe_serialization=True)`), or save the adapter "
                    "again with fspo_train."
                )
                raise AdapterNotFoundError(msg)
            msg = (
                f"No {ADAPTER_WEIGHTS_FILENAME} in {local}; was this adapter trained and saved "
                "with fspo_train? (A local folder is never looked up on the Hub.)"
            )
            raise AdapterNotFoundError(msg)
        return local
    weights = resolve_file(
        adapter_dir_or_repo, ADAPTER_WEIGHTS_FILENAME, revision=revision, token=token
    )
    resolve_file(adapter_dir_or_repo, ADAPTER_CONFIG_FILENAME, revision=revision, token=token)
    return weights.parent


def missing_files(folder: str | Path) -> list[str]:
    """The names in `ADAPTER_FILES` that `folder` lacks (empty when it can be served).

    Example:
        >>> import tempfile
        >>> missing_files(tempfile.mkdtemp())
        ['adapter_config.json', 'adapter_model.safetensors', 'fspo_format.json']
    """
    return [name for name in ADAPTER_FILES if not (Path(folder) / name).is_file()]


def find_adapters(folder: str | Path) -> list[Path]:
    """The adapter folders (holding `adapter_config.json`) directly under `folder`, sorted.

    Trainer checkpoints (`checkpoint-*`) are left out.

    Example:
        >>> import tempfile
        >>> find_adapters(tempfile.mkdtemp())
        []
    """
    found = sorted(p.parent for p in Path(folder).glob(f"*/{ADAPTER_CONFIG_FILENAME}"))
    return [p for p in found if not p.name.startswith("checkpoint-")]


def base_model_path(name: str) -> Path | None:
    """The local folder that a base model name means, or None when it names a Hub repo.

    A name is a folder when it exists as one, or when no Hub repo id can look like it
    (`./base`, `../base`, `/abs/base`, `~/base`, `a/b/c`): `huggingface_hub`'s own check of
    repo ids decides. A bare `org/name` that is not a folder here is a Hub id.

    Example:
        >>> base_model_path("org/base") is None, base_model_path("./tiny-base").name
        (True, 'tiny-base')
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils._validators import validate_repo_id

    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    try:
        validate_repo_id(name)
    except HFValidationError:
        return path
    return None


def check_base_model_exists(base_model: str, *, source: str | Path) -> None:
    """Raise `AdapterNotFoundError` if `base_model` is a local path that is not a folder here.

    An adapter records its base model as PEFT saved it: a Hub id, or the path it was trained
    from (`fspo train` records absolute paths). Once the adapter is copied to another machine,
    or was trained from a relative path, that path may not exist where it is loaded; this
    says so and how to fix it, instead of the Hub client's "Repo id must use alphanumeric
    chars" error.

    Args:
        base_model: `base_model_name_or_path` of `adapter_config.json`.
        source: The adapter folder or Hub repo, for the message.
    """
    path = base_model_path(base_model)
    if path is None or path.is_dir():
        return
    relative = "" if path.is_absolute() else f" (a relative path, read from {Path.cwd()})"
    msg = (
        f"{source}: the base model is the local folder {base_model!r}{relative}, which does "
        "not exist here. Put the base model there, or edit `base_model_name_or_path` in "
        f"{ADAPTER_CONFIG_FILENAME} and `base_model_id` in {FORMAT_FILENAME} to its Hub id or "
        "its folder on this machine."
    )
    raise AdapterNotFoundError(msg)


def same_model(a: str, b: str) -> bool:
    """Same Hub id or same local folder (paths compared after resolving).

    Example:
        >>> same_model("org/base", "org/base/"), same_model("org/base", "org/other")
        (True, False)
    """
    if a.rstrip("/") == b.rstrip("/"):
        return True
    path_a, path_b = Path(a).expanduser(), Path(b).expanduser()
    return path_a.exists() and path_b.exists() and path_a.resolve() == path_b.resolve()


def check_base_model(
    format_base_model: str | None, adapter_base_model: str, *, source: str | Path
) -> None:
    """Raise `PromptFormatError` if the two files of `source` name different base models.

    Args:
        format_base_model: `PromptFormat.base_model_id` (None: not recorded, nothing to check).
        adapter_base_model: `base_model_name_or_path` of `adapter_config.json`.
        source: The adapter folder or Hub repo, for the message.
    """
    if format_base_model is None or same_model(format_base_model, adapter_base_model):
        return
    msg = (
        f"{source}: {FORMAT_FILENAME} says the adapter was trained on {format_base_model!r}, "
        f"but {ADAPTER_CONFIG_FILENAME} names {adapter_base_model!r} as its base model. "
        "Republish the adapter with matching files."
    )
    raise PromptFormatError(msg)
