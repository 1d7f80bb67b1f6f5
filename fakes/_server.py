"""Running the fake API server: in-process on trio, in a background thread, or from the CLI.

What this module is for: owning the listening socket, the kubeconfig file and the nursery the
server runs in. `open_fake_apiserver(...)` is an async context manager (structured
concurrency: the server lives exactly as long as the `async with`); `fake_apiserver_thread`
wraps the same thing for synchronous users (the official `kubernetes` client, notebooks);
`run_cli` serves until interrupted and prints a ready-to-use kubeconfig.

TLS (`tls=True`, opt-in: plain HTTP is faster to start and to serve): a CA is made at start
(trustme: an ECDSA CA and a server certificate for the bound address, `localhost` and
127.0.0.1), the listeners are wrapped in trio's `SSLListener`, the URL is `https://...` and the
kubeconfig carries the CA as `certificate-authority-data`. That is what kubectl needs to send
a bearer token at all (client-go reads a kubeconfig's credentials only for a TLS server), so
`auth=True`/`rbac=True` can be exercised with kubectl. Everything else (watches, exec and log
WebSocket upgrades) runs over the TLS stream unchanged: the HTTP layer sees a `trio.abc.Stream`.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import ipaddress
import os
import secrets
import ssl
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import trio
import yaml

from rxkube.fakes._api import ApiServer
from rxkube.fakes._faults import Faults
from rxkube.fakes._http import serve_http
from rxkube.fakes._kubectl import install_kubectl_support
from rxkube.fakes._rbac import MASTERS, UserInfo
from rxkube.fakes._resources import Registry
from rxkube.fakes._sim import SimSettings, Simulation, open_simulation
from rxkube.fakes._store import Store

__all__ = [
    "FakeApiServer",
    "ThreadedFakeApiServer",
    "fake_apiserver_thread",
    "kubeconfig_yaml",
    "open_fake_apiserver",
    "run_fake_apiserver",
]

T = TypeVar("T")


def kubeconfig_yaml(
    url: str, *, token: str = "", namespace: str = "default", ca_pem: bytes | None = None
) -> str:
    """A kubeconfig for `url` with one context `rxkube-fake` (bearer `token`, if any; the CA
    to trust as `certificate-authority-data` for an https URL)."""
    user: dict[str, Any] = {"token": token} if token else {}
    cluster: dict[str, Any] = {"server": url}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode("ascii")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "rxkube-fake", "cluster": cluster}],
        "users": [{"name": "rxkube-fake-user", "user": user}],
        "contexts": [
            {
                "name": "rxkube-fake",
                "context": {
                    "cluster": "rxkube-fake",
                    "user": "rxkube-fake-user",
                    "namespace": namespace,
                },
            }
        ],
        "current-context": "rxkube-fake",
    }
    return yaml.safe_dump(config, sort_keys=False)


@dataclass
class FakeApiServer:
    """A running fake API server.

    - `url`: base URL (`http://127.0.0.1:PORT`, `https://...` with TLS); `kubeconfig_path`: a
      kubeconfig for it (the admin user); `admin_token`;
    - `ca_pem`: with TLS, the PEM of the CA that signed the server's certificate (else None);
      `ssl_context()` a client context trusting it (e.g. `httpx.AsyncClient(verify=...)`);
    - `store`: the objects, to read and write directly (same semantics as over HTTP);
    - `faults`: inject faults and read their counters;
    - `api`: extension points (`add_subresource`, `add_transform`) and `statistics()`;
    - `simulation`: the simulated cluster when started with `simulate=...` (else None).
    """

    url: str
    kubeconfig_path: Path
    store: Store
    faults: Faults
    api: ApiServer
    admin_token: str
    host: str
    port: int
    simulation: Simulation | None = None
    ca_pem: bytes | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this server's CA (TLS mode only)."""
        if self.ca_pem is None:
            raise ValueError("this fake API server speaks plain HTTP (open it with tls=True)")
        return ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))

    def add_user(self, name: str, groups: tuple[str, ...] = (), *, token: str | None = None) -> str:
        """Register a bearer token for user `name` (authentication must be on, see
        `open_fake_apiserver(auth=True)`); returns the token."""
        token = token or secrets.token_hex(16)
        self.api.authenticator.tokens[token] = UserInfo(name, groups)
        return token

    def add_service_account(self, namespace: str, name: str, *, token: str | None = None) -> str:
        """A token authenticating as `system:serviceaccount:<namespace>:<name>`."""
        token = token or secrets.token_hex(16)
        self.api.authenticator.tokens[token] = UserInfo.service_account(namespace, name)
        return token

    def write_kubeconfig(
        self, path: str | os.PathLike[str], *, token: str | None = None, namespace: str = "default"
    ) -> Path:
        """Write a kubeconfig for this server (admin token unless `token` is given)."""
        target = Path(path)
        target.write_text(
            kubeconfig_yaml(
                self.url,
                token=token or self.admin_token,
                namespace=namespace,
                ca_pem=self.ca_pem,
            ),
            encoding="utf-8",
        )
        return target

    def statistics(self) -> dict[str, Any]:
        return self.api.statistics()


