"""The `rxkube` command line: one argparse parser, one subcommand per job.

What this module is for: parsing, consistent flags (every server takes `--listen HOST:PORT`),
one-line errors on stderr, and documented exit codes. The work itself lives in the modules each
command calls. This is the only library module allowed to import `rxkube.fakes` (for `demo` and
`fake-apiserver`); the import-linter contract in pyproject.toml names this one import.

Exit codes:
    0   success
    1   the command failed at run time (the message on stderr says why)
    2   usage error (bad flags or arguments)
    130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rxkube.streams import __version__

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A run-time failure to report on stderr as one clear line (exit code 1)."""


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_listen(text: str) -> ListenAddress:
    """Parse `HOST:PORT` (IPv6 as `[::1]:8080`; port 0 picks a free port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a number, got {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 0..65535, got {port}")
    return ListenAddress(host, port)


Handler = Callable[[argparse.Namespace], int]


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"rxkube {__version__}")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from rxkube.controllers._demo import run_demo
    from rxkube.streams import TraceError

    try:
        run_demo(args.trace)
    except TraceError as error:
        raise CommandError(str(error)) from None
    return EXIT_OK


def _cmd_fake_apiserver(args: argparse.Namespace) -> int:
    from rxkube.fakes import SimSettings, run_fake_apiserver

    listen: ListenAddress = args.listen
    simulate: bool | SimSettings = False
    if not args.no_simulation:
        try:
            simulate = SimSettings(
                nodes=tuple(f"node-{i}" for i in range(1, args.nodes + 1)),
                schedule_delay=args.schedule_delay,
                start_delay=args.start_delay,
                ready_delay=args.ready_delay,
                crash_backoff=args.crash_backoff,
            )
        except ValueError as error:
            raise CommandError(str(error)) from None
    try:
        return run_fake_apiserver(
            listen.host,
            listen.port,
            kubeconfig_out=args.kubeconfig_out,
            auth=args.auth,
            rbac=args.rbac,
            simulate=simulate,
        )
    except OSError as error:
        raise CommandError(f"cannot listen on {listen}: {error.strerror or error}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rxkube",
        description="Event-driven Kubernetes controllers on reactive streams.",
        epilog=(
            "examples:\n"
            "  rxkube version\n"
            "  rxkube fake-apiserver --listen 127.0.0.1:8080 --kubeconfig-out /tmp/kubeconfig\n"
            "\n"
            "exit codes: 0 success, 1 failure at run time, 2 usage error, 130 interrupted"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    version = commands.add_parser("version", help="print the version")
    version.set_defaults(handler=_cmd_version)

    demo = commands.add_parser(
        "demo",
        help="replay a recorded trace (default: the shipped sample) and show what rxkube saw",
    )
    demo.add_argument(
        "--trace", type=Path, default=None, help="a trace file (.jsonl or .jsonl.gz) to replay"
    )
    demo.set_defaults(handler=_cmd_demo)

    fake = commands.add_parser(
        "fake-apiserver",
        help="serve a fake Kubernetes API server and print a kubeconfig for it",
        description=(
            "Serve a fake Kubernetes API server (rxkube.fakes) until interrupted. A ready-to-use "
            "kubeconfig is printed on stdout (and written to --kubeconfig-out)."
        ),
    )
    fake.add_argument(
        "--listen",
        type=parse_listen,
        default=ListenAddress("127.0.0.1", 8080),
        metavar="HOST:PORT",
        help="address to listen on (default 127.0.0.1:8080)",
    )
    fake.add_argument("--kubeconfig-out", metavar="PATH", help="also write the kubeconfig here")
    fake.add_argument("--auth", action="store_true", help="require the bearer token (401)")
    fake.add_argument("--rbac", action="store_true", help="authorize from stored RBAC (403)")
    fake.add_argument(
        "--no-simulation",
        action="store_true",
        help="store objects only: no controllers, nodes, kubelet, pod backends, logs or exec",
    )
    fake.add_argument("--nodes", type=int, default=1, metavar="N", help="simulated nodes (1)")
    fake.add_argument(
        "--schedule-delay", type=float, default=0.05, metavar="S", help="seconds (0.05)"
    )
    fake.add_argument(
        "--start-delay", type=float, default=0.5, metavar="S", help="container start (0.5)"
    )
    fake.add_argument("--ready-delay", type=float, default=0.2, metavar="S", help="(0.2)")
    fake.add_argument(
        "--crash-backoff", type=float, default=10.0, metavar="S", help="restart back-off (10)"
    )
    fake.set_defaults(handler=_cmd_fake_apiserver)
    from rxkube.controllers import _proxy_cmd

    proxy = commands.add_parser(
        "proxy",
        help="run the ticket proxy for static backends (no Kubernetes)",
        description="Serve apps through the ticket proxy from a static list of backends.",
        epilog="example:\n  rxkube proxy --app lab=http://127.0.0.1:8888 --tickets-max 2 "
        "--listen 127.0.0.1:8080",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    proxy.add_argument(
        "--app",
        action="append",
        required=True,
        type=_proxy_cmd.parse_app,
        metavar="NAME=URL[,URL...]",
        help="an app and its backends (repeatable)",
    )
    proxy.add_argument("--listen", type=parse_listen, default=parse_listen("127.0.0.1:8080"))
    proxy.add_argument("--tickets-max", type=int, default=1, help="users per backend (1)")
    proxy.add_argument("--idle-timeout", type=float, default=60.0, help="seconds (60)")
    proxy.add_argument("--hold-time", type=float, default=30.0, help="seconds (30)")
    proxy.add_argument("--domain", help="domain for host routing (<app>.<domain>)")
    proxy.add_argument(
        "--host-app", action="append", default=[], metavar="NAME", help="route NAME by host"
    )
    proxy.add_argument("--keep-prefix", action="store_true", help="send /<app>/ upstream too")
    proxy.add_argument(
        "--ticket-key-file", help="HMAC keys, one per line (else $RXKUBE_TICKET_KEY)"
    )
    proxy.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="CIDR",
        help="believe X-Forwarded-*/Forwarded from these addresses",
    )
    proxy.add_argument("--shutdown-grace", type=float, default=10.0, help="seconds (10)")
    proxy.set_defaults(handler=_proxy_cmd.run_proxy)
    from rxkube.controllers import _run_cmd

    run = commands.add_parser(
        "run",
        help="serve a namespace's annotated Deployments through the ticket proxy",
        description=(
            "Watch a namespace's Deployments labelled ipb-halle.de/k8sticket=true and serve "
            "them to users through the ticket proxy (k8sTicket's annotations are accepted "
            "unchanged). Runs until SIGINT or SIGTERM, then drains."
        ),
        epilog=(
            "examples:\n"
            "  rxkube run --namespace lab --listen 127.0.0.1:8080 --metrics 127.0.0.1:9090\n"
            "  rxkube run --namespace=$(POD_NAMESPACE) --listen=0.0.0.0:8080 "
            "--metrics=0.0.0.0:9090 \\\n"
            "      --ticket-key-file=/var/run/rxkube/ticket-key/key --drain-deadline=45s\n"
            "\n"
            "The metrics listener serves /metrics, /healthz (alive) and /readyz (200 once the\n"
            "watches have listed and that state is served; 503 while draining)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--namespace", help="namespace to watch (default: the context's)")
    run.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig (default: as kubectl)")
    run.add_argument("--context", metavar="NAME", help="kubeconfig context")
    run.add_argument(
        "--listen",
        type=parse_listen,
        default=ListenAddress("127.0.0.1", 8080),
        metavar="HOST:PORT",
        help="the proxy's shared listener (default 127.0.0.1:8080)",
    )
    run.add_argument(
        "--app-listen-host",
        metavar="HOST",
        help="where apps' own ports (deployment.port) listen (default: the --listen host)",
    )
    run.add_argument(
        "--metrics",
        type=parse_listen,
        metavar="HOST:PORT",
        help="serve /metrics, /healthz and /readyz here (default: off)",
    )
    run.add_argument("--domain", help="host routing serves <app>.<domain>")
    run.add_argument(
        "--ticket-key-file",
        metavar="PATH",
        help="HMAC keys, one per line, first signs; re-read when it changes "
        "(else $RXKUBE_TICKET_KEY, else a random key)",
    )
    run.add_argument(
        "--drain-deadline",
        type=_run_cmd.parse_duration,
        default=30.0,
        metavar="DURATION",
        help="on SIGTERM, how long open requests may finish, e.g. 45s (default 30s)",
    )
    run.add_argument(
        "--leader-election",
        action="store_true",
        help="elect a leader among the replicas (a Lease): all serve users from one ticket "
        "table that the leader keeps; only the leader posts Events",
    )
    run.add_argument(
        "--lease-name",
        default="rxkube",
        metavar="NAME",
        help="the Lease used with --leader-election (default rxkube)",
    )
    run.add_argument(
        "--lease-duration",
        type=_run_cmd.parse_duration,
        default=15.0,
        metavar="DURATION",
        help="with --leader-election: how long the others wait for a leader that stops "
        "renewing before taking over (default 15s; renewals at 2/15 of it)",
    )
    run.add_argument(
        "--authority-listen",
        type=parse_listen,
        metavar="HOST:PORT",
        help="with --leader-election: the replicas' shared ticket table API (default "
        "0.0.0.0:9091 with $POD_IP set, else the --listen host, port 9091); others reach it "
        "at $POD_IP (else this host)",
    )
    run.add_argument("--instance", help="name in Events' source (default: $POD_NAME or host)")
    run.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="write a trace of what the controllers see (watches, tickets, scale commands) "
        "for `rxkube replay` (.jsonl, or .jsonl.gz compressed)",
    )
    run.add_argument("--log-format", choices=["text", "json"], default="text")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    run.set_defaults(handler=_run_cmd.run_controller)
    from rxkube.controllers import _replay_cmd
    from rxkube.controllers._replay import OVERRIDABLE

    replay = commands.add_parser(
        "replay",
        help="run the controllers on a recorded trace in virtual time (what-if settings)",
        description=(
            "Replay a trace recorded by `rxkube run --record` (or `rxkube demo --record`) "
            "through the same pipelines in virtual time, and summarize what the autoscaler "
            "did: users, waiting time, pods over time, pod-hours, scale actions. Without "
            "--set, the recorded decisions are replayed and checked; with --set, the recorded "
            "users meet simulated pods under the new settings. The same trace and settings "
            "give the same result on every run."
        ),
        epilog=(
            "examples:\n"
            "  rxkube replay run.jsonl.gz\n"
            "  rxkube replay run.jsonl.gz --set '*.tickets.spare=4' --timeline spare4.csv\n"
            "  rxkube replay run.jsonl.gz --set notebook.pods.max=10 --set '*.pods.cooldown=5m'\n"
            "\n"
            f"settings: {', '.join(OVERRIDABLE)} (values as in the annotations)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("trace", type=Path, metavar="TRACE", help="a trace (.jsonl, .jsonl.gz)")
    replay.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="APP.SETTING=VALUE",
        help="override a setting of app APP (a name, or * for all); repeatable",
    )
    replay.add_argument(
        "--mode",
        choices=["recorded", "simulated"],
        help="recorded: the recorded decisions (default without --set); simulated: re-simulate "
        "the pods (default with --set)",
    )
    replay.add_argument(
        "--timeline", type=Path, metavar="FILE", help="write the timeline (.csv or .jsonl)"
    )
    replay.add_argument("--seed", default="0", help="names of simulated pods (default 0)")
    replay.add_argument("--quiet", action="store_true", help="no progress bar")
    replay.set_defaults(handler=_replay_cmd.run_replay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rxkube` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except CommandError as error:
        print(f"rxkube {args.command}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"rxkube {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
