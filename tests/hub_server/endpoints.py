"""The Hub test double's HTTP endpoints (the table in the package docstring)."""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.hub_server.repos import (
    DEFAULT_BRANCH,
    HubError,
    HubRepo,
    HubRequest,
    RepoStore,
    git_blob_sha,
)

_REPO = r"(?P<repo>[^/]+/[^/]+)"
_API_ROUTE = re.compile(
    rf"^/api/models/{_REPO}(?:/(?P<action>preupload|commit|branch|revision|tree)(?:/(?P<rest>.*))?)?$"
)
_RESOLVE_ROUTE = re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<filename>.+)$")


class HubEndpoints(RepoStore):
    """Answers one request as (status, headers, body), under the store's lock."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[HubRequest] = []

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
            except HubError as e:
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
            raise HubError(401, None, "Invalid credentials in Authorization header")
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
        raise HubError(404, None, f"The Hub test double does not serve {method} {path}")

    def _create_repo(self, payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if payload.get("type", "model") != "model":
            raise HubError(400, None, "The Hub test double serves model repos only")
        name, organization = payload.get("name"), payload.get("organization")
        if not name or not organization:
            raise HubError(400, None, "Repo ids must be 'namespace/name' in the test double")
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
            raise HubError(409, None, f"Reference already exists: refs/heads/{branch}")
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
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, None, "A commit body must start with a header line")
        header = lines[0]["value"]
        added: dict[str, bytes] = {}
        deleted: list[str] = []
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value", {})
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, None, f"Unsupported encoding {value.get('encoding')!r}")
                added[value["path"]] = base64.b64decode(value["content"])
            elif key in {"deletedFile", "deletedFolder"}:
                deleted.append(value["path"])
            else:
                # lfsFile / copies: this double never asks for LFS uploads (see module doc).
                raise HubError(400, None, f"The Hub test double does not accept {key!r} lines")
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
            raise HubError(
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
