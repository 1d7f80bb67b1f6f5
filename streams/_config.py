"""Where the cluster is and who we are to it: a plain, frozen connection record.

What this module is for: turning the `kubernetes` package's configuration machinery (its
kubeconfig loader with contexts, exec plugins and auth providers; its in-cluster loader) into
a `KubeConfig` record that the client (`_client.py`) reads. It never touches the package's
process-global state: no `Configuration.set_default`, no `load_kube_config()` into globals.
Each call fills a fresh `kubernetes.client.Configuration` through the loader objects and
reads what it needs from it.

Credentials rotate, so the record holds a *token source* rather than a token:
- `StaticToken`: a bearer token written in the kubeconfig;
- `TokenFile`: a file re-read whenever it changes (the kubelet rotates projected service
  account tokens by swapping a symlink), and on demand after a 401;
- `KubeconfigCredentials`: whatever the package's loader resolves (exec plugins, auth
  providers, basic auth), re-run when it expires and after a 401.

It may import the standard library and `kubernetes.config` / `kubernetes.client.Configuration`;
it does no network I/O (exec plugins run a local command, in a worker thread).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import trio
import yaml
from kubernetes.client import Configuration
from kubernetes.config import incluster_config as _typed_incluster
from kubernetes.config import kube_config as _typed_kube_config
from kubernetes.config.config_exception import ConfigException

__all__ = [
    "ConfigError",
    "KubeConfig",
    "KubeconfigCredentials",
    "StaticToken",
    "TokenFile",
    "TokenSource",
    "load_config",
    "load_incluster_config",
    "load_kubeconfig",
]

SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where the kubelet mounts a pod's service account token, CA bundle and namespace."""

_DEFAULT_KUBECONFIG: Final = "~/.kube/config"
# The stubs for the `kubernetes` package describe neither the loaders nor all of
# Configuration's attributes; these are the only untyped handles, kept inside this module.
_kube_config: Any = _typed_kube_config
_incluster: Any = _typed_incluster
# Refresh exec/auth-provider credentials this long before they expire, so a request never
# leaves with a token that dies on the way.
_EXPIRY_SKEW: Final = _dt.timedelta(seconds=30)


class ConfigError(Exception):
    """The configuration cannot be loaded; the message says which file or setting is wrong."""


@runtime_checkable
class TokenSource(Protocol):
    """Where the `Authorization` header comes from (DESIGN section 4, "One Kubernetes client").

    `authorization()` is called before every request and must be cheap when nothing changed;
    `refresh()` is called after a 401 and must drop any cached credential.
    """

    async def authorization(self) -> str | None:
        """The header value (e.g. `"Bearer abc"`), or None to send none."""
        ...

    async def refresh(self) -> None:
        """Forget cached credentials: the server refused them."""
        ...


class StaticToken:
    """A bearer token that never changes (written in the kubeconfig, or given by hand)."""

    __slots__ = ("_header",)

    def __init__(self, token: str) -> None:
        if not token.strip():
            raise ConfigError("empty bearer token")
        self._header = f"Bearer {token.strip()}"

    async def authorization(self) -> str | None:
        return self._header

    async def refresh(self) -> None:
        # Nothing to re-read: the same token will be refused again, and the caller says so.
        return None

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


class TokenFile:
    """A bearer token read from a file, re-read whenever the file changes.

    The kubelet rotates projected service account tokens (about hourly) by atomically
    replacing a symlinked directory, so a `stat` (following links) that reports another
    inode, size or mtime means a new token. `stat` is a few microseconds on the tmpfs the
    kubelet uses; checking it per request is cheaper than any timer and never stale.
    """

    __slots__ = ("_header", "_path", "_stamp")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._stamp: tuple[int, int, int, int] | None = None
        self._header: str | None = None
        self._read()  # fail early, at configuration time, when the file is missing

    @property
    def path(self) -> Path:
        return self._path

    def _read(self) -> str:
        try:
            st = os.stat(self._path)
            token = self._path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read token file {self._path}: {exc}") from exc
        if not token:
            raise ConfigError(f"token file {self._path} is empty")
        self._stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        self._header = f"Bearer {token}"
        return self._header

    async def authorization(self) -> str | None:
        try:
            st = os.stat(self._path)
        except OSError:
            # Mid-rotation or gone: keep the last token; a 401 will tell.
            return self._header
        if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != self._stamp:
            try:
                return self._read()
            except ConfigError:
                return self._header
        return self._header

    async def refresh(self) -> None:
        self._stamp = None
        with contextlib.suppress(ConfigError):
            self._read()

    def __repr__(self) -> str:
        return f"TokenFile({str(self._path)!r})"


