"""`rxkube replay`: the summary, what-if settings, the timeline file, bad input."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from rxkube.controllers import main
from rxkube.streams import sample_trace_path


def test_a_plain_replay_prints_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(sample_trace_path()), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "242 events over 0.24 h, recorded replay" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("app"))
    assert "peak users" in header
    assert "pod-hours" in header
    assert [line.split()[0] for line in lines[lines.index(header) + 1 :]][:3] == [
        "gmweb",
        "notebook",
        "all",
    ]


def test_a_what_if_writes_its_timeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv, jsonl = tmp_path / "t.csv", tmp_path / "t.jsonl"
    argv = ["replay", str(sample_trace_path()), "--set", "*.tickets.spare=3", "--timeline"]
    assert main([*argv, str(csv)]) == 0
    captured = capsys.readouterr()
    assert "simulated replay with *.tickets.spare=3" in captured.out
    assert "events/s" in captured.err  # the progress line
    rows = csv.read_text().splitlines()
    assert rows[0].startswith("t,app,users,free_tickets,waiting")
    assert f"timeline: {len(rows) - 1} rows written to {csv}" in captured.out
    assert main([*argv, str(jsonl), "--quiet"]) == 0
    kinds = {orjson.loads(line)["kind"] for line in jsonl.read_text().splitlines()}
    assert {"step", "served"} <= kinds


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--set", "nb.pods.min=1"], 2, "unknown setting 'pods.min'"),
        (["--set", "tickets.spare"], 2, "expected APP.SETTING=VALUE"),
        (["--set", "*.tickets.max=0"], 2, "*.tickets.max=0:"),
        (["--timeline", "out.txt"], 2, "--timeline must end in .csv or .jsonl"),
    ],
)
def test_bad_settings_are_usage_errors(
    argv: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(sample_trace_path()), "--quiet", *argv]) == code
    err = capsys.readouterr().err
    assert err.startswith("rxkube replay: error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_a_bad_trace_is_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "something else"}\n')
    assert main(["replay", str(bad), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "not an rxkube trace header" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["replay", str(tmp_path / "missing.jsonl"), "--quiet"]) == 1
    assert "cannot open the trace" in capsys.readouterr().err


def test_run_takes_a_trace_to_record() -> None:
    from rxkube.controllers._cli import build_parser

    args = build_parser().parse_args(["run", "--record", "/tmp/run.jsonl.gz"])
    assert args.record == Path("/tmp/run.jsonl.gz")
