"""`rxkube proxy`: static backends parsed from the command line, clear usage errors."""

from __future__ import annotations

import argparse

import pytest

from rxkube.controllers import main
from rxkube.controllers._proxy_cmd import parse_app
from rxkube.proxy import ServerRef


def test_parse_app_makes_stable_server_ids_and_keeps_paths() -> None:
    app = parse_app("lab=http://127.0.0.1:8888,http://[::1]:9000/base")
    assert app.name == "lab"
    first, second = app.servers
    assert first.address == "127.0.0.1:8888"
    assert first.path == "/"
    assert second.address == "[::1]:9000"
    assert second.path == "/base"
    assert first.ref.name == "lab-0"
    assert parse_app("lab=http://127.0.0.1:8888").servers[0].ref == first.ref
    assert isinstance(first.ref, ServerRef)


@pytest.mark.parametrize(
    "text", ["lab", "lab=", "=http://a:1", "lab=https://a:1", "lab=http://a", "lab=ftp://a:1"]
)
def test_parse_app_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_app(text)


def test_bad_flags_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["proxy", "--app", "lab=nope"])
    assert exited.value.code == 2
    assert "backend URL" in capsys.readouterr().err
    assert main(["proxy", "--app", "BAD_NAME=http://127.0.0.1:1"]) == 2
    assert "DNS label" in capsys.readouterr().err
