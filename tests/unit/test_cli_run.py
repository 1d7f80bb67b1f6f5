"""`rxkube run`: the flags deploy/deployment.yaml passes parse; bad ones are usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rxkube.controllers._cli import ListenAddress, build_parser, main


def test_the_deployment_manifests_arguments_parse() -> None:
    args = build_parser().parse_args(
        [
            "run",
            "--namespace=apps",
            "--listen=0.0.0.0:8080",
            "--metrics=0.0.0.0:9090",
            "--ticket-key-file=/var/run/rxkube/ticket-key/key",
            "--leader-election",
            "--drain-deadline=45s",
        ]
    )
    assert args.namespace == "apps"
    assert args.listen == ListenAddress("0.0.0.0", 8080)
    assert args.metrics == ListenAddress("0.0.0.0", 9090)
    assert args.ticket_key_file == "/var/run/rxkube/ticket-key/key"
    assert args.leader_election is True
    assert args.drain_deadline == 45.0
    defaults = build_parser().parse_args(["run"])
    assert (defaults.metrics, defaults.drain_deadline, defaults.log_format) == (None, 30.0, "text")
    assert build_parser().parse_args(["run", "--drain-deadline=1m30s"]).drain_deadline == 90.0


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--drain-deadline=soon"],
        ["run", "--drain-deadline=-5"],
        ["run", "--listen=8080"],
        ["run", "--metrics=host:http"],
        ["run", "--log-format=xml"],
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "rxkube run: error:" in capsys.readouterr().err


def test_a_short_ticket_key_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "key"
    key.write_text("short\n")
    assert main(["run", f"--ticket-key-file={key}"]) == 2
    assert "at least 32" in capsys.readouterr().err
