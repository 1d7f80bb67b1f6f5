"""The simulated nodes, scheduler and kubelet: pods go Pending -> Running -> Ready for real.

What this module is for: making pods behave as on a real node (reference
`kubernetes-api-wire.md` sections 11.3 and 11.5), with every step a separate write a watcher
sees, each after a configurable delay on trio's clock:

1. the scheduler binds an unscheduled pod to a Ready node (`spec.nodeName`, then
   `PodScheduled=True`), or marks it `Unschedulable` with the scheduler's message;
2. the kubelet takes it: `hostIP`, `podIP` (a loopback address of its own, see `_backends`),
   `startTime`, the conditions `PodReadyToStartContainers`, `Initialized`, `Ready`,
   `ContainersReady`, `PodScheduled` in the kubelet's order, containers `waiting:
   ContainerCreating`;
3. after the start delay each container runs: its backend listens on the declared ports, it
   writes startup lines to its log, the phase becomes `Running`;
4. after the ready delay the containers and the pod are Ready.

Failures on request, by pod annotation (`SimAnnotations`): never ready, crash after a time
with an exit code (then `terminated`, a restart, `CrashLoopBackOff` with the kubelet's doubling
back-off and `lastState`, `restartCount`; or `Failed`/`Succeeded` for `restartPolicy: Never`
and `OnFailure`), an extra start or ready delay, an image that cannot be pulled
(`ErrImagePull`, then `ImagePullBackOff`), a pod no node accepts, a container that ignores
SIGTERM. A malformed annotation is ignored and reported as a Warning Event on the pod.

Deletion is graceful, as the kubelet does it: on `deletionTimestamp` each container gets
SIGTERM (`Killing` event), exits after the termination delay (or, ignoring SIGTERM, is killed
at the end of the grace period with 137), the backends close, the final status is written and
the kubelet deletes the pod with grace period 0 (DELETED). Nodes are created Ready (after an
optional delay); they send no heartbeats and no Leases.

It may import trio, the store and the other simulation modules; time for delays comes from
trio (so `MockClock` drives it), timestamps from the store's `now`.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import json
import logging
import math
import random as _random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from rxkube.fakes._backends import (
    BACKEND_PAGES,
    PORTS_ANNOTATION,
    BackendInfo,
    BackendPage,
    PodNetwork,
    PodPorts,
    serve_backend,
)
from rxkube.fakes._errors import StatusError
from rxkube.fakes._logs import ContainerLog
from rxkube.fakes._sim_events import EventRecorder
from rxkube.fakes._sim_fs import ContainerFS, Directory
from rxkube.fakes._sim_metrics import RequestMeter
from rxkube.fakes._sim_shell import (
    IO,
    PATH,
    Buffer,
    ExecResult,
    Input,
    Machine,
    install_commands,
    run_command,
)
from rxkube.fakes._store import Change, DeleteOptions, Store, rfc3339

__all__ = ["SimAnnotations", "SimContainer"]

logger = logging.getLogger("rxkube.fakes")

KUBELET_USER: Final = "system:node"
SCHEDULER_USER: Final = "system:kube-scheduler"


class SimAnnotations:
    """Pod annotations that ask the simulated kubelet for a behaviour (values are strings).

    Durations are Go-style (`"1.5s"`, `"500ms"`, `"2m"`) or plain seconds (`"2"`).
    """

    NEVER_READY: Final = "sim.rxkube.io/never-ready"
    """`"true"`: containers run (the backend answers) but never become ready."""
    CRASH_AFTER: Final = "sim.rxkube.io/crash-after"
    """A duration: each container run exits after it (exit code from `EXIT_CODE`)."""
    EXIT_CODE: Final = "sim.rxkube.io/exit-code"
    """The exit code of a crash (default 1); alone, the container exits as soon as it runs."""
    START_DELAY: Final = "sim.rxkube.io/start-delay"
    """A duration added to the start delay (time in `ContainerCreating`)."""
    READY_DELAY: Final = "sim.rxkube.io/ready-delay"
    """A duration replacing the ready delay (time Running but not Ready)."""
    UNSCHEDULABLE: Final = "sim.rxkube.io/unschedulable"
    """`"true"`: no node fits (`PodScheduled=False`, reason `Unschedulable`)."""
    IMAGE_PULL_ERROR: Final = "sim.rxkube.io/image-pull-error"
    """`"true"`: the image cannot be pulled (`ErrImagePull`, then `ImagePullBackOff`)."""
    IGNORE_SIGTERM: Final = "sim.rxkube.io/ignore-sigterm"
    """`"true"`: on deletion containers run until the grace period ends (exit 137)."""
    PAGE: Final = "sim.rxkube.io/page"
    """`"html"`: a browser (a GET accepting text/html) gets an HTML page naming the pod instead
    of the JSON echo; `"websocket"`: that page also opens a WebSocket back to the pod and shows
    its echoes (a stand-in for an interactive app). Other clients still get the JSON echo."""
    PORTS: Final = PORTS_ANNOTATION
    """Written by the kubelet: container ports served on other host ports (JSON)."""


_DURATION = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|ms|s|m|h)?")
_UNITS: Final = {
    None: 1.0,
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Go `time.ParseDuration` for the simple forms, or plain seconds; ValueError if not."""
    text = text.strip()
    pos = 0
    total = 0.0
    while pos < len(text):
        match = _DURATION.match(text, pos)
        if match is None:
            raise ValueError(f"invalid duration {text!r}")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
        if match.group(2) is None and pos < len(text):
            raise ValueError(f"invalid duration {text!r}")
    if not text:
        raise ValueError("empty duration")
    return total


