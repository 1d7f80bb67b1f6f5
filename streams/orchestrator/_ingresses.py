"""Ingresses and their rules: Kubernetes Ingress and Gloo VirtualService, one interface.

What this module is for: the ingresses part of the `Cluster` (reads) and the ingress_rules part
(a sink of `UpsertPaths` and `RemovePaths`), as Cloudsim's `Ingresses` and `IngressRules` with
its two implementations:

- `KubernetesIngressRules` edits `networking.k8s.io/v1` Ingresses: a host's rule is the
  `spec.rules[]` entry with that `host`, a path is an `HTTPIngressPath` (`path`, `pathType`,
  `backend.service.{name, port.number}`). An Ingress path has no name, so the uids live in the
  annotation `rxkube.io/ingress-path-uids` (`{"<host>": {"<uid>": "<path>"}}`); a path without an
  entry there has its own path as uid (as Cloudsim had).
- `GlooIngressRules` edits Gloo VirtualServices: a host's rule is the `spec.virtualHost` whose
  `domains` include the host, a path is a route with a regex matcher and a route action to a
  single Upstream; the route's `name` is the uid.

Both match paths by uid, for upserts and removals alike (Cloudsim removed by endpoint, and
reordered the paths it kept), keep every path and route they do not manage as it was and where it
was, and write with optimistic concurrency, retrying on 409 Conflict (`_retry.py`): two writers
adding paths to one host at once both get their paths in. Cloudsim wrote a rule it had read
earlier back without a resourceVersion, so concurrent upserts lost paths.

It may import `rxkube.streams`' client and resources modules and the orchestrator's private
modules.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import orjson

from rxkube.streams._client import KubeClient
from rxkube.streams._errors import KubeError
from rxkube.streams._events import KubeObject
from rxkube.streams._resources import INGRESSES, UPSTREAMS, VIRTUAL_SERVICES, Resource
from rxkube.streams._scheduler import TrioScheduler
from rxkube.streams._selector import SelectorLike, parse_selector
from rxkube.streams.orchestrator._call import Call
from rxkube.streams.orchestrator._commands import (
    IngressPath,
    IngressRuleCommand,
    RemovePaths,
    Rule,
    UpsertPaths,
)
from rxkube.streams.orchestrator._errors import RuleNotFound, not_found_status
from rxkube.streams.orchestrator._retry import update_with_retry
from rxkube.streams.orchestrator._sink import DEFAULT_MAX_PENDING, Sink

__all__ = [
    "GlooIngressRules",
    "GlooIngresses",
    "IngressRules",
    "Ingresses",
    "KubernetesIngressRules",
]

UID_ANNOTATION: Final = "rxkube.io/ingress-path-uids"

Entry = tuple[IngressPath | None, dict[str, Any]]
"""One path or route as stored (`raw`), with its parsed form, or None when it is not one this
module manages (another backend kind, a delegate action): those are kept untouched."""


class Ingresses:
    """Read Ingresses (or, with `resource=VIRTUAL_SERVICES`, Gloo VirtualServices)."""

    def __init__(
        self, client: KubeClient, *, namespace: str | None = None, resource: Resource = INGRESSES
    ) -> None:
        self.client = client
        self.namespace = namespace or client.namespace
        self.resource = resource

    def get(self, name: str, *, namespace: str | None = None) -> Call[KubeObject]:
        """One ingress (`NotFound` if absent)."""
        ns = namespace or self.namespace

        async def run() -> KubeObject:
            return await self.client.get(self.resource, name, namespace=ns)

        return Call(run, name=f"ingresses.get({name!r})")

    def list(
        self, selector: SelectorLike = "", *, namespace: str | None = None
    ) -> Call[tuple[KubeObject, ...]]:
        """The ingresses the label selector matches (all, when empty)."""
        ns = namespace or self.namespace
        text = str(parse_selector(selector))

        async def run() -> tuple[KubeObject, ...]:
            found = await self.client.list(self.resource, namespace=ns, label_selector=text or None)
            return found.items

        return Call(run, name=f"ingresses.list({text!r})")


class GlooIngresses(Ingresses):
    """Gloo VirtualServices, and the Upstreams routes point to."""

    def __init__(self, client: KubeClient, *, namespace: str | None = None) -> None:
        super().__init__(client, namespace=namespace, resource=VIRTUAL_SERVICES)

    def upstream(self, selector: SelectorLike, *, namespace: str | None = None) -> Call[KubeObject]:
        """The one Upstream whose labels match (Gloo discovers one per Service); `NotFound`
        when there is none, `KubeError` when there are several."""
        ns = namespace or self.namespace
        text = str(parse_selector(selector))

        async def run() -> KubeObject:
            found = (await self.client.list(UPSTREAMS, namespace=ns, label_selector=text)).items
            if not found:
                raise RuleNotFound(
                    not_found_status(
                        f"no Gloo upstream in namespace {ns} matches {text!r}",
                        kind=UPSTREAMS.plural,
                        name="",
                    )
                )
            if len(found) > 1:
                names = sorted(str(u["metadata"]["name"]) for u in found)
                raise KubeError(f"{len(found)} Gloo upstreams in {ns} match {text!r}: {names}")
            return found[0]

        return Call(run, name=f"ingresses.upstream({text!r})")


def _rule_not_found(resource: Resource, namespace: str, ingress: str, host: str) -> RuleNotFound:
    return RuleNotFound(
        not_found_status(
            f"{resource.qualified_name} {namespace}/{ingress} has no rule for host {host!r}; "
            "add the host to it first",
            kind=resource.plural,
            name=ingress,
        )
    )


class IngressRules(Sink[IngressRuleCommand]):
    """The paths of a host's rule: `get`, `upsert`, `remove` (subclasses say where they live).

    ::

        rule = await cluster.ingress_rules.upsert(
            "gateway", "sims.example.org",
            [IngressPath("sim-42", "/sim-42/(.*)", "sim-42", 8080)])
        await cluster.ingress_rules.remove("gateway", "sims.example.org", ["sim-42"])
    """

    name = "ingress_rules"
    commands = (UpsertPaths, RemovePaths)
    resource: Resource = INGRESSES

    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str | None = None,
        scheduler: TrioScheduler | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(scheduler=scheduler, max_pending=max_pending)
        self.client = client
        self.namespace = namespace or client.namespace
        self._rng = rng

    # -- what implementations provide (pure) ---------------------------------------------------

    def _entries(self, obj: KubeObject, host: str) -> list[Entry] | None:
        """The host's paths as stored, in order; None when the object has no rule for it."""
        raise NotImplementedError

    def _render(
        self, path: IngressPath, old: Mapping[str, Any] | None, namespace: str
    ) -> dict[str, Any]:
        """The stored form of `path` (keeping what `old`, the entry it replaces, had besides)."""
        raise NotImplementedError

    def _write(self, obj: KubeObject, host: str, entries: list[Entry]) -> dict[str, Any]:
        """A copy of `obj` whose rule for `host` holds exactly `entries`."""
        raise NotImplementedError

    # -- the edits -----------------------------------------------------------------------------

    def rule_of(self, obj: KubeObject, host: str) -> Rule:
        """The host's `Rule` as `obj` holds it (`RuleNotFound` when there is none)."""
        meta = obj.get("metadata") or {}
        entries = self._entries(obj, host)
        if entries is None:
            raise _rule_not_found(
                self.resource, str(meta.get("namespace", "")), str(meta.get("name", "")), host
            )
        return Rule(str(meta.get("name", "")), host, tuple(p for p, _ in entries if p is not None))

    def _change(
        self, command: IngressRuleCommand, namespace: str
    ) -> Callable[[KubeObject], dict[str, Any] | None]:
        def change(obj: KubeObject) -> dict[str, Any] | None:
            entries = self._entries(obj, command.host)
            if entries is None:
                raise _rule_not_found(self.resource, namespace, command.ingress, command.host)
            if isinstance(command, UpsertPaths):
                updated = list(entries)
                for path in command.paths:
                    for index, (old, raw) in enumerate(updated):
                        if old is not None and old.uid == path.uid:
                            updated[index] = (path, self._render(path, raw, namespace))
                            break
                    else:
                        updated.append((path, self._render(path, None, namespace)))
            else:
                gone = set(command.uids)
                updated = [(p, raw) for p, raw in entries if p is None or p.uid not in gone]
            if [raw for _, raw in updated] == [raw for _, raw in entries]:
                return None  # already so: no write, no event
            return self._write(obj, command.host, updated)

        return change

    async def _execute(self, command: IngressRuleCommand) -> KubeObject | None:
        ns = command.namespace or self.namespace
        return await update_with_retry(
            self.client,
            self.resource,
            command.ingress,
            namespace=ns,
            change=self._change(command, ns),
            rng=self._rng,
        )

    # -- calls ---------------------------------------------------------------------------------

    def get(self, ingress: str, host: str, *, namespace: str | None = None) -> Call[Rule]:
        """The host's rule (`RuleNotFound` if the ingress has none, `NotFound` if no ingress)."""
        ns = namespace or self.namespace

        async def run() -> Rule:
            return self.rule_of(await self.client.get(self.resource, ingress, namespace=ns), host)

        return Call(run, name=f"ingress_rules.get({ingress!r}, {host!r})")

    def _rule_call(self, command: IngressRuleCommand, what: str) -> Call[Rule]:
        call = self._call(command, what=what)

        async def run() -> Rule:
            obj = await call
            assert obj is not None
            return self.rule_of(obj, command.host)

        return Call(run, name=f"ingress_rules.{what}")

    def upsert(
        self,
        ingress: str,
        host: str,
        paths: Sequence[IngressPath],
        *,
        namespace: str | None = None,
    ) -> Call[Rule]:
        """Insert the paths (replacing those with the same uid in place); the rule after."""
        command = UpsertPaths(ingress, host, paths, namespace=namespace)
        return self._rule_call(command, f"upsert({ingress!r}, {host!r})")

    def remove(
        self,
        ingress: str,
        host: str,
        uids: Sequence[str | IngressPath],
        *,
        namespace: str | None = None,
    ) -> Call[Rule]:
        """Remove the paths with these uids; the rule after."""
        command = RemovePaths(ingress, host, uids, namespace=namespace)
        return self._rule_call(command, f"remove({ingress!r}, {host!r})")


