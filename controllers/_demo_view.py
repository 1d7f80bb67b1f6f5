"""The demo's terminal view: apps, pods, tickets, the queue and scale actions, live.

What this module is for: `rxkube demo` shows what the controller does while it runs. The
rendering is pure (`render_view` and `plain_lines` turn a `StatusSnapshot` and the users'
statistics into lines); `TerminalView` does the output:

- on a terminal, the view is redrawn in place (cursor up, clear to the end) under the URLs
  printed once at the start, cut to the terminal's height so the redraw never scrolls;
- otherwise (a pipe, a log file, a test), one line per app every `plain_interval` seconds, and
  each new scale action, problem and Event once, as it happens: a log a person or a program
  can read, with no escape codes.

It may import this package's records; its only I/O is the text stream it is given.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from typing import Final, TextIO

from rxkube.controllers._status import Activity, AppBoard, StatusSnapshot
from rxkube.controllers._users import UserStatistics

__all__: list[str] = []

_CLEAR_BELOW: Final = "\x1b[J"
_SHOWN_KINDS: Final = frozenset({"scale-up", "scale-down", "problem", "app"})
"""What the terminal shows of the recent activity (the status page shows it all): Events
repeat the problems and app changes, so only those that failed to post are shown."""


def _shown(activity: Activity) -> bool:
    return activity.kind in _SHOWN_KINDS or activity.level == "error"


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _pods(app: AppBoard) -> str:
    live = [s for s in app.servers if s.phase != "Terminating"]
    ready = sum(1 for s in live if s.ready)
    scaled = sum(1 for s in live if s.autoscaled)
    text = f"{ready}/{len(live)} ready"
    if scaled:
        text += f", {scaled} autoscaled"
    if len(live) < len(app.servers):
        text += f", {len(app.servers) - len(live)} terminating"
    return text


def render_view(
    snapshot: StatusSnapshot,
    users: UserStatistics | None,
    *,
    elapsed: float,
    duration: float | None,
    records: int | None = None,
    recent: int = 6,
) -> list[str]:
    """The whole view as lines (no escape codes)."""
    clock = _clock(elapsed) + (f" / {_clock(duration)}" if duration is not None else "")
    lines = [
        f"rxkube demo  {clock}  {'ready' if snapshot.ready else 'starting'}  "
        f"scale actions: {snapshot.scale_ups} up, {snapshot.scale_downs} down"
        + (f"  trace: {records} records" if records is not None else "")
        + "  (Ctrl-C stops)"
    ]
    if users is not None:
        lines.append(
            f"users: {users.arrived} arrived, {users.using} using an app, {users.waiting} "
            f"waiting, {users.left} left ({users.gave_up} gave up waiting); "
            f"{users.requests} requests, {users.messages} WebSocket echoes, "
            f"{users.errors} errors"
        )
    lines.append("")
    lines.append(f"{'APP':<12}{'PODS':<26}{'USERS':>6}{'FREE':>6}{'WAITING':>9}{'REQUESTS':>10}")
    for app in snapshot.apps:
        lines.append(
            f"{app.app:<12}{_pods(app):<26}{app.users:>6}{app.free:>6}{app.queued:>9}"
            f"{app.requests:>10}"
            + (
                f"   tickets.max {app.tickets_max}, spare {app.tickets_spare}, "
                f"pods.max {app.pods_max}"
            )
        )
        for server in app.servers:
            users_text = (
                f"{server.users}/{server.capacity} users"
                if server.capacity is not None
                else f"{server.users} users"
            )
            lines.append(
                f"  {server.pod:<40}{server.phase:<12}{'ready' if server.ready else '-':<7}"
                f"{users_text:<12}{'autoscaled' if server.autoscaled else ''}"
            )
    if not snapshot.apps:
        lines.append("  (no apps yet)")
    if snapshot.problems:
        lines.append("")
        lines.append("configuration problems:")
        lines.extend(f"  {p.app}: {p.message}" for p in snapshot.problems)
    shown = [a for a in snapshot.activity if _shown(a)][:recent]
    if shown:
        lines.append("")
        lines.append("recent:")
        lines.extend(
            f"  {_clock(elapsed - (snapshot.at - a.at)):>6}  {_activity_text(a)}" for a in shown
        )
    return [line.rstrip() for line in lines]


def _activity_text(activity: Activity) -> str:
    where = f"{activity.app}: " if activity.app else ""
    return f"{activity.kind:<10} {where}{activity.message}"


def plain_lines(
    snapshot: StatusSnapshot, users: UserStatistics | None, *, elapsed: float
) -> list[str]:
    """One line per app (and one for the users) for the periodic plain log."""
    at = _clock(elapsed)
    lines = [
        f"[{at}] app {app.app}: pods {_pods(app)}; users {app.users}, free {app.free}, "
        f"waiting {app.queued}, requests {app.requests}"
        for app in snapshot.apps
    ]
    if users is not None:
        lines.append(
            f"[{at}] users: {users.arrived} arrived, {users.using} using, {users.waiting} "
            f"waiting, {users.left} left, {users.errors} errors"
        )
    return lines


class TerminalView:
    """Writes the view to `out`: redrawn in place on a terminal, plain lines otherwise."""

    def __init__(self, out: TextIO, *, tty: bool, plain_interval: float = 5.0) -> None:
        self.out = out
        self.tty = tty
        self.plain_interval = plain_interval
        self._drawn = 0
        self._seen: set[tuple[float, str, str]] = set()
        self._next_plain = 0.0
        self._first = True

    def update(
        self,
        snapshot: StatusSnapshot,
        users: UserStatistics | None,
        *,
        elapsed: float,
        duration: float | None,
        records: int | None = None,
        final: bool = False,
    ) -> None:
        """Show the state now; `final`: the last time (plain mode prints the summary)."""
        if self.tty:
            self._redraw(
                render_view(snapshot, users, elapsed=elapsed, duration=duration, records=records)
            )
            return
        # Activities are printed once each, oldest first; the first time, only the newest few.
        fresh = [
            a
            for a in reversed(snapshot.activity)
            if _shown(a) and (a.at, a.kind, a.message) not in self._seen
        ]
        for activity in fresh:
            self._seen.add((activity.at, activity.kind, activity.message))
            moment = _clock(elapsed - (snapshot.at - activity.at))
            self.out.write(f"[{moment}] {_activity_text(activity)}\n")
        if elapsed >= self._next_plain or self._first or final:
            self._first = False
            self._next_plain = elapsed + self.plain_interval
            for line in plain_lines(snapshot, users, elapsed=elapsed):
                self.out.write(line + "\n")
        self.out.flush()

    def _redraw(self, lines: Sequence[str]) -> None:
        size = shutil.get_terminal_size((100, 40))
        lines = [line[: size.columns - 1] for line in lines][: max(size.lines - 2, 5)]
        up = f"\x1b[{self._drawn}A\r" if self._drawn else ""
        self.out.write(up + _CLEAR_BELOW + "\n".join(lines) + "\n")
        self.out.flush()
        self._drawn = len(lines)

    def close(self) -> None:
        """Leave the last view on screen and the cursor under it."""
        self._drawn = 0
        self.out.flush()
