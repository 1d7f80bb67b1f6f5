"""App specs from annotations: a pure parser from a Deployment's JSON to an `AppSpec`.

What this module is for: reading k8sTicket's label and annotations (unchanged, with k8sTicket's
defaults) and rxkube's own `rxkube.io/` settings from one Deployment, and either building an
`AppSpec` or returning every problem found, each as a `ConfigError` that names the key, the value
and what is allowed (DESIGN section 4, "Configuration" and "Bad input"). It never raises on any
input, does no I/O and reads no clock. It may import only the standard library and `orjson`.

Where k8sTicket's defaults come from (GitHub ipb-halle/k8sTicket; its code is reference only):

    key (prefix ipb-halle.de/)            default   source
    label k8sticket                       -         docs/Documentation.md: "true" enables the app;
                                                    any other value stops it gracefully (drain)
    k8sticket.deployment.app.name         Deployment name   k8scontroller.go: `prefix =
                                                    deployment.Name` when the annotation is absent
    k8sticket.deployment.port             9001      docs/Documentation.md ("Default: 9001");
                                                    older k8scontroller.go used "8080"
    k8sticket.deployment.tickets.max      1         docs ("Default: 1"); code `maxTickets = 1`
    k8sticket.deployment.tickets.spare    2         code `spareTickets = 2` (the docs state none)
    k8sticket.deployment.pods.max         1         docs ("Default: 1"); code `maxPods = 1`
    k8sticket.deployment.pods.cooldown    10 s      docs ("Default: 10"); code `cooldown = 10`
    k8sticket.ingress.dns                 false     docs ("Default: false")
    pod annotation k8sticket.pod.port     80        docs; k8sfunctions.go `defaultPort = 80`
    pod annotation k8sticket.pod.path     /         docs; k8sfunctions.go `defaultPath = "/"`
    pod-template label
      k8sticket.deployment.app.name       -         docs: must equal the app name; pods are
                                                    grouped into apps by it
    (hard-coded) ticket idle timeout      3 s       proxy-functions.go `ticketTime = 3 *
                                                    time.Second`, checked every 3 s
    (hard-coded) metrics port             9999      cmd/k8sticket/main.go

Where rxkube differs, on purpose:
- k8sTicket logs a malformed number and silently uses the default; rxkube rejects the value,
  keeps the app's last good spec and reports the error (DESIGN section 4, "Bad input").
- A value of `k8sticket.ingress.dns` other than "true"/"false" is an error, not "false".
- Older k8sTicket releases read `deployment.app`, `maxTickets`, `spareTickets`, `maxPods`,
  `Podcooldown` and pod annotations `ipb-halle.de/k8sTicket.port`/`.path`; those keys are not
  read, but their presence is reported as a warning naming the current key.
- `deployment.port` accepts "none" (an rxkube extension): serve only on the shared listener.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeAlias

import orjson

__all__ = [
    "ANNOTATIONS",
    "APP_LABEL",
    "AnnotationDoc",
    "AppSpec",
    "ConfigError",
    "OPT_IN_LABEL",
    "ParserDefaults",
    "PodTarget",
    "RoutingMode",
    "is_app",
    "parse_app_spec",
    "parse_pod_target",
    "template_hash",
]

RoutingMode: TypeAlias = Literal["path", "host"]

K8STICKET: Final = "ipb-halle.de/k8sticket"
OPT_IN_LABEL: Final = K8STICKET
"""The Deployment label that makes it an app when its value is exactly "true"."""
APP_LABEL: Final = "ipb-halle.de/k8sticket.deployment.app.name"
"""The pod(-template) label that groups pods into apps, and the annotation naming the app."""

KEY_APP_NAME: Final = APP_LABEL
KEY_PORT: Final = "ipb-halle.de/k8sticket.deployment.port"
KEY_TICKETS_MAX: Final = "ipb-halle.de/k8sticket.deployment.tickets.max"
KEY_TICKETS_SPARE: Final = "ipb-halle.de/k8sticket.deployment.tickets.spare"
KEY_PODS_MAX: Final = "ipb-halle.de/k8sticket.deployment.pods.max"
KEY_PODS_COOLDOWN: Final = "ipb-halle.de/k8sticket.deployment.pods.cooldown"
KEY_INGRESS_DNS: Final = "ipb-halle.de/k8sticket.ingress.dns"
KEY_POD_PORT: Final = "ipb-halle.de/k8sticket.pod.port"
KEY_POD_PATH: Final = "ipb-halle.de/k8sticket.pod.path"
KEY_ROUTING: Final = "rxkube.io/routing"
KEY_DOMAIN: Final = "rxkube.io/domain"
KEY_STRIP_PREFIX: Final = "rxkube.io/strip-prefix"
KEY_IDLE_TIMEOUT: Final = "rxkube.io/tickets.idle-timeout"
KEY_HOLD_TIME: Final = "rxkube.io/tickets.hold-time"
KEY_START_GRACE: Final = "rxkube.io/pods.start-grace"
KEY_DRAIN_DEADLINE: Final = "rxkube.io/drain-deadline"

# Keys of older k8sTicket releases, and the key that replaced each.
_LEGACY_KEYS: Final[Mapping[str, str]] = {
    "ipb-halle.de/k8sticket.deployment.app": KEY_APP_NAME,
    "ipb-halle.de/k8sticket.deployment.maxTickets": KEY_TICKETS_MAX,
    "ipb-halle.de/k8sticket.deployment.spareTickets": KEY_TICKETS_SPARE,
    "ipb-halle.de/k8sticket.deployment.maxPods": KEY_PODS_MAX,
    "ipb-halle.de/k8sticket.deployment.Podcooldown": KEY_PODS_COOLDOWN,
}
_LEGACY_POD_KEYS: Final[Mapping[str, str]] = {
    "ipb-halle.de/k8sTicket.port": KEY_POD_PORT,
    "ipb-halle.de/k8sTicket.path": KEY_POD_PATH,
}

_MAX_COUNT: Final = 100_000
_MAX_DURATION: Final = 30 * 24 * 3600.0  # 30 days: anything longer is a typo, not a setting


@dataclass(frozen=True, slots=True)
class AnnotationDoc:
    """One row of the configuration table (README and Events quote it)."""

    key: str
    default: str
    allowed: str
    on: Literal["Deployment", "pod template", "pod"] = "Deployment"


ANNOTATIONS: Final[tuple[AnnotationDoc, ...]] = (
    AnnotationDoc(KEY_APP_NAME, "the Deployment's name", "a DNS label: 1-63 of a-z 0-9 -"),
    AnnotationDoc(KEY_PORT, "9001", 'a port 1-65535, or "none" (shared listener only)'),
    AnnotationDoc(KEY_TICKETS_MAX, "1", f"an integer 1-{_MAX_COUNT}"),
    AnnotationDoc(KEY_TICKETS_SPARE, "2", f"an integer 0-{_MAX_COUNT}"),
    AnnotationDoc(KEY_PODS_MAX, "1", f"an integer 0-{_MAX_COUNT}"),
    AnnotationDoc(KEY_PODS_COOLDOWN, "10 (seconds)", "a duration > 0: seconds, or 30s, 5m, 1h"),
    AnnotationDoc(KEY_INGRESS_DNS, "false", '"true" (host routing) or "false" (path routing)'),
    AnnotationDoc(KEY_POD_PORT, "80", "a port 1-65535", on="pod template"),
    AnnotationDoc(KEY_POD_PATH, "/", "an absolute URL path starting with /", on="pod template"),
    AnnotationDoc(KEY_ROUTING, "from ingress.dns", '"path" (/<app>/) or "host" (<app>.<domain>)'),
    AnnotationDoc(KEY_DOMAIN, "--domain", "a DNS subdomain; required for host routing"),
    AnnotationDoc(KEY_STRIP_PREFIX, "true", '"true" or "false": strip /<app> before the pod path'),
    AnnotationDoc(KEY_IDLE_TIMEOUT, "60s", "a duration > 0: an unused ticket is released"),
    AnnotationDoc(KEY_HOLD_TIME, "30s", "a duration > 0: a slot held for a waiter is kept"),
    AnnotationDoc(KEY_START_GRACE, "600s", "a duration > 0: a pod never ready is replaced"),
    AnnotationDoc(KEY_DRAIN_DEADLINE, "1h", "a duration >= 0: users of a removed app may stay"),
)
_DOC: Final[Mapping[str, AnnotationDoc]] = {doc.key: doc for doc in ANNOTATIONS}
_KNOWN_RXKUBE_KEYS: Final = frozenset(k for k in _DOC if k.startswith("rxkube.io/"))


@dataclass(frozen=True, slots=True)
class ConfigError:
    """One bad setting: the key, the value found (None when absent), what is wrong and allowed."""

    key: str
    value: str | None
    problem: str
    allowed: str

    @property
    def message(self) -> str:
        shown = "(absent)" if self.value is None else repr(self.value)
        return f"{self.key}={shown}: {self.problem}; allowed: {self.allowed}"

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class ParserDefaults:
    """Defaults that come from the runner's command line rather than from the Deployment."""

    domain: str | None = None
    """`--domain`: used for host routing when the Deployment has no `rxkube.io/domain`."""


