"""`rxkube proxy`: the ticket proxy serving apps from a static list of backends, no Kubernetes.

For benchmarking and simple use. Parses `--app NAME=URL[,URL...]` into `AppConfig`s and
`ServerSpec`s, then runs `rxkube.proxy.open_ticket_proxy` until interrupted. The argparse block
lives in `_cli.py`; this module holds the work.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import sys
import urllib.parse
from dataclasses import dataclass

import trio

from rxkube.controllers._cli import CommandError, describe
from rxkube.proxy import (
    AppConfig,
    ProxyConfig,
    ServerRef,
    ServerSpec,
    load_ticket_keys,
    open_ticket_proxy,
)

__all__: list[str] = []


@dataclass(frozen=True, slots=True)
class StaticApp:
    name: str
    servers: tuple[ServerSpec, ...]


def parse_app(text: str) -> StaticApp:
    """`NAME=URL[,URL...]` -> the app and its servers (ids derived from the URLs, stable)."""
    name, sep, urls = text.partition("=")
    if not sep or not name or not urls:
        raise argparse.ArgumentTypeError(f"expected NAME=URL[,URL...], got {text!r}")
    servers = []
    for i, url in enumerate(u.strip() for u in urls.split(",")):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise argparse.ArgumentTypeError(
                f"backend URL must look like http://HOST:PORT[/path], got {url!r}"
            )
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        uid = hashlib.sha256(url.encode()).hexdigest()[:12]
        try:
            servers.append(
                ServerSpec(
                    ServerRef(f"{name}-{i}", uid),
                    f"{host}:{parts.port}",
                    path=parts.path or "/",
                )
            )
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return StaticApp(name, tuple(servers))


def run_proxy(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; graceful shutdown within the grace period."""
    try:
        keys = load_ticket_keys(path=args.ticket_key_file)
    except (OSError, ValueError) as error:
        raise CommandError(f"ticket keys: {describe(error)}") from None
    try:
        config = ProxyConfig(
            ticket_keys=tuple(keys),
            domain=args.domain,
            trusted_proxies=tuple(args.trusted_proxy),
            shutdown_grace=args.shutdown_grace,
        )
        apps = [
            (
                AppConfig(
                    app.name,
                    routing="host" if app.name in args.host_app else "path",
                    strip_prefix=not args.keep_prefix,
                    tickets_max=args.tickets_max,
                    idle_timeout=args.idle_timeout,
                    hold_time=args.hold_time,
                ),
                app.servers,
            )
            for app in args.app
        ]
    except ValueError as error:  # a flag's value: usage
        print(f"rxkube proxy: error: {error}", file=sys.stderr)
        return 2
    if not keys:
        print(
            "rxkube proxy: no --ticket-key-file or RXKUBE_TICKET_KEY: using a random key, "
            "tickets will not survive a restart",
            file=sys.stderr,
        )

    async def main() -> int:
        listen = [(args.listen.host, args.listen.port)]
        async with open_ticket_proxy(config, listen=listen) as proxy:
            for app, servers in apps:
                await proxy.set_app(app)
                proxy.set_servers(app.name, servers)
            host, port = proxy.addresses[0]
            print(f"rxkube proxy: listening on {host}:{port}", file=sys.stderr, flush=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for received in signals:
                    return 130 if received == signal.SIGINT else 0
        return 0

    # A port in use and other expected failures become one line in `_cli.main`.
    return trio.run(main)
