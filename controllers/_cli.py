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
import textwrap
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from rxkube.streams import __version__

if TYPE_CHECKING:
    from rxkube.controllers._demo import ClusterRequest, DemoCluster

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

EXIT_CODES = (
    "exit codes: 0 success; 1 failure at run time (one line on stderr says why: a kubeconfig\n"
    "that cannot be loaded, a port in use, a file that cannot be read, the API unreachable);\n"
    "2 usage error (unknown flag, a value of the wrong form); 130 interrupted (Ctrl-C)"
)


def _epilog(*examples: str, notes: str = "") -> str:
    text = "examples:\n" + "\n".join(f"  {example}" for example in examples)
    if notes:
        text += "\n\n" + notes
    return text + "\n\n" + EXIT_CODES


def _add_listen(
    parser: argparse.ArgumentParser, flag: str, default: ListenAddress | None, what: str
) -> None:
    shown = f"default {default}" if default is not None else "default: off"
    parser.add_argument(
        flag,
        type=parse_listen,
        default=default,
        metavar="HOST:PORT",
        help=f"{what} ({shown}; port 0 picks a free one)",
    )


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"rxkube {__version__}")
    return EXIT_OK


def open_demo_cluster(request: ClusterRequest) -> AbstractAsyncContextManager[DemoCluster]:
    """The demo's cluster: the fake API server with its simulated cluster (only this module
    may import rxkube.fakes; the demo gets this opener as a parameter)."""
    from rxkube.fakes import SimSettings, open_fake_apiserver

    return open_fake_apiserver(
        kubeconfig_path=request.kubeconfig_path,
        bookmark_interval=10.0,
        simulate=SimSettings(
            schedule_delay=0.1,
            start_delay=request.pod_start_delay,
            ready_delay=min(0.5, request.pod_start_delay),
            terminate_delay=0.2,
            nodes=("node-1", "node-2"),
            seed=request.seed,
        ),
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    import trio

    from rxkube.controllers._demo import DemoSettings, example_apps, run_demo
    from rxkube.controllers._logs import configure_logging

    configure_logging(format="text", level=args.log_level.upper())
    try:
        settings = DemoSettings(
            listen=(args.listen.host, args.listen.port),
            metrics=(args.metrics.host, args.metrics.port),
            admin=(args.admin.host, args.admin.port),
            apps=example_apps(cooldown=f"{args.cooldown}s", idle_timeout=f"{args.idle_timeout}s"),
            users=args.users,
            duration=args.duration,
            seed=args.seed,
            record=args.record,
            kubeconfig_out=args.kubeconfig_out,
            pod_start_delay=args.pod_start_delay,
        )
    except ValueError as error:
        raise CommandError(str(error)) from None
    return trio.run(partial(run_demo, settings, open_demo_cluster))


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
    from rxkube.controllers import _proxy_cmd, _run_cmd

    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="rxkube",
        description="Event-driven Kubernetes controllers on reactive streams: the ticket "
        "proxy (k8sTicket's successor), its controller, a demo and a fake API server.",
        epilog=_epilog(
            "rxkube demo --users 30 --duration 60",
            "rxkube run --namespace lab --listen 0.0.0.0:8080 --metrics 0.0.0.0:9090",
            "rxkube replay run.jsonl.gz --set '*.tickets.spare=4'",
            "rxkube fake-apiserver --listen 127.0.0.1:8080 --kubeconfig-out /tmp/kubeconfig",
            "rxkube COMMAND --help",
        ),
        formatter_class=raw,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    version = commands.add_parser(
        "version",
        help="print the version",
        description="Print rxkube's version.",
        epilog=_epilog("rxkube version"),
        formatter_class=raw,
    )
    version.set_defaults(handler=_cmd_version)

    demo = commands.add_parser(
        "demo",
        help="a simulated cluster with two apps served through the ticket proxy, live",
        description=(
            "Start a simulated Kubernetes cluster in this process (the fake API server with a "
            "kubelet running each pod as a local HTTP/WebSocket backend), apply two annotated "
            "example apps (notebook: HTTP; chat: its page keeps a WebSocket open), and serve "
            "them through the ticket controller and proxy. Prints the proxy, status page and "
            "metrics URLs and a kubeconfig, then shows apps, pods, tickets, the waiting queue "
            "and scale actions live until --duration, Ctrl-C or SIGTERM."
        ),
        epilog=_epilog(
            "rxkube demo                                   # then open the URLs it prints",
            "rxkube demo --users 30 --duration 60          # users arrive, pods scale up, down",
            "rxkube demo --users 8 --record demo.jsonl.gz  # write the trace for replays",
            "rxkube demo --listen 127.0.0.1:8080 --admin 127.0.0.1:8081 --metrics 127.0.0.1:9090",
            "kubectl --kubeconfig <printed path> get pods -w   # in another terminal",
            notes=(
                "The view is redrawn in place on a terminal, and printed as plain lines\n"
                "otherwise (a pipe or a log). Ctrl-C stops everything cleanly (exit 130);\n"
                "the end of --duration and SIGTERM exit 0."
            ),
        ),
        formatter_class=raw,
    )
    _add_listen(demo, "--listen", ListenAddress("127.0.0.1", 0), "the proxy's listener")
    _add_listen(demo, "--metrics", ListenAddress("127.0.0.1", 0), "/metrics, /healthz, /readyz")
    _add_listen(demo, "--admin", ListenAddress("127.0.0.1", 0), "the status page")
    demo.add_argument(
        "--users", type=_count, default=0, metavar="N", help="simulated users (default 0)"
    )
    demo.add_argument(
        "--duration",
        type=_positive_duration,
        metavar="DURATION",
        help="stop after this long, e.g. 60 or 2m (default: until Ctrl-C)",
    )
    demo.add_argument(
        "--seed", type=int, default=1, metavar="N", help="seed of the users' plan (default 1)"
    )
    demo.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="write the trace (the watches and each app's demand) to FILE (.gz: gzip)",
    )
    demo.add_argument(
        "--kubeconfig-out",
        type=Path,
        metavar="PATH",
        help="write the cluster's kubeconfig here (default: a temporary file, printed)",
    )
    demo.add_argument(
        "--pod-start-delay",
        type=_duration,
        default=3.0,
        metavar="DURATION",
        help="how long the simulated kubelet takes to start a pod (default 3s)",
    )
    demo.add_argument(
        "--cooldown",
        type=_positive_duration,
        default=5.0,
        metavar="DURATION",
        help="the apps' pods.cooldown: idle autoscaled pods go after it (default 5s)",
    )
    demo.add_argument(
        "--idle-timeout",
        type=_positive_duration,
        default=5.0,
        metavar="DURATION",
        help="the apps' ticket idle timeout after a user leaves (default 5s)",
    )
    demo.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default="warning"
    )
    demo.set_defaults(handler=_cmd_demo)

    fake = commands.add_parser(
        "fake-apiserver",
        help="serve a fake Kubernetes API server and print a kubeconfig for it",
        description=(
            "Serve a fake Kubernetes API server (rxkube.fakes) until interrupted, with a "
            "simulated cluster (deployment controller, scheduler, nodes, a kubelet running "
            "each pod as a local HTTP/WebSocket backend, logs and exec). A ready-to-use "
            "kubeconfig is printed on stdout (and written to --kubeconfig-out)."
        ),
        epilog=_epilog(
            "rxkube fake-apiserver --listen 127.0.0.1:8080 --kubeconfig-out /tmp/kubeconfig",
            "kubectl --kubeconfig /tmp/kubeconfig apply -f deploy/example-app/",
            "rxkube fake-apiserver --no-simulation --auth --rbac   # objects only, with RBAC",
        ),
        formatter_class=raw,
    )
    _add_listen(fake, "--listen", ListenAddress("127.0.0.1", 8080), "address to listen on")
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

    proxy = commands.add_parser(
        "proxy",
        help="run the ticket proxy for static backends (no Kubernetes)",
        description="Serve apps through the ticket proxy from a static list of backends, "
        "until SIGINT or SIGTERM.",
        epilog=_epilog(
            "rxkube proxy --app lab=http://127.0.0.1:8888 --tickets-max 2 --listen 127.0.0.1:8080",
            "rxkube proxy --app lab=http://10.0.0.7:8888,http://10.0.0.8:8888/base "
            "--ticket-key-file key",
        ),
        formatter_class=raw,
    )
    proxy.add_argument(
        "--app",
        action="append",
        required=True,
        type=_proxy_cmd.parse_app,
        metavar="NAME=URL[,URL...]",
        help="an app and its backends (repeatable)",
    )
    _add_listen(proxy, "--listen", ListenAddress("127.0.0.1", 8080), "the proxy's listener")
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

    run = commands.add_parser(
        "run",
        help="serve a namespace's annotated Deployments through the ticket proxy",
        description=(
            "Watch a namespace's Deployments labelled ipb-halle.de/k8sticket=true and serve "
            "them to users through the ticket proxy (k8sTicket's annotations are accepted "
            "unchanged). Runs until SIGINT or SIGTERM, then drains."
        ),
        epilog=_epilog(
            "rxkube run --namespace lab --listen 127.0.0.1:8080 --metrics 127.0.0.1:9090",
            "rxkube run --namespace lab --admin 127.0.0.1:8081   # and the status page",
            "rxkube run --namespace=$(POD_NAMESPACE) --listen=0.0.0.0:8080 "
            "--metrics=0.0.0.0:9090 \\\n"
            "      --ticket-key-file=/var/run/rxkube/ticket-key/key --drain-deadline=45s",
            notes=(
                "The metrics listener serves /metrics, /healthz (alive) and /readyz (200 once\n"
                "the watches have listed and that state is served; 503 while draining). The\n"
                "admin listener serves the status page (/, /status.json, /status/events): it\n"
                "shows users and pod addresses, so keep it on a private address. SIGTERM\n"
                "drains and exits 0; Ctrl-C (SIGINT) drains and exits 130."
            ),
        ),
        formatter_class=raw,
    )
    run.add_argument("--namespace", help="namespace to watch (default: the context's)")
    run.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig (default: as kubectl)")
    run.add_argument("--context", metavar="NAME", help="kubeconfig context")
    _add_listen(run, "--listen", ListenAddress("127.0.0.1", 8080), "the proxy's shared listener")
    run.add_argument(
        "--app-listen-host",
        metavar="HOST",
        help="where apps' own ports (deployment.port) listen (default: the --listen host)",
    )
    _add_listen(run, "--metrics", None, "serve /metrics, /healthz and /readyz here")
    _add_listen(run, "--admin", None, "serve the status page here")
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
    from rxkube.controllers._record_cmd import run_record

    record = commands.add_parser(
        "record",
        help="record the streams the controllers watch, from any cluster, for replays",
        description=(
            "Record what the ticket controller watches in a namespace (its Deployments, "
            "metadata and labelled, and the apps' pods, from the first list on) to a trace, "
            "until --duration, Ctrl-C or SIGTERM. Works on any cluster kubectl can reach (read "
            "access to deployments and pods is enough), e.g. the demo's. A progress line on "
            "stderr shows events/s."
        ),
        epilog=_epilog(
            "rxkube record --namespace lab --out lab.jsonl.gz --duration 1h",
            "rxkube record --kubeconfig <the demo's kubeconfig> --namespace default "
            "--out demo.jsonl.gz",
            "rxkube replay lab.jsonl.gz",
            notes=(
                "Such a trace has no demand: users' tickets exist only inside a proxy, so they\n"
                "are recorded by `rxkube run --record` and `rxkube demo --record` alone (the\n"
                "stream tickets/<namespace>). `rxkube replay` of a trace without demand sees\n"
                "every app and pod and no users: the autoscaler keeps spare tickets for nobody.\n"
                "SIGTERM and --duration exit 0, Ctrl-C 130; the trace is complete either way."
            ),
        ),
        formatter_class=raw,
    )
    record.add_argument("--namespace", help="namespace to record (default: the context's)")
    record.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig (default: as kubectl)")
    record.add_argument("--context", metavar="NAME", help="kubeconfig context")
    record.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE",
        help="the trace to write (.jsonl, or .jsonl.gz compressed)",
    )
    record.add_argument(
        "--duration",
        type=_positive_duration,
        metavar="DURATION",
        help="stop after this long, e.g. 90, 15m or 1h (default: until Ctrl-C)",
    )
    record.add_argument("--quiet", action="store_true", help="no progress line")
    record.set_defaults(handler=run_record)

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
        epilog=_epilog(
            "rxkube replay run.jsonl.gz",
            "rxkube replay run.jsonl.gz --set '*.tickets.spare=4' --timeline spare4.csv",
            "rxkube replay run.jsonl.gz --set notebook.pods.max=10 --set '*.pods.cooldown=5m'",
            notes=f"settings: {', '.join(OVERRIDABLE)} (values as in the annotations)",
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
    # Descriptions are prose: wrap them (the raw formatter keeps the epilogs' examples as is).
    for command in (parser, *commands.choices.values()):
        if command.description:
            command.description = textwrap.fill(command.description, 80)
    return parser


def _duration(text: str) -> float:
    from rxkube.controllers._run_cmd import parse_duration

    return parse_duration(text)


def _positive_duration(text: str) -> float:
    seconds = _duration(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration > 0, got {text!r}")
    return seconds


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _expected_failure(error: BaseException) -> BaseException | None:
    """The first expected failure in `error` (trio wraps a nursery's errors in groups)."""
    from rxkube.streams import ConfigError, KubeError, TraceError

    for leaf in _leaves(error):
        if isinstance(leaf, CommandError | ConfigError | KubeError | TraceError | OSError):
            return leaf
    return None


def describe(error: BaseException) -> str:
    """One line for an expected failure: no `[Errno N]`, the file named, no traceback."""
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror
        if error.filename is not None:
            text += f": {error.filename}"
        return text
    return " ".join(str(error).split()) or type(error).__name__


def run_handler(args: argparse.Namespace) -> int:
    """Run the parsed command; expected failures become one line on stderr (exit 1),
    Ctrl-C exit 130, anything else (a bug) keeps its traceback."""
    handler: Handler = args.handler
    try:
        return handler(args)
    except SystemExit:
        raise
    except BaseException as error:
        if all(isinstance(leaf, KeyboardInterrupt) for leaf in _leaves(error)):
            print(f"rxkube {args.command}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        expected = _expected_failure(error)
        if expected is None:
            raise
        print(f"rxkube {args.command}: error: {describe(expected)}", file=sys.stderr)
        return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rxkube` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    return run_handler(args)


if __name__ == "__main__":
    sys.exit(main())
