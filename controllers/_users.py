"""Simulated users for the demo: real HTTP and WebSocket clients through the ticket proxy.

What this module is for: `rxkube demo --users N` (issue 12 item 2). `plan_visits` is pure: from a
seed it says when each user arrives, which app it opens, and how long it stays (the same seed
gives the same plan). `run_users` plays a plan against a proxy URL in the caller's nursery.

Each user is a browser-like client with its own cookie jar (httpx), so it keeps its ticket
cookie across requests, and does what the pages ask a person's browser to do:

- GET `/<app>/` asking for HTML. 200: it holds a ticket. 503: the waiting room; it listens to
  the room's event stream (`/<app>/.rxkube/queue`, as the page's script does) and asks again
  when told `ready`, or after the page's refresh interval, until its visit would be over.
- An app whose page opens a WebSocket (`websocket=True`): it opens one to `/<app>/ws` with its
  cookie and sends a message a second, reading each echo, until it leaves. Others send a GET
  every couple of seconds.
- Leaving closes its connections; the proxy releases the ticket after the app's idle timeout.

With a duration the visits fit in it: arrivals in the first 30 %, every visit over by 60 %, so
tickets are released and autoscaled pods can cool down before the end. Without one, users come
back again and again (a pause between visits), until cancelled.

It may import httpx, trio and trio_websocket; it does I/O only against the URL it is given,
and reads trio's clock (through `trio.sleep_until`), never the wall clock.
"""

from __future__ import annotations

import logging
import math
import random
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

import httpx
import trio
import trio_websocket

# The demo's own machinery: not public API of rxkube.controllers.
__all__: list[str] = []

log: Final = logging.getLogger("rxkube.controllers.users")

REQUEST_TIMEOUT: Final = 10.0


@dataclass(frozen=True, slots=True)
class UserApp:
    """An app users visit: its name, its share of visits, and whether its page opens a
    WebSocket."""

    name: str
    weight: float = 1.0
    websocket: bool = False


@dataclass(frozen=True, slots=True)
class Visit:
    user: int
    app: UserApp
    arrive: float
    """Seconds after the start."""
    stay: float
    """Seconds from arrival to leaving (waiting included)."""


@dataclass(slots=True)
class UserStatistics:
    """What the users did so far (the demo's view shows it)."""

    arrived: int = 0
    waiting: int = 0
    """In the waiting room now."""
    using: int = 0
    """Holding a ticket now."""
    left: int = 0
    admitted: int = 0
    admitted_after_waiting: int = 0
    gave_up: int = 0
    """Left the waiting room without a ticket (their visit was over)."""
    requests: int = 0
    messages: int = 0
    """WebSocket echoes received."""
    errors: int = 0
    last_error: str = ""
    served_by: dict[str, int] = field(default_factory=dict)
    """Pod name -> answers from it."""


def plan_visits(
    users: int,
    apps: Sequence[UserApp],
    *,
    seed: int,
    duration: float | None,
) -> Iterator[Visit]:
    """Visits in order of arrival: exactly `users` with a duration; endless without one
    (each user comes back after a pause). Pure: the same arguments give the same visits."""
    if not apps:
        return
    rng = random.Random(seed)
    weights = [max(app.weight, 0.0) for app in apps]
    if duration is not None:
        visits = []
        for user in range(users):
            arrive = rng.uniform(0.0, 0.3 * duration)
            stay = rng.uniform(0.2 * duration, 0.6 * duration - arrive)
            app = rng.choices(apps, weights)[0]
            visits.append(Visit(user, app, round(arrive, 3), round(stay, 3)))
        yield from sorted(visits, key=lambda v: (v.arrive, v.user))
        return
    # Endless: each user's next arrival follows its last departure after a pause.
    pending: list[tuple[float, int]] = [(rng.uniform(0.0, 20.0), user) for user in range(users)]
    while pending:
        pending.sort()
        arrive, user = pending.pop(0)
        stay = rng.uniform(15.0, 60.0)
        app = rng.choices(apps, weights)[0]
        yield Visit(user, app, round(arrive, 3), round(stay, 3))
        pending.append((arrive + stay + rng.expovariate(1 / 20.0), user))


def _cookie_header(jar: httpx.Cookies) -> str:
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in jar.jar)


