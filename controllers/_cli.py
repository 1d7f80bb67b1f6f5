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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rxkube",
        description="Event-driven Kubernetes controllers on reactive streams.",
        epilog=(
            "examples:\n"
            "  rxkube version\n"
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
