"""Two ticket controllers behind one Service share one ticket table; the Lease holder keeps it.

The simulated cluster (`open_fake_apiserver(simulate=...)`) runs the app's pods with real
backends; each answers with a JSON echo naming its pod and the request's headers, so the
backends' own view says which users (X-User) each pod served. Users alternate between the two
replicas as a Service would spread them.

- In process (`open_ticket_controller` twice): tickets per pod never exceed tickets.max across
  both replicas, cookies work at either replica, only the leader posts Events, and a leader
  that leaves hands the table over (its Lease released) without a user losing their pod.
- As processes (`rxkube run` twice): SIGKILL the leader; the other takes the Lease within the
  lease duration and keeps serving; the fail-over time (kill -> the new leader issuing a ticket)
  is printed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio
from prometheus_client import CollectorRegistry

from rxkube.controllers import AUTHORITY_ANNOTATION, TicketController, open_ticket_controller
from rxkube.fakes import FakeApiServer, Fault, SimSettings, open_fake_apiserver
from rxkube.proxy import ProxyConfig
from rxkube.streams import KubeClient, LeasePolicy, load_kubeconfig, open_client
from tests.integration.controllers.conftest import FAST, KEY, LIMIT, deployment, loopback

NAMESPACE = "lab"
SIM = SimSettings(schedule_delay=0.005, start_delay=0.01, ready_delay=0.005, terminate_delay=0.005)
POLICY = LeasePolicy(lease_duration=2.0, renew_deadline=1.3, retry_period=0.2, jitter=0.5)
TICKETS_MAX = 2
PODS = 2


@dataclass
class Users:
    """Users with cookie jars, and what the backends said they served."""

    served: dict[str, set[str]] = field(default_factory=dict)
    """Pod -> the users (X-User) whose requests its backend answered, from the echo."""
    jars: dict[str, dict[str, str]] = field(default_factory=dict)

    async def visit(self, user: str, base: str) -> tuple[int, str | None]:
        """One request of `user` through the proxy at `base`: (status, pod that answered)."""
        jar = self.jars.setdefault(user, {})
        headers = {"Connection": "close", "X-User": user}
        if jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        async with httpx.AsyncClient(timeout=LIMIT) as http:
            response = await http.get(f"{base}/lab/echo", headers=headers)
        for header in response.headers.get_list("set-cookie"):
            name, _, value = header.split(";", 1)[0].partition("=")
            if "Max-Age=0" in header:
                jar.pop(name, None)
            else:
                jar[name] = value
        if response.status_code != 200:
            return response.status_code, None
        echo = response.json()
        self.served.setdefault(echo["pod"], set()).add(echo["headers"]["x-user"])
        return 200, str(echo["pod"])

    def waiting(self, user: str) -> bool:
        jar = self.jars.get(user, {})
        return "rxkube-wait-lab" in jar and "rxkube-ticket-lab" not in jar

    def check_capacity(self) -> None:
        """No pod ever served more distinct users than tickets.max (no ticket was released)."""
        over = {pod: users for pod, users in self.served.items() if len(users) > TICKETS_MAX}
        assert not over, f"pods served more than tickets.max={TICKETS_MAX} users: {over}"


def app_deployment() -> dict[str, Any]:
    # pods.max 0: the Deployment's own pods only (the autoscaler would add capacity).
    manifest = deployment("lab", tickets_max=str(TICKETS_MAX), pods_max="0")
    manifest["spec"]["replicas"] = PODS
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["ports"] = [{"containerPort": 8080}]
    return manifest


@asynccontextmanager
async def open_sim_cluster(*, app: bool = True) -> AsyncIterator[FakeApiServer]:
    async with open_fake_apiserver(simulate=SIM, bookmark_interval=1.0) as server:
        server.store.create("namespaces", {"metadata": {"name": NAMESPACE}})
        if app:
            server.store.create("deployments", app_deployment())
        yield server


def rxkube_events(server: FakeApiServer) -> list[dict[str, Any]]:
    return [
        e
        for e in server.store.list("events", NAMESPACE).objects()
        if e.get("reportingComponent") == "rxkube"
    ]


def lease(server: FakeApiServer) -> dict[str, Any]:
    return server.store.get("leases", NAMESPACE, "rxkube")


@dataclass
class Replica:
    controller: TicketController
    scope: trio.CancelScope
    stopped: trio.Event

    def metric(self, name: str, **labels: str) -> float | None:
        return self.controller.registry.get_sample_value(name, labels)

    @property
    def url(self) -> str:
        host, port = self.controller.addresses[0]
        return f"http://{host}:{port}"

    async def wait(self, predicate: Callable[[TicketController], bool]) -> None:
        with trio.fail_after(LIMIT):
            await self.controller.wait_until(lambda _: predicate(self.controller))

    async def stop(self) -> None:
        self.scope.cancel()
        with trio.fail_after(LIMIT):
            await self.stopped.wait()


async def start_replica(nursery: trio.Nursery, client: KubeClient, name: str) -> Replica:
    scope = trio.CancelScope()
    stopped = trio.Event()

    async def run(task_status: trio.TaskStatus[TicketController]) -> None:
        try:
            with scope:
                async with open_ticket_controller(
                    client,
                    namespace=NAMESPACE,
                    listen=[(loopback(), 0)],
                    proxy_config=ProxyConfig(
                        ticket_keys=(KEY,), shutdown_grace=0.5, tick_interval=0.05
                    ),
                    registry=CollectorRegistry(),
                    instance=name,
                    leader_election=POLICY,
                    watch_policy=FAST,
                ) as controller:
                    task_status.started(controller)
                    await trio.sleep_forever()
        finally:
            stopped.set()

    controller: TicketController = await nursery.start(run)
    return Replica(controller, scope, stopped)


def serving(controller: TicketController) -> bool:
    app = controller.statistics().apps.get("lab")
    return controller.ready and app is not None and app.ready_servers == PODS


async def test_two_replicas_share_one_ticket_table_and_hand_it_over() -> None:
    async with open_sim_cluster(app=False) as server:
        config = load_kubeconfig(server.kubeconfig_path)
        async with open_client(config, rate_limit=None) as client, trio.open_nursery() as nursery:
            r1 = await start_replica(nursery, client, "r1")
            await r1.wait(lambda c: c.leader and c.ready)
            r2 = await start_replica(nursery, client, "r2")
            await r2.wait(lambda c: c.ready)  # readiness includes the leader's table
            server.store.create("deployments", app_deployment())
            await r1.wait(serving)
            await r2.wait(serving)
            assert r2.controller.replication is not None
            stats = r2.controller.replication.authority.statistics()
            assert (stats.role, stats.synced) == ("follower", True)
            assert r1.controller.replication is not None
            address = r1.controller.replication.address
            assert stats.leader == address
            assert lease(server)["metadata"]["annotations"][AUTHORITY_ANNOTATION] == address

            # Seven users, alternating between the replicas: exactly four seats.
            users = Users()
            replicas = [r1, r2]
            names = [f"u{i}" for i in range(7)]
            first = [await users.visit(n, replicas[i % 2].url) for i, n in enumerate(names)]
            assert [status for status, _ in first] == [200] * 4 + [503] * 3
            assert all(users.waiting(n) for n in names[4:])
            users.check_capacity()
            assert sorted(len(u) for u in users.served.values()) == [TICKETS_MAX] * PODS
            # Each user again through the other replica: holders keep their pods, waiters wait.
            again = [await users.visit(n, replicas[(i + 1) % 2].url) for i, n in enumerate(names)]
            assert again[:4] == first[:4]
            assert [status for status, _ in again[4:]] == [503] * 3
            users.check_capacity()
            # The follower's users' activity reaches the leader's table.
            table = r1.controller.proxy.statistics().apps["lab"]
            assert (table.tickets, table.free, table.queued) == (4, 0, 3)
            # Tickets are counted once, by the leader; the follower relays the same load.
            issued = "rxkube_tickets_issued_total"
            assert (r1.metric(issued, application="lab"), r2.metric(issued, application="lab")) == (
                4.0,
                None,
            )
            assert r2.metric("rxkube_app_users", application="lab") == 4.0
            assert r1.metric("rxkube_ticket_authority_followers") == 1.0
            assert r2.metric("rxkube_ticket_authority_synced") == 1.0

            # Only the leader told the cluster anything.
            await r1.wait(lambda c: c.events.statistics().created >= 2)
            assert {(e["reason"], e["reportingInstance"]) for e in rxkube_events(server)} == {
                ("LeaderElection", "r1"),
                ("AppServed", "r1"),
            }

            # The leader leaves (a rolling update): it releases the Lease, r2 takes the table.
            await r1.stop()
            released_at = trio.current_time()
            await r2.wait(lambda c: c.leader)
            print(
                f"\nhand-over (Lease released -> the other leads): "
                f"{trio.current_time() - released_at:.2f} s"
            )
            assert r2.controller.replication.authority.statistics().role == "leader"
            after = [await users.visit(n, r2.url) for n in names]
            assert after[:4] == first[:4]  # nobody lost their pod
            assert [status for status, _ in after[4:]] == [503] * 3
            assert all(users.waiting(n) for n in names[4:])  # the queue, not "no leader"
            users.check_capacity()
            table = r2.controller.proxy.statistics().apps["lab"]
            assert (table.tickets, table.free, table.queued) == (4, 0, 3)
            assert r2.metric("rxkube_ticket_authority_promotions_total") == 1.0
            assert lease(server)["metadata"]["annotations"][AUTHORITY_ANNOTATION] == (
                r2.controller.replication.address
            )
            await r2.wait(lambda c: c.events.statistics().created >= 1)
            assert ("LeaderElection", "r2") in {
                (e["reason"], e["reportingInstance"]) for e in rxkube_events(server)
            }
            nursery.cancel_scope.cancel()


async def test_a_leader_that_cannot_renew_stands_by_until_it_leads_again() -> None:
    async with open_sim_cluster() as server:
        config = load_kubeconfig(server.kubeconfig_path)
        async with open_client(config, rate_limit=None) as client, trio.open_nursery() as nursery:
            r1 = await start_replica(nursery, client, "r1")
            await r1.wait(lambda c: c.leader and serving(c))
            replication = r1.controller.replication
            assert replication is not None
            users = Users()
            held = await users.visit("u0", r1.url)
            assert held[0] == 200

            # The API server refuses the renewals: the leader steps down before its Lease
            # could pass to anybody else, and its table with it.
            server.faults.inject(Fault.status(503), verb="update", resource="leases", times=None)
            await r1.wait(lambda c: not c.leader)
            assert replication.role is not None
            assert replication.role.role == "stand-by"
            stats = replication.authority.statistics()
            assert (stats.role, stats.synced, stats.mirrored_tickets) == ("follower", False, 1)
            assert await users.visit("u0", r1.url) == held  # holders go on from the copy
            assert (await users.visit("u1", r1.url))[0] == 503
            assert not users.waiting("u1")  # no ticket and no queue: nobody decides now
            assert r1.controller.ready  # not taken out of the Service for it

            server.faults.clear()
            await r1.wait(lambda c: c.leader)
            assert replication.authority.statistics().role == "leader"
            assert await users.visit("u0", r1.url) == held  # restored from the copy
            assert (await users.visit("u1", r1.url))[0] == 200
            users.check_capacity()
            nursery.cancel_scope.cancel()


# -- as processes: kill the leader ---------------------------------------------------------------


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


async def wait_metric(url: str, sample: str) -> None:
    """Wait until the /metrics page at `url` has the line `sample` (nothing announces it)."""
    async with httpx.AsyncClient(timeout=LIMIT) as http:
        while sample not in (await http.get(url)).text.splitlines():  # noqa: ASYNC110
            await trio.sleep(0.02)


@dataclass
class Process:
    """An `rxkube run` process and its JSON log lines (read as they come)."""

    name: str
    process: trio.Process
    lines: list[dict[str, Any]] = field(default_factory=list)
    _lot: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)

    async def read(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        buffer = b""
        while chunk := await stream.receive_some(65536):
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            self.lines.extend(json.loads(raw) for raw in complete if raw.strip())
            self._lot.unpark_all()
        self._lot.unpark_all()

    async def wait_log(self, message: str) -> dict[str, Any]:
        while True:
            for line in self.lines:
                if line.get("msg") == message:
                    return line
            assert self.process.returncode is None, f"{self.name} exited: {self.lines[-5:]}"
            await self._lot.park()


async def test_the_leader_is_killed_and_the_other_replica_takes_over(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY + b"\n")
    env = {k: v for k, v in os.environ.items() if k not in ("POD_IP", "RXKUBE_TICKET_KEY")}
    async with open_sim_cluster() as server, trio.open_nursery() as nursery:
        processes: dict[str, Process] = {}
        metrics: dict[str, str] = {}
        for name in ("r1", "r2"):
            host = loopback()
            metrics[name] = f"http://{host}:{free_port(host)}/metrics"
            command = [
                sys.executable,
                "-m",
                "rxkube.controllers",
                "run",
                f"--kubeconfig={server.kubeconfig_path}",
                f"--namespace={NAMESPACE}",
                f"--listen={host}:0",
                f"--authority-listen={host}:0",
                f"--metrics={metrics[name].removeprefix('http://').removesuffix('/metrics')}",
                f"--ticket-key-file={key_file}",
                f"--instance={name}",
                "--leader-election",
                f"--lease-duration={POLICY.lease_duration:g}s",
                "--drain-deadline=1s",
                "--log-format=json",
            ]
            started = await trio.lowlevel.open_process(command, stderr=subprocess.PIPE, env=env)
            processes[name] = Process(name, started)
            nursery.start_soon(processes[name].read)
        try:
            urls = {}
            with trio.fail_after(40):  # two cold interpreters on a busy machine
                for name, run in processes.items():
                    urls[name] = "http://" + (await run.wait_log("started"))["listen"]
                    await run.wait_log("ready")
            leader = lease(server)["spec"]["holderIdentity"]
            survivor = "r2" if leader == "r1" else "r1"
            assert leader in processes

            users = Users()
            order = [leader, survivor, leader]
            with trio.fail_after(LIMIT):
                held = {
                    f"u{i}": await users.visit(f"u{i}", urls[name]) for i, name in enumerate(order)
                }
            assert [status for status, _ in held.values()] == [200] * 3  # one seat left
            # The survivor's copy of the table holds all three tickets before the leader dies: a
            # ticket whose change is still on its way when the leader dies is missing from the
            # copy, and its holder gets 503 until a leader answers (docs/reliability.md, "changes
            # in flight"); under load the kill can overtake the change of the last ticket.
            # The leader's load follows each ticket on the changes feed, and a follower shows it.
            with trio.fail_after(LIMIT):
                await wait_metric(metrics[survivor], 'rxkube_app_users{application="lab"} 3.0')

            processes[leader].process.kill()  # SIGKILL: no release, no goodbye
            killed_at = trio.current_time()
            # Holders keep their pods through the survivor, while no replica leads.
            with trio.fail_after(LIMIT):
                for user, reply in held.items():
                    assert await users.visit(user, urls[survivor]) == reply
            # A new user gets a ticket once the survivor leads the table.
            with trio.fail_after(LIMIT):
                # Nothing announces the new leader to a user: ask as a browser would.
                while (await users.visit("new", urls[survivor]))[0] != 200:  # noqa: ASYNC110
                    await trio.sleep(0.02)
            fail_over = trio.current_time() - killed_at
            print(
                f"\nfail-over (SIGKILL of the leader -> the other issues a ticket): "
                f"{fail_over:.2f} s with a {POLICY.lease_duration:g} s lease"
            )
            # It waited for the Lease to expire (renewals came every 4/15 s), and not much more.
            assert 1.0 <= fail_over <= POLICY.lease_duration + 3.0
            spec = lease(server)["spec"]
            assert (spec["holderIdentity"], spec["leaseTransitions"]) == (survivor, 1)
            await processes[survivor].wait_log("leading the ticket table")

            # Still one table: two more users, one seat: never over tickets.max per pod.
            with trio.fail_after(LIMIT):
                assert (await users.visit("late-1", urls[survivor]))[0] == 503
                assert users.waiting("late-1")
                for user, reply in held.items():
                    assert await users.visit(user, urls[survivor]) == reply
            users.check_capacity()
            assert sorted(len(u) for u in users.served.values()) == [TICKETS_MAX] * PODS
            elected = {
                e["reportingInstance"]
                for e in rxkube_events(server)
                if e["reason"] == "LeaderElection"
            }
            assert elected == {leader, survivor}

            processes[survivor].process.send_signal(signal.SIGTERM)
            with trio.fail_after(LIMIT):
                assert await processes[survivor].process.wait() == 0
            assert lease(server)["spec"]["holderIdentity"] == ""  # released on the way out
        finally:
            for run in processes.values():
                if run.process.returncode is None:
                    run.process.kill()
                    await run.process.wait()
            nursery.cancel_scope.cancel()
