"""deploy/ as a platform team applies it, against the fake API server with its simulated cluster.

1. `kubectl apply -k deploy/` (validation on) after the namespace and the ticket-key Secret that
   the kustomization's comment asks for, twice (the second changes nothing), then the example
   app; every object `kubectl kustomize deploy/` renders is stored with the fields that matter.
2. The Role is sufficient and least-privilege, shown by running the real thing under it: the
   fake authenticates and authorizes (auth and RBAC on), the service account apps/rxkube gets a
   token, and `rxkube run` runs as a process with the rendered Deployment's own arguments and
   environment (addresses moved to a loopback "pod IP", the Secret written where the volume
   would mount it). It becomes ready, serves a user through the proxy, scales the example app up
   and down, posts and re-posts (patches) an Event, and is never refused; the fake's per-user
   accounting shows that every verb the Role grants was used.
3. The Dockerfile builds the wheel from every package folder and exposes the Deployment's ports.

kubectl sends no credentials over plain HTTP (client-go reads a kubeconfig's user only for a
TLS server) and the fake speaks plain HTTP, so part 1 runs with authentication off and part 2
stores the rendered objects itself: kubectl renders them (`kubectl kustomize`), the fake's store
creates them as the API would. Skipped only when kubectl is not installed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import yaml
from prometheus_client.parser import text_string_to_metric_families

from rxkube.controllers import APP_LABEL, AUTOSCALED_LABEL
from rxkube.fakes import Access, FakeApiServer, SimSettings, Store, open_fake_apiserver
from tests.integration.controllers.conftest import User, loopback

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
EXAMPLE = DEPLOY / "example-app"
NAMESPACE = "apps"
SERVICE_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:rxkube"
SIM = SimSettings(
    schedule_delay=0.005, start_delay=0.02, ready_delay=0.005, terminate_delay=0.005, events=False
)
LIMIT = 10.0
"""Seconds any one wait may take (a cold interpreter start gets three times that)."""


# -- kubectl and the rendered manifests ----------------------------------------------------


async def kubectl(cache: Path, *args: str, kubeconfig: Path | None = None) -> str:
    """Run kubectl; its stdout. It must succeed without a warning."""
    assert KUBECTL is not None
    config = [f"--kubeconfig={kubeconfig}"] if kubeconfig is not None else []
    command = [KUBECTL, *config, f"--cache-dir={cache}", "--request-timeout=20s", *args]
    with trio.fail_after(40):
        result = await trio.run_process(
            command, capture_stdout=True, capture_stderr=True, check=False
        )
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, f"kubectl {shlex.join(args)}:\n{err}"
    assert "warning" not in err.lower(), err
    return out


async def render(cache: Path, path: Path) -> list[dict[str, Any]]:
    """What `kubectl kustomize PATH` renders: the objects `kubectl apply -k` sends."""
    text = await kubectl(cache, "kustomize", str(path))
    return [doc for doc in yaml.safe_load_all(text) if doc]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} rendered"
    return found[0]


def plural(store: Store, obj: Mapping[str, Any]) -> str:
    resource = store.registry.by_kind(obj["apiVersion"], obj["kind"])
    assert resource is not None, f"the fake does not serve {obj['apiVersion']} {obj['kind']}"
    return resource.plural


def version(store: Store, obj: Mapping[str, Any]) -> str:
    """What changes when a client changes the object: its generation where it has one (the
    simulated cluster keeps writing a Deployment's status, which bumps its resourceVersion),
    else its resourceVersion."""
    meta = store.get(plural(store, obj), NAMESPACE, obj["metadata"]["name"])["metadata"]
    return f"generation {meta['generation']}" if "generation" in meta else meta["resourceVersion"]


def shown(obj: Mapping[str, Any]) -> str:
    """How kubectl names an object in its output: `deployment.apps/rxkube`."""
    group = obj["apiVersion"].rpartition("/")[0]
    return f"{obj['kind'].lower()}{'.' + group if group else ''}/{obj['metadata']['name']}"


def contained(rendered: Any, stored: Any, where: str = "") -> Iterator[str]:
    """Where `stored` lacks or differs from what `rendered` says (the server adds defaults)."""
    if isinstance(rendered, Mapping):
        if not isinstance(stored, Mapping):
            yield f"{where}: {stored!r} is not an object"
            return
        for key, value in rendered.items():
            if key not in stored:
                yield f"{where}.{key}: missing"
            else:
                yield from contained(value, stored[key], f"{where}.{key}")
    elif isinstance(rendered, list):
        if not isinstance(stored, list) or len(stored) != len(rendered):
            yield f"{where}: {stored!r} is not a list of {len(rendered)}"
            return
        for index, (r, s) in enumerate(zip(rendered, stored, strict=True)):
            yield from contained(r, s, f"{where}[{index}]")
    elif rendered != stored and str(rendered) != str(stored):  # ports: 9090 vs "9090"
        yield f"{where}: {stored!r}, rendered {rendered!r}"


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels, matchExpressions) applied to `labels`."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or ():
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or ()
        ok = {
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
        }[operator]
        if not ok:
            return False
    return True


def container_of(deployment: Mapping[str, Any]) -> dict[str, Any]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def flag(args: list[str], name: str) -> str:
    [value] = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return value


def port_number(container: Mapping[str, Any], port: int | str) -> int:
    """A container port given by number or by name."""
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def key_hex() -> str:
    """A ticket key, as `openssl rand -hex 32` makes one."""
    return secrets.token_hex(32)


def setup_commands() -> list[list[str]]:
    """The commands the kustomization's comment asks for before `kubectl apply -k deploy/`
    (creating the namespace and the ticket-key Secret), with a key put in for the openssl
    call."""
    commands = []
    for line in (DEPLOY / "kustomization.yaml").read_text().splitlines():
        text = line.lstrip("# ").strip()
        if line.startswith("#") and text.startswith("kubectl ") and " create " in text:
            commands.append(shlex.split(text.replace("$(openssl rand -hex 32)", key_hex()))[1:])
    return commands


# -- 1. kubectl apply -k ---------------------------------------------------------------------


async def test_kubectl_applies_deploy_and_the_example_app(tmp_path: Path) -> None:
    cache = tmp_path / "kubectl-cache"
    rendered = await render(cache, DEPLOY)
    example = await render(cache, EXAMPLE)
    async with open_fake_apiserver(simulate=SIM) as server:
        store, config = server.store, server.kubeconfig_path
        commands = setup_commands()
        assert [c[:2] for c in commands] == [["create", "namespace"], ["-n", NAMESPACE]]
        for command in commands:
            await kubectl(cache, *command, kubeconfig=config)

        applied = await kubectl(cache, "apply", "-k", str(DEPLOY), kubeconfig=config)
        assert sorted(applied.splitlines()) == sorted(f"{shown(o)} created" for o in rendered)
        versions = {shown(o): version(store, o) for o in rendered}
        again = await kubectl(cache, "apply", "-k", str(DEPLOY), kubeconfig=config)
        # kubectl always re-sends a field whose patch strategy is "replace" when the object has
        # it: the PodDisruptionBudget's spec.selector. Real kubectl reports that PDB as
        # "configured" on every apply, and the API server stores nothing new for it.
        pdb = shown(one(rendered, "PodDisruptionBudget"))
        assert sorted(again.splitlines()) == sorted(
            f"{shown(o)} {'configured' if shown(o) == pdb else 'unchanged'}" for o in rendered
        )
        assert {shown(o): version(store, o) for o in rendered} == versions

        applied = await kubectl(cache, "apply", "-k", str(EXAMPLE), kubeconfig=config)
        assert applied.splitlines() == [f"{shown(o)} created" for o in example]

        for obj in [*rendered, *example]:
            assert obj["metadata"]["namespace"] == NAMESPACE
            stored = store.get(plural(store, obj), NAMESPACE, obj["metadata"]["name"])
            assert list(contained(obj, stored)) == [], shown(obj)

        check_manifests(rendered, example)

        # The example app runs on the simulated cluster (its pods are what rxkube serves).
        def notebook_ready(store: Store) -> bool:
            pods = store.list("pods", NAMESPACE, label_selector=f"{APP_LABEL}=notebook")
            return any(ready(p) for p in pods.objects())

        assert server.simulation is not None
        with trio.fail_after(LIMIT):
            await server.simulation.wait_until(notebook_ready)


def check_manifests(rendered: list[dict[str, Any]], example: list[dict[str, Any]]) -> None:
    """The fields of deploy/ that must agree with each other and with what rxkube serves."""
    deployment = one(rendered, "Deployment", "rxkube")
    pod_spec = deployment["spec"]["template"]["spec"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = container_of(deployment)
    args = container["args"]
    assert args[0] == "run"
    assert pod_spec["serviceAccountName"] == one(rendered, "ServiceAccount")["metadata"]["name"]

    # Probes: readiness is /readyz (informers synced), liveness /healthz, both on the port
    # the --metrics listener uses.
    metrics_port = int(flag(args, "metrics").rpartition(":")[2])
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert port_number(container, get["port"]) == metrics_port
    assert port_number(container, "proxy") == int(flag(args, "listen").rpartition(":")[2])
    authority_port = int(flag(args, "authority-listen").rpartition(":")[2])
    assert port_number(container, "authority") == authority_port
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    drain = flag(args, "drain-deadline")
    assert drain.endswith("s")
    assert int(drain[:-1]) < pod_spec["terminationGracePeriodSeconds"]

    # The ticket key: the Secret of the kustomization's comment, mounted where the flag says.
    [mount] = container["volumeMounts"]
    [volume] = [v for v in pod_spec["volumes"] if v["name"] == mount["name"]]
    [secret_command] = [c for c in setup_commands() if "secret" in c]
    assert volume["secret"]["secretName"] == secret_command[5]
    assert flag(secret_command, "from-literal").startswith("key=")
    assert flag(args, "ticket-key-file") == mount["mountPath"] + "/key"

    # The Service carries the proxy and the metrics, never the replicas' authority API.
    service = one(rendered, "Service")
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels)
    targets = {port_number(container, p["targetPort"]) for p in service["spec"]["ports"]}
    assert targets == {port_number(container, "proxy"), metrics_port}

    pdb = one(rendered, "PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"], pod_labels)
    assert pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]

    binding = one(rendered, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": one(rendered, "Role")["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rxkube", "namespace": NAMESPACE}
    ]

    # NetworkPolicies: the apps' pods (the example's included) admit only rxkube's pods; rxkube's
    # own pods admit anyone on every port but the authority's, which only rxkube's pods reach.
    app_pods = one(example, "Deployment")["spec"]["template"]["metadata"]["labels"]
    apps_only = one(rendered, "NetworkPolicy", "rxkube-apps-only-from-rxkube")["spec"]
    assert selects(apps_only["podSelector"], app_pods)
    assert not selects(apps_only["podSelector"], pod_labels)
    assert apps_only["policyTypes"] == ["Ingress"]
    [rule] = apps_only["ingress"]
    [peer] = rule["from"]
    assert set(peer) == {"podSelector"}
    assert "ports" not in rule
    assert selects(peer["podSelector"], pod_labels)
    assert not selects(peer["podSelector"], app_pods)

    authority = one(rendered, "NetworkPolicy", "rxkube-authority-only-from-rxkube")["spec"]
    assert selects(authority["podSelector"], pod_labels)
    assert not selects(authority["podSelector"], app_pods)
    open_to_all, from_rxkube = authority["ingress"]
    assert "from" not in open_to_all
    ranges = [(p["port"], p.get("endPort", p["port"])) for p in open_to_all["ports"]]

    def open_port(port: int) -> bool:
        return any(low <= port <= high for low, high in ranges)

    assert [p for p in range(1, 65536) if not open_port(p)] == [authority_port]
    [peer] = from_rxkube["from"]
    assert set(peer) == {"podSelector"}
    assert selects(peer["podSelector"], pod_labels)
    assert [port_number(container, p["port"]) for p in from_rxkube["ports"]] == [authority_port]


def test_dockerfile_copies_what_the_wheel_is_built_from() -> None:
    """Every package folder of pyproject.toml is copied into the image's build stage, and the
    image exposes the ports the Deployment names."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    copied = {
        part.rstrip("/")
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from" not in line
        for part in line.split()[1:-1]
    }
    folders = {path.split("/")[0] for path in project["tool"]["setuptools"]["package-dir"].values()}
    assert folders | {"pyproject.toml", project["project"]["readme"]} <= copied
    deployment = yaml.safe_load((DEPLOY / "deployment.yaml").read_text())
    ports = {str(p["containerPort"]) for p in container_of(deployment)["ports"]}
    [expose] = [line.split()[1:] for line in dockerfile.splitlines() if line.startswith("EXPOSE")]
    assert set(expose) == ports


