"""kubectl v1.32 (a client we did not write) against the fake API server, validation on.

One fake server for the module (in a thread, on loopback), one namespace per test, every
kubectl command with `--request-timeout`. The store's clock is a test-controlled value, so the
AGE cells of `kubectl get` are exact. Skipped only when kubectl is not installed.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from rxkube.fakes import Store, ThreadedFakeApiServer, fake_apiserver_thread

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

T0 = 1_780_000_000.0  # creation time of the objects the tests seed


class Clock:
    """Wall-clock seconds for the store, set by the test (read from the server thread)."""

    def __init__(self) -> None:
        self.value = T0

    def __call__(self) -> float:
        return self.value


class Kubectl:
    def __init__(self, server: ThreadedFakeApiServer, cache: Path) -> None:
        self.server = server
        self.base = [
            str(KUBECTL),
            "--kubeconfig",
            str(server.kubeconfig_path),
            "--cache-dir",
            str(cache),
            "--request-timeout=20s",
        ]

    def run(
        self, *args: str, stdin: str | None = None, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.base, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=40,
            check=False,
        )
        if ok:
            assert result.returncode == 0, f"kubectl {' '.join(args)}:\n{result.stderr}"
            assert "warning" not in result.stderr.lower(), result.stderr
        return result

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        return self.run(*args, stdin=stdin).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json"))

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*self.base, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def many(self, *commands: tuple[str, ...]) -> list[str]:
        """Run independent commands concurrently; their stdouts in order."""
        processes = [self.start(*command) for command in commands]
        outputs = []
        for command, process in zip(commands, processes, strict=True):
            out, err = process.communicate(timeout=40)
            assert process.returncode == 0, f"kubectl {' '.join(command)}:\n{err}"
            outputs.append(out)
        return outputs


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def server(clock: Clock) -> Iterator[ThreadedFakeApiServer]:
    with fake_apiserver_thread(store=Store(now=clock)) as fake:
        yield fake


@pytest.fixture(scope="module")
def kubectl(server: ThreadedFakeApiServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(server, tmp_path_factory.mktemp("kubectl-cache"))


_namespaces = iter(range(1000))


@pytest.fixture
def ns(server: ThreadedFakeApiServer, clock: Clock) -> str:
    clock.value = T0
    name = f"t{next(_namespaces)}"
    server.store.create("namespaces", {"metadata": {"name": name}})
    return name


def manifest(tmp_path: Path, name: str, *objects: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(objects))
    return str(path)


def deployment(
    name: str, *, replicas: int = 2, env: dict[str, str] | None = None
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "app",
        "image": "nginx:1.25",
        "ports": [{"containerPort": 80}],
    }
    if env is not None:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name, "tier": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container]},
            },
        },
    }


def rows(table: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in table.strip().splitlines()]


# -- get ------------------------------------------------------------------------------------


def _seed(server: ThreadedFakeApiServer, ns: str) -> None:
    store = server.store

    def create(resource: str, obj: dict[str, Any]) -> None:
        store.create(resource, obj, namespace=ns)

    running_pod = {
        "metadata": {"name": "web-1", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}], "nodeName": "node-1"},
    }
    create("pods", running_pod)
    create(
        "pods",
        {
            "metadata": {"name": "db-1", "labels": {"app": "db"}},
            "spec": {"containers": [{"name": "db", "image": "postgres:16"}]},
        },
    )
    status = {
        "phase": "Running",
        "podIP": "10.244.0.7",
        "podIPs": [{"ip": "10.244.0.7"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {
                "name": "app",
                "ready": True,
                "restartCount": 2,
                "state": {"running": {"startedAt": "2026-05-28T20:00:00Z"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": _stamp(T0 + 3000)}},
                "image": "nginx:1.25",
                "imageID": "",
            }
        ],
    }
    store.patch("pods", ns, "web-1", {"status": status}, subresource="status")
    create("deployments", deployment("web"))
    create(
        "services",
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]},
        },
    )
    create("configmaps", {"metadata": {"name": "settings"}, "data": {"a": "1", "b": "2"}})
    create("secrets", {"metadata": {"name": "token"}, "stringData": {"t": "x"}})
    create(
        "events",
        {
            "metadata": {"name": "web-1.1"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": ns},
            "reason": "Started",
            "message": "Started container app",
            "type": "Normal",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": _stamp(T0 + 60),
            "lastTimestamp": _stamp(T0 + 120),
            "count": 2,
        },
    )
    create(
        "ingresses",
        {
            "metadata": {"name": "web"},
            "spec": {
                "rules": [
                    {
                        "host": "a.example",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": "web", "port": {"number": 80}}},
                                }
                            ]
                        },
                    }
                ]
            },
        },
    )
    create(
        "networkpolicies",
        {"metadata": {"name": "deny"}, "spec": {"podSelector": {"matchLabels": {"app": "web"}}}},
    )
    create("leases", {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "host-1"}})
    create("roles", {"metadata": {"name": "reader"}, "rules": []})
    create(
        "rolebindings",
        {
            "metadata": {"name": "read"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "User", "name": "alice"}],
        },
    )
    create(
        "virtualservices", {"metadata": {"name": "vs"}, "spec": {"virtualHost": {"domains": ["*"]}}}
    )


def _stamp(seconds: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def test_get_prints_the_columns_of_every_kind(
    kubectl: Kubectl, server: ThreadedFakeApiServer, clock: Clock, ns: str
) -> None:
    _seed(server, ns)
    clock.value = T0 + 3 * 3600 + 120  # every object is 3h2m old
    kinds = (
        "pods",
        "deployments",
        "services",
        "configmaps",
        "secrets",
        "events",
        "ingresses",
        "networkpolicies",
        "leases",
        "roles",
        "rolebindings",
        "virtualservices",
    )
    outputs = kubectl.many(*[("get", kind, "-n", ns) for kind in kinds])
    got = dict(zip(kinds, (rows(o) for o in outputs), strict=True))
    assert got["pods"] == [
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ["db-1", "0/1", "Pending", "0", "3h2m"],
        ["web-1", "1/1", "Running", "2 (132m ago)", "3h2m"],
    ]
    assert got["deployments"] == [
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ["web", "0/2", "0", "0", "3h2m"],
    ]
    assert got["services"][0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert got["services"][1][0:2] == ["web", "ClusterIP"]
    assert got["services"][1][3:] == ["<none>", "80/TCP", "3h2m"]
    assert got["configmaps"] == [["NAME", "DATA", "AGE"], ["settings", "2", "3h2m"]]
    assert got["secrets"] == [["NAME", "TYPE", "DATA", "AGE"], ["token", "Opaque", "1", "3h2m"]]
    assert got["events"] == [
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        ["3h", "Normal", "Started", "pod/web-1", "Started container app"],
    ]
    assert got["ingresses"] == [
        ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
        ["web", "<none>", "a.example", "80", "3h2m"],
    ]
    assert got["networkpolicies"] == [["NAME", "POD-SELECTOR", "AGE"], ["deny", "app=web", "3h2m"]]
    assert got["leases"] == [["NAME", "HOLDER", "AGE"], ["leader", "host-1", "3h2m"]]
    assert got["roles"] == [["NAME", "CREATED AT"], ["reader", _stamp(T0)]]
    assert got["rolebindings"] == [["NAME", "ROLE", "AGE"], ["read", "Role/reader", "3h2m"]]
    assert got["virtualservices"] == [["NAME", "AGE"], ["vs", "3h2m"]]
    wide_pods, wide_deploy, wide_events, nodes_and_ns = kubectl.many(
        ("get", "pods", "-n", ns, "-o", "wide"),
        ("get", "deploy", "-n", ns, "-o", "wide"),
        ("get", "events", "-n", ns, "-o", "wide"),
        ("get", "namespace", ns),
    )
    assert rows(wide_pods) == [
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES",
        ],
        ["db-1", "0/1", "Pending", "0", "3h2m", "<none>", "<none>", "<none>", "<none>"],
        [
            "web-1",
            "1/1",
            "Running",
            "2 (132m ago)",
            "3h2m",
            "10.244.0.7",
            "node-1",
            "<none>",
            "<none>",
        ],
    ]
    assert rows(wide_deploy)[1] == ["web", "0/2", "0", "0", "3h2m", "app", "nginx:1.25", "app=web"]
    assert rows(wide_events) == [
        [
            "LAST SEEN",
            "TYPE",
            "REASON",
            "OBJECT",
            "SUBOBJECT",
            "SOURCE",
            "MESSAGE",
            "FIRST SEEN",
            "COUNT",
            "NAME",
        ],
        [
            "3h",
            "Normal",
            "Started",
            "pod/web-1",
            "kubelet, node-1",
            "Started container app",
            "3h1m",
            "2",
            "web-1.1",
        ],
    ]
    assert rows(nodes_and_ns) == [["NAME", "STATUS", "AGE"], [ns, "Active", "3h2m"]]


def test_get_json_yaml_and_selectors(
    kubectl: Kubectl, server: ThreadedFakeApiServer, ns: str
) -> None:
    _seed(server, ns)
    listed, one, selected, yaml_text, names = kubectl.many(
        ("get", "pods", "-n", ns, "-o", "json"),
        ("get", "deploy", "web", "-n", ns, "-o", "json"),
        ("get", "pods", "-n", ns, "-l", "app=web", "-o", "json"),
        ("get", "configmap", "settings", "-n", ns, "-o", "yaml"),
        ("get", "pods", "-n", ns, "-l", "app!=web", "-o", "name"),
    )
    assert json.loads(listed)["kind"] == "List"
    assert [p["metadata"]["name"] for p in json.loads(listed)["items"]] == ["db-1", "web-1"]
    assert json.loads(one)["spec"]["replicas"] == 2
    assert "managedFields" not in json.loads(one)["metadata"]  # kubectl hides them
    assert [p["metadata"]["name"] for p in json.loads(selected)["items"]] == ["web-1"]
    assert yaml.safe_load(yaml_text)["data"] == {"a": "1", "b": "2"}
    assert names == "pod/db-1\n"


def test_get_watch_prints_changes(kubectl: Kubectl, ns: str) -> None:
    kubectl("create", "configmap", "first", "-n", ns, "--from-literal=a=1")
    watch = kubectl.start("get", "configmaps", "-n", ns, "-w", "--request-timeout=15s")
    lines = _lines(watch)
    try:
        assert _next(lines).split() == ["NAME", "DATA", "AGE"]
        assert _next(lines).split()[:2] == ["first", "1"]
        kubectl(
            "create", "configmap", "second", "-n", ns, "--from-literal=a=1", "--from-literal=b=2"
        )
        assert _next(lines).split()[:2] == ["second", "2"]
        kubectl("label", "configmap", "first", "-n", ns, "x=y")
        assert _next(lines).split()[:2] == ["first", "1"]
        kubectl("delete", "configmap", "second", "-n", ns)
        assert _next(lines).split()[:2] == ["second", "2"]
    finally:
        watch.kill()
        watch.communicate()


def _lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    out: queue.Queue[str] = queue.Queue()
    stream: IO[str] | None = process.stdout
    assert stream is not None

    def pump() -> None:
        for line in stream:
            out.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return out


def _next(lines: queue.Queue[str]) -> str:
    return lines.get(timeout=20)


# -- writes ---------------------------------------------------------------------------------


def test_create_validates_fields_on_the_server(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    bad = deployment("typo")
    bad["spec"]["replicaz"] = 3
    path = manifest(tmp_path, "typo.yaml", bad)
    strict = kubectl.run("create", "-f", path, "-n", ns, ok=False)
    assert strict.returncode == 1
    assert (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.replicaz"'
    ) in strict.stderr
    warned = kubectl.run("create", "-f", path, "-n", ns, "--validate=warn", ok=False)
    assert warned.returncode == 0, warned.stderr
    assert 'Warning: unknown field "spec.replicaz"' in warned.stderr
    assert "replicaz" not in json.dumps(kubectl.json("get", "deploy", "typo", "-n", ns))
    good = manifest(
        tmp_path,
        "good.yaml",
        deployment("good"),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}},
    )
    assert kubectl("create", "-f", good, "-n", ns) == (
        "deployment.apps/good created\nconfigmap/cm created\n"
    )


def test_apply_twice_updates_and_removes_fields(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    first = deployment("web", env={"A": "1", "B": "2"})
    assert kubectl("apply", "-f", manifest(tmp_path, "v1.yaml", first), "-n", ns) == (
        "deployment.apps/web created\n"
    )
    second = deployment("web", replicas=3, env={"A": "1"})
    del second["metadata"]["labels"]["tier"]
    second["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    path = manifest(tmp_path, "v2.yaml", second)
    assert kubectl("apply", "-f", path, "-n", ns) == "deployment.apps/web configured\n"
    live = kubectl.json("get", "deploy", "web", "-n", ns)
    container = live["spec"]["template"]["spec"]["containers"][0]
    assert live["spec"]["replicas"] == 3
    assert live["metadata"]["labels"] == {"app": "web"}
    assert container["env"] == [{"name": "A", "value": "1"}]
    assert container["image"] == "nginx:1.26"
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert live["metadata"]["generation"] == 2
    assert kubectl("apply", "-f", path, "-n", ns) == "deployment.apps/web unchanged\n"


def test_apply_server_side_creates_updates_and_reports_conflicts(
    kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    path = manifest(tmp_path, "ssa.yaml", deployment("api", env={"A": "1", "B": "2"}))
    assert kubectl("apply", "--server-side", "-f", path, "-n", ns) == (
        "deployment.apps/api serverside-applied\n"
    )
    live = kubectl.json("get", "deploy", "api", "-n", ns, "--show-managed-fields")
    managers = [(e["manager"], e["operation"]) for e in live["metadata"]["managedFields"]]
    assert managers == [("kubectl", "Apply")]
    changed = deployment("api", replicas=4, env={"A": "1"})
    del changed["metadata"]["labels"]["tier"]
    path = manifest(tmp_path, "ssa2.yaml", changed)
    kubectl("apply", "--server-side", "-f", path, "-n", ns)
    live = kubectl.json("get", "deploy", "api", "-n", ns)
    assert live["spec"]["replicas"] == 4
    assert live["metadata"]["labels"] == {"app": "api"}
    assert live["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]
    kubectl("patch", "deploy", "api", "-n", ns, "--type=merge", "-p", '{"spec":{"replicas":5}}')
    conflict = kubectl.run("apply", "--server-side", "-f", path, "-n", ns, ok=False)
    assert conflict.returncode == 1
    assert (
        'Apply failed with 1 conflict: conflict with "kubectl-patch" using apps/v1: .spec.replicas'
        in conflict.stderr
    )
    kubectl("apply", "--server-side", "--force-conflicts", "-f", path, "-n", ns)
    assert kubectl.json("get", "deploy", "api", "-n", ns)["spec"]["replicas"] == 4


def test_label_annotate_patch_and_delete(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl(
        "apply", "-f", manifest(tmp_path, "d.yaml", deployment("web", env={"A": "1"})), "-n", ns
    )
    kubectl("label", "deploy", "web", "-n", ns, "team=blue")
    kubectl("annotate", "deploy", "web", "-n", ns, "owner=ops")
    kubectl(
        "patch",
        "deploy",
        "web",
        "-n",
        ns,
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"B","value":"2"}]}]}}}}',
    )
    kubectl(
        "patch",
        "deploy",
        "web",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"metadata":{"labels":{"tier":null}}}',
    )
    kubectl(
        "patch",
        "deploy",
        "web",
        "-n",
        ns,
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/replicas","value":1}]',
    )
    live = kubectl.json("get", "deploy", "web", "-n", ns)
    assert live["metadata"]["labels"] == {"app": "web", "team": "blue"}
    assert live["metadata"]["annotations"]["owner"] == "ops"
    env = live["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]
    assert live["spec"]["replicas"] == 1
    assert kubectl("label", "deploy", "web", "-n", ns, "team-") == "deployment.apps/web unlabeled\n"
    assert kubectl("delete", "deploy", "web", "-n", ns) == 'deployment.apps "web" deleted\n'
    missing = kubectl.run("get", "deploy", "web", "-n", ns, ok=False)
    assert 'deployments.apps "web" not found' in missing.stderr


def test_scale(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl("apply", "-f", manifest(tmp_path, "d.yaml", deployment("web")), "-n", ns)
    assert (
        kubectl("scale", "deploy/web", "-n", ns, "--replicas=3") == "deployment.apps/web scaled\n"
    )
    assert kubectl.json("get", "deploy", "web", "-n", ns)["spec"]["replicas"] == 3
    stale = kubectl.run(
        "scale", "deploy/web", "-n", ns, "--current-replicas=2", "--replicas=5", ok=False
    )
    assert "Expected replicas to be 2, was 3" in stale.stderr
    kubectl("scale", "deploy/web", "-n", ns, "--current-replicas=3", "--replicas=0")
    assert kubectl.json("get", "deploy", "web", "-n", ns)["spec"]["replicas"] == 0


def test_create_namespace_configmap_and_typed_objects(kubectl: Kubectl, ns: str) -> None:
    name = f"{ns}-extra"
    assert kubectl("create", "namespace", name) == f"namespace/{name} created\n"
    assert kubectl("create", "configmap", "c", "-n", name, "--from-literal=k=v") == (
        "configmap/c created\n"
    )
    kubectl("create", "secret", "generic", "s", "-n", name, "--from-literal=k=v")
    kubectl("create", "deployment", "d", "-n", name, "--image=nginx:1.25", "--replicas=0")
    assert kubectl.json("get", "configmap", "c", "-n", name)["data"] == {"k": "v"}
    assert kubectl.json("get", "secret", "s", "-n", name)["data"] == {"k": "dg=="}
    created = kubectl.json("get", "deploy", "d", "-n", name)
    assert created["spec"]["replicas"] == 0
    assert created["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    kubectl("delete", "namespace", name)


def test_describe_and_get_events(kubectl: Kubectl, server: ThreadedFakeApiServer, ns: str) -> None:
    _seed(server, ns)
    pod = server.store.get("pods", ns, "web-1")
    server.store.create(
        "events",
        {
            "metadata": {"name": "web-1.2"},
            "involvedObject": {
                "kind": "Pod",
                "name": "web-1",
                "namespace": ns,
                "uid": pod["metadata"]["uid"],
                "apiVersion": "v1",
            },
            "reason": "Pulled",
            "message": "Container image already present",
            "type": "Normal",
            "source": {"component": "kubelet"},
            "firstTimestamp": _stamp(T0),
            "lastTimestamp": _stamp(T0),
            "count": 1,
        },
        namespace=ns,
    )
    described, deploy, selected = kubectl.many(
        ("describe", "pod", "web-1", "-n", ns),
        ("describe", "deploy", "web", "-n", ns),
        ("get", "events", "-n", ns, "--field-selector", "reason=Pulled", "-o", "name"),
    )
    assert re.search(
        r"Normal\s+Pulled\s+\S+\s+kubelet\s+Container image already present", described
    )
    assert "Status:           Running" in described
    assert "IP:               10.244.0.7" in described
    assert "Replicas:               2 desired" in deploy
    assert selected == "event/web-1.2\n"


def test_wait_for_a_condition_and_for_deletion(kubectl: Kubectl, ns: str) -> None:
    kubectl("create", "configmap", "gone", "-n", ns, "--from-literal=a=1")
    kubectl("run", "p", "-n", ns, "--image=nginx:1.25")
    waiting = kubectl.start("wait", "-n", ns, "--for=condition=Ready", "pod/p", "--timeout=20s")
    deleting = kubectl.start("wait", "-n", ns, "--for=delete", "configmap/gone", "--timeout=20s")
    kubectl(
        "patch",
        "pod",
        "p",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}',
    )
    out, err = waiting.communicate(timeout=30)
    assert (waiting.returncode, out) == (0, "pod/p condition met\n"), err
    kubectl("delete", "configmap", "gone", "-n", ns)
    out, err = deleting.communicate(timeout=30)
    assert deleting.returncode == 0, err


def test_explain_reads_the_openapi_documents(kubectl: Kubectl) -> None:
    text = kubectl("explain", "deployment.spec.replicas")
    assert "FIELD: replicas <integer>" in text