class KubeconfigCredentials:
    """Credentials the `kubernetes` package's kubeconfig loader resolves: exec plugins
    (`client.authentication.k8s.io`), auth providers (oidc, gcp), basic auth.

    The loader is re-run (in a worker thread: an exec plugin is a subprocess) when the
    credential's expiry has passed, and on `refresh()` after a 401. Expiry is an absolute
    wall-clock time set by the plugin, so it is compared with `wall_clock()` (injectable).
    """

    def __init__(
        self,
        loader: Any,
        *,
        wall_clock: Callable[[], _dt.datetime] | None = None,
        loaded: Any = None,
    ) -> None:
        """`loader` is a `kubernetes.config.kube_config.KubeConfigLoader`; `loaded`, a
        `Configuration` it has just filled (so an exec plugin does not run twice at start)."""
        self._loader = loader
        self._wall_clock = wall_clock or (lambda: _dt.datetime.now(_dt.UTC))
        self._lock = trio.Lock()
        self._header: str | None = None
        self._expiry: _dt.datetime | None = None
        self.loads = 0
        """How many times the loader ran (exposed for tests and diagnostics)."""
        if loaded is None:
            self._load()
        else:
            self._take(loaded)

    def _load(self) -> None:
        cfg: Any = Configuration()
        try:
            self._loader.load_and_set(cfg)
        except ConfigException as exc:
            raise ConfigError(f"cannot resolve kubeconfig credentials: {exc}") from exc
        self._take(cfg)

    def _take(self, cfg: Any) -> None:
        self.loads += 1
        self._header = cfg.api_key.get("BearerToken")
        expiry = getattr(self._loader, "expiry", None)
        self._expiry = expiry if isinstance(expiry, _dt.datetime) else None

    def _expired(self) -> bool:
        if self._expiry is None:
            return False
        expiry = self._expiry
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=_dt.UTC)
        return expiry - _EXPIRY_SKEW <= self._wall_clock()

    async def authorization(self) -> str | None:
        if self._expired():
            async with self._lock:
                if self._expired():
                    await trio.to_thread.run_sync(self._load)
        return self._header

    async def refresh(self) -> None:
        async with self._lock:
            await trio.to_thread.run_sync(self._load)

    def __repr__(self) -> str:
        return "KubeconfigCredentials(<redacted>)"