def _copy(obj: KubeObject) -> dict[str, Any]:
    # A deep copy through JSON: the change functions must never touch the object they read
    # (a retry re-reads, and callers may hold it).
    copied: dict[str, Any] = orjson.loads(orjson.dumps(obj))
    return copied


class KubernetesIngressRules(IngressRules):
    """Paths of `networking.k8s.io/v1` Ingress rules (see the module docstring).

    `path_type` is the `pathType` of new paths: `Prefix` (Cloudsim's), `Exact`, or
    `ImplementationSpecific` (what regex addresses need with ingress-nginx).
    """

    resource = INGRESSES

    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str | None = None,
        scheduler: TrioScheduler | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        rng: random.Random | None = None,
        path_type: str = "Prefix",
    ) -> None:
        super().__init__(
            client, namespace=namespace, scheduler=scheduler, max_pending=max_pending, rng=rng
        )
        self.path_type = path_type

    @staticmethod
    def _uid_map(obj: KubeObject) -> dict[str, dict[str, str]]:
        text = ((obj.get("metadata") or {}).get("annotations") or {}).get(UID_ANNOTATION)
        if not text:
            return {}
        try:
            decoded = orjson.loads(text)
        except orjson.JSONDecodeError:
            return {}  # a hand-edited, broken annotation: paths fall back to uid = path
        if not isinstance(decoded, dict):
            return {}
        return {
            str(h): {str(u): str(p) for u, p in m.items()}
            for h, m in decoded.items()
            if isinstance(m, dict)
        }

    @staticmethod
    def _rule(obj: KubeObject, host: str) -> Mapping[str, Any] | None:
        for rule in (obj.get("spec") or {}).get("rules") or ():
            if rule.get("host", "") == host:
                return rule  # type: ignore[no-any-return]
        return None

    def _entries(self, obj: KubeObject, host: str) -> list[Entry] | None:
        rule = self._rule(obj, host)
        if rule is None:
            return None
        uids = self._uid_map(obj).get(host, {})
        unused = dict(uids)
        entries: list[Entry] = []
        for raw in (rule.get("http") or {}).get("paths") or ():
            service = (raw.get("backend") or {}).get("service")
            if not isinstance(service, Mapping) or not service.get("name"):
                entries.append((None, raw))
                continue
            address = str(raw.get("path") or "/")
            uid = next((u for u, p in unused.items() if p == address), address)
            unused.pop(uid, None)
            number = (service.get("port") or {}).get("number")
            entries.append(
                (
                    IngressPath(
                        uid, address, str(service["name"]), int(number) if number else None
                    ),
                    raw,
                )
            )
        return entries

    def _render(
        self, path: IngressPath, old: Mapping[str, Any] | None, namespace: str
    ) -> dict[str, Any]:
        if path.port is None:
            raise ValueError(f"path {path.uid!r}: a Kubernetes Ingress path needs the Service port")
        raw: dict[str, Any] = dict(old or {})
        raw["path"] = path.address
        raw["pathType"] = (old or {}).get("pathType") or self.path_type
        raw["backend"] = {"service": {"name": path.endpoint, "port": {"number": path.port}}}
        return raw

    def _write(self, obj: KubeObject, host: str, entries: list[Entry]) -> dict[str, Any]:
        updated = _copy(obj)
        for rule in updated["spec"]["rules"]:
            if rule.get("host", "") == host:
                rule.setdefault("http", {})["paths"] = [raw for _, raw in entries]
                break
        uid_map = self._uid_map(obj)
        own = {p.uid: p.address for p, _ in entries if p is not None and p.uid != p.address}
        if own:
            uid_map[host] = own
        else:
            uid_map.pop(host, None)
        meta = updated.setdefault("metadata", {})
        annotations = dict(meta.get("annotations") or {})
        if uid_map:
            annotations[UID_ANNOTATION] = orjson.dumps(
                uid_map, option=orjson.OPT_SORT_KEYS
            ).decode()
        else:
            annotations.pop(UID_ANNOTATION, None)
        meta["annotations"] = annotations
        return updated


