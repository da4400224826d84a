"""A local test double of the Hugging Face Hub HTTP API (a real HTTP server on 127.0.0.1).

This is a test double, not a Hub: it speaks the subset of the Hub's HTTP protocol that
`huggingface_hub` 1.x uses for publishing and downloading a small model repo, read from the
client's own source (`hf_api.py`, `_commit_api.py`, `_upload_pipeline.py`,
`file_download.py`), so the real client runs unmodified against it:

| client call                      | endpoint                                                    |
|----------------------------------|-------------------------------------------------------------|
| `HfApi.create_repo`              | `POST /api/repos/create` (409 when it exists)               |
| `HfApi.create_branch`            | `POST /api/models/{repo}/branch/{branch}` (409 when exists) |
| `upload_folder` / `create_commit`| `POST /api/models/{repo}/preupload/{rev}`, then             |
|                                  | `POST /api/models/{repo}/commit/{rev}` (NDJSON body)        |
| `upload_folder` with a README.md | `POST /api/validate-yaml` (model card metadata check)       |
| `HfApi.repo_info`/`model_info`   | `GET /api/models/{repo}[/revision/{rev}]`                   |
| `HfApi.list_repo_tree`           | `GET /api/models/{repo}/tree/{rev}[/{path}]`                |
| `hf_hub_download`                | `HEAD` and `GET /{repo}/resolve/{rev}/{filename}`           |
| `snapshot_download`              | the three above                                             |

Errors carry the Hub's `X-Error-Code` header (`RepoNotFound`, `RevisionNotFound`,
`EntryNotFound`), which `huggingface_hub` turns into its typed errors.

Simplification, stated: `preupload` answers `uploadMode: "regular"` for every file, so the
client inlines each file's bytes (base64) in the commit. The real Hub stores large and binary
files (`*.safetensors`) through LFS/Xet storage instead; that storage protocol is not
emulated, so the LFS batch and Xet endpoints are never called. Only model repos are served;
pull requests (`create_pr=True`) and deletions of repos are not.
Writes (create a repo or branch, preupload, commit) need an `Authorization` header (any
token; 401 otherwise), and private repos answer 404 `RepoNotFound` to requests without one,
as the Hub does for anonymous callers.

Use it through `tests.hub_fixtures.hub_server` (a pytest fixture that also points
`huggingface_hub` at the server and at an empty cache), or directly:

    with HubServer() as hub:
        HfApi(endpoint=hub.url).create_repo("org/name")
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from tests.http_server import QuietHTTPServer

__all__ = ["HubCommit", "HubRepo", "HubRequest", "HubServer", "git_blob_sha"]

DEFAULT_BRANCH = "main"
_REPO = r"(?P<repo>[^/]+/[^/]+)"
_API_ROUTE = re.compile(
    rf"^/api/models/{_REPO}(?:/(?P<action>preupload|commit|branch|revision|tree)(?:/(?P<rest>.*))?)?$"
)
_RESOLVE_ROUTE = re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<filename>.+)$")
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


def git_blob_sha(data: bytes) -> str:
    """The git blob id of `data` (what the Hub sends as `ETag` for a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class HubCommit:
    """One commit the server accepted."""

    repo_id: str
    revision: str
    """The branch the commit landed on."""
    oid: str
    message: str
    description: str
    files: dict[str, bytes]
    """Files added or replaced by this commit, path -> content."""
    deleted: tuple[str, ...] = ()
    parent: str | None = None


@dataclass
class HubRepo:
    """A model repo: its visibility, branches (name -> head commit) and file trees per commit."""

    repo_id: str
    private: bool = False
    branches: dict[str, str] = field(default_factory=dict)
    trees: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        """The commit oid a branch name or commit id points to, or None."""
        if revision in self.branches:
            return self.branches[revision]
        if _COMMIT_SHA.match(revision) and revision in self.trees:
            return revision
        return None


@dataclass(frozen=True)
class HubRequest:
    """One HTTP request the server received (for assertions on what a client sent)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _HubError(Exception):
    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class HubServer:
    """A threaded HTTP server on 127.0.0.1 that behaves like the Hub for the calls listed above.

    Attributes:
        url: The endpoint to give `huggingface_hub` (`HF_ENDPOINT` or `endpoint=`).
        repos: Repo id -> `HubRepo`.
        commits: Every accepted commit, in order.
        requests: Every request received, in order.
    """

    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.commits: list[HubCommit] = []
        self.requests: list[HubRequest] = []
        self._lock = threading.RLock()
        self._counter = itertools.count(1)
        self._httpd = QuietHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._thread: threading.Thread | None = None
        host, port = self._httpd.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    @property
    def handler_errors(self) -> list[BaseException]:
        """Errors raised while serving (not clients going away); kept, never printed."""
        return self._httpd.handler_errors

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._thread is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ seeding and inspection

    def create_repo(self, repo_id: str, *, private: bool = False) -> HubRepo:
        """Create an empty repo with an initial commit on `main` (as the Hub does)."""
        with self._lock:
            if repo_id in self.repos:
                return self.repos[repo_id]
            repo = HubRepo(repo_id=repo_id, private=private)
            oid = self._new_oid(repo_id, "initial commit")
            repo.trees[oid] = {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs\n"}
            repo.branches[DEFAULT_BRANCH] = oid
            self.repos[repo_id] = repo
            return repo

    def add_file(
        self,
        repo_id: str,
        path: str,
        data: bytes,
        *,
        revision: str = DEFAULT_BRANCH,
        message: str | None = None,
    ) -> str:
        """Commit one file to `repo_id` (created if missing) on branch `revision`; returns the oid.

        A branch that does not exist yet is started from `main`.
        """
        with self._lock:
            repo = self.create_repo(repo_id)
            if revision not in repo.branches:
                repo.branches[revision] = repo.branches[DEFAULT_BRANCH]
            commit = self._commit(
                repo, revision, message or f"Add {path}", "", {path: data}, (), None
            )
            return commit.oid

    def files(self, repo_id: str, revision: str = DEFAULT_BRANCH) -> dict[str, bytes]:
        """The file tree of `repo_id` at `revision` (a copy)."""
        with self._lock:
            repo = self.repos[repo_id]
            oid = repo.resolve(revision)
            if oid is None:
                msg = f"{repo_id} has no revision {revision!r}; branches: {sorted(repo.branches)}"
                raise KeyError(msg)
            return dict(repo.trees[oid])

    # ------------------------------------------------------------------ internals

    def _new_oid(self, repo_id: str, salt: str) -> str:
        seed = f"{repo_id}:{next(self._counter)}:{salt}".encode()
        return hashlib.sha1(seed, usedforsecurity=False).hexdigest()

    def _commit(
        self,
        repo: HubRepo,
        branch: str,
        message: str,
        description: str,
        added: dict[str, bytes],
        deleted: tuple[str, ...],
        parent: str | None,
    ) -> HubCommit:
        head = repo.branches[branch]
        if parent is not None and parent != head:
            raise _HubError(412, None, f"parentCommit {parent} is not the head {head} of {branch}")
        tree = dict(repo.trees[head])
        for path in deleted:
            for name in [p for p in tree if p == path or p.startswith(path.rstrip("/") + "/")]:
                del tree[name]
        tree.update(added)
        oid = self._new_oid(repo.repo_id, message)
        repo.trees[oid] = tree
        repo.branches[branch] = oid
        commit = HubCommit(
            repo_id=repo.repo_id,
            revision=branch,
            oid=oid,
            message=message,
            description=description,
            files=dict(added),
            deleted=deleted,
            parent=head,
        )
        self.commits.append(commit)
        return commit

    def _repo(self, repo_id: str, headers: dict[str, str]) -> HubRepo:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and "authorization" not in headers):
            raise _HubError(404, "RepoNotFound", f"Repository not found: {repo_id}")
        return repo

    def _resolve(self, repo: HubRepo, revision: str) -> str:
        oid = repo.resolve(revision)
        if oid is None:
            raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return oid

    # ------------------------------------------------------------------ endpoints

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one request: (status, headers, body)."""
        split = urlsplit(raw_path)
        path = split.path
        query = parse_qs(split.query)
        with self._lock:
            self.requests.append(HubRequest(method, raw_path, headers, body))
            try:
                return self._route(method, path, query, headers, body)
            except _HubError as e:
                extra = {"X-Error-Message": e.message, **e.headers}
                if e.code is not None:
                    extra["X-Error-Code"] = e.code
                return _json(e.status, {"error": e.message}, extra)

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        if method == "POST" and path != "/api/validate-yaml" and "authorization" not in headers:
            raise _HubError(401, None, "Invalid credentials in Authorization header")
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo(json.loads(body or b"{}"))
        if method == "POST" and path == "/api/validate-yaml":
            return _validate_yaml(json.loads(body or b"{}").get("content", ""))
        api = _API_ROUTE.match(path)
        if api:
            repo = self._repo(unquote(api["repo"]), headers)
            action, rest = api["action"], unquote(api["rest"] or "")
            if method == "GET" and action in {None, "revision"}:
                return self._repo_info(repo, rest or DEFAULT_BRANCH)
            if method == "GET" and action == "tree":
                return self._tree(repo, rest, query)
            if method == "POST" and action == "branch":
                return self._create_branch(repo, rest, json.loads(body or b"{}"))
            if method == "POST" and action == "preupload":
                return self._preupload(repo, rest, json.loads(body))
            if method == "POST" and action == "commit":
                return self._commit_endpoint(repo, rest, body)
        resolve = _RESOLVE_ROUTE.match(path)
        if resolve and method in {"GET", "HEAD"}:
            repo = self._repo(unquote(resolve["repo"]), headers)
            return self._resolve_file(
                repo, unquote(resolve["rev"]), unquote(resolve["filename"]), method, headers
            )
        raise _HubError(404, None, f"The Hub test double does not serve {method} {path}")

    def _create_repo(self, payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if payload.get("type", "model") != "model":
            raise _HubError(400, None, "The Hub test double serves model repos only")
        name, organization = payload.get("name"), payload.get("organization")
        if not name or not organization:
            raise _HubError(400, None, "Repo ids must be 'namespace/name' in the test double")
        repo_id = f"{organization}/{name}"
        if repo_id in self.repos:
            # The Hub's 409 body carries the url too; `create_repo(exist_ok=True)` reads it.
            message = "You already created this model repo"
            return _json(409, {"error": message, "url": f"{self.url}/{repo_id}"})
        self.create_repo(repo_id, private=payload.get("visibility") == "private")
        return _json(200, {"url": f"{self.url}/{repo_id}", "name": repo_id})

    def _create_branch(
        self, repo: HubRepo, branch: str, payload: dict[str, Any]
    ) -> tuple[int, dict[str, str], bytes]:
        if branch in repo.branches:
            raise _HubError(409, None, f"Reference already exists: refs/heads/{branch}")
        start = payload.get("startingPoint") or DEFAULT_BRANCH
        repo.branches[branch] = self._resolve(repo, start)
        return _json(200, {})

    def _repo_info(self, repo: HubRepo, revision: str) -> tuple[int, dict[str, str], bytes]:
        oid = self._resolve(repo, revision)
        siblings = [{"rfilename": name} for name in sorted(repo.trees[oid])]
        info = {
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": oid,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "tags": [],
            "siblings": siblings,
        }
        return _json(200, info)

    def _tree(
        self, repo: HubRepo, rest: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, str], bytes]:
        revision, _, prefix = rest.partition("/")
        tree = repo.trees[self._resolve(repo, revision)]
        recursive = query.get("recursive", ["False"])[0].lower() == "true"
        base = prefix.rstrip("/") + "/" if prefix else ""
        entries: dict[str, dict[str, Any]] = {}
        for name, data in sorted(tree.items()):
            if not name.startswith(base):
                continue
            relative = name[len(base) :]
            if "/" in relative and not recursive:
                folder = base + relative.split("/")[0]
                entries[folder] = {"type": "directory", "path": folder, "oid": "0" * 40, "size": 0}
                continue
            entries[name] = {
                "type": "file",
                "path": name,
                "size": len(data),
                "oid": git_blob_sha(data),
            }
        return _json(200, list(entries.values()))

    def _preupload(
        self, repo: HubRepo, revision: str, payload: dict[str, Any]
    ) -> tuple[int, dict[str, str], bytes]:
        tree = repo.trees[self._resolve(repo, revision)]
        files = []
        for item in payload.get("files", []):
            path = item["path"]
            existing = tree.get(path)
            files.append(
                {
                    "path": path,
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_sha(existing) if existing is not None else None,
                }
            )
        return _json(200, {"files": files, "commitOid": repo.branches.get(revision)})

    def _commit_endpoint(
        self, repo: HubRepo, revision: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if revision not in repo.branches:
            raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise _HubError(400, None, "A commit body must start with a header line")
        header = lines[0]["value"]
        added: dict[str, bytes] = {}
        deleted: list[str] = []
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value", {})
            if key == "file":
                if value.get("encoding") != "base64":
                    raise _HubError(400, None, f"Unsupported encoding {value.get('encoding')!r}")
                added[value["path"]] = base64.b64decode(value["content"])
            elif key in {"deletedFile", "deletedFolder"}:
                deleted.append(value["path"])
            else:
                # lfsFile / copies: this double never asks for LFS uploads (see module doc).
                raise _HubError(400, None, f"The Hub test double does not accept {key!r} lines")
        commit = self._commit(
            repo,
            revision,
            header.get("summary", ""),
            header.get("description", ""),
            added,
            tuple(deleted),
            header.get("parentCommit"),
        )
        return _json(
            200,
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{self.url}/{repo.repo_id}/commit/{commit.oid}",
                "pullRequestUrl": None,
            },
        )

    def _resolve_file(
        self, repo: HubRepo, revision: str, filename: str, method: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        oid = self._resolve(repo, revision)
        data = repo.trees[oid].get(filename)
        if data is None:
            raise _HubError(
                404,
                "EntryNotFound",
                f"{filename} does not exist on {revision}",
                {"X-Repo-Commit": oid},
            )
        etag = f'"{git_blob_sha(data)}"'
        out = {"X-Repo-Commit": oid, "ETag": etag, "Content-Type": "application/octet-stream"}
        start = _range_start(headers.get("range"))
        payload = data[start:] if method == "GET" else b""
        if method == "HEAD":
            out["Content-Length"] = str(len(data))
            return 200, out, b""
        if start:
            out["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return 206, out, payload
        return 200, out, payload


def _validate_yaml(content: str) -> tuple[int, dict[str, str], bytes]:
    """Check a model card's YAML header the way the Hub does for the fields we write."""
    import yaml

    if not content.startswith("---"):
        return _json(200, {"errors": [], "warnings": [{"message": "Empty metadata"}]})
    try:
        _, header, _ = content.split("---", 2)
        meta = yaml.safe_load(header)
    except (ValueError, yaml.YAMLError) as e:
        return _json(400, {"errors": [{"message": f"Invalid YAML: {e}"}]})
    errors = []
    if not isinstance(meta, dict):
        errors.append("metadata must be a YAML mapping")
    else:
        errors += [
            f'"{key}" must be a string'
            for key in ("library_name", "pipeline_tag", "license")
            if key in meta and not isinstance(meta[key], str)
        ]
        tags = meta.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            errors.append('"tags" must be an array of strings')
        base = meta.get("base_model")
        if base is not None and not isinstance(base, str | list):
            errors.append('"base_model" must be a string or an array of strings')
    if errors:
        return _json(400, {"errors": [{"message": m} for m in errors]})
    return _json(200, {"errors": [], "warnings": []})


def _range_start(value: str | None) -> int:
    if not value:
        return 0
    match = re.match(r"bytes=(\d+)-", value)
    return int(match.group(1)) if match else 0


def _json(
    status: int, payload: Any, extra: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", **(extra or {})}
    return status, headers, json.dumps(payload).encode()


def _make_handler(server: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, out_headers, payload = server.handle(self.command, self.path, headers, body)
            self.send_response(status)
            for key, value in out_headers.items():
                self.send_header(key, value)
            if "Content-Length" not in out_headers:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Silence the default stderr access log."""

    return Handler
