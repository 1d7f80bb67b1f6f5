"""The wheel ships every subpackage and data file under `rxkube.*`, and nothing top-level else."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO

FOLDERS = {
    "streams": "rxkube/streams",
    "controllers": "rxkube/controllers",
    "proxy": "rxkube/proxy",
    "fakes": "rxkube/fakes",
}
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")


def _expected_files() -> set[str]:
    expected = set()
    for folder, target in FOLDERS.items():
        for path in (REPO / folder).rglob("*"):
            if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            expected.add(f"{target}/{path.relative_to(REPO / folder).as_posix()}")
    return expected


def test_wheel_contains_every_package_and_data_file(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in [*FOLDERS, "pyproject.toml", "README.md"]:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=IGNORED)
        else:
            shutil.copy(origin, source / name)
    out = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = out.glob("rxkube-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = _expected_files() - names
    assert not missing, f"missing from the wheel: {sorted(missing)}"
    top_level = {n.split("/", 1)[0] for n in names if not n.startswith("rxkube-")}
    assert top_level == {"rxkube"}, f"unexpected top-level entries: {sorted(top_level)}"
    for folder in FOLDERS.values():
        assert f"{folder}/py.typed" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "rxkube = rxkube.controllers._cli:main" in archive.read(entry_points).decode()
