"""What `fspo` prints when a command fails: the problem and the fix, without a traceback.

`describe` turns an exception into one or two lines (the Hub or a model server unreachable,
a missing API key, a missing extra, the Hub refusing a request, our own errors); anything
else is named by its type with a pointer to `--debug`.

Example:
    >>> print(describe("fspo eval", "train", ModuleNotFoundError("no trl", name="trl")))
    fspo eval: needs the `[train]` extra (no trl); install it: pip install "langchain-fspo[train]"
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["describe", "missing_extra", "remove_if_left_empty"]

_MAX_CHARS = 600


def missing_extra(command: str, extra: str, error: BaseException) -> str:
    """The line for a command whose packages are not installed."""
    return (
        f"fspo {command}: needs the `[{extra}]` extra ({error}); install it: "
        f'pip install "langchain-fspo[{extra}]"'
    )


def _first_lines(text: str, lines: int = 2) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][:lines]
    joined = " ".join(line.strip() for line in kept)
    return joined if len(joined) <= _MAX_CHARS else joined[: _MAX_CHARS - 3] + "..."


def _url_of(error: BaseException) -> str | None:
    request = getattr(error, "request", None)
    try:
        url = getattr(request, "url", None)
    except RuntimeError:  # httpx raises when an error has no request attached
        return None
    if url is None:
        return None
    text = str(url)
    scheme, sep, rest = text.partition("://")
    return f"{scheme}{sep}{rest.split('/', 1)[0]}" if sep else text


def _connection(error: BaseException) -> str | None:
    import httpx

    kinds: tuple[type[BaseException], ...] = (httpx.TransportError, ConnectionError)
    try:
        import openai

        kinds = (*kinds, openai.APIConnectionError)
    except ImportError:
        pass
    chain: BaseException | None = error
    while chain is not None:
        if isinstance(chain, kinds):
            where = _url_of(chain) or "the server"
            return (
                f"cannot reach {where} ({type(chain).__name__}: {_first_lines(str(chain), 1)}). "
                "Check the network and the address (HF_ENDPOINT for the Hub, the URL in a "
                "model spec); set HF_HUB_OFFLINE=1 to use only the local Hub cache."
            )
        chain = chain.__cause__ or chain.__context__
    return None


def _hub(error: BaseException) -> str | None:
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(error, OfflineModeIsEnabled):
        return f"{_first_lines(str(error))} Unset HF_HUB_OFFLINE to reach the Hub."
    if not isinstance(error, HfHubHTTPError):
        return None
    status = error.response.status_code if error.response is not None else None
    hint = ""
    if status in {401, 403}:
        hint = " Log in (`hf auth login`), set HF_TOKEN, or pass --token with write access."
    return f"the Hub answered {status}: {_first_lines(str(error), 1)}.{hint}"


def _credentials(error: BaseException) -> str | None:
    try:
        import openai
    except ImportError:
        return None
    text = str(error)
    if isinstance(error, openai.AuthenticationError) or (
        isinstance(error, openai.OpenAIError) and "api_key" in text.replace("`", "")
    ):
        return (
            f"no valid API key ({_first_lines(text, 1)}). Set OPENAI_API_KEY (or your "
            "provider's key variable), or use a local server: 'openai:NAME@http://127.0.0.1:8000/v1'."
        )
    return None


def describe(prefix: str, extra: str, error: BaseException) -> str:
    """`prefix: problem. fix` for `error`, in one or two lines.

    Args:
        prefix: What failed, e.g. `fspo eval`.
        extra: The extra the command's packages come with (named when one is missing).
        error: The exception.
    """
    from langchain_fspo.errors import FSPOError

    if (
        isinstance(error, ModuleNotFoundError)
        and error.name is not None
        and error.name.split(".")[0] not in {"fspo_train", "langchain_fspo"}
    ):
        return missing_extra(prefix.removeprefix("fspo "), extra, error)
    for explain in (_credentials, _hub, _connection):
        line = explain(error)
        if line is not None:
            return f"{prefix}: {line}"
    if isinstance(error, FSPOError | ValueError | OSError | ImportError):
        return f"{prefix}: {_first_lines(str(error), 4)}"
    return (
        f"{prefix}: unexpected {type(error).__name__}: {_first_lines(str(error), 1)} "
        "(run again with --debug for the traceback)"
    )


def remove_if_left_empty(folder: Path, *, existed: bool) -> None:
    """Remove `folder` after a failed command if the command created it and wrote no file.

    Args:
        folder: The command's output folder.
        existed: Whether it existed before the command ran (then it is never removed).
    """
    if existed or not folder.is_dir():
        return
    if any(p.is_file() or p.is_symlink() for p in folder.rglob("*")):
        return
    for sub in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        sub.rmdir()
    folder.rmdir()
