"""The README stays true: its tables match the code, its offline commands and examples run.

The tour's commands that need a running demo, the embedding examples and the metrics table
are checked against live processes in tests/integration/controllers/test_readme.py.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import pytest

from rxkube.controllers import ANNOTATIONS, APP_LABEL, OPT_IN_LABEL, OVERRIDABLE
from rxkube.controllers._cli import build_parser
from tests import readme


def run(command: str, cwd: Path = readme.REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        readme.shell(command),
        shell=True,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_configuration_table_is_every_annotation() -> None:
    rows = readme.table("Configuration", "annotation")
    documented = [(key, on, default, allowed) for key, on, default, allowed in rows]
    assert documented == [(a.key, a.on, a.default, a.allowed) for a in ANNOTATIONS]
    text = readme.section("Configuration")
    assert f'`{OPT_IN_LABEL}: "true"`' in text
    assert f"`{APP_LABEL}: <app>`" in text


def test_the_what_if_settings_are_the_overridable_ones() -> None:
    text = readme.section("Record and replay")
    listed = re.search(r"APP an app or `\*`; (.*?)\)", text, re.S)
    assert listed is not None
    names = re.findall(r"`([\w.-]+)`", listed.group(1))
    assert names == list(OVERRIDABLE)


def test_the_command_table_names_every_command() -> None:
    rows = readme.table("The command line", "command")
    documented = {row[0].split()[1] for row in rows}
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    assert isinstance(commands.choices, dict)
    subparsers: dict[str, argparse.ArgumentParser] = commands.choices
    assert documented == set(subparsers)
    for row in rows:
        name = row[0].split()[1]
        flags = {f for a in subparsers[name]._actions for f in a.option_strings}
        mentioned = set(re.findall(r"(--[a-z][a-z-]*)", row[1]))
        assert mentioned <= flags, (name, mentioned - flags)


@pytest.mark.parametrize("command", ["rxkube --help", "rxkube version"])
def test_the_basic_commands(command: str) -> None:
    done = run(command)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: rxkube" if "help" in command else "rxkube 0.")


def test_the_tour_replays_the_shipped_trace() -> None:
    (shipped,) = [
        c for b in readme.blocks("A 5-minute tour") for c in b.commands if "streams/data/" in c
    ]
    done = run(shipped)
    assert done.returncode == 0, done.stderr
    assert "simulated replay with notebook.tickets.spare=4" in done.stdout
    assert "events/s" in done.stderr


def test_the_replay_example_runs(tmp_path: Path) -> None:
    (example,) = [b.text for b in readme.blocks("Record and replay") if b.language == "python"]
    script = tmp_path / "example.py"
    script.write_text(example.replace("/tmp/", f"{tmp_path}/"))
    done = subprocess.run(
        [f"{readme.BIN}/python", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["0", "2", "4"]
    assert any(line.startswith("all ") for line in lines)
    assert (tmp_path / "timeline.csv").read_text().startswith("t,app,users")


def test_the_files_it_names_exist() -> None:
    text = readme.text()
    named = set(
        re.findall(r"`((?:docs|notebooks|deploy|bench|streams|controllers)/[\w./-]+)`", text)
    )
    named |= set(re.findall(r"\]\(((?:docs|notebooks|deploy)/[\w./-]+)\)", text))
    assert "docs/architecture.md" in named
    missing = [name for name in sorted(named) if not (readme.REPO / name.split()[0]).exists()]
    assert missing == []


def test_the_architecture_page_names_every_module() -> None:
    page = (readme.REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = [
        path
        for folder in ("streams", "proxy", "controllers", "fakes")
        for path in sorted((readme.REPO / folder).rglob("_*.py"))
        if path.name not in ("__init__.py", "__main__.py")
    ]
    assert len(modules) > 100
    missing = [str(p.relative_to(readme.REPO)) for p in modules if f"`{p.name}`" not in page]
    assert missing == []
    named = set(re.findall(r"`(_\w+\.py)`", page)) - {"__init__.py", "_name.py"}
    assert named <= {p.name for p in modules}