@dataclass(frozen=True, slots=True)
class PodTarget:
    """Where the proxy sends a pod's traffic: its port and the path prefix of the app in it."""

    port: int
    path: str


@dataclass(frozen=True, slots=True)
class AppSpec:
    """Everything rxkube needs to serve one app, as parsed from its Deployment.

    Times are seconds. Equality ignores `pod_template` (compare `template_hash`) and
    `warnings` (advice only), so two parses of one Deployment compare equal.
    """

    app: str
    namespace: str
    deployment: str
    deployment_uid: str
    created: str
    """The Deployment's creationTimestamp as on the wire ("" when absent)."""
    port: int | None
    """The app's own listener (k8sTicket's `deployment.port`); None: shared listener only."""
    tickets_max: int
    tickets_spare: int
    pods_max: int
    pods_cooldown: float
    pods_start_grace: float
    ticket_idle_timeout: float
    ticket_hold_time: float
    drain_deadline: float
    routing: RoutingMode
    domain: str | None
    strip_prefix: bool
    pod_port: int
    """The template's `pod.port` (each pod's own annotation may differ)."""
    pod_path: str
    template_hash: str | None
    """A digest of the pod template; None when the object carried no template."""
    pod_template: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    """The Deployment's `spec.template`, as decoded (read-only; copy before changing)."""
    warnings: tuple[ConfigError, ...] = field(default=(), compare=False)

    @property
    def host(self) -> str | None:
        """The virtual host for host routing (`<app>.<domain>`), else None."""
        if self.routing == "host" and self.domain:
            return f"{self.app}.{self.domain}"
        return None

    @property
    def path_prefix(self) -> str:
        """Where the app lives on the shared listener for path routing."""
        return f"/{self.app}/"