@dataclass(frozen=True, slots=True)
class KubeConfig:
    """Everything the client needs to reach the API server, as plain values.

    - `server`: base URL, e.g. `https://10.0.0.1:6443` (no trailing slash).
    - `namespace`: the default namespace (context's, or the pod's, else `default`).
    - `ca_file` / `verify`: the CA bundle to trust; `verify=False` only when the kubeconfig
      says `insecure-skip-tls-verify`.
    - `client_cert_file` / `client_key_file`: PEM files for client-certificate auth.
    - `token_source`: where the `Authorization` header comes from (None: no header).
    - `tls_server_name`: SNI / name to verify, when it differs from the URL's host.
    - `proxy`: the cluster's `proxy-url`, if any.
    - `context`: the kubeconfig context used, or `"in-cluster"`.
    - `source`: where this came from (a kubeconfig path, `in-cluster`, `explicit`): it names
      traces recorded from this cluster.
    """

    server: str
    namespace: str = "default"
    ca_file: str | None = None
    verify: bool = True
    client_cert_file: str | None = None
    client_key_file: str | None = None
    token_source: TokenSource | None = field(default=None, repr=False)
    tls_server_name: str | None = None
    proxy: str | None = None
    context: str | None = None
    source: str = "explicit"

    def __post_init__(self) -> None:
        if not self.server.startswith(("http://", "https://")):
            raise ConfigError(f"server URL must start with http:// or https://: {self.server!r}")
        if self.server.endswith("/"):
            object.__setattr__(self, "server", self.server.rstrip("/"))
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ConfigError("a client certificate needs both a certificate and a key file")


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def load_kubeconfig(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    *,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
    wall_clock: Callable[[], _dt.datetime] | None = None,
) -> KubeConfig:
    """Load a kubeconfig: `path` (one file or several, merged as kubectl does), else the
    files in `$KUBECONFIG`, else `~/.kube/config`; `context` (default: the current one).

        config = load_kubeconfig(context="kind-lab")
        config.server, config.namespace   # ('https://127.0.0.1:6443', 'lab')
    """
    env = _environ(environ)
    if path is None:
        spec = env.get("KUBECONFIG") or _DEFAULT_KUBECONFIG
    elif isinstance(path, str | os.PathLike):
        spec = os.fspath(path)
    else:
        spec = _kube_config.ENV_KUBECONFIG_PATH_SEPARATOR.join(os.fspath(p) for p in path)
    files = [
        os.path.expanduser(p) for p in spec.split(_kube_config.ENV_KUBECONFIG_PATH_SEPARATOR) if p
    ]
    if not any(os.path.exists(p) for p in files):
        raise ConfigError(f"no kubeconfig found at {spec!r}")
    try:
        merged = _kube_config.KubeConfigMerger(spec).config
        if merged is None:
            raise ConfigError(f"kubeconfig {spec!r} holds no configuration")
        loader = _kube_config.KubeConfigLoader(
            config_dict=merged, active_context=context, config_base_path=None
        )
        cfg: Any = Configuration()
        loader.load_and_set(cfg)
        context_name = context or merged["current-context"]
        ctx = merged["contexts"].get_with_name(context_name)["context"]
        user_name = ctx.safe_get("user")
        users = merged.safe_get("users")
        user: Any = None
        if user_name and users:
            found = merged["users"].get_with_name(user_name, safe=True)
            user = found["user"] if found is not None and found.safe_get("user") else None
    except ConfigException as exc:
        raise ConfigError(f"invalid kubeconfig {spec!r}: {exc}") from exc
    except yaml.YAMLError as exc:
        # Not YAML at all: the message names the line, the way kubectl's does.
        problem = " ".join(str(exc).split())
        raise ConfigError(f"invalid kubeconfig {spec!r}: not YAML: {problem}") from exc
    except (KeyError, TypeError, AttributeError) as exc:
        # YAML, but not shaped like a kubeconfig (the official loader indexes blindly).
        raise ConfigError(
            f"invalid kubeconfig {spec!r}: not a kubeconfig ({type(exc).__name__}: {exc})"
        ) from exc

    source: TokenSource | None = None
    if user is not None and not user.safe_get("token") and user.safe_get("tokenFile"):
        # The loader reads tokenFile once; rotation needs the path (relative to the file).
        base = os.path.dirname(os.path.abspath(user.path)) if user.path else os.getcwd()
        source = TokenFile(os.path.join(base, os.path.expanduser(user["tokenFile"])))
    elif user is not None and (
        user.safe_get("exec") or user.safe_get("auth-provider") or user.safe_get("username")
    ):
        source = KubeconfigCredentials(loader, wall_clock=wall_clock, loaded=cfg)
    else:
        header = cfg.api_key.get("BearerToken")
        if header:
            source = StaticToken(header.split(" ", 1)[1] if " " in header else header)

    return KubeConfig(
        server=cfg.host,
        namespace=ctx.safe_get("namespace") or "default",
        ca_file=cfg.ssl_ca_cert,
        verify=bool(cfg.verify_ssl),
        client_cert_file=cfg.cert_file,
        client_key_file=cfg.key_file,
        token_source=source,
        tls_server_name=cfg.tls_server_name,
        proxy=cfg.proxy,
        context=context_name,
        source=spec,
    )


def load_incluster_config(
    *,
    environ: Mapping[str, str] | None = None,
    service_account_dir: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR,
) -> KubeConfig:
    """The pod's own service account: `KUBERNETES_SERVICE_HOST`/`_PORT`, and the token (re-read
    as the kubelet rotates it), CA bundle and namespace mounted in `service_account_dir`."""
    sa = Path(service_account_dir)
    env = _environ(environ)
    loader = _incluster.InClusterConfigLoader(
        token_filename=str(sa / "token"),
        cert_filename=str(sa / "ca.crt"),
        try_refresh_token=False,
        environ=env,
    )
    cfg: Any = Configuration()
    try:
        loader.load_and_set(cfg)
    except ConfigException as exc:
        raise ConfigError(f"not running in a cluster ({sa}): {exc}") from exc
    try:
        namespace = (sa / "namespace").read_text().strip() or "default"
    except OSError:
        namespace = "default"
    return KubeConfig(
        server=cfg.host,
        namespace=namespace,
        ca_file=cfg.ssl_ca_cert,
        token_source=TokenFile(sa / "token"),
        context="in-cluster",
        source="in-cluster",
    )


def load_config(
    *,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
    service_account_dir: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR,
) -> KubeConfig:
    """The configuration kubectl and client-go would pick: an explicit kubeconfig, else
    `$KUBECONFIG`, else the in-cluster service account when running in a pod, else
    `~/.kube/config`."""
    env = _environ(environ)
    if kubeconfig is not None or env.get("KUBECONFIG"):
        return load_kubeconfig(kubeconfig, context=context, environ=env)
    if env.get("KUBERNETES_SERVICE_HOST") and (Path(service_account_dir) / "token").exists():
        return load_incluster_config(environ=env, service_account_dir=service_account_dir)
    return load_kubeconfig(None, context=context, environ=env)