class GlooIngressRules(IngressRules):
    """Routes of a Gloo VirtualService's virtual host (see the module docstring).

    `upstream_namespace` is where the Upstreams routes point to live (default: the
    VirtualService's namespace, as Cloudsim had).
    """

    resource = VIRTUAL_SERVICES

    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str | None = None,
        scheduler: TrioScheduler | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        rng: random.Random | None = None,
        upstream_namespace: str | None = None,
    ) -> None:
        super().__init__(
            client, namespace=namespace, scheduler=scheduler, max_pending=max_pending, rng=rng
        )
        self.upstream_namespace = upstream_namespace

    @staticmethod
    def _virtual_host(obj: KubeObject, host: str) -> Mapping[str, Any] | None:
        vhost = (obj.get("spec") or {}).get("virtualHost")
        if not isinstance(vhost, Mapping) or host not in (vhost.get("domains") or ()):
            return None
        return vhost

    def _entries(self, obj: KubeObject, host: str) -> list[Entry] | None:
        vhost = self._virtual_host(obj, host)
        if vhost is None:
            return None
        entries: list[Entry] = []
        for raw in vhost.get("routes") or ():
            matchers = raw.get("matchers") or ()
            matcher = matchers[0] if matchers else {}
            address = matcher.get("regex") or matcher.get("prefix") or matcher.get("exact")
            upstream = ((raw.get("routeAction") or {}).get("single") or {}).get("upstream")
            if not address or not isinstance(upstream, Mapping) or not upstream.get("name"):
                entries.append((None, raw))
                continue
            uid = str(raw.get("name") or address)
            entries.append((IngressPath(uid, str(address), str(upstream["name"])), raw))
        return entries

    def _render(
        self, path: IngressPath, old: Mapping[str, Any] | None, namespace: str
    ) -> dict[str, Any]:
        raw: dict[str, Any] = dict(old or {})
        raw["name"] = path.uid
        raw["matchers"] = [{"regex": path.address}]
        raw["routeAction"] = {
            "single": {
                "upstream": {
                    "name": path.endpoint,
                    "namespace": self.upstream_namespace or namespace,
                }
            }
        }
        return raw

    def _write(self, obj: KubeObject, host: str, entries: list[Entry]) -> dict[str, Any]:
        updated = _copy(obj)
        updated["spec"]["virtualHost"]["routes"] = [raw for _, raw in entries]
        return updated
