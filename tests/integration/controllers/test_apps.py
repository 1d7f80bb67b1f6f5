"""Acceptance (issue 7): annotated Deployments served end to end on the fake cluster.

The fake API server on loopback, pods with real local backends, the real client, informers,
pipelines, proxy and Events sink. Users are HTTP clients holding cookies.
"""

from __future__ import annotations

import httpx
import pytest
import trio

from tests.integration.controllers.conftest import (
    SIM,
    Cluster,
    User,
    deployment,
    loopback,
    open_cluster,
    with_pods,
)


async def ready_servers(c: Cluster, app: str, count: int) -> None:
    await c.wait(lambda s: app in s.apps and s.apps[app].ready_servers == count)


async def test_served_on_the_shared_listener_and_on_its_own_port() -> None:
    # The simulated cluster rolls the Deployment out to two pods with real backends; pods.max
    # 0 keeps the autoscaler out of it (two pods, two users).
    async with open_cluster(simulate=SIM) as c:
        await c.controller.wait_ready()
        manifest = deployment("lab", port="9001", tickets_max="1", pods_max="0")
        c.apply(with_pods(manifest, replicas=2))
        await ready_servers(c, "lab", 2)
        assert c.controller.app_address("lab") == (c.proxy_host, 9001)
        pods = c.pod_names("lab")
        assert len(pods) == 2

        alice, bob, carol = User(), User(), User()
        first = await alice.get(c.url + "/lab/echo")
        second = await bob.get(c.own_url("lab") + "/echo")
        assert (first.status, second.status) == (200, 200)
        assert {first.backend, second.backend} == set(pods)  # one user per pod
        assert "rxkube-ticket-lab" in alice.cookies
        # Both pods are full: the third user waits (503 waiting room), the others go on.
        assert (await carol.get(c.url + "/lab/")).status == 503
        assert (await alice.get(c.url + "/lab/echo")).backend == first.backend
        assert (await bob.get(c.own_url("lab") + "/echo")).backend == second.backend

        assert c.metric("rxkube_app_users", application="lab") == 2
        assert c.metric("k8sticket_current_users_total", application="lab") == 2
        assert c.metric("rxkube_app_waiting_users", application="lab") == 1
        assert c.metric("rxkube_tickets_issued_total", application="lab") == 2
        assert c.metric("rxkube_app_servers", application="lab", ready="true") == 2
        served = await c.wait_event("Deployment", "lab", "AppServed")
        assert served["type"] == "Normal"
        assert "on its own port 9001" in served["message"]


async def test_pods_join_when_ready_drain_when_not_and_leave_when_deleted() -> None:
    async with open_cluster() as c:
        c.apply(deployment("lab", tickets_max="1"))
        await c.add_pod("lab", "lab-1", ready=False)
        await c.wait(lambda s: "lab" in s.apps)
        assert c.controller.statistics().apps["lab"].servers == 0  # not ready: not joined
        alice = User()
        assert (await alice.get(c.url + "/lab/echo")).status == 503  # the waiting room
        c.set_pod("lab-1", ready=True)
        await ready_servers(c, "lab", 1)
        assert (await alice.get(c.url + "/lab/echo")).backend == "lab-1"  # first in line
        # Not ready any more: no new users, but Alice keeps her ticket (drain).
        c.set_pod("lab-1", ready=False)
        await c.wait(lambda s: s.apps["lab"].ready_servers == 0 and s.apps["lab"].servers == 1)
        assert (await alice.get(c.url + "/lab/echo")).backend == "lab-1"
        assert (await User().get(c.url + "/lab/")).status == 503
        c.delete_pod("lab-1")
        await c.wait(lambda s: s.apps["lab"].servers == 0)
        assert c.metric("rxkube_app_users", application="lab") == 0


