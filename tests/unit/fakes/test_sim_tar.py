"""`tar` in the simulated shell: archives that round-trip through the standard `tarfile`, GNU
tar's texts and statuses, and archives that try to write outside the target directory."""

from __future__ import annotations

import io
import tarfile

import pytest
import trio

from rxkube.fakes import ContainerFS, ExecResult
from rxkube.fakes._sim_fs import File
from rxkube.fakes._sim_shell import Machine, install_commands, run_to_completion
from rxkube.fakes._sim_tar import parse_tar_args, safer_name

NOW = 1_700_000_000.0
BLOB = bytes(range(256)) * 1200  # ~300 KB, every byte value


def machine() -> Machine:
    fs = ContainerFS(now=lambda: NOW)
    install_commands(fs)
    for path in ("/tmp", "/root", "/srv/data/sub"):
        fs.mkdir(path, parents=True)
    fs.write_file("/srv/data/a.txt", "alpha\n")
    fs.write_file("/srv/data/sub/blob.bin", BLOB, mode=0o600)
    fs.lookup("/srv/data/sub/blob.bin").mtime = 1_600_000_000.0
    return Machine(fs, env={"PATH": "/bin"}, now=lambda: NOW)


def run(on: Machine, *argv: str, stdin: bytes = b"") -> ExecResult:
    async def main() -> ExecResult:
        with trio.fail_after(10):
            return await run_to_completion(on, list(argv), stdin=stdin)

    return trio.run(main)


