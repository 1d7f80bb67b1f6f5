"""The command line: version, consistent `--listen` parsing, one-line usage errors."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rxkube.controllers import main
from rxkube.controllers._cli import (
    ListenAddress,
    build_parser,
    describe,
    parse_listen,
)
from rxkube.controllers._cli import (
    run_handler as _run_handler,
)
from rxkube.streams import __version__


def test_version_prints_the_distribution_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"rxkube {__version__}"


def test_console_script_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rxkube.controllers", "version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("rxkube ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ListenAddress("127.0.0.1", 8080)),
        ("0.0.0.0:0", ListenAddress("0.0.0.0", 0)),
        ("[::1]:9000", ListenAddress("::1", 9000)),
        ("localhost:65535", ListenAddress("localhost", 65535)),
    ],
)
def test_parse_listen_accepts(text: str, expected: ListenAddress) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8080", ":8080", "host:", "host:http", "host:70000", "host:-1"])
def test_parse_listen_rejects_with_a_clear_message(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_listen(text)


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["no-such-command"])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--nodes", "0"], "SimSettings.nodes must name at least one node"),
        (["--start-delay", "-1"], "SimSettings.start_delay must be a number >= 0, got -1.0"),
    ],
)
def test_fake_apiserver_refuses_bad_simulation_settings(
    capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main(["fake-apiserver", "--listen", "127.0.0.1:0", *flags]) == 1
    assert capsys.readouterr().err == f"rxkube fake-apiserver: error: {message}\n"


# -- consistency across every command (item 1 of issue 12) ------------------------------------

KEY = "0123456789abcdef0123456789abcdef0123"


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


SERVERS = ("demo", "fake-apiserver", "proxy", "run")
"""Commands that serve something: each takes --listen HOST:PORT."""


def test_every_command_is_known_here() -> None:
    # A new command must be added to SERVERS when it listens (and gets the tests below).
    assert set(_commands()) >= {"demo", "fake-apiserver", "proxy", "run", "version"}


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_command_has_help_with_examples_and_exit_codes(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: rxkube {command}" in out
    assert "examples:\n  rxkube " in out
    assert "exit codes: 0 success; 1 failure at run time" in out
    assert "2 usage error" in out
    assert "130 interrupted" in out


def test_the_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in _commands():
        assert command in out
    assert "exit codes:" in out


@pytest.mark.parametrize("command", SERVERS)
def test_every_server_takes_listen_host_port(command: str) -> None:
    listen = [
        action for action in _commands()[command]._actions if "--listen" in action.option_strings
    ]
    assert len(listen) == 1
    assert listen[0].metavar == "HOST:PORT"
    assert listen[0].type is parse_listen


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--users", "-1"],
        ["demo", "--users", "many"],
        ["demo", "--duration", "0"],
        ["demo", "--duration", "soon"],
        ["demo", "--listen", "8080"],
        ["demo", "--admin", "host:http"],
        ["demo", "--cooldown", "-1s"],
        ["run", "--admin", "nowhere"],
        ["fake-apiserver", "--listen", "localhost"],
        ["proxy", "--app", "lab=http://127.0.0.1:1", "--listen", "[::1]"],
    ],
)
def test_malformed_values_are_usage_errors_in_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"rxkube {argv[0]}: error: argument {argv[-2]}" in err
    assert "Traceback" not in err


def _one_line_failure(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.endswith("\n")
    assert err.count("\n") == 1, err
    assert err.startswith(f"rxkube {argv[0]}: error: ")
    return err


def test_a_missing_kubeconfig_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RXKUBE_TICKET_KEY", KEY)
    missing = tmp_path / "nope" / "kubeconfig"
    err = _one_line_failure(["run", f"--kubeconfig={missing}", "--log-level=error"], capsys)
    assert str(missing) in err


def test_a_kubeconfig_that_is_not_yaml_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RXKUBE_TICKET_KEY", KEY)
    broken = tmp_path / "kubeconfig"
    broken.write_text("clusters: [\n")
    _one_line_failure(["run", f"--kubeconfig={broken}", "--log-level=error"], capsys)


@pytest.mark.parametrize("command", ["run", "proxy"])
def test_an_unreadable_key_file_is_one_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "key"
    extra = ["--app", "lab=http://127.0.0.1:1"] if command == "proxy" else []
    err = _one_line_failure([command, f"--ticket-key-file={missing}", *extra], capsys)
    assert err == f"rxkube {command}: error: ticket keys: No such file or directory: {missing}\n"


def _busy_port() -> tuple[socket.socket, int]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder, int(holder.getsockname()[1])


def test_a_port_in_use_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RXKUBE_TICKET_KEY", KEY)
    holder, port = _busy_port()
    with holder:
        for argv in (
            ["fake-apiserver", f"--listen=127.0.0.1:{port}", "--no-simulation"],
            ["proxy", "--app", "lab=http://127.0.0.1:1", f"--listen=127.0.0.1:{port}"],
        ):
            err = _one_line_failure(argv, capsys)
            assert f"127.0.0.1:{port}" in err
            assert "in use" in err


def test_describe_names_the_file_and_drops_the_errno() -> None:
    error = FileNotFoundError(2, "No such file or directory", "/etc/rxkube/key")
    assert describe(error) == "No such file or directory: /etc/rxkube/key"
    assert describe(ValueError("two\n  lines")) == "two lines"


def test_an_unexpected_error_keeps_its_traceback() -> None:
    # Only expected failures become one line; a bug must stay visible.
    def broken(args: argparse.Namespace) -> int:
        raise RuntimeError("a bug")

    parser = build_parser()
    args = parser.parse_args(["version"])
    args.handler = broken
    with pytest.raises(RuntimeError, match="a bug"):
        _run_handler(args)


def test_keyboard_interrupt_is_exit_130(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(args: argparse.Namespace) -> int:
        raise BaseExceptionGroup("nursery", [KeyboardInterrupt()])

    args = build_parser().parse_args(["version"])
    args.handler = interrupted
    assert _run_handler(args) == 130
    assert capsys.readouterr().err == "rxkube version: interrupted\n"


def test_a_failure_inside_a_nursery_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def failing(args: argparse.Namespace) -> int:
        raise BaseExceptionGroup("nursery", [OSError(98, "Address already in use")])

    args = build_parser().parse_args(["version"])
    args.handler = failing
    assert _run_handler(args) == 1
    assert capsys.readouterr().err == "rxkube version: error: Address already in use\n"
