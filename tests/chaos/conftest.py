"""The abuse suite prints what it tried, by kind (the figures of issue 10)."""

from __future__ import annotations

from _pytest.terminal import TerminalReporter

from tests.chaos.arena import TRIED


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if not TRIED:
        return
    total = sum(TRIED.values())
    terminalreporter.section("proxy abuse cases tried")
    for kind, count in sorted(TRIED.items()):
        terminalreporter.write_line(f"{kind:>28}: {count}")
    terminalreporter.write_line(f"{'total':>28}: {total}")
