"""`rxkube record`: its flags and bad input (the recording itself: tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rxkube.controllers import main
from rxkube.controllers._cli import build_parser

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "http://127.0.0.1:9"}
contexts:
- name: nowhere
  context: {cluster: nowhere, user: nobody, namespace: lab}
users:
- name: nobody
  user: {token: x}
current-context: nowhere
"""


def test_the_flags() -> None:
    args = build_parser().parse_args(
        ["record", "--namespace", "lab", "--out", "lab.jsonl.gz", "--duration", "15m"]
    )
    assert (args.namespace, args.out, args.duration) == ("lab", Path("lab.jsonl.gz"), 900.0)
    assert build_parser().parse_args(["record", "--out", "x.jsonl"]).duration is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: --out"),
        (["--out", "x.jsonl", "--duration", "soon"], "argument --duration"),
        (["--out", "x.jsonl", "--duration", "0"], "expected a duration > 0"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["record", *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_missing_kubeconfig_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope"
    assert main(["record", "--kubeconfig", str(missing), "--out", str(tmp_path / "t.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rxkube record: error: ")
    assert str(missing) in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "t.jsonl").exists()


def test_an_unwritable_trace_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    out = tmp_path / "no-such-dir" / "t.jsonl.gz"
    assert main(["record", "--kubeconfig", str(kubeconfig), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err == f"rxkube record: error: No such file or directory: {out}\n"
