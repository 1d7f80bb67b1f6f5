"""Reading the README for the tests that keep it true (tests/unit/test_readme.py and
tests/integration/controllers/test_readme.py): its sections, code blocks, commands, tables."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
BIN = Path(sys.executable).parent
"""The environment's scripts (`rxkube`): the README's `rxkube ...` commands run from here."""


@dataclass(frozen=True)
class Block:
    language: str
    text: str

    @property
    def commands(self) -> list[str]:
        """The `$ ` lines of a console block, without the prompt."""
        return [line[2:] for line in self.text.splitlines() if line.startswith("$ ")]


def text() -> str:
    return README.read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text of the `## <title>` section, up to the next `## ` heading."""
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text(), re.M | re.S)
    assert found is not None, f"README has no section {title!r}"
    return found.group(1)


def blocks(title: str) -> list[Block]:
    return [
        Block(language, body)
        for language, body in re.findall(r"^```(\w*)\n(.*?)^```", section(title), re.M | re.S)
    ]


def table(title: str, first_column: str) -> list[list[str]]:
    """The rows of the table in section `title` whose header starts with `first_column`,
    each as its cells (backticks removed)."""
    lines = section(title).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_column} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
        rows.append([cell.strip().replace("`", "").replace("\\|", "|") for cell in cells])
    return rows


def shell(command: str) -> str:
    """A README command as run from the repository: `rxkube` is this environment's."""
    return re.sub(r"^rxkube ", f"{BIN}/rxkube ", command)
