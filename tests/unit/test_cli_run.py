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
            "--authority-listen=0.0.0.0:9091",
            "--drain-deadline=45s",
        ]
    )
    assert args.namespace == "apps"
    assert args.listen == ListenAddress("0.0.0.0", 8080)
    assert args.metrics == ListenAddress("0.0.0.0", 9090)
    assert args.ticket_key_file == "/var/run/rxkube/ticket-key/key"
    assert args.leader_election is True
    assert args.authority_listen == ListenAddress("0.0.0.0", 9091)
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
        ["run", "--authority-listen=9091"],
        ["run", "--lease-duration=soon"],
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "rxkube run: error:" in capsys.readouterr().err


def test_a_short_ticket_key_is_a_one_line_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "key"
    key.write_text("short\n")
    assert main(["run", f"--ticket-key-file={key}"]) == 1
    assert "at least 32" in capsys.readouterr().err


def test_replication_flags_parse() -> None:
    args = build_parser().parse_args(
        ["run", "--leader-election", "--lease-duration=4s", "--authority-listen=0.0.0.0:9091"]
    )
    assert (args.lease_duration, args.authority_listen) == (4.0, ListenAddress("0.0.0.0", 9091))
    defaults = build_parser().parse_args(["run"])
    assert (defaults.lease_duration, defaults.authority_listen) == (15.0, None)


def test_leader_election_without_a_shared_key_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RXKUBE_TICKET_KEY", raising=False)
    assert main(["run", "--leader-election"]) == 2
    assert "--leader-election needs the replicas' shared ticket key" in capsys.readouterr().err


def test_a_lease_shorter_than_a_second_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "key"
    key.write_text("k" * 32 + "\n")
    argv = ["run", f"--ticket-key-file={key}", "--leader-election", "--lease-duration=500ms"]
    assert main(argv) == 2
    assert "--lease-duration: the lease duration must be at least 1s" in capsys.readouterr().err
