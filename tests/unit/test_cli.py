"""The command line: version, consistent `--listen` parsing, one-line usage errors."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from rxkube.controllers import main
from rxkube.controllers._cli import ListenAddress, parse_listen
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
