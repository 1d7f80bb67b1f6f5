"""The simulated container's shell and commands: outputs, error texts and exit codes as dash and
coreutils give them, bytes kept as bytes, `sleep` on trio's clock (no sockets)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from rxkube.fakes import ContainerFS, ExecResult
from rxkube.fakes._sim_shell import (
    IO,
    Buffer,
    Input,
    Machine,
    install_commands,
    run_command,
    run_to_completion,
)

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def machine() -> Machine:
    fs = ContainerFS(now=lambda: 1_700_000_000.0)
    install_commands(fs)
    for path in ("/tmp", "/root", "/dev", "/etc"):
        fs.mkdir(path, parents=True)
    fs.add_sink("/dev/null", None)
    fs.write_file("/etc/hostname", "web-1\n")
    return Machine(fs, hostname="web-1", env={"PATH": PATH, "HOME": "/root", "GREETING": "hi"})


async def run(argv: list[str], *, stdin: bytes = b"", on: Machine | None = None) -> ExecResult:
    return await run_to_completion(on or machine(), argv, stdin=stdin)


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


CASES: list[tuple[list[str], int, bytes, bytes]] = [
    # (argv, exit code, stdout, stderr)
    (sh("echo hello"), 0, b"hello\n", b""),
    (sh("echo a; echo b"), 0, b"a\nb\n", b""),
    (sh("false && echo no || echo yes"), 0, b"yes\n", b""),
    (sh("true || echo no; echo $?"), 0, b"0\n", b""),
    (sh("exit 3"), 3, b"", b""),
    (sh("exit 300"), 44, b"", b""),
    (sh("nosuch"), 127, b"", b"sh: 1: nosuch: not found\n"),
    (sh("echo one\nnosuch arg"), 127, b"one\n", b"sh: 2: nosuch: not found\n"),
    (sh("nosuch; echo $?"), 0, b"127\n", b"sh: 1: nosuch: not found\n"),
    (["bash", "-c", "nosuch"], 127, b"", b"bash: line 1: nosuch: command not found\n"),
    (sh("echo 'unterminated"), 2, b"", b"sh: 1: Syntax error: Unterminated quoted string\n"),
    (sh("if then"), 2, b"", b'sh: 1: Syntax error: "then" unexpected\n'),
    (
        sh("if true; then echo x"),
        2,
        b"",
        b'sh: 1: Syntax error: end of file unexpected (expecting "fi")\n',
    ),
    (sh("echo a && && echo b"), 2, b"", b'sh: 1: Syntax error: "&&" unexpected\n'),
    (sh("echo $GREETING ${GREETING}! \"$HOME\" '$HOME'"), 0, b"hi hi! /root $HOME\n", b""),
    (sh("echo ${NOPE:-fallback} ${GREETING:+set}"), 0, b"fallback set\n", b""),
    (sh("X=1; Y=$((X + 2 * 3)); echo $Y $((7 / 2)) $((7 % 3)) $((1 < 2))"), 0, b"7 3 1 1\n", b""),
    (sh("echo $(echo inner) `hostname`"), 0, b"inner web-1\n", b""),
    (sh("for i in 1 2 3; do echo $i; done"), 0, b"1\n2\n3\n", b""),
    (sh("i=0; while [ $i -lt 3 ]; do i=$((i+1)); done; echo $i"), 0, b"3\n", b""),
    (sh("until false; do echo once; break; done"), 0, b"once\n", b""),
    (
        sh("if [ -f /etc/hostname ]; then echo f; elif true; then echo e; else echo n; fi"),
        0,
        b"f\n",
        b"",
    ),
    (sh("if test -d /nope; then echo d; else echo no; fi"), 0, b"no\n", b""),
    (
        sh("[ 1 -eq 2 ]; echo $?; [ a = a ] && echo eq; [ -z '' ] && echo empty"),
        0,
        b"1\neq\nempty\n",
        b"",
    ),
    (sh("[ x"), 2, b"", b"sh: 1: [: missing ]\n"),
    (sh("echo out; echo err >&2"), 0, b"out\n", b"err\n"),
    (sh("echo err 1>&2 2>/dev/null"), 0, b"", b"err\n"),
    (sh("nosuch 2>/dev/null; echo $?"), 0, b"127\n", b""),
    (sh("{ echo a; echo b; } | wc -l"), 0, b"2\n", b""),
    (sh("seq 1 100000 | head -n 2"), 0, b"1\n2\n", b""),
    (sh("printf '%s=%d\\n' a 1 b 2"), 0, b"a=1\nb=2\n", b""),
    (sh("printf '%5s|%-3s|%03d\\n' x y 7"), 0, b"    x|y  |007\n", b""),
    (sh("echo 'a\\nb'"), 0, b"a\nb\n", b""),  # dash's echo interprets escapes
    (["echo", "-n", "raw\\n"], 0, b"raw\\n", b""),  # coreutils' does not
    (sh("cat /nope"), 1, b"", b"cat: /nope: No such file or directory\n"),
    (sh("cat /tmp"), 1, b"", b"cat: /tmp: Is a directory\n"),
    (sh("ls /nope"), 2, b"", b"ls: cannot access '/nope': No such file or directory\n"),
    (sh("ls /etc /root"), 0, b"/etc:\nhostname\n\n/root:\n", b""),
    (
        sh("mkdir /tmp/a/b"),
        1,
        b"",
        b"mkdir: cannot create directory '/tmp/a/b': No such file or directory\n",
    ),
    (sh("mkdir -p /tmp/a/b && ls /tmp/a"), 0, b"b\n", b""),
    (sh("mkdir /tmp"), 1, b"", b"mkdir: cannot create directory '/tmp': File exists\n"),
    (sh("rm /tmp"), 1, b"", b"rm: cannot remove '/tmp': Is a directory\n"),
    (
        sh("rm /tmp/nope; rm -f /tmp/nope"),
        0,
        b"",
        b"rm: cannot remove '/tmp/nope': No such file or directory\n",
    ),
    (sh("echo x > /nope/f"), 2, b"", b"sh: 1: cannot create /nope/f: Directory nonexistent\n"),
    (sh("echo x > /tmp"), 2, b"", b"sh: 1: cannot create /tmp: Is a directory\n"),
    (sh("cat < /nope"), 2, b"", b"sh: 1: cannot open /nope: No such file\n"),
    (sh("echo a > /tmp/f; echo b >> /tmp/f; cat /tmp/f; wc -l < /tmp/f"), 0, b"a\nb\n2\n", b""),
    (sh("echo a > /tmp/f; echo b > /tmp/f; cat /tmp/f"), 0, b"b\n", b""),
    (sh("cd /tmp && touch x y && echo * && pwd"), 0, b"x y\n/tmp\n", b""),
    (sh("cd /nope"), 2, b"", b"sh: 1: cd: can't cd to /nope\n"),
    (sh("set -e; echo one; false; echo two"), 1, b"one\n", b""),
    (sh("set -e; false || echo rescued; ! false; echo end"), 0, b"rescued\nend\n", b""),
    (sh("env | grep -c GREETING; printenv HOME"), 0, b"1\n/root\n", b""),
    (sh("export A=1; sh -c 'echo $A'"), 0, b"1\n", b""),
    (sh("(X=inner); echo ${X:-outer}"), 0, b"outer\n", b""),
    (
        sh("echo hello | grep -q ell && echo found; echo abc | grep x; echo $?"),
        0,
        b"found\n1\n",
        b"",
    ),
    (sh("printf 'b\\na\\nc\\n' | tail -n 2 | head -1"), 0, b"a\n", b""),
    (sh("echo -n abc | wc -c"), 0, b"3\n", b""),
    (
        sh("sleep nope"),
        1,
        b"",
        b"sleep: invalid time interval 'nope'\nTry 'sleep --help' for more information.\n",
    ),
    (
        sh("basename /a/b.txt .txt; dirname /a/b.txt; uname; whoami; hostname"),
        0,
        b"b\n/a\nLinux\nroot\nweb-1\n",
        b"",
    ),
    (sh("kill 42"), 1, b"", b"kill: (42) - No such process\n"),
    (
        ["nosuch"],
        126,
        b'OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuch": '
        b"executable file not found in $PATH: unknown\r\n",
        b"",
    ),
    (["/bin/cat", "/etc/hostname"], 0, b"web-1\n", b""),
    (sh("/tmp/script"), 127, b"", b"sh: 1: /tmp/script: not found\n"),
    (
        sh("echo 'echo from script' > /tmp/s; sh /tmp/s; /tmp/s"),
        126,
        b"from script\n",
        b"sh: 1: /tmp/s: Permission denied\n",
    ),
    (
        sh("printf '#!/bin/sh\\necho ran $1\\n' > /tmp/s; chmod +x /tmp/s; /tmp/s arg"),
        0,
        b"ran arg\n",
        b"",
    ),
]


@pytest.mark.parametrize(("argv", "code", "stdout", "stderr"), CASES)
async def test_commands(argv: list[str], code: int, stdout: bytes, stderr: bytes) -> None:
    result = await run(argv)
    assert (result.exit_code, result.stdout, result.stderr) == (code, stdout, stderr)


async def test_binary_files_round_trip_through_stdin_and_cat() -> None:
    box = machine()
    payload = bytes(range(256)) * 4
    written = await run(sh("cat > /tmp/blob"), stdin=payload, on=box)
    assert written.exit_code == 0
    assert box.fs.read_file("/tmp/blob") == payload
    read = await run(["cat", "/tmp/blob"], on=box)
    assert read == ExecResult(0, payload, b"")
    escapes = await run(sh("printf '\\000\\377\\x41'"), on=box)
    assert escapes.stdout == b"\x00\xffA"


async def test_files_written_by_tests_are_seen_by_commands() -> None:
    box = machine()
    box.fs.mkdir("/data")
    box.fs.write_file("/data/config.json", b'{"a": 1}')
    result = await run(sh("test -s /data/config.json && cat /data/config.json"), on=box)
    assert result == ExecResult(0, b'{"a": 1}', b"")


async def test_sleep_takes_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    result = await run(sh("sleep 1.5; sleep 2s; echo done"))
    assert result.stdout == b"done\n"
    assert trio.current_time() - start == 3.5


async def test_a_pipe_reader_that_stops_early_ends_the_writer() -> None:
    # `yes`-like output into `head`: the writer gets SIGPIPE (141), the pipeline ends.
    result = await run(sh("while true; do echo y; done | head -n 3; echo after"))
    assert result == ExecResult(0, b"y\ny\ny\nafter\n", b"")


async def test_kill_1_signals_the_main_process() -> None:
    box = machine()
    signals: list[int] = []
    box.kill_main = signals.append
    assert (await run(sh("kill 1; kill -9 1; kill -s 2 1"), on=box)).exit_code == 0
    assert signals == [15, 9, 2]


async def test_an_interactive_shell_on_a_tty_echoes_prompts_and_exits() -> None:
    out = Buffer()
    keystrokes = [b"echo hi\r", b"nosuch\r", b"exit 3\r"]

    async def type_a_line() -> bytes:
        return keystrokes.pop(0) if keystrokes else b""

    typed = Input(type_a_line)
    code = await run_command(machine(), ["sh"], IO(typed, out.write, out.write), tty=True)
    assert code == 3
    assert bytes(out.data) == (
        b"# echo hi\r\nhi\n# nosuch\r\nsh: 2: nosuch: not found\n# exit 3\r\n"
    )


async def test_an_interactive_shell_without_a_tty_reads_a_script_from_stdin() -> None:
    result = await run(["sh"], stdin=b"echo one\nif true; then\n  echo two\nfi\nexit 4\n")
    assert result == ExecResult(4, b"one\ntwo\n", b"")
