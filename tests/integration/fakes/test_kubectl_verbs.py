"""kubectl verbs beyond get/apply/exec, driven with the real kubectl against the fake.

`auth can-i` (access reviews decided by the fake's RBAC), `auth whoami`, impersonation
(`--as`), `create token`, the typed `create` subcommands (protobuf bodies), batch Jobs and
CronJobs, and `attach`. The server runs with TLS and RBAC, so kubectl sends each user's token.
Skipped only when kubectl is not installed.
"""

from __future__ import annotations

import base64
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from rxkube.fakes import SimSettings, ThreadedFakeApiServer, fake_apiserver_thread

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
SIM = SimSettings(backends=False, schedule_delay=0.005, start_delay=0.01, ready_delay=0.005)
DEADLINE = 20.0


class Kubectl:
    """kubectl with a kubeconfig of its own (a user's token) and its own cache."""

    def __init__(self, server: ThreadedFakeApiServer, home: Path, token: str | None) -> None:
        home.mkdir()
        self.config = server.write_kubeconfig(home / "kubeconfig", token=token)
        self.env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(self.config)}

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        return subprocess.run(
            [KUBECTL, "--request-timeout=20s", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=DEADLINE * 2,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        done = self(*args, stdin=stdin)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedFakeApiServer]:
    with fake_apiserver_thread(tls=True, rbac=True, simulate=SIM) as fake:
        yield fake


@pytest.fixture
def admin(server: ThreadedFakeApiServer, tmp_path: Path) -> Kubectl:
    return Kubectl(server, tmp_path / "admin", None)


def test_auth_can_i_follows_rbac_and_lists_the_rules(
    server: ThreadedFakeApiServer, admin: Kubectl, tmp_path: Path
) -> None:
    alice = Kubectl(server, tmp_path / "alice", server.add_user("alice"))

    # Discovery lists the review kinds (kubectl maps `can-i` through it).
    resources = admin.ok("api-resources", "--api-group=authorization.k8s.io", "-o", "name")
    assert resources.split() == [
        "localsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectrulesreviews.authorization.k8s.io",
        "subjectaccessreviews.authorization.k8s.io",
    ]

    before = alice("auth", "can-i", "list", "pods")
    assert (before.returncode, before.stdout) == (1, "no\n")
    assert alice.ok("auth", "whoami").split("\n")[1:3] == [
        "Username    alice",
        "Groups      [system:authenticated]",
    ]

    # The typed `create role|rolebinding` subcommands (protobuf bodies) grant it.
    assert admin.ok("create", "role", "pod-reader", "--verb=get,list", "--resource=pods") == (
        "role.rbac.authorization.k8s.io/pod-reader created\n"
    )
    assert admin.ok(
        "create", "rolebinding", "alice-reads", "--role=pod-reader", "--user=alice"
    ) == ("rolebinding.rbac.authorization.k8s.io/alice-reads created\n")
    assert alice.ok("auth", "can-i", "list", "pods") == "yes\n"
    assert alice("auth", "can-i", "delete", "pods").stdout == "no\n"
    assert alice("auth", "can-i", "list", "pods", "-n", "other").stdout == "no\n"
    assert alice.ok("get", "pods") is not None  # the same decision for the real request

    listed = alice.ok("auth", "can-i", "--list").split("\n")
    assert listed[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert ["pods", "[]", "[]", "[get", "list]"] in [line.split() for line in listed]
    assert any(line.split() == ["[/api]", "[]", "[get]"] for line in listed)

    # Impersonation: the admin may, alice may not.
    assert admin.ok("auth", "can-i", "list", "pods", "--as", "alice") == "yes\n"
    assert admin("auth", "can-i", "create", "pods", "--as", "alice").stdout == "no\n"
    refused = alice("auth", "can-i", "list", "pods", "--as", "bob")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        'Error from server (Forbidden): users "bob" is forbidden: User "alice" cannot '
        'impersonate resource "users" in API group "" at the cluster scope'
    )
    assert admin.ok("auth", "can-i", "*", "*") == "yes\n"


def test_create_token_authenticates_as_the_service_account(
    server: ThreadedFakeApiServer, admin: Kubectl, tmp_path: Path
) -> None:
    admin.ok("create", "namespace", "robots")
    admin.ok("create", "serviceaccount", "robot", "-n", "robots")
    token = admin.ok("create", "token", "robot", "-n", "robots", "--duration=20m").strip()
    claims: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == "system:serviceaccount:robots:robot"
    assert claims["exp"] - claims["iat"] == 1200
    missing = admin("create", "token", "nobody", "-n", "robots")
    assert missing.returncode == 1
    assert 'serviceaccounts "nobody" not found' in missing.stderr

    robot = Kubectl(server, tmp_path / "robot", token)
    assert robot("get", "nodes").returncode == 1
    admin.ok("create", "clusterrole", "node-reader", "--verb=get,list", "--resource=nodes")
    admin.ok(
        "create",
        "clusterrolebinding",
        "robot-reads-nodes",
        "--clusterrole=node-reader",
        "--serviceaccount=robots:robot",
    )
    assert robot.ok("get", "nodes", "-o", "name") == "node/node-1\n"
    assert robot.ok("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}") == (
        "system:serviceaccount:robots:robot"
    )


DONE_JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: done, namespace: batchy}
spec:
  template:
    metadata:
      annotations: {sim.rxkube.io/exit-code: "0"}
    spec:
      restartPolicy: Never
      containers: [{name: work, image: "sim:1"}]