def go_duration(seconds: float) -> str:
    """How Go prints a whole-second duration (`10s`, `1m20s`, `5m0s`)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    if not minutes:
        return f"{secs}s"
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s"


@dataclass(frozen=True, slots=True)
class PodBehaviour:
    """What the annotations of one pod ask for (parsed once, when the kubelet takes it)."""

    never_ready: bool = False
    crash_after: float | None = None
    exit_code: int = 1
    start_delay: float = 0.0
    ready_delay: float | None = None
    unschedulable: bool = False
    image_pull_error: bool = False
    ignore_sigterm: bool = False
    page: BackendPage | None = None

    @classmethod
    def parse(cls, annotations: Mapping[str, Any]) -> tuple[PodBehaviour, list[str]]:
        problems: list[str] = []

        def flag(key: str) -> bool:
            value = annotations.get(key)
            if value is None:
                return False
            if str(value).lower() in ("true", "1", "yes"):
                return True
            if str(value).lower() not in ("false", "0", "no", ""):
                problems.append(f'{key}: "{value}" is not a boolean (use "true" or "false")')
            return False

        def duration(key: str) -> float | None:
            value = annotations.get(key)
            if value is None:
                return None
            try:
                return parse_duration(str(value))
            except ValueError:
                problems.append(
                    f'{key}: "{value}" is not a duration (e.g. "2s", "500ms", "1m", or seconds)'
                )
                return None

        exit_code = 1
        exit_given = False
        raw_exit = annotations.get(SimAnnotations.EXIT_CODE)
        if raw_exit is not None:
            try:
                exit_code = int(str(raw_exit))
                exit_given = True
                if not 0 <= exit_code <= 255:
                    raise ValueError
            except ValueError:
                problems.append(
                    f'{SimAnnotations.EXIT_CODE}: "{raw_exit}" is not an exit code (0..255)'
                )
                exit_code, exit_given = 1, False
        page: BackendPage | None = None
        raw_page = annotations.get(SimAnnotations.PAGE)
        if raw_page is not None:
            if raw_page in BACKEND_PAGES:
                page = raw_page
            else:
                problems.append(
                    f'{SimAnnotations.PAGE}: "{raw_page}" is not a page (use "html" or "websocket")'
                )
        crash = duration(SimAnnotations.CRASH_AFTER)
        if crash is None and exit_given:
            crash = 0.0
        return (
            cls(
                never_ready=flag(SimAnnotations.NEVER_READY),
                crash_after=crash,
                exit_code=exit_code,
                start_delay=duration(SimAnnotations.START_DELAY) or 0.0,
                ready_delay=duration(SimAnnotations.READY_DELAY),
                unschedulable=flag(SimAnnotations.UNSCHEDULABLE),
                image_pull_error=flag(SimAnnotations.IMAGE_PULL_ERROR),
                ignore_sigterm=flag(SimAnnotations.IGNORE_SIGTERM),
                page=page,
            ),
            problems,
        )


@dataclass(frozen=True, slots=True)
class KubeletSettings:
    """The delays and choices of the simulated node components (see `SimSettings`)."""

    schedule_delay: float = 0.0
    start_delay: float = 0.0
    ready_delay: float = 0.0
    terminate_delay: float = 0.0
    node_ready_delay: float = 0.0
    crash_backoff: float = 10.0
    crash_backoff_max: float = 300.0
    image_pull_backoff: float = 10.0
    backends: bool = True
    nodes: tuple[str, ...] = ("node-1",)


def full_image(image: str) -> str:
    """`nginx:1.25` -> `docker.io/library/nginx:1.25` (what containerd reports)."""
    name, tag = image, ""
    if "@" in image:
        return image if "/" in image.split("@")[0] else f"docker.io/library/{image}"
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = image.rsplit(":", 1)
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return f"{name}:{tag or 'latest'}"


def _hex(rng: _random.Random, length: int = 64) -> str:
    return f"{rng.getrandbits(length * 4):0{length}x}"


# -- containers ---------------------------------------------------------------------------


class SimContainer:
    """One container of a simulated pod, across its restarts.

    - `log`: the current run's `ContainerLog` (write to it to feed `kubectl logs`);
    - `fs`: the current run's files (`ContainerFS`; a restart starts from a fresh image,
      emptyDir volumes survive);
    - `await exec(argv, stdin=b"")`: run a command in it, as `kubectl exec` does;
    - `kill(signal)`: signal the main process (as `kill 1` in the container does).
    """

    def __init__(self, pod: PodWorker, spec: Mapping[str, Any]) -> None:
        self.pod = pod
        self.spec = dict(spec)
        self.name = str(spec.get("name"))
        self.image = str(spec.get("image") or "")
        self.ports = [
            int(p["containerPort"])
            for p in spec.get("ports") or ()
            if isinstance(p, dict) and isinstance(p.get("containerPort"), int)
        ]
        self.restart_count = 0
        self.container_id = ""
        self.previous_id = ""
        self.started_at = ""
        self.state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict[str, Any] = {}
        self.ready = False
        self.started = False
        self.running = False
        self.log = ContainerLog(now=pod.store.now)
        self.fs = ContainerFS(now=pod.store.now)
        self.requests = RequestMeter(pod.store.now)
        """Requests its backends served (what `kubectl top` counts as CPU, `_sim_metrics`)."""
        self.machine = Machine(self.fs)
        self._signal: int | None = None
        self._signalled = trio.Event()
        self._stopped = trio.Event()

    @property
    def namespace(self) -> str:
        return self.pod.namespace

    @property
    def pod_name(self) -> str:
        return self.pod.name

    def kill(self, signal: int = 15) -> None:
        """Send `signal` to the main process: it exits with 128+signal (then restarts per
        `restartPolicy`)."""
        if self.running and self._signal is None:
            self._signal = signal
            self._signalled.set()

    async def exec(self, argv: list[str], *, stdin: bytes = b"") -> ExecResult:
        """Run `argv` in this container (no sockets): its exit code and output."""
        out, err = Buffer(), Buffer()
        code = await self.run(argv, IO(Input.of(stdin), out.write, err.write))
        return ExecResult(code, bytes(out.data), bytes(err.data))

    async def run(self, argv: list[str], io: IO, *, tty: bool = False) -> int:
        """Run `argv` with `io`; cut short (137) when the container stops meanwhile."""
        if not self.running:
            raise RuntimeError(f'container "{self.name}" is not running')
        stopped = self._stopped
        code = 137
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                await stopped.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            code = await run_command(self.machine, argv, io, tty=tty)
            nursery.cancel_scope.cancel()
        return code

    def pending_signal(self) -> int | None:
        return self._signal

    def wait_stopped(self) -> trio.Event:
        return self._stopped

    def status(self) -> dict[str, Any]:
        """This container's entry of `status.containerStatuses` (Go field order)."""
        pulled = bool(self.container_id or self.previous_id)
        out: dict[str, Any] = {
            "name": self.name,
            "state": copy.deepcopy(self.state),
            "lastState": copy.deepcopy(self.last_state),
            "ready": self.ready,
            "restartCount": self.restart_count,
            "image": full_image(self.image) if pulled else self.image,
            "imageID": "",
        }
        if pulled:
            digest = _hex(_random.Random(self.image))
            out["imageID"] = full_image(self.image).rsplit(":", 1)[0] + f"@sha256:{digest}"
        if self.container_id:
            out["containerID"] = self.container_id
        out["started"] = self.started
        return out


