"""The notebooks: each runs offline within a minute, shows its plots, and is committed with them.

`make notebooks` runs this module. Each notebook is executed by a Jupyter kernel (nbclient,
what nbmake runs on, used directly so that the executed output can be checked): a notebook
whose plot is missing from its output fails, as does one whose committed copy lacks its
outputs. Notebooks import only the public API (no `rxkube.<package>._private` module).

To refresh the committed outputs after changing a notebook::

    .venv/bin/python tests/notebooks/test_notebooks.py            # all of them
    .venv/bin/python tests/notebooks/test_notebooks.py notebooks/02-what-if-autoscaler.ipynb
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat import NotebookNode

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
PLOTS = {
    "01-explore-a-trace": 1,
    "02-what-if-autoscaler": 2,
    "03-build-a-pipeline": 1,
}
"""The figures each notebook shows (image/png outputs)."""
BUDGET = 60.0
"""Seconds a notebook may take, kernel start included."""
PRIVATE = re.compile(r"\brxkube(\.\w+)*\._\w+")


def read(path: Path) -> NotebookNode:
    notebook: NotebookNode = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    return notebook


def execute(path: Path) -> NotebookNode:
    """Run the notebook in a fresh kernel (cwd: its folder); raises on a failing cell."""
    notebook = read(path)
    client = NotebookClient(
        notebook,
        timeout=int(BUDGET),
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return notebook


def code_cells(notebook: NotebookNode) -> list[NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def images(cell: NotebookNode) -> int:
    return sum(1 for output in cell.get("outputs", []) if "image/png" in output.get("data", {}))


def check_outputs(notebook: NotebookNode, name: str) -> None:
    """Every figure shown where it is drawn, and no error output."""
    cells = code_cells(notebook)
    drawing = [cell for cell in cells if "plt.show()" in cell.source]
    assert drawing, f"{name}: no cell shows a figure"
    for cell in drawing:
        assert images(cell) >= 1, f"{name}: no figure in the output of:\n{cell.source[:300]}"
    assert sum(images(cell) for cell in cells) == PLOTS[name], name
    for cell in cells:
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"{name}: {output.get('ename')}"


def ids(path: Path) -> str:
    return path.stem


def test_the_three_notebooks_are_there() -> None:
    assert [path.stem for path in NOTEBOOKS] == sorted(PLOTS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_it_runs_within_a_minute_and_shows_its_plots(path: Path) -> None:
    started = time.perf_counter()
    executed = execute(path)
    elapsed = time.perf_counter() - started
    assert elapsed < BUDGET, f"{path.name} took {elapsed:.0f} s"
    check_outputs(executed, path.stem)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_it_is_committed_with_its_outputs(path: Path) -> None:
    committed = read(path)
    counts = [cell.execution_count for cell in code_cells(committed)]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name} is not run top to bottom"
    check_outputs(committed, path.stem)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_it_imports_only_the_public_api(path: Path) -> None:
    notebook = read(path)
    for cell in code_cells(notebook):
        found = PRIVATE.search(cell.source)
        assert found is None, f"{path.name} uses {found.group(0)}: import from the package"


def write_outputs(paths: list[Path]) -> None:
    """Execute the notebooks and save them with their outputs (see the module docstring)."""
    for path in paths:
        started = time.perf_counter()
        executed = execute(path)
        check_outputs(executed, path.stem)
        nbformat.write(executed, path)  # type: ignore[no-untyped-call]
        print(f"{path}: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    write_outputs([Path(arg).resolve() for arg in sys.argv[1:]] or NOTEBOOKS)