"""


def test_jobs_and_cronjobs(admin: Kubectl) -> None:
    admin.ok("create", "namespace", "batchy")
    ns = ("-n", "batchy")
    assert admin.ok("create", "job", "hello", "--image=sim:1", *ns) == "job.batch/hello created\n"
    assert admin.ok(
        "create", "cronjob", "tick", "--image=sim:1", "--schedule=*/1 * * * *", *ns
    ) == ("cronjob.batch/tick created\n")
    assert admin.ok("create", "job", "manual", "--from=cronjob/tick", *ns) == (
        "job.batch/manual created\n"
    )
    cronjobs = admin.ok("get", "cronjobs", *ns).split("\n")
    assert cronjobs[0].split() == [
        "NAME",
        "SCHEDULE",
        "TIMEZONE",
        "SUSPEND",
        "ACTIVE",
        "LAST",
        "SCHEDULE",
        "AGE",
    ]
    assert cronjobs[1].split()[:9] == ["tick", "*/1", "*", "*", "*", "*", "<none>", "False", "0"]

    # The simulated Job controller runs the Job's pods, labelled and owned as on a cluster.
    admin.ok("wait", "--for=condition=Ready", "pod", "-l", "job-name=hello", "--timeout=20s", *ns)
    job: dict[str, Any] = orjson.loads(admin.ok("get", "job", "hello", "-o", "json", *ns))
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    pods: dict[str, Any] = orjson.loads(
        admin.ok(
            "get", "pods", "-l", f"batch.kubernetes.io/controller-uid={uid}", "-o", "json", *ns
        )
    )
    [pod] = pods["items"]
    assert pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "hello"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
    manual: dict[str, Any] = orjson.loads(admin.ok("get", "job", "manual", "-o", "json", *ns))
    assert manual["metadata"]["annotations"] == {"cronjob.kubernetes.io/instantiate": "manual"}
    assert manual["metadata"]["ownerReferences"][0]["name"] == "tick"

    # A pod that exits 0 completes its Job.
    admin.ok("create", "-f", "-", stdin=DONE_JOB)
    admin.ok("wait", "--for=condition=complete", "job/done", "--timeout=20s", *ns)
    table = {line.split()[0]: line.split() for line in admin.ok("get", "jobs", *ns).splitlines()}
    assert table["NAME"] == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert table["done"][1:3] == ["Complete", "1/1"]
    assert table["hello"][1:3] == ["Running", "0/1"]

    # Deleting a Job deletes its pods.
    assert admin.ok("delete", "job", "hello", *ns) == 'job.batch "hello" deleted\n'
    admin.ok("wait", "--for=delete", "pod", "-l", "job-name=hello", "--timeout=20s", *ns)
    assert admin.ok("get", "pods", "-l", "job-name=hello", "-o", "name", *ns) == ""

    # The API server's validation: a Job's pods may not restart Always.
    always = DONE_JOB.replace("name: done", "name: always").replace("Never", "Always")
    invalid = admin("create", "-f", "-", stdin=always)
    assert invalid.returncode == 1
    assert invalid.stderr.strip() == (
        'The Job "always" is invalid: spec.template.spec.restartPolicy: Unsupported value: '
        '"Always": supported values: "OnFailure", "Never"'
    )


def test_attach_streams_what_the_container_writes_from_now_on(
    server: ThreadedFakeApiServer, admin: Kubectl
) -> None:
    admin.ok("run", "talker", "--image=sim:1", "--restart=Never")
    admin.ok("wait", "--for=condition=Ready", "pod/talker", "--timeout=20s")
    simulation = server.simulation
    assert simulation is not None
    log = server.call(simulation.log, "default", "talker")
    server.call(log.write, "before the attach\n")
    assert KUBECTL is not None
    attach = subprocess.Popen(
        [KUBECTL, "attach", "talker", "-c", "talker", "-i"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=admin.env,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert attach.stdout is not None
        for line in attach.stdout:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        # The session may start after a write: write until one arrives.
        first = ""
        for tick in range(100):
            server.call(log.write, f"tick {tick}\n")
            try:
                first = lines.get(timeout=0.2)
                break
            except queue.Empty:
                continue
        assert first.startswith("tick ")
        assert attach.stdin is not None
        attach.stdin.write("ignored input\n")
        attach.stdin.flush()
        server.call(log.write, "after\n")
        while (line := lines.get(timeout=DEADLINE)) != "after\n":
            assert line.startswith("tick ")
        # The container stopping ends the attach (kubectl exits 0).
        admin.ok("delete", "pod", "talker", "--wait=false")
        assert attach.wait(timeout=DEADLINE) == 0
    finally:
        attach.kill()
        attach.communicate()
    reader.join(timeout=DEADLINE)


def test_typed_create_subcommands_send_protobuf_the_fake_decodes(admin: Kubectl) -> None:
    admin.ok("create", "namespace", "typed")
    ns = ("-n", "typed")
    for args, created in (
        (("service", "clusterip", "web", "--tcp=80:8080"), "service/web created"),
        (("service", "nodeport", "np", "--tcp=80:http"), "service/np created"),
        (("service", "externalname", "ext", "--external-name=example.com"), "service/ext created"),
        (
            ("poddisruptionbudget", "pdb", "--selector=app=web", "--min-available=50%"),
            "poddisruptionbudget.policy/pdb created",
        ),
        (("secret", "generic", "s", "--from-literal=a=b"), "secret/s created"),
    ):
        assert admin.ok("create", *args, *ns) == created + "\n"
    web: dict[str, Any] = orjson.loads(admin.ok("get", "service", "web", "-o", "json", *ns))
    assert web["spec"]["ports"] == [
        {"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}
    ]
    assert web["spec"]["selector"] == {"app": "web"}
    np: dict[str, Any] = orjson.loads(admin.ok("get", "service", "np", "-o", "json", *ns))
    assert (np["spec"]["type"], np["spec"]["ports"][0]["targetPort"]) == ("NodePort", "http")
    pdb: dict[str, Any] = orjson.loads(admin.ok("get", "pdb", "pdb", "-o", "json", *ns))
    assert pdb["spec"] == {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}


def test_create_ingress_decodes_the_inlined_rule_value(admin: Kubectl) -> None:
    admin.ok("create", "namespace", "ing")
    ns = ("-n", "ing")
    assert admin.ok(
        "create",
        "ingress",
        "simple",
        "--rule=foo.com/bar=svc1:8080,tls=my-cert",
        "--class=nginx",
        "--annotation=team=web",
        *ns,
    ) == ("ingress.networking.k8s.io/simple created\n")
    admin.ok(
        "create",
        "ingress",
        "catchall",
        "--default-backend=defsvc:http",
        "--rule=/path*=svc:8080",
        "--rule=bar.com/*=svc2:http",
        *ns,
    )
    simple: dict[str, Any] = orjson.loads(admin.ok("get", "ingress", "simple", "-o", "json", *ns))
    assert simple["metadata"]["annotations"] == {"team": "web"}
    assert simple["spec"] == {
        "ingressClassName": "nginx",
        "rules": [
            {
                "host": "foo.com",
                "http": {
                    "paths": [
                        {
                            "backend": {"service": {"name": "svc1", "port": {"number": 8080}}},
                            "path": "/bar",
                            "pathType": "Exact",
                        }
                    ]
                },
            }
        ],
        "tls": [{"hosts": ["foo.com"], "secretName": "my-cert"}],
    }
    catchall: dict[str, Any] = orjson.loads(
        admin.ok("get", "ingress", "catchall", "-o", "json", *ns)
    )
    assert catchall["spec"]["defaultBackend"] == {
        "service": {"name": "defsvc", "port": {"name": "http"}}
    }
    assert [rule.get("host") for rule in catchall["spec"]["rules"]] == [None, "bar.com"]
    assert catchall["spec"]["rules"][0]["http"]["paths"][0]["pathType"] == "Prefix"
    table = [line.split() for line in admin.ok("get", "ingress", *ns).splitlines()]
    # ADDRESS is empty (no ingress controller), so the split rows are one cell short.
    assert table[0] == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert table[1][:4] == ["catchall", "<none>", "*,bar.com", "80"]
    assert table[2][:5] == ["simple", "nginx", "foo.com", "80,", "443"]
    described = admin.ok("describe", "ingress", "simple", *ns)
    assert "my-cert terminates foo.com" in described
    assert "Ingress Class:    nginx" in described


def test_create_service_nodeport_allocates_node_ports(admin: Kubectl) -> None:
    admin.ok("create", "namespace", "nodeports")
    ns = ("-n", "nodeports")
    # The given port first: a random allocation could otherwise take it (as on a real cluster).
    admin.ok("create", "service", "nodeport", "fixed", "--tcp=80:8080", "--node-port=30080", *ns)
    admin.ok("create", "service", "nodeport", "auto", "--tcp=80:8080", *ns)
    auto: dict[str, Any] = orjson.loads(admin.ok("get", "service", "auto", "-o", "json", *ns))
    (port,) = auto["spec"]["ports"]
    assert 30000 <= port["nodePort"] <= 32767
    assert port["nodePort"] != 30080
    rows = [line.split() for line in admin.ok("get", "svc", *ns).splitlines()]
    assert [row[0] for row in rows] == ["NAME", "auto", "fixed"]
    assert rows[1][4] == f"80:{port['nodePort']}/TCP"
    assert rows[2][4] == "80:30080/TCP"
    clash = admin("create", "service", "nodeport", "late", "--tcp=81", "--node-port=30080", *ns)
    assert clash.returncode == 1
    assert (
        'Service "late" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided '
        "port is already allocated" in clash.stderr
    )
    admin.ok("delete", "service", "fixed", *ns)
    admin.ok("create", "service", "nodeport", "late", "--tcp=81", "--node-port=30080", *ns)


def test_create_priorityclass_and_quota(admin: Kubectl) -> None:
    assert admin.ok(
        "create", "priorityclass", "high", "--value=1000", "--description=for the web tier"
    ) == ("priorityclass.scheduling.k8s.io/high created\n")
    admin.ok("create", "priorityclass", "low", "--value=0", "--preemption-policy=Never")
    high: dict[str, Any] = orjson.loads(admin.ok("get", "priorityclass", "high", "-o", "json"))
    assert {k: high[k] for k in ("value", "description", "preemptionPolicy")} == {
        "value": 1000,
        "description": "for the web tier",
        "preemptionPolicy": "PreemptLowerPriority",
    }
    low: dict[str, Any] = orjson.loads(admin.ok("get", "pc", "low", "-o", "json"))
    assert (low["value"], low["preemptionPolicy"]) == (0, "Never")
    rows = [line.split() for line in admin.ok("get", "priorityclass").splitlines()]
    assert [row[:3] + row[4:] for row in rows] == [
        ["NAME", "VALUE", "GLOBAL-DEFAULT", "PREEMPTIONPOLICY"],
        ["high", "1000", "false", "PreemptLowerPriority"],
        ["low", "0", "false", "Never"],
    ]
    assert "Description:       for the web tier" in admin.ok("describe", "pc", "high")

    admin.ok("create", "namespace", "quotas")
    ns = ("-n", "quotas")
    assert admin.ok("create", "quota", "q", "--hard=cpu=1,memory=1G,pods=2,limits.cpu=2", *ns) == (
        "resourcequota/q created\n"
    )
    quota: dict[str, Any] = orjson.loads(admin.ok("get", "quota", "q", "-o", "json", *ns))
    hard = {"cpu": "1", "limits.cpu": "2", "memory": "1G", "pods": "2"}
    assert quota["spec"] == {"hard": hard}
    assert quota["status"]["hard"] == hard
    table = admin.ok("get", "quota", *ns).splitlines()
    assert table[0].split() == ["NAME", "AGE", "REQUEST", "LIMIT"]
    assert table[1].split(None, 2)[2].split("   ") == [
        "cpu: 0/1, memory: 0/1G, pods: 0/2",
        "limits.cpu: 0/2",
    ]
    assert "pods        0     2" in admin.ok("describe", "quota", "q", *ns)
    # The schemas are served, so `create -f` validates strictly against them.
    manifest = (
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: fromfile}\n"
        "spec: {hard: {pods: '3'}, bogus: 1}\n"
    )
    refused = admin("create", "-f", "-", *ns, stdin=manifest)
    assert refused.returncode == 1
    assert 'unknown field "spec.bogus"' in refused.stderr
    admin.ok("create", "-f", "-", *ns, stdin=manifest.replace(", bogus: 1", ""))