# -- pods ---------------------------------------------------------------------------------


class PodWorker:
    """The kubelet's work for one pod (uid), from taking it to deleting it."""

    def __init__(self, kubelet: Kubelet, entry_obj: Mapping[str, Any]) -> None:
        meta = entry_obj["metadata"]
        self.kubelet = kubelet
        self.store = kubelet.store
        self.settings = kubelet.settings
        self.namespace = str(meta["namespace"])
        self.name = str(meta["name"])
        self.uid = str(meta["uid"])
        spec = entry_obj.get("spec") or {}
        self.node = str(spec.get("nodeName") or "")
        self.restart_policy = str(spec.get("restartPolicy") or "Always")
        self.containers: dict[str, SimContainer] = {
            str(c["name"]): SimContainer(self, c)
            for c in spec.get("containers") or ()
            if isinstance(c, dict)
        }
        self.init_names = [
            str(c.get("name")) for c in spec.get("initContainers") or () if isinstance(c, dict)
        ]
        self.behaviour, problems = PodBehaviour.parse(meta.get("annotations") or {})
        self.problems = problems
        self.ip = ""
        self.ports: PodPorts | None = None
        self.start_time = ""
        self.terminating = trio.Event()
        self.gone = False
        self.scope = trio.CancelScope()
        self.volumes: dict[str, Directory] = {}

    # -- status ----------------------------------------------------------------------------

    def _phase(self) -> str:
        waiting = running = stopped = succeeded = 0
        for c in self.containers.values():
            if "running" in c.state:
                running += 1
            elif "terminated" in c.state:
                stopped += 1
                succeeded += c.state["terminated"].get("exitCode") == 0
            elif c.last_state.get("terminated"):
                stopped += 1
                succeeded += c.last_state["terminated"].get("exitCode") == 0
            else:
                waiting += 1
        if waiting:
            return "Pending"
        if running:
            return "Running"
        if self.restart_policy == "Always" and not self.terminating.is_set():
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if self.restart_policy == "Never" or self.terminating.is_set():
            return "Failed"
        return "Running"

    def write_status(self, *, sandbox: bool = True) -> bool:
        """Write the pod's status as the kubelet would now; False if the pod is gone."""
        if self.gone:
            return False
        try:
            pod = self.store.get("pods", self.namespace, self.name)
        except StatusError:
            self.gone = True
            return False
        if pod["metadata"].get("uid") != self.uid:
            self.gone = True
            return False
        now = rfc3339(self.store.now())
        old = pod.get("status") or {}
        previous = {c.get("type"): c for c in old.get("conditions") or () if isinstance(c, dict)}
        phase = self._phase()
        terminal = phase in ("Succeeded", "Failed")
        unready = [c.name for c in self.containers.values() if not c.ready]

        def condition(kind: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
            status = "True" if ok else "False"
            before = previous.get(kind)
            since = now
            if before is not None and before.get("status") == status:
                since = before.get("lastTransitionTime") or now
            out: dict[str, Any] = {
                "type": kind,
                "status": status,
                "lastProbeTime": None,
                "lastTransitionTime": since,
            }
            if not ok and reason:
                out["reason"] = reason
            if not ok and message:
                out["message"] = message
            return out

        not_ready_reason = "PodCompleted" if terminal else "ContainersNotReady"
        not_ready_message = (
            "" if terminal else f"containers with unready status: [{' '.join(unready)}]"
        )
        conditions = [
            condition("PodReadyToStartContainers", sandbox and not terminal),
            condition("Initialized", True),
            condition("Ready", not unready, not_ready_reason, not_ready_message),
            condition("ContainersReady", not unready, not_ready_reason, not_ready_message),
        ]
        scheduled = previous.get("PodScheduled")
        conditions.append(scheduled if scheduled is not None else condition("PodScheduled", True))
        status: dict[str, Any] = {"phase": phase, "conditions": conditions}
        host_ip = self.kubelet.host_ip
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
        if self.ip:
            status["podIP"] = self.ip
            status["podIPs"] = [{"ip": self.ip}]
        status["startTime"] = self.start_time
        if self.init_names:
            status["initContainerStatuses"] = [
                {
                    "name": name,
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": self.start_time,
                            "finishedAt": self.start_time,
                        }
                    },
                    "lastState": {},
                    "ready": True,
                    "restartCount": 0,
                    "image": "",
                    "imageID": "",
                    "started": False,
                }
                for name in self.init_names
            ]
        status["containerStatuses"] = [c.status() for c in self.containers.values()]
        status["qosClass"] = old.get("qosClass", "BestEffort")
        pod["status"] = status
        try:
            self.store.update(
                "pods", pod, namespace=self.namespace, subresource="status", user=KUBELET_USER
            )
        except StatusError:
            self.gone = True
            return False
        return True

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            with self.scope:
                await self._lifecycle()
        except Exception:
            # A bug in the simulation of one pod must not take the cluster down.
            logger.exception("simulated kubelet: pod %s/%s failed", self.namespace, self.name)
        finally:
            self._release()

    async def _lifecycle(self) -> None:
        kubelet = self.kubelet
        pod = self._read()
        if pod is None:
            return
        for problem in self.problems:
            kubelet.events.record(
                pod,
                "InvalidSimAnnotation",
                f"ignored: {problem}",
                component="kubelet",
                host=self.node,
                type="Warning",
            )
        self.start_time = rfc3339(self.store.now())
        # The sandbox: an address, and the declared ports claimed on it.
        ports = [p for c in self.containers.values() for p in c.ports]
        if kubelet.settings.backends and ports:
            try:
                self.ports = await kubelet.network.open_pod(ports)
            except (OSError, RuntimeError) as error:
                kubelet.events.record(
                    pod,
                    "FailedCreatePodSandBox",
                    f"Failed to create pod sandbox: {error}",
                    component="kubelet",
                    host=self.node,
                    type="Warning",
                )
                self.ports = None
                self.ip = kubelet.network.allocate()
            else:
                self.ip = self.ports.ip
                remapped = self.ports.remapped()
                if remapped and not self._annotate_ports(remapped):
                    return
        else:
            self.ip = kubelet.network.allocate()
        if not self.write_status():
            return
        async with trio.open_nursery() as nursery:
            for container in self.containers.values():
                nursery.start_soon(self._run_container, container)
            nursery.start_soon(self._watch_termination, nursery.cancel_scope)
        await self._finish()

    def _read(self) -> dict[str, Any] | None:
        try:
            pod = self.store.get("pods", self.namespace, self.name)
        except StatusError:
            self.gone = True
            return None
        if pod["metadata"].get("uid") != self.uid:
            self.gone = True
            return None
        return pod

    def _annotate_ports(self, remapped: dict[str, int]) -> bool:
        pod = self._read()
        if pod is None:
            return False
        annotations = dict(pod["metadata"].get("annotations") or {})
        annotations[PORTS_ANNOTATION] = json.dumps(remapped, sort_keys=True)
        try:
            self.store.patch(
                "pods",
                self.namespace,
                self.name,
                {"metadata": {"annotations": annotations}},
                user=KUBELET_USER,
            )
        except StatusError:
            self.gone = True
            return False
        return True

    async def _watch_termination(self, scope: trio.CancelScope) -> None:
        await self.terminating.wait()
        grace = self._grace_period()
        pod = self._read()
        for container in self.containers.values():
            if container.running and pod is not None:
                self.kubelet.events.record(
                    pod,
                    "Killing",
                    f"Stopping container {container.name}",
                    component="kubelet",
                    host=self.node,
                    field_path=f"spec.containers{{{container.name}}}",
                )
            container.kill(15)
        # Whatever has not stopped by the end of the grace period is killed.
        with trio.move_on_after(grace):
            for container in self.containers.values():
                if container.running:
                    await container.wait_stopped().wait()
        scope.cancel()

    def _grace_period(self) -> float:
        pod = self._read()
        if pod is None:
            return 0.0
        meta = pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        return float(grace or 0)

    async def _finish(self) -> None:
        """After termination: stop what still runs, write the final status, delete."""
        now = rfc3339(self.store.now())
        for container in self.containers.values():
            if container.running:
                self._stop(container, 137, "Error", now)
        if not self.gone:
            self.write_status(sandbox=False)
        if not self.gone:
            with contextlib.suppress(StatusError):
                self.store.delete(
                    "pods",
                    self.namespace,
                    self.name,
                    DeleteOptions(grace_period_seconds=0, uid=self.uid),
                    user=KUBELET_USER,
                )
        self.gone = True

    def _release(self) -> None:
        for container in self.containers.values():
            container.running = False
            container.log.close()
            container._stopped.set()
        if self.ports is not None:
            self.ports.close()
        if self.ip:
            self.kubelet.network.release(self.ip)
        self.kubelet.forget(self)

    # -- one container ---------------------------------------------------------------------

    async def _run_container(self, container: SimContainer) -> None:
        kubelet = self.kubelet
        behaviour = self.behaviour
        settings = self.settings
        field_path = f"spec.containers{{{container.name}}}"
        pod = self._read()
        if pod is None:
            return

        def event(reason: str, message: str, kind: str = "Normal") -> None:
            current = self._read()
            if current is not None:
                kubelet.events.record(
                    current,
                    reason,
                    message,
                    component="kubelet",
                    host=self.node,
                    type=kind,
                    field_path=field_path,
                )

        event("Pulling", f'Pulling image "{container.image}"')
        if behaviour.image_pull_error:
            await trio.sleep(settings.start_delay + behaviour.start_delay)
            image = full_image(container.image)
            message = (
                f'failed to pull and unpack image "{image}": failed to resolve reference '
                f'"{image}": {image}: not found'
            )
            container.state = {"waiting": {"reason": "ErrImagePull", "message": message}}
            self.write_status()
            event("Failed", f'Failed to pull image "{container.image}": {message}', "Warning")
            event("Failed", "Error: ErrImagePull", "Warning")
            await trio.sleep(settings.image_pull_backoff)
            container.state = {
                "waiting": {
                    "reason": "ImagePullBackOff",
                    "message": f'Back-off pulling image "{container.image}"',
                }
            }
            self.write_status()
            event("BackOff", f'Back-off pulling image "{container.image}"', "Normal")
            event("Failed", "Error: ImagePullBackOff", "Warning")
            await self.terminating.wait()
            return
        delay = settings.start_delay + behaviour.start_delay
        await trio.sleep(delay)
        event(
            "Pulled",
            f'Successfully pulled image "{container.image}" in {go_duration(delay)} '
            f"({go_duration(delay)} including waiting). Image size: 0 bytes.",
        )
        failures = 0
        while not self.terminating.is_set():
            ran_from = trio.current_time()
            exit_code, _reason, finished = await self._run_once(container, event)
            if finished is None:
                return
            if self.terminating.is_set():
                return
            restart = self.restart_policy == "Always" or (
                self.restart_policy == "OnFailure" and exit_code != 0
            )
            if not restart:
                self.write_status()
                await self.terminating.wait()
                return
            if trio.current_time() - ran_from > 2 * settings.crash_backoff_max:
                failures = 0
            backoff = (
                0.0
                if failures == 0
                else min(settings.crash_backoff * 2 ** (failures - 1), settings.crash_backoff_max)
            )
            failures += 1
            self.write_status()
            if backoff > 0:
                container.last_state = {"terminated": container.state["terminated"]}
                container.state = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": (
                            f"back-off {go_duration(backoff)} restarting failed container="
                            f"{container.name} pod={self.name}_{self.namespace}({self.uid})"
                        ),
                    }
                }
                container.container_id = ""
                self.write_status()
                event(
                    "BackOff",
                    f"Back-off restarting failed container {container.name} in pod "
                    f"{self.name}_{self.namespace}({self.uid})",
                    "Warning",
                )
                with trio.move_on_after(backoff):
                    await self.terminating.wait()
            container.restart_count += 1

    async def _run_once(
        self, container: SimContainer, event: Callable[..., None]
    ) -> tuple[int, str, str | None]:
        """One run of `container`: start, serve, exit. Returns (exit code, reason,
        finishedAt), finishedAt None when the pod vanished."""
        kubelet = self.kubelet
        behaviour = self.behaviour
        settings = self.settings
        now = rfc3339(self.store.now())
        if "terminated" in container.state:
            container.last_state = {"terminated": container.state["terminated"]}
        container.container_id = "containerd://" + _hex(kubelet.random)
        container.log = ContainerLog(now=self.store.now)
        kubelet.logs[container.container_id] = container.log
        self._build_filesystem(container)
        container._signal = None
        container._signalled = trio.Event()
        container._stopped = trio.Event()
        async with trio.open_nursery() as instance:
            if self.ports is not None and container.ports:
                try:
                    await kubelet.network.rebind(self.ports, container.ports)
                except OSError as error:
                    container.log.write(f"listen failed: {error}\n")
                    return self._exited(container, 1, "Error")
                info = BackendInfo(
                    self.namespace,
                    self.name,
                    container.name,
                    self.ip,
                    self.node,
                    page=behaviour.page,
                )
                for port in container.ports:
                    sock = self.ports.sockets.pop(port)
                    await instance.start(
                        functools.partial(serve_backend, served=container.requests.record),
                        sock,
                        port,
                        info,
                        container.log,
                        self.store.now,
                    )
            container.log.write(
                f"rxkube simulated container {container.name} of pod "
                f"{self.namespace}/{self.name} started (image {container.image})\n"
            )
            if self.ports is not None:
                for port in container.ports:
                    host_port = self.ports.host_ports.get(port, port)
                    container.log.write(f"listening on http://{self.ip}:{host_port}\n")
            container.running = True
            container.started = True
            container.started_at = now
            container.state = {"running": {"startedAt": now}}
            ready_delay = (
                behaviour.ready_delay if behaviour.ready_delay is not None else settings.ready_delay
            )
            container.ready = not behaviour.never_ready and ready_delay <= 0
            event("Created", f"Created container {container.name}", "Normal")
            event("Started", f"Started container {container.name}", "Normal")
            if not self.write_status():
                instance.cancel_scope.cancel()
                return 0, "", None
            clock = trio.current_time()
            crash_at = (
                clock + behaviour.crash_after if behaviour.crash_after is not None else math.inf
            )
            ready_at = math.inf if behaviour.never_ready or container.ready else clock + ready_delay
            while True:
                with trio.move_on_at(min(crash_at, ready_at)):
                    await container._signalled.wait()
                if container._signalled.is_set():
                    break
                if trio.current_time() >= ready_at:
                    ready_at = math.inf
                    container.ready = True
                    if not self.write_status():
                        instance.cancel_scope.cancel()
                        return 0, "", None
                    continue
                if trio.current_time() >= crash_at:
                    break
            signal = container.pending_signal()
            if signal is None:
                code = behaviour.exit_code
                container.log.write(f"exiting with code {code}\n")
            elif signal == 15 and self.terminating.is_set():
                container.log.write("received SIGTERM, shutting down\n")
                if behaviour.ignore_sigterm:
                    await trio.sleep_forever()  # killed at the end of the grace period
                await trio.sleep(settings.terminate_delay)
                code = 0
            else:
                code = 128 + signal
            instance.cancel_scope.cancel()
        return self._exited(container, code, "Completed" if code == 0 else "Error")

    def _exited(self, container: SimContainer, code: int, reason: str) -> tuple[int, str, str]:
        now = rfc3339(self.store.now())
        self._stop(container, code, reason, now)
        return code, reason, now

    def _stop(self, container: SimContainer, code: int, reason: str, now: str) -> None:
        if container.previous_id:
            # The kubelet keeps the logs of the current and the previous run only.
            self.kubelet.logs.pop(container.previous_id, None)
        container.previous_id = container.container_id
        container.state = {
            "terminated": {
                "exitCode": code,
                "reason": reason,
                "startedAt": container.started_at or now,
                "finishedAt": now,
                "containerID": container.container_id,
            }
        }
        container.running = False
        container.ready = False
        container.started = False
        container.log.close()
        container._stopped.set()
        if self.ports is not None:
            # Closed now so the port refuses connections until the next run binds it.
            for port in container.ports:
                sock = self.ports.sockets.pop(port, None)
                if sock is not None:
                    sock.close()

    def _build_filesystem(self, container: SimContainer) -> None:
        store = self.store
        fs = ContainerFS(now=store.now)
        install_commands(fs)
        for path in (
            "/dev",
            "/etc",
            "/home",
            "/proc/1/fd",
            "/root",
            "/tmp",
            "/usr/bin",
            "/var/log",
            "/var/run/secrets/kubernetes.io/serviceaccount",
        ):
            fs.mkdir(path, parents=True)
        fs.add_sink("/dev/null", None)
        log = container.log
        fs.add_sink("/proc/1/fd/1", log.write)
        fs.add_sink("/proc/1/fd/2", log.write)
        fs.write_file("/dev/termination-log", b"")
        fs.write_file("/etc/hostname", f"{self.name}\n")
        fs.write_file(
            "/etc/hosts",
            f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"{self.ip}\t{self.name}\n",
        )
        fs.write_file(
            "/etc/os-release",
            'PRETTY_NAME="rxkube simulated container"\nNAME="rxkube-sim"\nID=rxkube-sim\n',
        )
        fs.write_file(
            "/etc/resolv.conf",
            f"search {self.namespace}.svc.cluster.local svc.cluster.local cluster.local\n"
            "nameserver 10.96.0.10\noptions ndots:5\n",
        )
        fs.write_file("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
        fs.write_file("/var/run/secrets/kubernetes.io/serviceaccount/namespace", self.namespace)
        fs.write_file("/var/run/secrets/kubernetes.io/serviceaccount/token", "rxkube-sim-token")
        env = self._environment(container)
        self._mount_volumes(container, fs)
        container.fs = fs
        container.machine = Machine(
            fs,
            hostname=self.name,
            env=env,
            now=store.now,
            sleep=trio.sleep,
            kill_main=container.kill,
        )

    def _environment(self, container: SimContainer) -> dict[str, str]:
        env: dict[str, str] = {"PATH": PATH, "HOSTNAME": self.name}
        pod = self._read() or {}
        for source in container.spec.get("envFrom") or ():
            if not isinstance(source, dict):
                continue
            prefix = str(source.get("prefix") or "")
            for key, kind in (("configMapRef", "configmaps"), ("secretRef", "secrets")):
                ref = source.get(key)
                if isinstance(ref, dict):
                    for name, value in self._lookup_data(kind, str(ref.get("name"))).items():
                        env[prefix + name] = value.decode(errors="replace")
        for item in container.spec.get("env") or ():
            if not isinstance(item, dict) or not item.get("name"):
                continue
            name = str(item["name"])
            if "value" in item:
                env[name] = str(item["value"])
                continue
            source = item.get("valueFrom") or {}
            field_ref = (source.get("fieldRef") or {}).get("fieldPath")
            if field_ref:
                env[name] = self._field(pod, str(field_ref))
            for key, kind in (("configMapKeyRef", "configmaps"), ("secretKeyRef", "secrets")):
                ref = source.get(key)
                if isinstance(ref, dict):
                    data = self._lookup_data(kind, str(ref.get("name")))
                    if str(ref.get("key")) in data:
                        env[name] = data[str(ref.get("key"))].decode(errors="replace")
        env.update(
            {
                "KUBERNETES_SERVICE_HOST": "10.96.0.1",
                "KUBERNETES_SERVICE_PORT": "443",
                "KUBERNETES_PORT": "tcp://10.96.0.1:443",
                "HOME": "/root",
            }
        )
        return env

    def _field(self, pod: Mapping[str, Any], path: str) -> str:
        values = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": self.node,
            "spec.serviceAccountName": str((pod.get("spec") or {}).get("serviceAccountName", "")),
            "status.podIP": self.ip,
            "status.hostIP": self.kubelet.host_ip,
        }
        if path in values:
            return values[path]
        match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if match:
            return str(
                ((pod.get("metadata") or {}).get(match.group(1)) or {}).get(match.group(2), "")
            )
        return ""

    def _lookup_data(self, kind: str, name: str) -> dict[str, bytes]:
        try:
            obj = self.store.get(kind, self.namespace, name)
        except StatusError:
            return {}
        out: dict[str, bytes] = {}
        if kind == "secrets":
            for key, value in (obj.get("data") or {}).items():
                try:
                    out[key] = base64.b64decode(value)
                except ValueError:
                    continue
            return out
        for key, value in (obj.get("data") or {}).items():
            out[key] = str(value).encode()
        for key, value in (obj.get("binaryData") or {}).items():
            try:
                out[key] = base64.b64decode(value)
            except ValueError:
                continue
        return out

    def _mount_volumes(self, container: SimContainer, fs: ContainerFS) -> None:
        pod = self._read() or {}
        volumes = {
            str(v.get("name")): v
            for v in (pod.get("spec") or {}).get("volumes") or ()
            if isinstance(v, dict)
        }
        for mount in container.spec.get("volumeMounts") or ():
            if not isinstance(mount, dict) or not mount.get("mountPath"):
                continue
            volume = volumes.get(str(mount.get("name")))
            path = str(mount["mountPath"])
            if volume is None:
                continue
            if "emptyDir" in volume:
                # One directory object shared by the pod's containers and across restarts.
                shared = self.volumes.setdefault(str(volume["name"]), Directory())
                parent = path.rsplit("/", 1)[0] or "/"
                fs.mkdir(parent, parents=True)
                node = fs.lookup(parent)
                assert isinstance(node, Directory)
                node.children[path.rsplit("/", 1)[-1]] = shared
                continue
            fs.mkdir(path, parents=True)
            for key, kind in (("configMap", "configmaps"), ("secret", "secrets")):
                source = volume.get(key)
                if not isinstance(source, dict):
                    continue
                ref = str(source.get("name") or source.get("secretName") or "")
                data = self._lookup_data(kind, ref)
                items = source.get("items")
                if isinstance(items, list):
                    chosen = {
                        str(i.get("path")): data[str(i.get("key"))]
                        for i in items
                        if isinstance(i, dict) and str(i.get("key")) in data
                    }
                else:
                    chosen = data
                for name, value in chosen.items():
                    target = f"{path.rstrip('/')}/{name}"
                    fs.mkdir(target.rsplit("/", 1)[0] or "/", parents=True)
                    fs.write_file(target, value)


