"""`Pods`: create and delete pods (a sink), read, wait, exec, read files and logs.

What this module is for: the pods part of the `Cluster` (DESIGN section 4; Cloudsim's `Pods`,
`Executor` and `Reader`). Commands (`CreatePod`, `DeletePod`, `DeletePods`) go through the
`Sink` machinery; reads are `Call`s; logs and exec are `Stream`s.

Cloudsim's defects this fixes: logs came back empty (it read into a nil buffer), a successful
command's output was thrown away, waits polled the API every few seconds. Here logs stream line
by line (`follow=True` keeps the request open), exec streams stdout and stderr and ends with the
exit status, and waits are built on the pod watch.

It may import `rxkube.streams`' client, resources, watch and scheduler modules and the
orchestrator's private modules.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import Final

import httpx

from rxkube.streams._client import KubeClient
from rxkube.streams._errors import KubeConnectionError
from rxkube.streams._events import KubeObject
from rxkube.streams._resources import PODS
from rxkube.streams._scheduler import TrioScheduler
from rxkube.streams._selector import SelectorLike, parse_selector
from rxkube.streams._watch import WatchPolicy
from rxkube.streams.orchestrator._call import Call, Stream
from rxkube.streams.orchestrator._commands import (
    Command,
    CreatePod,
    CreatePodFromManifest,
    DeletePod,
    DeletePods,
    PodCommand,
)
from rxkube.streams.orchestrator._errors import NoPodIP
from rxkube.streams.orchestrator._exec import ExecEvent, ExecResult, collect, exec_events
from rxkube.streams.orchestrator._sink import DEFAULT_MAX_PENDING, Sink
from rxkube.streams.orchestrator._wait import Condition, wait_for

__all__ = ["Pods"]

# A log request without `follow` ends when the server has sent what there is; if it stalls for
# this long, something is wrong.
_LOG_READ_TIMEOUT: Final = 60.0


async def _lines(chunks: AsyncGenerator[bytes, None]) -> AsyncIterator[str]:
    """Split a byte stream into lines (without their `\\n`; a last unterminated line too).
    Closing this generator closes `chunks` (and so its connection) at once, not at GC."""
    async with aclosing(chunks):
        pending = b""
        async for chunk in chunks:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line.decode("utf-8", "replace")
        if pending:
            yield pending.decode("utf-8", "replace")


async def _to_list(lines: AsyncIterator[str]) -> list[str]:
    return [line async for line in lines]


class Pods(Sink[PodCommand]):
    """Pods in one namespace (commands may name another).

    ::

        await cluster.pods.create(CreatePod("sim-0", [ContainerSpec("sim", "sim:1")]))
        await cluster.pods.wait("app=sim", Condition.READY, timeout=60)
        result = await cluster.pods.exec("sim-0", ["ls", "/data"])
        data = await cluster.pods.read_file("sim-0", "/data/result.bin")
        async for line in cluster.pods.logs("sim-0", follow=True):
            ...
    """

    name = "pods"
    commands = (CreatePod, CreatePodFromManifest, DeletePod, DeletePods)

    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str | None = None,
        scheduler: TrioScheduler | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        watch_policy: WatchPolicy | None = None,
    ) -> None:
        super().__init__(scheduler=scheduler, max_pending=max_pending)
        self.client = client
        self.namespace = namespace or client.namespace
        self.watch_policy = watch_policy

    def _ns(self, command: Command | None = None, namespace: str | None = None) -> str:
        if command is not None and command.namespace:
            return command.namespace
        return namespace or self.namespace

    async def _execute(self, command: PodCommand) -> KubeObject | None:
        ns = self._ns(command)
        if isinstance(command, CreatePod):
            return await self.client.create(PODS, command.manifest(), namespace=ns)
        if isinstance(command, CreatePodFromManifest):
            return await self.client.create(PODS, command.manifest_for_create(), namespace=ns)
        if isinstance(command, DeletePod):
            return await self.client.delete(
                PODS,
                command.name,
                namespace=ns,
                grace_period_seconds=command.grace_period,
                uid=command.uid,
            )
        return await self.client.delete_collection(
            PODS,
            namespace=ns,
            label_selector=str(command.selector),
            grace_period_seconds=command.grace_period,
        )

    # -- commands, as awaitable Calls ----------------------------------------------------------

    def create(self, pod: CreatePod | CreatePodFromManifest) -> Call[KubeObject | None]:
        """Create the pod; the created object (or the API's typed error, e.g. `AlreadyExists`)."""
        return self._call(pod, what=f"create({pod.name!r})")

    def delete(
        self,
        name: str,
        *,
        grace_period: int | None = None,
        uid: str | None = None,
        namespace: str | None = None,
    ) -> Call[KubeObject | None]:
        """Delete one pod (`NotFound` if absent; `Conflict` if `uid` is given and the pod is
        another incarnation); the pod as the API returned it."""
        command = DeletePod(name, grace_period, uid, namespace=namespace)
        return self._call(command, what=f"delete({name!r})")

    def delete_all(
        self,
        selector: SelectorLike,
        *,
        grace_period: int | None = None,
        namespace: str | None = None,
    ) -> Call[KubeObject | None]:
        """Delete every pod the (non-empty) label selector matches; the deleted list."""
        command = DeletePods(selector, grace_period, namespace=namespace)
        return self._call(command, what=f"delete_all({str(command.selector)!r})")

    # -- reads ---------------------------------------------------------------------------------

    def get(self, name: str, *, namespace: str | None = None) -> Call[KubeObject]:
        """One pod (`NotFound` if absent)."""
        ns = self._ns(namespace=namespace)

        async def run() -> KubeObject:
            return await self.client.get(PODS, name, namespace=ns)

        return Call(run, name=f"pods.get({name!r})")

    def ip(self, name: str, *, namespace: str | None = None) -> Call[str]:
        """The pod's IP; `NoPodIP` if it has none yet (wait for `Condition.HAS_IP` first)."""
        ns = self._ns(namespace=namespace)

        async def run() -> str:
            pod = await self.client.get(PODS, name, namespace=ns)
            ip = (pod.get("status") or {}).get("podIP")
            if not ip:
                raise NoPodIP(f"pod {ns}/{name} has no IP yet")
            return str(ip)

        return Call(run, name=f"pods.ip({name!r})")

    def list(
        self, selector: SelectorLike = "", *, namespace: str | None = None
    ) -> Call[tuple[KubeObject, ...]]:
        """The pods the label selector matches (all, when empty)."""
        ns = self._ns(namespace=namespace)
        text = str(parse_selector(selector))

        async def run() -> tuple[KubeObject, ...]:
            return (await self.client.list(PODS, namespace=ns, label_selector=text or None)).items

        return Call(run, name=f"pods.list({text!r})")

    def wait(
        self,
        selector: SelectorLike,
        *conditions: Condition,
        timeout: float | None = None,
        fail_if_empty: bool = False,
        namespace: str | None = None,
    ) -> Call[tuple[KubeObject, ...]]:
        """Wait until every pod the selector matches satisfies any of `conditions` (default
        `Condition.READY`); the pods then. Built on the pod watch; `TimedOut` after `timeout`
        seconds; an empty selection keeps waiting unless `fail_if_empty`."""
        wanted = conditions or (Condition.READY,)
        ns = self._ns(namespace=namespace)

        async def run() -> tuple[KubeObject, ...]:
            return await wait_for(
                self.client,
                PODS,
                namespace=ns,
                selector=selector,
                satisfied=lambda pod: any(c.satisfied_by(pod) for c in wanted),
                wanted=" or ".join(c.value for c in wanted),
                time_limit=timeout,
                fail_if_empty=fail_if_empty,
                policy=self.watch_policy,
            )

        return Call(run, name=f"pods.wait({str(parse_selector(selector))!r})")

    # -- exec, files and logs ------------------------------------------------------------------

    def exec(
        self,
        pod: str,
        command: Sequence[str],
        *,
        container: str | None = None,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        namespace: str | None = None,
    ) -> Stream[ExecEvent, ExecResult]:
        """Run `command` in the pod's container: a stream of `ExecOutput` (stdout and stderr as
        they arrive) ending with `ExecExit`; awaiting it gives an `ExecResult`.

        With `check` (the default) a non-zero exit is an `ExecFailed` error carrying the exit
        status and stderr. After `timeout` seconds the connection is closed and `TimedOut`
        raised; disposing the subscription (or cancelling the awaiting task) closes it too.
        `stdin` is sent whole, then closed (it needs the v5 protocol).
        """
        ns = self._ns(namespace=namespace)
        argv = tuple(command)

        def open_events() -> AsyncIterator[ExecEvent]:
            return exec_events(
                self.client,
                namespace=ns,
                pod=pod,
                command=argv,
                container=container,
                stdin=stdin,
                check=check,
                time_limit=timeout,
            )

        return Stream(open_events, collect, name=f"pods.exec({pod!r}, {list(argv)!r})")

    def exec_script(
        self,
        pod: str,
        script: str,
        *,
        container: str | None = None,
        shell: str = "sh",
        check: bool = True,
        timeout: float | None = None,
        namespace: str | None = None,
    ) -> Stream[ExecEvent, ExecResult]:
        """Run a shell script (`sh -c SCRIPT`) in the pod's container, like `exec`."""
        return self.exec(
            pod,
            [shell, "-c", script],
            container=container,
            check=check,
            timeout=timeout,
            namespace=namespace,
        )

    def read_file(
        self,
        pod: str,
        path: str,
        *,
        container: str | None = None,
        timeout: float | None = None,
        namespace: str | None = None,
    ) -> Call[bytes]:
        """A file's bytes, exactly (binary safe); `ExecFailed` (with `cat`'s stderr) when it
        cannot be read; `TimedOut` after `timeout` seconds."""
        stream = self.exec(
            pod, ["cat", path], container=container, timeout=timeout, namespace=namespace
        )

        async def run() -> bytes:
            return (await stream).stdout

        return Call(run, name=f"pods.read_file({pod!r}, {path!r})")

    def logs(
        self,
        pod: str,
        *,
        container: str | None = None,
        tail: int | None = None,
        follow: bool = False,
        timestamps: bool = False,
        since_seconds: int | None = None,
        limit_bytes: int | None = None,
        previous: bool = False,
        namespace: str | None = None,
    ) -> Stream[str, builtins.list[str]]:
        """The container's log, line by line (awaiting it gives the list of lines).

        `tail` keeps the last N lines; `follow` keeps streaming new lines until the container
        stops (or the subscription is disposed); `previous` reads the last terminated one.
        """
        if tail is not None and tail < 0:
            raise ValueError(f"logs(tail=...) must be >= 0, got {tail}")
        ns = self._ns(namespace=namespace)
        params: dict[str, str | int | bool | None] = {
            "container": container,
            "follow": True if follow else None,
            "tailLines": tail,
            "timestamps": True if timestamps else None,
            "sinceSeconds": since_seconds,
            "limitBytes": limit_bytes,
            "previous": True if previous else None,
        }

        async def chunks() -> AsyncGenerator[bytes, None]:
            async with self.client.stream(
                "GET",
                PODS.object_path(pod, ns, "log"),
                verb="get",
                resource="pods/log",
                namespace=ns,
                params=params,
                read_timeout=None if follow else _LOG_READ_TIMEOUT,
            ) as response:
                try:
                    async for chunk in response.aiter_bytes():
                        yield chunk
                except httpx.HTTPError as error:
                    raise KubeConnectionError(
                        f"reading the log of pod {ns}/{pod}: {error!r}"
                    ) from error

        def open_lines() -> AsyncIterator[str]:
            return _lines(chunks())

        return Stream(open_lines, _to_list, name=f"pods.logs({pod!r})")