def archive(*members: tuple[str, bytes | None]) -> bytes:
    """A tar stream; a None payload makes a directory."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o640
                info.mtime = 1_500_000_000
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_create_what_kubectl_cp_reads_and_extract_what_it_sends() -> None:
    box = machine()
    made = run(box, "tar", "cf", "-", "/srv/data")
    assert (made.exit_code, made.stderr) == (0, b"tar: Removing leading `/' from member names\n")
    with tarfile.open(fileobj=io.BytesIO(made.stdout), mode="r|") as tar:
        members = {m.name: (m.type, m.mode, m.mtime, m.size) for m in tar}
    assert members == {
        "srv/data": (tarfile.DIRTYPE, 0o755, int(NOW), 0),
        "srv/data/a.txt": (tarfile.REGTYPE, 0o644, int(NOW), 6),
        "srv/data/sub": (tarfile.DIRTYPE, 0o755, int(NOW), 0),
        "srv/data/sub/blob.bin": (tarfile.REGTYPE, 0o600, 1_600_000_000, len(BLOB)),
    }

    # kubectl cp local -> pod: `tar -xmf - -C DIR`; m: mtimes are the time of extraction.
    other = machine()
    done = run(other, "tar", "-xmf", "-", "-C", "/tmp", stdin=made.stdout)
    assert done == ExecResult(0, b"", b"")
    blob = other.fs.lookup("/tmp/srv/data/sub/blob.bin")
    assert isinstance(blob, File)
    assert (blob.data, blob.mode, blob.mtime) == (BLOB, 0o600, NOW)
    # Without m the archive's times are kept.
    kept = run(other, "tar", "xf", "-", "-C", "/root", stdin=made.stdout)
    assert kept.exit_code == 0
    assert other.fs.lookup("/root/srv/data/sub/blob.bin").mtime == 1_600_000_000.0
    assert run(other, "cat", "/root/srv/data/a.txt").stdout == b"alpha\n"


def test_gzip_verbose_list_and_files_in_the_container() -> None:
    box = machine()
    made = run(box, "sh", "-c", "cd /srv && tar czvf /tmp/d.tgz data && tar tzf /tmp/d.tgz")
    assert made.exit_code == 0, made
    assert made.stdout == (
        b"data/\ndata/a.txt\ndata/sub/\ndata/sub/blob.bin\n"  # v (archive in a file)
        b"data/\ndata/a.txt\ndata/sub/\ndata/sub/blob.bin\n"  # t
    )
    listed = run(box, "tar", "-tvzf", "/tmp/d.tgz")
    assert listed.stdout.splitlines()[3] == (
        b"-rw------- root/root 307200 2020-09-13 12:26 data/sub/blob.bin"
    )
    extracted = run(box, "tar", "-xvz", "-f", "/tmp/d.tgz", "--directory=/root")
    assert extracted.stdout == b"data/\ndata/a.txt\ndata/sub/\ndata/sub/blob.bin\n"
    assert box.fs.read_file("/root/data/sub/blob.bin") == BLOB
    only = run(box, "tar", "xzf", "/tmp/d.tgz", "-C", "/tmp", "--strip-components=1", "data/a.txt")
    assert only.exit_code == 0
    assert box.fs.read_file("/tmp/a.txt") == b"alpha\n"
    assert not box.fs.exists("/tmp/sub")


@pytest.mark.parametrize(
    ("argv", "stdin", "stderr"),
    [
        (
            ["tar", "cf", "-", "/nope"],
            b"",
            b"tar: Removing leading `/' from member names\n"
            b"tar: /nope: Cannot stat: No such file or directory\n"
            b"tar: Exiting with failure status due to previous errors\n",
        ),
        (
            ["tar", "xf", "-"],
            b"not a tar archive at all" * 40,
            b"tar: This does not look like a tar archive\n"
            b"tar: Error is not recoverable: exiting now\n",
        ),
        (
            ["tar", "xf", "-"],
            archive(("big", BLOB))[:5000],
            b"tar: Unexpected EOF in archive\ntar: Error is not recoverable: exiting now\n",
        ),
        (
            ["tar", "-xmf", "-", "-C", "/nope"],
            archive(("a", b"x")),
            b"tar: /nope: Cannot open: No such file or directory\n"
            b"tar: Error is not recoverable: exiting now\n",
        ),
        (
            ["tar", "xf", "-", "missing"],
            archive(("a", b"x")),
            b"tar: missing: Not found in archive\n"
            b"tar: Exiting with failure status due to previous errors\n",
        ),
        (
            ["tar", "-xf"],
            b"",
            b"tar: option requires an argument -- 'f'\n"
            b"Try 'tar --help' or 'tar --usage' for more information.\n",
        ),
        (
            ["tar", "f", "-"],
            b"",
            b"tar: You must specify one of the '-Acdtrux', '--delete' or '--test-label' "
            b"options\nTry 'tar --help' or 'tar --usage' for more information.\n",
        ),
        (
            ["tar", "cf", "-"],
            b"",
            b"tar: Cowardly refusing to create an empty archive\n"
            b"Try 'tar --help' or 'tar --usage' for more information.\n",
        ),
        (
            ["tar", "-xQf", "-"],
            b"",
            b"tar: invalid option -- 'Q'\n"
            b"Try 'tar --help' or 'tar --usage' for more information.\n",
        ),
        (
            ["tar", "xf", "-"],
            archive(("a", b"x"))[:0] + b"\x1f\x8b\x08\x00rest",
            b"tar: Archive is compressed. Use -z option\n"
            b"tar: Error is not recoverable: exiting now\n",
        ),
    ],
)
def test_errors_read_as_gnu_tar_and_exit_2(argv: list[str], stdin: bytes, stderr: bytes) -> None:
    result = run(machine(), *argv, stdin=stdin)
    assert (result.exit_code, result.stderr) == (2, stderr)


def test_an_empty_archive_extracts_nothing() -> None:
    assert run(machine(), "tar", "xf", "-") == ExecResult(0, b"", b"")


def test_a_malicious_archive_stays_inside_the_target_directory() -> None:
    box = machine()
    evil = archive(
        ("../../etc/evil", b"owned\n"),
        ("/abs/evil", b"abs\n"),
        ("ok/../../up", b"up\n"),
        ("fine/file", b"fine\n"),
    )
    result = run(box, "tar", "-xmf", "-", "-C", "/tmp", stdin=evil)
    assert result.exit_code == 0
    assert result.stderr == (
        b"tar: Removing leading `../../' from member names\n"
        b"tar: Removing leading `/' from member names\n"
        b"tar: Removing leading `ok/../../' from member names\n"
    )
    assert not box.fs.exists("/etc/evil")
    assert not box.fs.exists("/abs")
    assert not box.fs.exists("/up")
    assert sorted(p for p, _ in box.fs.walk("/tmp")) == [
        "/tmp",
        "/tmp/abs",
        "/tmp/abs/evil",
        "/tmp/etc",
        "/tmp/etc/evil",
        "/tmp/fine",
        "/tmp/fine/file",
        "/tmp/up",
    ]


def test_links_and_devices_are_refused() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        link = tarfile.TarInfo("link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    result = run(machine(), "tar", "xf", "-", "-C", "/tmp", stdin=out.getvalue())
    assert result.exit_code == 2
    assert result.stderr == (
        b"tar: link: Cannot create symlink to '/etc/passwd': Operation not supported\n"
        b"tar: Exiting with failure status due to previous errors\n"
    )


def test_names_and_options() -> None:
    assert safer_name("/etc/hostname") == ("etc/hostname", "/")
    assert safer_name("a/../b/../../c") == ("c", "a/../b/../../")
    assert safer_name("plain/name") == ("plain/name", "")
    options = parse_tar_args(["-xmf", "-", "-C", "/tmp"])
    assert (options.mode, options.archive, options.directory, options.touch) == (
        "x",
        "-",
        "/tmp",
        True,
    )
    bundled = parse_tar_args(["cfC", "out.tar", "/srv", "data"])
    assert (bundled.mode, bundled.archive, bundled.directory, bundled.operands) == (
        "c",
        "out.tar",
        "/srv",
        ["data"],
    )