async def test_live_changes_apply_without_dropping_tickets() -> None:
    async with open_cluster() as c:
        c.apply(deployment("lab", tickets_max="1"))
        await c.add_pod("lab", "lab-1")
        await ready_servers(c, "lab", 1)
        alice, bob = User(), User()
        assert (await alice.get(c.url + "/lab/echo")).backend == "lab-1"
        assert (await bob.get(c.url + "/lab/echo")).status == 503  # full: Bob waits

        c.annotate(
            "lab",
            tickets_max="2",
            tickets_spare="4",
            pods_max="3",
            pods_cooldown="2m",
            **{"rxkube.io/tickets.idle-timeout": "10m"},
        )
        await c.wait(lambda _: c.controller.apps["lab"].tickets_max == 2)
        spec = c.controller.apps["lab"]
        assert (spec.tickets_spare, spec.pods_max, spec.pods_cooldown) == (4, 3, 120.0)
        assert spec.ticket_idle_timeout == 600.0
        assert (await bob.get(c.url + "/lab/echo")).backend == "lab-1"  # room for two now
        assert (await alice.get(c.url + "/lab/echo")).backend == "lab-1"  # kept her ticket
        assert c.metric("rxkube_tickets_issued_total", application="lab") == 2
        # A live change is not a move: no AppMoved Event.
        assert not [e for e in c.events("Deployment", "lab") if e["reason"] == "AppMoved"]


async def test_moving_the_app_to_another_port_keeps_tickets_and_says_so() -> None:
    async with open_cluster() as c:
        c.apply(deployment("lab", port="9001"))
        await c.add_pod("lab", "lab-1")
        await ready_servers(c, "lab", 1)
        alice = User()
        assert (await alice.get(c.own_url("lab") + "/echo")).backend == "lab-1"
        c.annotate("lab", port="9002")
        await c.wait(lambda s: s.apps["lab"].own_port == 9002)
        # Cookies are not per port: Alice's ticket works on the new port.
        assert (await alice.get(f"http://{c.proxy_host}:9002/echo")).backend == "lab-1"
        assert c.metric("rxkube_tickets_issued_total", application="lab") == 1
        with pytest.raises(httpx.ConnectError):
            await alice.get(f"http://{c.proxy_host}:9001/echo")
        moved = await c.wait_event("Deployment", "lab", "AppMoved")
        assert "own port 9001 -> 9002" in moved["message"]


async def test_switching_to_host_routing_is_a_move_too() -> None:
    async with open_cluster(domain="apps.test") as c:
        c.apply(deployment("lab"))
        await c.add_pod("lab", "lab-1")
        await ready_servers(c, "lab", 1)
        alice = User()
        assert (await alice.get(c.url + "/lab/echo")).backend == "lab-1"
        c.annotate("lab", **{"ipb-halle.de/k8sticket.ingress.dns": "true"})
        await c.wait(lambda s: s.apps["lab"].routing == "host")
        reply = await alice.get(c.url + "/echo", host="lab.apps.test")
        assert reply.status == 200
        assert reply.backend == "lab-1"
        assert (await alice.get(c.url + "/lab/echo")).status == 404  # not by path any more
        moved = await c.wait_event("Deployment", "lab", "AppMoved")
        assert "routing path -> host" in moved["message"]
        assert "lab.apps.test" in moved["message"]


async def test_a_changed_app_name_moves_the_app_and_drains_the_old_name() -> None:
    async with open_cluster() as c:
        c.apply(deployment("web", app="lab", **{"rxkube.io/drain-deadline": "1h"}))
        await c.add_pod("lab", "lab-1")
        await ready_servers(c, "lab", 1)
        alice = User()
        assert (await alice.get(c.url + "/lab/echo")).backend == "lab-1"
        c.annotate("web", app_name="lab2")
        await c.wait(lambda s: "lab2" in s.apps and s.apps["lab"].draining)
        assert (await alice.get(c.url + "/lab/echo")).backend == "lab-1"  # drains
        assert (await User().get(c.url + "/lab/")).status == 503  # nobody new
        withdrawn = await c.wait_event("Deployment", "web", "AppWithdrawn")
        assert "renamed" in withdrawn["message"]
        await c.wait_event("Deployment", "web", "AppServed")


