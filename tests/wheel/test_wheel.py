"""The wheel, installed as a user installs it, runs the README's quickstarts as written.

The wheel and sdist are built from the checkout. Three fresh virtual environments
(`tests.wheel.venvs` says how each is installed) never see the checkout:

- no extras: `fspo --help` works and names the extra of each command that needs one;
  `FSPOMiddleware` names `[agents]`; the wheel's files (py.typed, LICENSE, the example config);
- `[local,agents]`: the application developers' quickstart, with the offline adapter that
  `fspo tiny` builds, then every Python block of the README that needs no server;
- `[train]`: the ML engineers' quickstart, offline: `fspo tiny`, `fspo synth` with the offline
  model, `fspo train`, `fspo eval`, `fspo publish` to the Hub test double.

Slow (the base install downloads its dependencies; training runs on CPU): marked `wheel`, so
`pytest -m "not wheel"` skips it; `make test` and CI run it.
"""

from __future__ import annotations

import json
import re
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.hub_server import HubServer
from tests.wheel.venvs import (
    REPO_ROOT,
    build,
    clean_env,
    closure_install,
    fresh_install,
    new_venv,
    pip,
    run,
    shell_lines,
    site_packages,
)

pytestmark = [pytest.mark.wheel, pytest.mark.slow, pytest.mark.enable_socket]

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
BASH_BLOCKS = re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def _block(containing: str) -> str:
    (found,) = [b for b in BASH_BLOCKS if containing in b]
    return found


def _command(containing: str) -> str:
    """The first README command containing `containing` (the app section comes first)."""
    found = [c for b in BASH_BLOCKS for c in shell_lines(b) if containing in c]
    assert found, containing
    return found[0]


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build(tmp_path_factory.mktemp("dist"))


def _sh(command: str, venv: Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    return run(["bash", "-c", command], cwd=cwd, env=env or clean_env(venv, cwd))


def test_the_wheel_and_sdist_carry_the_license_types_and_data(dists: tuple[Path, Path]) -> None:
    wheel, sdist = dists
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("langchain_fspo/py.typed", "fspo_train/py.typed", "fspo_train/configs/run.yaml"):
        assert name in names
    (license_name,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert "Apache License" in zipfile.ZipFile(wheel).read(license_name).decode()
    with zipfile.ZipFile(wheel) as archive:
        meta = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in meta
    assert "Project-URL: Paper, https://arxiv.org/abs/2502.19312" in meta
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    for suffix in ("/LICENSE", "/langchain_fspo/py.typed", "/examples/run.yaml"):
        assert any(m.endswith(suffix) for m in members), suffix


def test_base_install_names_the_extras_it_lacks(dists: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, _ = dists
    venv = new_venv(tmp_path / "venv")
    fresh_install(wheel, venv, tmp_path)
    env = clean_env(venv, tmp_path)
    python = str(venv / "bin" / "python")

    listing = pip(venv, "list", "--format", "json", home=tmp_path)
    installed = {d["name"].lower() for d in json.loads(listing.splitlines()[0])}
    assert "torch" not in installed  # the light install stays light
    assert not installed & {"transformers", "trl", "langchain"}

    help_text = _sh("fspo --help", venv, tmp_path)
    for command in ("train", "eval", "publish", "synth", "tiny"):
        assert f"    {command} " in help_text
    assert "needs `[train]`" in help_text

    for argv in ("fspo train --config run.yaml", "fspo tiny runs/tiny"):
        with pytest.raises(AssertionError) as info:
            _sh(argv, venv, tmp_path)
        last = str(info.value).strip().splitlines()[-1]
        assert last.startswith(f"fspo {argv.split()[1]}: needs the `[")
        assert 'pip install "langchain-fspo[' in last
        assert "Traceback" not in str(info.value)

    probe = (
        "import langchain_fspo, fspo_train, pathlib\n"
        "print(langchain_fspo.__version__, fspo_train.__version__, langchain_fspo.__file__)\n"
        "try:\n    from langchain_fspo import FSPOMiddleware\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = run([python, "-c", probe], cwd=tmp_path, env=env).splitlines()
    version = wheel.name.split("-")[1]
    assert out[0].split()[:2] == [version, version]
    assert out[0].split()[2].startswith(str(site_packages(venv)))  # the wheel, not the checkout
    assert out[1].startswith("FSPOMiddleware needs the `[agents]` extra")
    assert 'pip install "langchain-fspo[agents]"' in out[1]


def test_app_developer_quickstart_runs_as_written(dists: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, _ = dists
    venv = new_venv(tmp_path / "venv")
    linked = closure_install(wheel, ["local", "agents"], venv, tmp_path)
    assert "torch" in linked
    assert "trl" not in linked  # [local] is not [train]
    work = tmp_path / "app"
    work.mkdir()

    _sh(_command("fspo tiny runs/tiny"), venv, work)
    script = "\n\n".join(b for b in PYTHON_BLOCKS if "http://" not in b)
    (work / "readme_blocks.py").write_text(script, encoding="utf-8")
    out = run(
        [str(venv / "bin" / "python"), "readme_blocks.py"], cwd=work, env=clean_env(venv, work)
    )
    assert "ada-film-1" in out  # the example ids the quickstart prints
    assert "# Example 1" in out  # the rendered prompts
    assert (work / "preferences.db").is_file()


def test_ml_engineer_quickstart_runs_offline_to_a_published_adapter(
    dists: tuple[Path, Path], tmp_path: Path
) -> None:
    wheel, _ = dists
    venv = new_venv(tmp_path / "venv")
    closure_install(wheel, ["train"], venv, tmp_path)
    work = tmp_path / "ml"
    work.mkdir()
    commands = [
        _command("--example-config > run.yaml"),
        *shell_lines(_block("--generator offline")),
    ]
    assert [c.split()[1] for c in commands] == [
        "train",
        "tiny",
        "synth",
        "train",
        "eval",
        "publish",
    ]

    with HubServer() as hub:
        env = clean_env(venv, work) | {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_test"}
        for command in commands:
            _sh(command, venv, work, env)
        repo = re.search(r"--repo-id (\S+)", commands[-1]).group(1)
        (commit,) = hub.commits
        assert hub.repos[repo].private is False

    assert (work / "run.yaml").read_text() == (REPO_ROOT / "examples" / "run.yaml").read_text()
    results = json.loads((work / "runs" / "fspo" / "eval_results.json").read_text())
    assert results["accuracy"]["fspo"]["held_out"]["n"] > 0
    assert results["beta"] == 0.005
    uploaded = set(commit.files)
    assert {"adapter_config.json", "adapter_model.safetensors", "fspo_format.json"} <= uploaded
    assert "README.md" in uploaded
    assert not any(name.endswith(".jsonl") or "checkpoint" in name for name in uploaded)
    config = json.loads(commit.files["adapter_config.json"])
    assert Path(config["base_model_name_or_path"]).is_absolute()  # not ./runs/tiny/base
    assert Path(config["base_model_name_or_path"]) == (work / "runs" / "tiny" / "base").resolve()