# --- the parser ------------------------------------------------------------------------------

_DNS_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_INTEGER: Final = re.compile(r"[+-]?[0-9]{1,30}")
_DURATION_PART: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_NUMBER: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_UNITS: Final[Mapping[str, float]] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _mapping(value: object) -> Mapping[str, Any]:
    # `type(...) is dict` first: an ABC isinstance check costs ten times as much.
    return value if type(value) is dict or isinstance(value, Mapping) else {}


def _string_map(value: object) -> Mapping[str, object]:
    """Labels or annotations; anything that is not a mapping reads as empty."""
    return {k: v for k, v in _mapping(value).items() if isinstance(k, str)}


def is_app(deployment: Mapping[str, Any]) -> bool:
    """True when the Deployment opts in: label `ipb-halle.de/k8sticket` is exactly "true"."""
    labels = _string_map(_mapping(deployment.get("metadata")).get("labels"))
    return labels.get(OPT_IN_LABEL) == "true"


def template_hash(template: Mapping[str, Any]) -> str:
    """A stable digest of a pod template (key order does not matter): 16 hex digits."""
    try:
        encoded = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # not JSON (never from the wire): hash its repr so we still never raise
        encoded = repr(template).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


class _Reader:
    """Reads one annotation map, collecting errors instead of raising."""

    def __init__(self, annotations: Mapping[str, object]) -> None:
        self.annotations = annotations
        self.errors: list[ConfigError] = []

    def raw(self, key: str) -> str | None:
        value = self.annotations.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(key, repr(value), "is not a string")
            return None
        return value

    def fail(self, key: str, value: str | None, problem: str) -> None:
        self.errors.append(ConfigError(key, value, problem, _DOC[key].allowed))

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        text = self.raw(key)
        if text is None:
            return default
        stripped = text.strip()
        if not _INTEGER.fullmatch(stripped):
            self.fail(key, text, "is not a whole number")
            return default
        number = int(stripped)
        if number < low:
            self.fail(key, text, f"must be at least {low}")
        elif number > high:
            self.fail(key, text, f"must be at most {high}")
        return number

    def duration(self, key: str, default: float, *, positive: bool) -> float:
        text = self.raw(key)
        if text is None:
            return default
        seconds = _parse_duration(text.strip())
        if seconds is None:
            self.fail(key, text, "is not a duration")
            return default
        if positive and seconds <= 0:
            self.fail(key, text, "must be more than zero")
        elif seconds > _MAX_DURATION:
            self.fail(key, text, f"must be at most {_MAX_DURATION:.0f} seconds (30 days)")
        return seconds

    def boolean(self, key: str, default: bool) -> bool:
        text = self.raw(key)
        if text is None:
            return default
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        self.fail(key, text, 'is neither "true" nor "false"')
        return default

    def port(self, key: str, default: int) -> int:
        return self.integer(key, default, low=1, high=65535)


