"""Bad annotations, one by one, end to end (DESIGN section 4, "Bad input").

For each invalid value: the Event is posted on the Deployment (read back from the fake API
server), the error is counted in `rxkube_config_errors_total`, a new app stays unserved or an
existing one keeps its last good configuration, and other apps keep being served.
"""

from __future__ import annotations

import pytest

from tests.integration.controllers.conftest import (
    Cluster,
    User,
    deployment,
    open_cluster,
)

P = "ipb-halle.de/k8sticket.deployment."

# (annotation key, bad value, what the Event says is wrong)
BAD_VALUES = [
    (P + "tickets.max", "-1", "must be at least 1"),
    (P + "tickets.max", "0", "must be at least 1"),
    (P + "tickets.max", "many", "is not a whole number"),
    (P + "tickets.spare", "-2", "must be at least 0"),
    (P + "pods.max", "1.5", "is not a whole number"),
    (P + "pods.cooldown", "0", "must be more than zero"),
    (P + "pods.cooldown", "soon", "is not a duration"),
    (P + "port", "70000", "must be at most 65535"),
    (P + "port", "0", "must be at least 1"),
    (P + "port", "http", "is not a whole number"),
    (P + "app.name", "Lab_1", "is not a DNS label"),
    ("rxkube.io/tickets.idle-timeout", "-3s", "is not a duration"),
    ("ipb-halle.de/k8sticket.ingress.dns", "yes", 'is neither "true" nor "false"'),
]
IDS = [f"{key.rsplit('.', 1)[-1]}={value}" for key, value, _ in BAD_VALUES]


async def with_other_app(c: Cluster) -> User:
    """An app that must not notice anything: served, with a user holding a ticket."""
    c.apply(deployment("other", tickets_max="2"))
    await c.add_pod("other", "other-1")
    await c.wait(lambda s: "other" in s.apps and s.apps["other"].ready_servers == 1)
    olga = User()
    assert (await olga.get(c.url + "/other/echo")).backend == "other-1"
    return olga


async def other_app_untouched(c: Cluster, olga: User) -> None:
    assert (await olga.get(c.url + "/other/echo")).backend == "other-1"
    assert (await User().get(c.url + "/other/echo")).backend == "other-1"  # newcomers too
    assert c.metric("rxkube_config_errors_total", application="other") is None
    assert not [e for e in c.events("Deployment", "other") if e["type"] == "Warning"]


@pytest.mark.parametrize(("key", "value", "problem"), BAD_VALUES, ids=IDS)
async def test_a_new_app_with_a_bad_value_is_not_served(key: str, value: str, problem: str) -> None:
    async with open_cluster() as c:
        olga = await with_other_app(c)
        c.apply(deployment("bad", **{key: value}))
        event = await c.wait_event("Deployment", "bad", "InvalidConfiguration")
        assert event["type"] == "Warning"
        assert f"{key}={value!r}" in event["message"]
        assert problem in event["message"]
        assert "allowed:" in event["message"]
        assert "not served until this is fixed" in event["message"]
        assert event["involvedObject"]["kind"] == "Deployment"
        assert (
            event["involvedObject"]["uid"]
            == c.server.store.get("deployments", c.namespace, "bad")["metadata"]["uid"]
        )
        assert c.metric("rxkube_config_errors_total", application="bad") == 1
        stats = c.controller.statistics()
        assert set(stats.apps) == {"other"}
        assert stats.config_errors == 1
        assert (await User().get(c.url + "/bad/")).status == 404
        await other_app_untouched(c, olga)