@contextlib.asynccontextmanager
async def open_fake_apiserver(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    store: Store | None = None,
    registry: Registry | None = None,
    auth: bool = False,
    rbac: bool = False,
    tokens: Mapping[str, UserInfo] | None = None,
    admin_token: str | None = None,
    kubeconfig_path: str | os.PathLike[str] | None = None,
    history_limit: int = 10_000,
    bookmark_interval: float = 60.0,
    min_request_timeout: float = 1800.0,
    max_watch_buffer: int = 10_000,
    too_large_wait: float = 3.0,
    simulate: bool | SimSettings = False,
    tls: bool = False,
) -> AsyncIterator[FakeApiServer]:
    """Serve a fake Kubernetes API on `host:port` (0 = a free port) for the `async with`.

    `auth=True` requires a bearer token (401 otherwise); the admin token (group
    `system:masters`) is in the kubeconfig; add users with `server.add_user`. `rbac=True`
    authorizes every request from the stored Roles/ClusterRoles and their bindings (403
    otherwise); it implies `auth`. `bookmark_interval` is how often an idle watch that asked for
    bookmarks gets one (60 s like kube-apiserver; tests use less). `history_limit` bounds each
    resource's watch history (older RVs get 410). The kubeconfig is written to
    `kubeconfig_path`, or to a temporary file removed on exit. `simulate=True` (or a
    `SimSettings`) runs a simulated cluster in the server (`server.simulation`): controllers,
    nodes, a kubelet with real pod backends, `pods/log` and `pods/exec`. `tls=True` serves
    HTTPS with a certificate from a CA made at start (`server.ca_pem`, in the kubeconfig as
    `certificate-authority-data`): needed for kubectl to send tokens (see the module docstring).
    """
    if store is None:
        store = Store(registry, history_limit=history_limit)
    admin = admin_token or secrets.token_hex(16)
    all_tokens: dict[str, UserInfo] | None = None
    if auth or rbac or tokens:
        all_tokens = {admin: UserInfo("admin", (MASTERS,))}
        all_tokens.update(tokens or {})
    faults = Faults()
    api = ApiServer(
        store,
        faults=faults,
        tokens=all_tokens,
        rbac=rbac,
        bookmark_interval=bookmark_interval,
        min_request_timeout=min_request_timeout,
        max_watch_buffer=max_watch_buffer,
        too_large_wait=too_large_wait,
    )
    install_kubectl_support(api)
    sockets = await trio.open_tcp_listeners(port, host=host)
    sockname = sockets[0].socket.getsockname()
    bound_host, bound_port = sockname[0], sockname[1]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    listeners: list[trio.abc.Listener[trio.abc.Stream]] = list(sockets)
    ca_pem = None
    if tls:
        context, ca_pem = _server_tls(bound_host)
        listeners = [trio.SSLListener(s, context, https_compatible=True) for s in sockets]
    url = f"{'https' if tls else 'http'}://{shown}:{bound_port}"
    api.server_address = f"{shown}:{bound_port}"
    with contextlib.ExitStack() as cleanup:
        if kubeconfig_path is None:
            directory = tempfile.mkdtemp(prefix="rxkube-fake-")
            path = Path(directory) / "kubeconfig"
            cleanup.callback(_remove_dir, Path(directory))
        else:
            path = Path(kubeconfig_path)
        server = FakeApiServer(
            url, path, store, faults, api, admin, bound_host, bound_port, ca_pem=ca_pem
        )
        server.write_kubeconfig(path)
        async with contextlib.AsyncExitStack() as simulation:
            if simulate is not False:
                settings = simulate if isinstance(simulate, SimSettings) else SimSettings()
                server.simulation = await simulation.enter_async_context(
                    open_simulation(store, settings, api=api)
                )
            async with trio.open_nursery() as nursery:
                await nursery.start(serve_http, api.handle, listeners)
                try:
                    yield server
                finally:
                    nursery.cancel_scope.cancel()