class _User:
    def __init__(
        self,
        visit: Visit,
        base_url: str,
        stats: UserStatistics,
        leave_at: float,
        tls: ssl.SSLContext,
    ):
        self.visit = visit
        self.app = visit.app.name
        self.base_url = base_url.rstrip("/")
        self.stats = stats
        self.leave_at = leave_at
        self.tls = tls

    def _error(self, text: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = f"user {self.visit.user} ({self.app}): {text}"
        log.debug("user error: %s", self.stats.last_error)

    def _served(self, response: httpx.Response) -> None:
        pod = response.headers.get("x-rxkube-pod")
        if pod:
            self.stats.served_by[pod] = self.stats.served_by.get(pod, 0) + 1

    async def run(self) -> None:
        stats = self.stats
        stats.arrived += 1
        try:
            async with httpx.AsyncClient(
                base_url=self.base_url,
                timeout=REQUEST_TIMEOUT,
                follow_redirects=True,
                verify=self.tls,
            ) as http:
                with trio.move_on_at(self.leave_at):
                    admitted = await self._enter(http)
                    if admitted:
                        await self._use(http)
        finally:
            stats.left += 1

    async def _enter(self, http: httpx.AsyncClient) -> bool:
        """Open the app's page until admitted (True) or the visit is over (cancelled)."""
        stats = self.stats
        waited = False
        try:
            while True:
                try:
                    response = await http.get(f"/{self.app}/", headers={"Accept": "text/html"})
                except httpx.HTTPError as error:
                    self._error(f"GET /{self.app}/: {error!r}")
                    await trio.sleep(1.0)
                    continue
                stats.requests += 1
                if response.status_code == 200:
                    self._served(response)
                    stats.admitted += 1
                    stats.admitted_after_waiting += 1 if waited else 0
                    if waited:
                        stats.waiting -= 1
                    stats.using += 1
                    return True
                if response.status_code != 503:
                    self._error(f"GET /{self.app}/ answered {response.status_code}")
                    await trio.sleep(1.0)
                    continue
                if not waited:
                    waited = True
                    stats.waiting += 1
                await self._wait_in_queue(http, response)
        except trio.Cancelled:
            if waited:
                stats.waiting -= 1
                stats.gave_up += 1
            raise

    async def _wait_in_queue(self, http: httpx.AsyncClient, page: httpx.Response) -> None:
        """Listen to the waiting room's events until `ready`, at most the page's refresh."""
        refresh = float(page.headers.get("retry-after", "5") or 5)
        with trio.move_on_after(max(refresh, 1.0)):
            try:
                async with http.stream(
                    "GET",
                    f"/{self.app}/.rxkube/queue",
                    headers={"Accept": "text/event-stream"},
                    timeout=httpx.Timeout(REQUEST_TIMEOUT, read=None),
                ) as events:
                    if events.status_code != 200:
                        await trio.sleep(refresh)
                        return
                    async for line in events.aiter_lines():
                        if line == "event: ready":
                            return
            except httpx.HTTPError as error:
                self._error(f"waiting-room events: {error!r}")
                await trio.sleep(refresh)

    async def _use(self, http: httpx.AsyncClient) -> None:
        try:
            if self.visit.app.websocket:
                await self._talk(http)
            else:
                await self._browse(http)
        finally:
            self.stats.using -= 1

    async def _browse(self, http: httpx.AsyncClient) -> None:
        rng = random.Random(self.visit.user)
        step = 0
        while True:
            await trio.sleep(rng.uniform(1.0, 3.0))
            step += 1
            try:
                response = await http.get(f"/{self.app}/api/step/{step}")
            except httpx.HTTPError as error:
                self._error(f"GET: {error!r}")
                continue
            self.stats.requests += 1
            if response.status_code == 200:
                self._served(response)
            else:
                self._error(f"GET /{self.app}/api/step/{step} answered {response.status_code}")

    async def _talk(self, http: httpx.AsyncClient) -> None:
        url = self.base_url.replace("http://", "ws://", 1) + f"/{self.app}/ws"
        while True:
            try:
                async with trio_websocket.open_websocket_url(
                    url,
                    extra_headers=[(b"Cookie", _cookie_header(http.cookies).encode())],
                    connect_timeout=REQUEST_TIMEOUT,
                    disconnect_timeout=1.0,
                ) as socket:
                    sent = 0
                    while True:
                        sent += 1
                        await socket.send_message(f"hello {sent} from user {self.visit.user}")
                        await socket.get_message()
                        self.stats.messages += 1
                        await trio.sleep(1.0)
            except (
                OSError,
                trio_websocket.HandshakeError,
                trio_websocket.ConnectionClosed,
            ) as error:
                self._error(f"WebSocket: {error!r}")
                await trio.sleep(1.0)


async def run_users(
    visits: Iterator[Visit],
    base_url: str,
    stats: UserStatistics,
    *,
    start: float | None = None,
) -> None:
    """Play `visits` against the proxy at `base_url` (e.g. `http://127.0.0.1:8080`), each in a
    task of this call's nursery; returns when every visit is over (never, for an endless
    plan: cancel it). `start` is the trio time visits count from (default: now)."""
    origin = trio.current_time() if start is None else start
    # One TLS context for every visit: httpx builds one per client otherwise, about 0.9 MB of
    # OpenSSL memory each (the CA bundle) that tracemalloc does not see, and a visit cancelled
    # at its end leaves its client in reference cycles that only a full collection frees: the
    # soak's RSS grew by tens of MB between full collections (bench/soak.py).
    tls = ssl.create_default_context()
    async with trio.open_nursery() as nursery:
        for visit in visits:
            await trio.sleep_until(origin + visit.arrive)
            leave_at = origin + visit.arrive + visit.stay
            if math.isfinite(leave_at):
                nursery.start_soon(_User(visit, base_url, stats, leave_at, tls).run)