# -- the kubelet --------------------------------------------------------------------------


class Kubelet:
    """Runs the pods bound to the simulated nodes (one `PodWorker` each)."""

    def __init__(
        self,
        store: Store,
        settings: KubeletSettings,
        network: PodNetwork,
        events: EventRecorder,
        *,
        random: _random.Random,
        host_ip: str = "127.0.0.1",
    ) -> None:
        self.store = store
        self.settings = settings
        self.network = network
        self.events = events
        self.random = random
        self.host_ip = host_ip
        self.nodes = set(settings.nodes)
        self.workers: dict[str, PodWorker] = {}
        self.logs: dict[str, ContainerLog] = {}
        self._nursery: trio.Nursery | None = None

    def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        for entry in self.store.entries("pods"):
            self._consider(entry.object(), deleted=False)

    def observe(self, change: Change) -> None:
        if change.resource.group or change.resource.plural != "pods":
            return
        self._consider(change.new.object(), deleted=change.type == "DELETED")

    def _consider(self, pod: Mapping[str, Any], *, deleted: bool) -> None:
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        worker = self.workers.get(uid)
        if deleted:
            if worker is not None:
                worker.gone = True
                worker.scope.cancel()
            return
        if node not in self.nodes or self._nursery is None:
            return
        deleting = bool(meta.get("deletionTimestamp"))
        if worker is None:
            phase = (pod.get("status") or {}).get("phase")
            if deleting or phase in ("Succeeded", "Failed"):
                if deleting:
                    # Nothing runs for it here: finish the deletion, as the kubelet does.
                    self._nursery.start_soon(
                        self._delete_now, str(meta["namespace"]), str(meta["name"]), uid
                    )
                return
            worker = PodWorker(self, pod)
            self.workers[uid] = worker
            self._nursery.start_soon(worker.run)
            return
        if deleting:
            worker.terminating.set()

    async def _delete_now(self, namespace: str, name: str, uid: str) -> None:
        with contextlib.suppress(StatusError):
            self.store.delete(
                "pods",
                namespace,
                name,
                DeleteOptions(grace_period_seconds=0, uid=uid),
                user=KUBELET_USER,
            )

    def forget(self, worker: PodWorker) -> None:
        if self.workers.get(worker.uid) is worker:
            del self.workers[worker.uid]
        for container in worker.containers.values():
            for container_id in (container.container_id, container.previous_id):
                self.logs.pop(container_id, None)

    def log_for(self, container_id: str) -> ContainerLog | None:
        return self.logs.get(container_id)

    def find(self, namespace: str, name: str) -> PodWorker | None:
        for worker in self.workers.values():
            if worker.namespace == namespace and worker.name == name:
                return worker
        return None