def _server_tls(host: str) -> tuple[ssl.SSLContext, bytes]:
    """A server context with a certificate, for `host`, from a CA made now; the CA's PEM."""
    import trustme  # only TLS needs it (and `cryptography` under it)

    names = {"localhost", "127.0.0.1", "::1"}
    try:
        if not ipaddress.ip_address(host).is_unspecified:
            names.add(host)
    except ValueError:
        names.add(host)  # a host name
    ca = trustme.CA()
    certificate = ca.issue_cert(*sorted(names), common_name="rxkube-fake-apiserver")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    # HTTP/1.1 only: clients that offer h2 (kubectl) then speak HTTP/1.1, as with a proxy.
    context.set_alpn_protocols(["http/1.1"])
    return context, ca.cert_pem.bytes()


def _remove_dir(directory: Path) -> None:
    for child in directory.iterdir():
        child.unlink(missing_ok=True)
    directory.rmdir()


class _InServerThread:
    """Forwards attribute reads and method calls to an object owned by the server's thread,
    so that synchronous code can use `store` and `faults` as if they were local."""

    def __init__(self, target: object, call: Callable[..., Any]) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_call", call)

    def __getattr__(self, name: str) -> Any:
        value = self._call(getattr, self._target, name)
        if not callable(value):
            return value

        def method(*args: Any, **kwargs: Any) -> Any:
            return self._call(functools.partial(value, *args, **kwargs))

        return method

    def __setattr__(self, name: str, value: Any) -> None:
        self._call(setattr, self._target, name, value)