def _parse_duration(text: str) -> float | None:
    """Seconds as a number ("30", "2.5") or Go-style ("90s", "5m", "1h30m", "500ms")."""
    if _NUMBER.fullmatch(text):
        return float(text)
    if not text:
        return None
    total = 0.0
    position = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or not math.isfinite(total):
        return None
    return total


def _is_dns_subdomain(text: str) -> bool:
    return 0 < len(text) <= 253 and all(_DNS_LABEL.fullmatch(part) for part in text.split("."))


def _url_path_problem(text: str) -> str | None:
    if not text.startswith("/"):
        return "does not start with /"
    if any(ch.isspace() or ord(ch) < 0x20 or ch in "?#" for ch in text):
        return "contains whitespace, a control character, ? or #"
    return None


def _advice(annotations: Mapping[str, object], legacy: Mapping[str, str]) -> list[ConfigError]:
    """Warnings for keys rxkube does not read: older k8sTicket keys and misspelt rxkube keys."""
    warnings = []
    for key in sorted(annotations):
        value = annotations[key]
        shown = value if isinstance(value, str) else repr(value)
        if key in legacy:
            warnings.append(
                ConfigError(
                    key,
                    shown,
                    f"is a key of older k8sTicket releases and is not read; use {legacy[key]}",
                    _DOC[legacy[key]].allowed,
                )
            )
        elif key.startswith("rxkube.io/") and key not in _KNOWN_RXKUBE_KEYS:
            warnings.append(
                ConfigError(
                    key, shown, "is not an rxkube setting", ", ".join(sorted(_KNOWN_RXKUBE_KEYS))
                )
            )
    return warnings


def parse_pod_target(
    annotations: Mapping[str, Any], *, default_port: int = 80, default_path: str = "/"
) -> PodTarget | list[ConfigError]:
    """A pod's (or the pod template's) `pod.port` and `pod.path` annotations."""
    reader = _Reader(_string_map(annotations))
    port = reader.port(KEY_POD_PORT, default_port)
    path = reader.raw(KEY_POD_PATH)
    if path is None:
        path = default_path
    elif (problem := _url_path_problem(path)) is not None:
        reader.fail(KEY_POD_PATH, path, problem)
    if reader.errors:
        return reader.errors
    return PodTarget(port, path)


def parse_app_spec(
    deployment: Mapping[str, Any], defaults: ParserDefaults | None = None
) -> AppSpec | list[ConfigError]:
    """Parse one Deployment (camelCase JSON as decoded) into an `AppSpec`, or every error in it.

    Does not look at the opt-in label (see `is_app`) and never raises. A Deployment without
    `spec.template` (a metadata-only object) parses with `pod_template=None`.
    """
    try:
        return _parse(deployment, defaults or ParserDefaults())
    except Exception as error:  # a bug here must not take down the pipeline: report it instead
        return [
            ConfigError("(deployment)", None, f"could not be parsed ({error!r})", "a Deployment")
        ]