# -- the scheduler ------------------------------------------------------------------------


@dataclass
class Scheduler:
    """Binds pods to Ready nodes after `schedule_delay` (fewest pods first)."""

    store: Store
    events: EventRecorder
    delay: float
    _nursery: trio.Nursery | None = None
    _pending: set[str] = field(default_factory=set)
    _unschedulable: dict[str, tuple[str, str]] = field(default_factory=dict)

    def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        for entry in self.store.entries("pods"):
            self._consider(entry.object())

    def observe(self, change: Change) -> None:
        res = change.resource
        if res.group:
            return
        if res.plural == "pods":
            if change.type == "DELETED":
                self._unschedulable.pop(change.new.uid, None)
                return
            self._consider(change.new.object())
        elif res.plural == "nodes" and self._nursery is not None:
            for uid, (namespace, name) in list(self._unschedulable.items()):
                if uid not in self._pending:
                    self._pending.add(uid)
                    self._nursery.start_soon(self._schedule, namespace, name, uid, 0.0)

    def _consider(self, pod: Mapping[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        uid = str(meta.get("uid") or "")
        if (
            self._nursery is None
            or spec.get("nodeName")
            or meta.get("deletionTimestamp")
            or spec.get("schedulerName", "default-scheduler") != "default-scheduler"
            or uid in self._pending
            or uid in self._unschedulable
        ):
            return
        self._pending.add(uid)
        self._nursery.start_soon(
            self._schedule, str(meta["namespace"]), str(meta["name"]), uid, self.delay
        )

    async def _schedule(self, namespace: str, name: str, uid: str, delay: float) -> None:
        try:
            await trio.sleep(delay)
            self._bind(namespace, name, uid)
        except StatusError as error:
            logger.debug("simulated scheduler: %s/%s: %s", namespace, name, error.message)
        except Exception:
            logger.exception("simulated scheduler: binding %s/%s failed", namespace, name)
        finally:
            self._pending.discard(uid)

    def _bind(self, namespace: str, name: str, uid: str) -> None:
        try:
            pod = self.store.get("pods", namespace, name)
        except StatusError:
            return
        meta = pod["metadata"]
        if meta.get("uid") != uid or pod["spec"].get("nodeName") or meta.get("deletionTimestamp"):
            return
        nodes = [e.object() for e in self.store.entries("nodes")]
        behaviour, _ = PodBehaviour.parse(meta.get("annotations") or {})
        feasible, reasons = _feasible(pod, nodes, behaviour.unschedulable)
        now = rfc3339(self.store.now())
        if not feasible:
            total = len(nodes)
            if total == 0:
                message = "no nodes available to schedule pods"
            else:
                parts = ", ".join(f"{count} {text}" for text, count in sorted(reasons.items()))
                message = (
                    f"0/{total} nodes are available: {parts}. preemption: 0/{total} nodes are "
                    f"available: {total} Preemption is not helpful for scheduling."
                )
            self._unschedulable[uid] = (namespace, name)
            conditions = [
                c
                for c in (pod.get("status") or {}).get("conditions") or ()
                if c.get("type") != "PodScheduled"
            ]
            before = next(
                (
                    c
                    for c in (pod.get("status") or {}).get("conditions") or ()
                    if c.get("type") == "PodScheduled"
                ),
                None,
            )
            if before is not None and before.get("message") == message:
                return
            conditions.append(
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                    "reason": "Unschedulable",
                    "message": message,
                }
            )
            pod.setdefault("status", {})["conditions"] = conditions
            self.store.update(
                "pods", pod, namespace=namespace, subresource="status", user=SCHEDULER_USER
            )
            self.events.record(
                pod, "FailedScheduling", message, component="default-scheduler", type="Warning"
            )
            return
        self._unschedulable.pop(uid, None)
        load: dict[str, int] = {}
        for entry in self.store.entries("pods"):
            node_name = entry.fields.get("spec.nodeName", "")
            if node_name:
                load[node_name] = load.get(node_name, 0) + 1
        chosen = min(feasible, key=lambda n: (load.get(n, 0), n))
        pod["spec"]["nodeName"] = chosen
        bound = self.store.update("pods", pod, namespace=namespace, user=SCHEDULER_USER).object()
        status = bound.get("status") or {}
        conditions = [c for c in status.get("conditions") or () if c.get("type") != "PodScheduled"]
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": now,
            }
        )
        status["conditions"] = conditions
        bound["status"] = status
        self.store.update(
            "pods", bound, namespace=namespace, subresource="status", user=SCHEDULER_USER
        )
        self.events.record(
            bound,
            "Scheduled",
            f"Successfully assigned {namespace}/{name} to {chosen}",
            component="default-scheduler",
        )