@pytest.mark.parametrize(("key", "value", "problem"), BAD_VALUES, ids=IDS)
async def test_an_app_keeps_its_last_good_config(key: str, value: str, problem: str) -> None:
    async with open_cluster() as c:
        olga = await with_other_app(c)
        c.apply(deployment("lab", tickets_max="2"))
        await c.add_pod("lab", "lab-1")
        await c.wait(lambda s: "lab" in s.apps and s.apps["lab"].ready_servers == 1)
        alice = User()
        assert (await alice.get(c.url + "/lab/echo")).backend == "lab-1"
        good = c.controller.apps["lab"]

        c.annotate("lab", **{key: value})
        event = await c.wait_event("Deployment", "lab", "InvalidConfiguration")
        assert f"{key}={value!r}" in event["message"]
        assert problem in event["message"]
        assert "kept the last good configuration of app 'lab'" in event["message"]
        assert c.metric("rxkube_config_errors_total", application="lab") == 1
        assert c.controller.apps["lab"] == good
        assert (await alice.get(c.url + "/lab/echo")).backend == "lab-1"
        assert (await User().get(c.url + "/lab/echo")).backend == "lab-1"  # tickets.max 2 kept
        await other_app_untouched(c, olga)

        # Fixed: said so once, and served as asked.
        c.annotate("lab", **{key: None})
        await c.wait_event("Deployment", "lab", "ConfigurationResolved")
        assert c.metric("rxkube_config_errors_total", application="lab") == 1


async def test_host_routing_without_a_domain_is_an_error() -> None:
    async with open_cluster() as c:
        olga = await with_other_app(c)
        c.apply(deployment("bad", **{"rxkube.io/routing": "host"}))
        event = await c.wait_event("Deployment", "bad", "InvalidConfiguration")
        assert "rxkube.io/domain=(absent): is required for host routing" in event["message"]
        assert c.metric("rxkube_config_errors_total", application="bad") == 1
        await other_app_untouched(c, olga)


async def test_a_domain_the_proxy_does_not_serve_falls_back_to_path_routing() -> None:
    async with open_cluster(domain="apps.test") as c:
        c.apply(deployment("lab", **{"rxkube.io/routing": "host", "rxkube.io/domain": "else.test"}))
        await c.add_pod("lab", "lab-1")
        await c.wait(lambda s: "lab" in s.apps and s.apps["lab"].ready_servers == 1)
        assert c.controller.statistics().apps["lab"].routing == "path"
        assert (await User().get(c.url + "/lab/echo")).backend == "lab-1"
        event = await c.wait_event("Deployment", "lab", "RoutingFallback")
        assert event["type"] == "Warning"
        assert "lab.else.test" in event["message"]


async def test_two_deployments_claiming_one_app_name_the_older_wins() -> None:
    async with open_cluster() as c:
        olga = await with_other_app(c)
        c.apply(deployment("first", app="lab", **{"rxkube.io/drain-deadline": "0"}))
        await c.add_pod("lab", "lab-1")
        await c.wait(lambda s: "lab" in s.apps and s.apps["lab"].ready_servers == 1)
        c.apply(deployment("second", app="lab", tickets_max="5"))
        event = await c.wait_event("Deployment", "second", "AppNameClaimed")
        assert event["type"] == "Warning"
        assert "already claimed by the older Deployment 'first'" in event["message"]
        assert c.metric("rxkube_config_errors_total", application="lab") == 1
        stats = c.controller.statistics()
        assert stats.apps["lab"].deployment == "first"
        assert c.controller.apps["lab"].tickets_max == 1
        assert all(e["type"] == "Normal" for e in c.events("Deployment", "first"))
        await other_app_untouched(c, olga)
        # The older one goes: the younger one takes the name over.
        c.delete("first")
        await c.wait(lambda s: "lab" in s.apps and s.apps["lab"].deployment == "second")
        assert c.controller.apps["lab"].tickets_max == 5
        taken = await c.wait_event("Deployment", "second", "AppServed")
        assert "it was served from Deployment 'first'" in taken["message"]


async def test_a_pod_with_a_bad_port_annotation_is_not_served() -> None:
    async with open_cluster() as c:
        c.apply(deployment("lab"))
        await c.add_pod("lab", "lab-1")
        await c.add_pod(
            "lab",
            "lab-2",
            annotations={"ipb-halle.de/k8sticket.pod.port": "eighty"},
            backend=False,
        )
        event = await c.wait_event("Pod", "lab-2", "InvalidConfiguration")
        assert "ipb-halle.de/k8sticket.pod.port='eighty'" in event["message"]
        assert "the pod is not served" in event["message"]
        assert c.metric("rxkube_config_errors_total", application="lab") == 1
        stats = c.controller.statistics()
        assert (stats.apps["lab"].servers, stats.apps["lab"].ready_servers) == (1, 1)
        assert (await User().get(c.url + "/lab/echo")).backend == "lab-1"