def _parse(deployment: Mapping[str, Any], defaults: ParserDefaults) -> AppSpec | list[ConfigError]:
    metadata = _mapping(deployment.get("metadata"))
    name = metadata.get("name")
    name = name if isinstance(name, str) else ""
    namespace = metadata.get("namespace")
    uid = metadata.get("uid")
    created = metadata.get("creationTimestamp")
    annotations = _string_map(metadata.get("annotations"))
    reader = _Reader(annotations)

    app_text = reader.raw(KEY_APP_NAME)
    app = name if app_text is None else app_text
    if not _DNS_LABEL.fullmatch(app):
        if app_text is None:
            reader.errors.append(
                ConfigError(
                    KEY_APP_NAME,
                    None,
                    f"is absent and the Deployment's name {name!r} is not a DNS label",
                    _DOC[KEY_APP_NAME].allowed,
                )
            )
        else:
            reader.fail(KEY_APP_NAME, app_text, "is not a DNS label")

    port: int | None
    port_text = reader.raw(KEY_PORT)
    if port_text is not None and port_text.strip().lower() == "none":
        port = None
    else:
        port = reader.port(KEY_PORT, 9001)

    tickets_max = reader.integer(KEY_TICKETS_MAX, 1, low=1, high=_MAX_COUNT)
    tickets_spare = reader.integer(KEY_TICKETS_SPARE, 2, low=0, high=_MAX_COUNT)
    pods_max = reader.integer(KEY_PODS_MAX, 1, low=0, high=_MAX_COUNT)
    cooldown = reader.duration(KEY_PODS_COOLDOWN, 10.0, positive=True)
    # The ticket table's own defaults (proxy.AppSettings).
    idle_timeout = reader.duration(KEY_IDLE_TIMEOUT, 60.0, positive=True)
    hold_time = reader.duration(KEY_HOLD_TIME, 30.0, positive=True)
    start_grace = reader.duration(KEY_START_GRACE, 600.0, positive=True)
    drain_deadline = reader.duration(KEY_DRAIN_DEADLINE, 3600.0, positive=False)
    strip_prefix = reader.boolean(KEY_STRIP_PREFIX, True)

    dns = reader.boolean(KEY_INGRESS_DNS, False)
    routing: RoutingMode = "host" if dns else "path"
    routing_text = reader.raw(KEY_ROUTING)
    if routing_text is not None:
        chosen = routing_text.strip().lower()
        if chosen not in ("path", "host"):
            reader.fail(KEY_ROUTING, routing_text, 'is neither "path" nor "host"')
        elif KEY_INGRESS_DNS in annotations and (chosen == "host") != dns:
            reader.fail(
                KEY_ROUTING,
                routing_text,
                f"contradicts {KEY_INGRESS_DNS}={annotations[KEY_INGRESS_DNS]!r}; remove one",
            )
        else:
            routing = "host" if chosen == "host" else "path"

    domain_text = reader.raw(KEY_DOMAIN)
    domain = domain_text.strip().lower().rstrip(".") if domain_text is not None else None
    if domain is not None and not _is_dns_subdomain(domain):
        reader.fail(KEY_DOMAIN, domain_text, "is not a DNS name")
    domain = domain or defaults.domain
    if routing == "host":
        if not domain:
            reader.errors.append(
                ConfigError(
                    KEY_DOMAIN,
                    None,
                    "is required for host routing (or start rxkube with --domain)",
                    _DOC[KEY_DOMAIN].allowed,
                )
            )
        elif len(app) + 1 + len(domain) > 253:
            reader.fail(KEY_DOMAIN, domain_text or domain, f"makes {app}.<domain> too long")

    spec = _mapping(deployment.get("spec"))
    template_value = spec.get("template")
    template = template_value if isinstance(template_value, Mapping) else None
    template_meta = _mapping(template.get("metadata")) if template is not None else {}
    template_annotations = _string_map(template_meta.get("annotations"))
    target = parse_pod_target(template_annotations)
    pod_port, pod_path = 80, "/"
    if isinstance(target, PodTarget):
        pod_port, pod_path = target.port, target.path
    else:
        reader.errors.extend(target)

    if reader.errors:
        return reader.errors

    warnings = _advice(annotations, _LEGACY_KEYS) + _advice(template_annotations, _LEGACY_POD_KEYS)
    if template is not None:
        template_labels = _string_map(template_meta.get("labels"))
        if template_labels.get(APP_LABEL) != app:
            found = template_labels.get(APP_LABEL)
            warnings.append(
                ConfigError(
                    f"spec.template.metadata.labels[{APP_LABEL}]",
                    found if isinstance(found, str) else None,
                    f"differs from the app name {app!r}: the Deployment's own pods are not"
                    " served (autoscaled pods get the label)",
                    f"the app name {app!r}",
                )
            )

    return AppSpec(
        app=app,
        namespace=namespace if isinstance(namespace, str) else "",
        deployment=name,
        deployment_uid=uid if isinstance(uid, str) else "",
        created=created if isinstance(created, str) else "",
        port=port,
        tickets_max=tickets_max,
        tickets_spare=tickets_spare,
        pods_max=pods_max,
        pods_cooldown=cooldown,
        pods_start_grace=start_grace,
        ticket_idle_timeout=idle_timeout,
        ticket_hold_time=hold_time,
        drain_deadline=drain_deadline,
        routing=routing,
        domain=domain or None,
        strip_prefix=strip_prefix,
        pod_port=pod_port,
        pod_path=pod_path,
        template_hash=template_hash(template) if template is not None else None,
        pod_template=template,
        warnings=tuple(warnings),
    )


def creation_key(created: str, name: str) -> tuple[float, str]:
    """Sort key of the claims rule: older creationTimestamp first, then name; absent sorts last."""
    try:
        parsed = datetime.fromisoformat(created.replace("Z", "+00:00"))
        if parsed.tzinfo is None:  # never the local zone: replays must sort the same anywhere
            parsed = parsed.replace(tzinfo=UTC)
        when = parsed.timestamp()
    except (ValueError, OverflowError):
        when = math.inf
    return (when, name)