def _feasible(
    pod: Mapping[str, Any], nodes: list[dict[str, Any]], refuse_all: bool
) -> tuple[list[str], dict[str, int]]:
    spec = pod.get("spec") or {}
    selector = spec.get("nodeSelector") or {}
    tolerations = [t for t in spec.get("tolerations") or () if isinstance(t, dict)]
    feasible: list[str] = []
    reasons: dict[str, int] = {}

    def reject(text: str) -> None:
        reasons[text] = reasons.get(text, 0) + 1

    for node in nodes:
        meta = node.get("metadata") or {}
        labels = meta.get("labels") or {}
        if refuse_all or any(labels.get(k) != v for k, v in selector.items()):
            reject("node(s) didn't match Pod's node affinity/selector")
            continue
        if (node.get("spec") or {}).get("unschedulable"):
            reject("node(s) were unschedulable")
            continue
        taint = next(
            (
                t
                for t in (node.get("spec") or {}).get("taints") or ()
                if t.get("effect") in ("NoSchedule", "NoExecute")
                and not any(
                    (tol.get("operator") == "Exists" and tol.get("key") in (None, "", t.get("key")))
                    or (tol.get("key") == t.get("key") and tol.get("value") == t.get("value"))
                    for tol in tolerations
                )
            ),
            None,
        )
        if taint is not None:
            reject(
                f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
            )
            continue
        ready = next(
            (
                c
                for c in (node.get("status") or {}).get("conditions") or ()
                if c.get("type") == "Ready"
            ),
            None,
        )
        if ready is None or ready.get("status") != "True":
            reject("node(s) had untolerated taint {node.kubernetes.io/not-ready: }")
            continue
        feasible.append(str(meta.get("name")))
    return feasible, reasons


