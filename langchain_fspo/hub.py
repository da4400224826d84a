"""Find adapter files in a local folder or on the Hugging Face Hub (revisions, offline cache)."""

from __future__ import annotations

from pathlib import Path

from langchain_fspo.errors import AdapterNotFoundError

__all__ = ["resolve_file"]


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
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, token=token))
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