class ThreadedFakeApiServer:
    """A fake API server running in its own thread, for synchronous code.

    The attributes of `FakeApiServer` are here too. `store` and `faults` run every call in the
    server's trio thread (`server.store.create("configmaps", body, namespace="default")`,
    `server.faults.drop_watches()`), so they are safe to use from the caller's thread; `call(fn,
    *args)` does the same for anything else. The objects they return (entries, dicts, rules)
    are snapshots or thread-safe counters. `simulation` (when simulating) belongs to the
    server's thread too: `call(server.simulation.address, "default", pod, 8080)`,
    `call_async(server.simulation.exec, "default", pod, ["ls", "/"])`.
    """

    def __init__(self, server: FakeApiServer, token: trio.lowlevel.TrioToken) -> None:
        self.server = server
        self._token = token
        self.url = server.url
        self.kubeconfig_path = server.kubeconfig_path
        self.store: Store = cast(Store, _InServerThread(server.store, self.call))
        self.faults: Faults = cast(Faults, _InServerThread(server.faults, self.call))
        self.api = server.api
        self.admin_token = server.admin_token
        self.simulation = server.simulation
        self.ca_pem = server.ca_pem
        self.host, self.port = server.host, server.port

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this server's CA (TLS mode only)."""
        return self.server.ssl_context()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in the server's trio thread and return its result."""
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def call_async(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `await fn(*args)` in the server's trio thread and return its result
        (e.g. `server.call_async(server.simulation.exec, "default", pod, ["ls"])`)."""
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def statistics(self) -> dict[str, Any]:
        return self.call(self.server.statistics)

    def add_user(self, name: str, groups: tuple[str, ...] = (), *, token: str | None = None) -> str:
        return self.call(lambda: self.server.add_user(name, groups, token=token))

    def add_service_account(self, namespace: str, name: str, *, token: str | None = None) -> str:
        return self.call(lambda: self.server.add_service_account(namespace, name, token=token))

    def write_kubeconfig(
        self, path: str | os.PathLike[str], *, token: str | None = None, namespace: str = "default"
    ) -> Path:
        return self.server.write_kubeconfig(path, token=token, namespace=namespace)


@contextlib.contextmanager
def fake_apiserver_thread(**options: Any) -> Iterator[ThreadedFakeApiServer]:
    """Run `open_fake_apiserver(**options)` in a background thread for the `with` block."""
    ready: list[ThreadedFakeApiServer] = []
    failed: list[BaseException] = []
    started = threading.Event()
    stop: list[trio.Event] = []

    async def main() -> None:
        async with open_fake_apiserver(**options) as server:
            stop.append(trio.Event())
            ready.append(ThreadedFakeApiServer(server, trio.lowlevel.current_trio_token()))
            started.set()
            await stop[0].wait()

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as error:  # reported to the caller below
            failed.append(error)
        finally:
            started.set()

    thread = threading.Thread(target=run, name="rxkube-fake-apiserver", daemon=True)
    thread.start()
    started.wait()
    if failed:
        raise RuntimeError("the fake API server did not start") from failed[0]
    handle = ready[0]
    try:
        yield handle
    finally:
        handle.call(stop[0].set)
        thread.join(timeout=30)


def run_fake_apiserver(
    host: str,
    port: int,
    *,
    kubeconfig_out: str | None = None,
    auth: bool = False,
    rbac: bool = False,
    history_limit: int = 10_000,
    out: Any = None,
    simulate: bool | SimSettings = True,
    tls: bool = False,
) -> int:
    """`rxkube fake-apiserver`: serve until interrupted; print the kubeconfig on stdout.

    The simulated cluster runs unless `simulate=False` (a `SimSettings` sets its delays);
    `tls=True` serves HTTPS (the kubeconfig carries the CA)."""
    stream = out if out is not None else sys.stdout

    async def main() -> None:
        async with open_fake_apiserver(
            host=host,
            port=port,
            auth=auth,
            rbac=rbac,
            history_limit=history_limit,
            kubeconfig_path=kubeconfig_out,
            simulate=simulate,
            tls=tls,
        ) as server:
            text = kubeconfig_yaml(server.url, token=server.admin_token, ca_pem=server.ca_pem)
            stream.write(f"# rxkube fake API server listening on {server.url}\n")
            if server.simulation is not None:
                stream.write(
                    f"# simulated cluster: nodes {', '.join(server.simulation.settings.nodes)}; "
                    f"pod network {server.simulation.network_mode} "
                    f"({server.simulation.network.cidr})\n"
                )
            if kubeconfig_out:
                stream.write(f"# kubeconfig written to {kubeconfig_out}\n")
            stream.write(text)
            stream.flush()
            await trio.sleep_forever()

    try:
        trio.run(main)
    except BaseExceptionGroup as group:
        # Ctrl-C arrives inside the server's nursery; report it as the interrupt it is.
        if group.subgroup(KeyboardInterrupt) is not None:
            raise KeyboardInterrupt from None
        raise
    return 0