# -- nodes --------------------------------------------------------------------------------


def node_object(name: str, *, ready: bool, now: str, cidr: str, host_ip: str) -> dict[str, Any]:
    """A Node as a kind-like cluster reports it."""

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": status,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }

    resources = {
        "cpu": "4",
        "ephemeral-storage": "102400000Ki",
        "hugepages-2Mi": "0",
        "memory": "8148740Ki",
        "pods": "110",
    }
    spec: dict[str, Any] = {"podCIDR": cidr, "podCIDRs": [cidr]}
    if not ready:
        spec["taints"] = [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": spec,
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status")
                if ready
                else condition(
                    "Ready",
                    "False",
                    "KubeletNotReady",
                    "container runtime status check may not have completed yet",
                ),
            ],
            "addresses": [
                {"type": "InternalIP", "address": host_ip},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": _hex(_random.Random(name), 32),
                "systemUUID": _hex(_random.Random(name + "uuid"), 32),
                "bootID": _hex(_random.Random(name + "boot"), 32),
                "kernelVersion": "6.8.0-rxkube-sim",
                "osImage": "rxkube simulated node",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": "v1.32.4",
                "kubeProxyVersion": "v1.32.4",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


async def run_nodes(
    store: Store,
    names: tuple[str, ...],
    *,
    ready_delay: float,
    cidr: str,
    host_ip: str,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Create (or take over) the nodes, Ready at once or after `ready_delay`."""
    now = rfc3339(store.now())
    for name in names:
        body = node_object(name, ready=ready_delay <= 0, now=now, cidr=cidr, host_ip=host_ip)
        try:
            existing = store.get("nodes", "", name)
        except StatusError:
            store.create("nodes", body, user=KUBELET_USER)
            continue
        existing["spec"] = body["spec"]
        store.update("nodes", existing, user=KUBELET_USER)
        existing = store.get("nodes", "", name)
        existing["status"] = body["status"]
        store.update("nodes", existing, subresource="status", user=KUBELET_USER)
    task_status.started()
    if ready_delay <= 0:
        return
    await trio.sleep(ready_delay)
    now = rfc3339(store.now())
    for name in names:
        try:
            node = store.get("nodes", "", name)
        except StatusError:
            continue
        node["spec"].pop("taints", None)
        store.update("nodes", node, user=KUBELET_USER)
        node = store.get("nodes", "", name)
        ready = node_object(name, ready=True, now=now, cidr=cidr, host_ip=host_ip)
        node["status"]["conditions"] = ready["status"]["conditions"]
        store.update("nodes", node, subresource="status", user=KUBELET_USER)
