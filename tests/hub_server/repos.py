"""The Hub test double's state: model repos, their branches, commits and file trees."""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
from dataclasses import dataclass, field

DEFAULT_BRANCH = "main"
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


class HubError(Exception):
    """An error answer: HTTP status, the Hub's `X-Error-Code` and a message."""

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


class RepoStore:
    """The repos and commits a `HubServer` holds, with the seeding and inspection helpers."""

    url: str

    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.commits: list[HubCommit] = []
        self._lock = threading.RLock()
        self._counter = itertools.count(1)

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
            raise HubError(412, None, f"parentCommit {parent} is not the head {head} of {branch}")
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
            raise HubError(404, "RepoNotFound", f"Repository not found: {repo_id}")
        return repo

    def _resolve(self, repo: HubRepo, revision: str) -> str:
        oid = repo.resolve(revision)
        if oid is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return oid
