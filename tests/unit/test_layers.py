"""The layer contract (DESIGN section 2) holds, and it really fails when a layer is crossed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
FOLDERS = {"streams": "streams", "controllers": "controllers", "proxy": "proxy", "fakes": "fakes"}


def _copy_as_namespace(tmp_path: Path) -> Path:
    """Copy the four folders to tmp/rxkube/<name>, to edit them without touching the repo."""
    root = tmp_path / "src"
    for target, folder in FOLDERS.items():
        shutil.copytree(REPO / folder, root / "rxkube" / target)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return root


def _lint(config_dir: Path, python_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(python_path)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=config_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_contract_holds_for_the_code_as_it_is(tmp_path: Path) -> None:
    root = _copy_as_namespace(tmp_path)
    result = _lint(tmp_path, root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_contract_fails_when_streams_imports_controllers(tmp_path: Path) -> None:
    root = _copy_as_namespace(tmp_path)
    (root / "rxkube" / "streams" / "_layer_violation.py").write_text(
        "import rxkube.controllers\n", encoding="utf-8"
    )
    result = _lint(tmp_path, root)
    assert result.returncode != 0
    assert "streams is the bottom layer" in result.stdout
    assert "rxkube.streams._layer_violation -> rxkube.controllers" in result.stdout


def test_contract_fails_when_library_code_imports_fakes(tmp_path: Path) -> None:
    root = _copy_as_namespace(tmp_path)
    (root / "rxkube" / "controllers" / "_sneaky.py").write_text(
        "import rxkube.fakes\n", encoding="utf-8"
    )
    result = _lint(tmp_path, root)
    assert result.returncode != 0
    assert "rxkube.controllers._sneaky -> rxkube.fakes" in result.stdout