async def test_removing_the_label_drains_until_the_deadline_then_removes_the_app() -> None:
    async with open_cluster() as c:
        c.apply(deployment("lab", **{"rxkube.io/drain-deadline": "300ms"}))
        c.apply(deployment("other"))
        await c.add_pod("lab", "lab-1")
        await c.add_pod("other", "other-1")
        await ready_servers(c, "lab", 1)
        await ready_servers(c, "other", 1)
        alice, olga = User(), User()
        assert (await alice.get(c.url + "/lab/echo")).backend == "lab-1"
        assert (await olga.get(c.url + "/other/echo")).backend == "other-1"
        c.label("lab", "false")
        await c.wait(lambda s: "lab" in s.apps and s.apps["lab"].draining)
        assert (await alice.get(c.url + "/lab/echo")).backend == "lab-1"
        await c.wait(lambda s: "lab" not in s.apps)
        assert (await alice.get(c.url + "/lab/echo")).status == 404
        assert (await olga.get(c.url + "/other/echo")).backend == "other-1"
        removed = await c.wait_event("Deployment", "lab", "AppRemoved")
        assert "drain deadline" in removed["message"]
        assert "1 user(s) lost their tickets" in removed["message"]
        assert c.metric("rxkube_app_users", application="lab") is None  # series removed


async def test_a_draining_app_goes_when_its_last_user_leaves() -> None:
    async with open_cluster() as c:
        c.apply(
            deployment(
                "lab",
                **{"rxkube.io/drain-deadline": "1h", "rxkube.io/tickets.idle-timeout": "200ms"},
            )
        )
        await c.add_pod("lab", "lab-1")
        await ready_servers(c, "lab", 1)
        alice = User()
        assert (await alice.get(c.url + "/lab/echo")).backend == "lab-1"
        c.delete("lab")
        await c.wait(lambda s: "lab" in s.apps and s.apps["lab"].draining)
        await c.wait(lambda s: "lab" not in s.apps)  # idle release: well before 1 h
        removed = await c.wait_event("Deployment", "lab", "AppRemoved")
        assert "last user left" in removed["message"]


async def test_an_app_without_users_is_removed_at_once_and_can_come_back() -> None:
    async with open_cluster() as c:
        c.apply(deployment("lab"))
        await c.add_pod("lab", "lab-1")
        await ready_servers(c, "lab", 1)
        c.label("lab", None)
        await c.wait(lambda s: "lab" not in s.apps)
        assert (await User().get(c.url + "/lab/")).status == 404
        c.label("lab", "true")
        await ready_servers(c, "lab", 1)
        assert (await User().get(c.url + "/lab/echo")).backend == "lab-1"


async def test_an_own_port_in_use_falls_back_to_the_shared_listener() -> None:
    host = loopback()
    taken = trio.socket.socket()
    await taken.bind((host, 9001))
    taken.listen()
    try:
        async with open_cluster(app_listen_host=host) as c:
            c.apply(deployment("lab", port="9001"))
            await c.add_pod("lab", "lab-1")
            await ready_servers(c, "lab", 1)
            assert c.controller.app_address("lab") is None
            alice = User()
            assert (await alice.get(c.url + "/lab/echo")).backend == "lab-1"
            event = await c.wait_event("Deployment", "lab", "PortUnavailable")
            assert event["type"] == "Warning"
            assert "9001" in event["message"]
            assert c.controller.statistics().apply_errors == 1
            taken.close()  # freed: the retry binds it
            await c.wait(lambda s: s.apps["lab"].own_port == 9001)
            assert (await alice.get(c.own_url("lab") + "/echo")).backend == "lab-1"
    finally:
        taken.close()
