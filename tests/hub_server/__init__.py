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

from tests.hub_server.repos import HubCommit, HubRepo, HubRequest, git_blob_sha
from tests.hub_server.server import HubServer

__all__ = ["HubCommit", "HubRepo", "HubRequest", "HubServer", "git_blob_sha"]
