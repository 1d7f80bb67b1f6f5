"""The abuse suite prints what it tried, by kind, and the watch chaos suite the schedules it
ran and the faults that took effect, by kind (the figures of issue 10)."""

from __future__ import annotations

from _pytest.terminal import TerminalReporter

from tests.chaos._harness import RAN, format_campaign
from tests.chaos.arena import TRIED


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if RAN:
        terminalreporter.section("watch chaos schedules")
        for line in format_campaign(RAN).splitlines():
            terminalreporter.write_line(line)
    if not TRIED:
        return
    total = sum(TRIED.values())
    terminalreporter.section("proxy abuse cases tried")
    for kind, count in sorted(TRIED.items()):
        terminalreporter.write_line(f"{kind:>28}: {count}")
    terminalreporter.write_line(f"{'total':>28}: {total}")