# -- 2. the Role, under the real controller ------------------------------------------------


def ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class Logs:
    """`rxkube run --log-format=json`'s stderr, read as it comes (so the pipe never fills)."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.raw = ""
        self.ended = False
        self._changed = trio.Event()

    async def read(self, stream: trio.abc.ReceiveStream) -> None:
        buffer = b""
        while chunk := await stream.receive_some(65536):
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                self.raw += line.decode(errors="replace") + "\n"
                try:
                    self.lines.append(json.loads(line))
                except ValueError:
                    self.lines.append({"msg": line.decode(errors="replace")})
            self._changed.set()
            self._changed = trio.Event()
        self.raw += buffer.decode(errors="replace")
        self.ended = True
        self._changed.set()

    async def wait_for(self, message: str) -> dict[str, Any]:
        while True:
            for line in self.lines:
                if line.get("msg") == message:
                    return line
            assert not self.ended, f"rxkube run ended before logging {message!r}:\n{self.raw}"
            await self._changed.wait()


def expand(text: str, env: Mapping[str, str]) -> str:
    """`$(VAR)` in a container's args, as the kubelet expands it."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), text)


async def test_rxkube_runs_under_the_role_which_grants_exactly_what_it_uses(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "kubectl-cache"
    rendered = await render(cache, DEPLOY)
    example = await render(cache, EXAMPLE)
    role = one(rendered, "Role")
    deployment = one(rendered, "Deployment", "rxkube")
    container = container_of(deployment)
    async with open_fake_apiserver(auth=True, rbac=True, simulate=SIM) as server:
        store = server.store
        store.create("namespaces", {"metadata": {"name": NAMESPACE}})
        key = key_hex().encode()
        store.create(
            "secrets",
            {
                "metadata": {"name": "rxkube-ticket-key", "namespace": NAMESPACE},
                "data": {"key": base64.b64encode(key).decode()},
            },
        )
        for obj in [*rendered, *example]:
            store.create(plural(store, obj), obj)
        sim = server.simulation
        assert sim is not None

        def notebook_pods(store: Store) -> list[dict[str, Any]]:
            pods = store.list("pods", NAMESPACE, label_selector=f"{APP_LABEL}=notebook")
            return [p for p in pods.objects() if not p["metadata"].get("deletionTimestamp")]

        with trio.fail_after(LIMIT):
            await sim.wait_until(lambda s: any(ready(p) for p in notebook_pods(s)))
        [notebook_pod] = [p["metadata"]["name"] for p in notebook_pods(store)]

        # The pod rxkube would run in: its environment, its Secret volume, its addresses.
        pod_ip = loopback()
        token = server.add_service_account(NAMESPACE, "rxkube")
        kubeconfig = server.write_kubeconfig(
            tmp_path / "kubeconfig", token=token, namespace=NAMESPACE
        )
        env = {"POD_NAMESPACE": NAMESPACE, "POD_NAME": "rxkube-5d8f7c9b6-x7k2p", "POD_IP": pod_ip}
        assert {e["name"] for e in container["env"]} == set(env)
        mounts: dict[str, Path] = {}
        for mount in container["volumeMounts"]:
            [volume] = [
                v
                for v in deployment["spec"]["template"]["spec"]["volumes"]
                if v["name"] == mount["name"]
            ]
            secret = store.get("secrets", NAMESPACE, volume["secret"]["secretName"])
            directory = mounts[mount["mountPath"]] = tmp_path / mount["mountPath"].lstrip("/")
            directory.mkdir(parents=True)
            for item, value in secret["data"].items():
                (directory / item).write_bytes(base64.b64decode(value))
        args, ports = [], {}
        for arg in container["args"]:
            arg = expand(arg, env)
            for path, directory in mounts.items():
                arg = arg.replace(path, str(directory))
            if match := re.fullmatch(r"(--[a-z-]+)=0\.0\.0\.0:(\d+)", arg):
                ports[int(match[2])] = free_port(pod_ip)
                arg = f"{match[1]}={pod_ip}:{ports[int(match[2])]}"
            args.append(arg)
        assert "--leader-election" in args
        command = [
            sys.executable,
            "-m",
            "rxkube.controllers",  # the image's entrypoint, `rxkube`
            *(a for a in args if not a.startswith("--drain-deadline=")),
            "--drain-deadline=2s",  # the deployed 45s bounds a drain; nothing is open here
            f"--kubeconfig={kubeconfig}",
            "--lease-duration=3s",
            "--log-format=json",
        ]

        def port(name: str | int) -> int:
            return ports[port_number(container, name)]

        logs = Logs()
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(
                partial(
                    trio.run_process,
                    command,
                    stderr=subprocess.PIPE,
                    check=False,
                    env={**os.environ, **env},
                )
            )
            assert process.stderr is not None
            nursery.start_soon(logs.read, process.stderr)
            steps: list[str] = []
            try:
                try:
                    await exercise(server, logs, pod_ip, port, container, notebook_pod, steps)
                except trio.TooSlowError:
                    raise AssertionError(
                        f"rxkube did not get past: {steps[-1]}; the service account was "
                        f"refused {refused(server)}; the Events: {event_summary(server)}; "
                        f"its log ends:\n{logs.raw[-2000:]}"
                    ) from None
                process.send_signal(signal.SIGTERM)
                with trio.fail_after(LIMIT):
                    stopping = await logs.wait_for("stopping")
                    code = await process.wait()
            finally:
                nursery.cancel_scope.cancel()  # kills rxkube if the test failed
        assert stopping["signal"] == "SIGTERM"
        assert code == 0, logs.raw[-3000:]
        assert any(
            line["msg"].endswith(f"released lease {NAMESPACE}/rxkube") for line in logs.lines
        )
        assert "forbidden" not in logs.raw.lower()

        # No request of the service account was refused, and it used every (verb, resource)
        # the Role grants: nothing is missing and nothing is granted in vain. (The Lease did not
        # exist before, so `create` on leases is exercised too; with one already there, a
        # replica only gets and updates it.)
        assert refused(server) == {}
        access = server.api.access
        used = {
            (a.verb, a.resource)
            for a in access
            if a.user == SERVICE_ACCOUNT and not a.resource.startswith("/")
        }
        granted = {
            (verb, f"{resource}.{group}" if group else resource)
            for rule in role["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
        assert used == granted


def event_summary(server: FakeApiServer) -> list[tuple[str, str, str, int]]:
    return [
        (e["involvedObject"]["name"], e["type"], e["reason"], e["count"])
        for e in server.store.list("events", NAMESPACE).objects()
    ]


def refused(server: FakeApiServer) -> dict[Access, int]:
    """The service account's requests the fake answered 403, by kind."""
    return {
        a: n for a, n in server.api.access.items() if a.user == SERVICE_ACCOUNT and not a.allowed
    }


async def exercise(
    server: FakeApiServer,
    logs: Logs,
    pod_ip: str,
    port: Callable[[str | int], int],
    container: Mapping[str, Any],
    notebook_pod: str,
    steps: list[str],
) -> None:
    """What the running rxkube is shown doing, with the fake checked after each step (each
    named in `steps` before it starts, for the failure message)."""
    store, sim = server.store, server.simulation
    assert sim is not None
    steps.append("ready")
    with trio.fail_after(3 * LIMIT):  # a cold interpreter start on a busy machine
        await logs.wait_for("ready")
    # The example app as shipped is served without a configuration problem (a misspelt
    # rxkube.io/ key, say): the controller logs each problem as it parses the Deployment,
    # before it serves the app and reports ready.
    assert [line for line in logs.lines if line["msg"].startswith("configuration problem")] == []

    def notebook_events(reason: str) -> list[dict[str, Any]]:
        return [
            e
            for e in store.list("events", NAMESPACE).objects()
            if e["involvedObject"]["kind"] == "Deployment"
            and e["involvedObject"]["name"] == "notebook"
            and e["reason"] == reason
        ]

    def autoscaled(store: Store) -> list[dict[str, Any]]:
        pods = store.list("pods", NAMESPACE, label_selector=f"{AUTOSCALED_LABEL}=true")
        return list(pods.objects())

    def annotate(**values: str) -> None:
        prefix = "ipb-halle.de/k8sticket.deployment."
        annotations = {prefix + k.replace("_", "."): v for k, v in values.items()}
        store.patch(
            "deployments", NAMESPACE, "notebook", {"metadata": {"annotations": annotations}}
        )

    async def event_count(reason: str, count: int) -> dict[str, Any]:
        await sim.wait_until(lambda _: any(e["count"] == count for e in notebook_events(reason)))
        [event] = notebook_events(reason)
        return event

    with trio.fail_after(LIMIT):
        async with httpx.AsyncClient(timeout=LIMIT) as http:
            steps.append("probes")
            for probe in ("readinessProbe", "livenessProbe"):
                get = container[probe]["httpGet"]
                answer = await http.get(f"http://{pod_ip}:{port(get['port'])}{get['path']}")
                assert answer.status_code == 200, (probe, answer.text)

        # A user gets a ticket through the proxy and reaches the example app's pod, with the
        # path Jupyter's base_url expects.
        steps.append("a user's ticket")
        reply = await User().get(f"http://{pod_ip}:{port('proxy')}/notebook/lab")
        assert (reply.status, reply.backend) == (200, notebook_pod), reply.text
        assert json.loads(reply.text)["path"] == "/notebook/lab"

        # One of its 2 slots is taken: 1 free ticket, 2 wanted (tickets.spare): a pod is made.
        steps.append("an autoscaled pod, ready")
        await sim.wait_until(lambda s: any(ready(p) for p in autoscaled(s)))

        # A bad annotation gets a Warning Event; fixed, a Normal one; the same mistake again is
        # the same Event, patched (count 2).
        steps.append("the Events on a bad annotation")
        annotate(tickets_spare="lots")
        problem = await event_count("InvalidConfiguration", 1)
        assert problem["type"] == "Warning"
        assert "tickets.spare='lots'" in problem["message"]
        annotate(tickets_spare="2")
        await event_count("ConfigurationResolved", 1)
        annotate(tickets_spare="lots")
        await event_count("InvalidConfiguration", 2)

        # Fixed, with pods.max lowered to 0: the idle autoscaled pod is deleted.
        steps.append("the autoscaled pod deleted")
        annotate(tickets_spare="2", pods_max="0")
        await sim.wait_until(lambda s: autoscaled(s) == [])
        await event_count("ConfigurationResolved", 2)
        events = store.list("events", NAMESPACE).objects()
        assert {e["reason"] for e in events if e["type"] == "Warning"} == {"InvalidConfiguration"}

        # What rxkube counted itself: one pod up and one down, both applied; Events created
        # and patched, none failed; no watch error.
        async with httpx.AsyncClient(timeout=LIMIT) as http:
            text = (await http.get(f"http://{pod_ip}:{port('metrics')}/metrics")).text
        metrics = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

        def metric(name: str, **labels: str) -> float | None:
            return metrics.get((name, tuple(sorted(labels.items()))))

        assert metric("rxkube_app_users", application="notebook") == 1
        scale_actions = {
            labels: value
            for (name, labels), value in metrics.items()
            if name == "rxkube_scale_actions_total"
        }
        assert scale_actions == {
            (("application", "notebook"), ("direction", "down"), ("outcome", "applied")): 1,
            (("application", "notebook"), ("direction", "up"), ("outcome", "applied")): 1,
        }
        assert metric("rxkube_kube_events_total", outcome="failed") == 0
        assert metric("rxkube_kube_events_total", outcome="patched") == 2
        assert [key for key in metrics if key[0] == "rxkube_watch_errors_total"] == []
