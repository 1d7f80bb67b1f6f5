"""`rxkube run`: the ticket controller for one namespace, until SIGINT or SIGTERM.

The argparse block lives in `_cli.py`; this module holds the work: structured logging, the
Kubernetes configuration (kubeconfig and context, or the in-cluster service account), ticket
keys (re-read when the key file changes, so a rotated Secret takes effect without a restart),
process metrics on the injected registry, and `open_ticket_controller` until a signal comes.
Then it drains for at most `--drain-deadline` and exits 0.

`--leader-election` makes the replicas elect a leader on the Lease `--lease-name` (default
"rxkube") in the namespace, as `--instance` (default: $POD_NAME, else the host name), with a
lease of `--lease-duration`. Every replica serves users from one ticket table: the leader keeps
it and serves it to the others on `--authority-listen` (default 0.0.0.0:9091 in a pod, where
$POD_IP says where the others reach it; else the --listen host, port 9091), authenticated
with the ticket key, which is required then. Only the leader posts Events and runs the
autoscaler. See `_replication.py`.

`--record FILE` writes a trace of what the controllers see (the informers' watches, the
proxy's ticket events, the autoscaler's commands) for `rxkube replay`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from functools import partial
from pathlib import Path

import trio
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from rxkube.controllers._appspec import _parse_duration
from rxkube.controllers._cli import CommandError, describe
from rxkube.controllers._logs import configure_logging, fields
from rxkube.controllers._replication import AUTHORITY_PORT, lease_policy
from rxkube.controllers._runner import open_ticket_controller
from rxkube.proxy import ProxyConfig, ReplicatedTicketAuthority, TicketProxy, load_ticket_keys
from rxkube.streams import LeasePolicy, load_config, open_client

__all__: list[str] = []

log = logging.getLogger("rxkube.controllers.run")

KEY_RELOAD_INTERVAL = 30.0


def parse_duration(text: str) -> float:
    """`45s`, `1m30s`, `500ms`, `2h` or plain seconds, for argparse."""
    seconds = _parse_duration(text.strip())
    if seconds is None or seconds < 0:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 30s, 1m30s or 45 (seconds), got {text!r}"
        )
    return seconds


async def reload_ticket_keys(
    path: Path,
    proxy: TicketProxy,
    current: list[bytes],
    *,
    interval: float = KEY_RELOAD_INTERVAL,
    authority: ReplicatedTicketAuthority | None = None,
) -> None:
    """Re-read the key file every `interval` seconds; give the proxy new keys when they change.

    A mounted Secret is updated in place by the kubelet, so rotating keys needs no restart. An
    unreadable or invalid file keeps the keys in use (and says so in the log). The replicas'
    `authority` (with leader election) gets them too: its API token derives from them."""
    while True:
        await trio.sleep(interval)
        try:
            keys = load_ticket_keys(path=path)
        except (OSError, ValueError) as error:
            log.error(
                "ticket key file unreadable; keeping the keys in use",
                extra=fields(error=str(error)),
            )
            continue
        if keys != current:
            proxy.set_ticket_keys(keys)
            if authority is not None:
                authority.set_keys(keys)
            current = keys
            log.info("ticket keys reloaded", extra=fields(keys=len(keys)))


async def _serve(args: argparse.Namespace, keys: list[bytes], election: LeasePolicy | None) -> int:
    config = load_config(kubeconfig=args.kubeconfig, context=args.context)
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    instance = args.instance or os.environ.get("POD_NAME") or socket.gethostname()
    async with open_client(config) as client:
        namespace = args.namespace or client.namespace
        metrics = None if args.metrics is None else (args.metrics.host, args.metrics.port)
        admin = None if args.admin is None else (args.admin.host, args.admin.port)
        pod_ip = os.environ.get("POD_IP") or None
        if args.authority_listen is not None:
            authority_listen = (args.authority_listen.host, args.authority_listen.port)
        else:
            authority_listen = ("0.0.0.0" if pod_ip else args.listen.host, AUTHORITY_PORT)
        async with (
            open_ticket_controller(
                client,
                namespace=namespace,
                listen=[(args.listen.host, args.listen.port)],
                app_listen_host=args.app_listen_host,
                domain=args.domain,
                proxy_config=ProxyConfig(ticket_keys=tuple(keys)),
                registry=registry,
                instance=instance,
                leader_election=election,
                lease_name=args.lease_name,
                authority_listen=authority_listen,
                authority_host=pod_ip,
                metrics_listen=metrics,
                admin_listen=admin,
                shutdown_grace=args.drain_deadline,
                record=getattr(args, "record", None),
            ) as controller,
            trio.open_nursery() as nursery,
        ):
            if args.ticket_key_file:
                authority = (
                    None if controller.replication is None else controller.replication.authority
                )
                nursery.start_soon(
                    partial(
                        reload_ticket_keys,
                        Path(args.ticket_key_file),
                        controller.proxy,
                        keys,
                        authority=authority,
                    )
                )
            stopped_by = signal.SIGTERM
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for received in signals:
                    stopped_by = signal.Signals(received)
                    log.info(
                        "stopping",
                        extra=fields(signal=stopped_by.name, drain=args.drain_deadline),
                    )
                    break
            nursery.cancel_scope.cancel()
    # SIGTERM is how Kubernetes asks a pod to stop: a clean stop. Ctrl-C interrupted a run.
    return 130 if stopped_by == signal.SIGINT else 0


def run_controller(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM; exit codes as `_cli.py` documents (its `main` turns the
    expected failures, a kubeconfig that cannot be loaded, a port in use, into one line)."""
    configure_logging(format=args.log_format, level=args.log_level.upper())
    try:
        keys = load_ticket_keys(path=args.ticket_key_file)
    except (OSError, ValueError) as error:
        raise CommandError(f"ticket keys: {describe(error)}") from None
    election = None
    if args.leader_election:
        if not keys:
            print(
                "rxkube run: error: --leader-election needs the replicas' shared ticket key "
                "(--ticket-key-file or RXKUBE_TICKET_KEY): they share one ticket table and "
                "accept each other's cookies",
                file=sys.stderr,
            )
            return 2
        try:
            election = lease_policy(args.lease_duration)
        except ValueError as error:
            print(f"rxkube run: error: --lease-duration: {error}", file=sys.stderr)
            return 2
    elif not keys:
        log.warning(
            "no --ticket-key-file or RXKUBE_TICKET_KEY: using a random key; tickets will not "
            "survive a restart and replicas will not accept each other's"
        )
    return trio.run(_serve, args, keys, election)
