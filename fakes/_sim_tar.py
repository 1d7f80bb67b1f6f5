"""`tar` for simulated containers: what `kubectl cp` runs inside the pod.

What this module is for: `kubectl cp FILE POD:DIR` runs `tar -xmf - -C DIR` in the container
with the archive on stdin, and `kubectl cp POD:PATH FILE` runs `tar cf - PATH` and reads the
archive from stdout. This module is that `tar`, built on the standard library's `tarfile`
(streaming modes `w|` and `r|`, so an archive is produced member by member) over a
`ContainerFS`. It understands the forms people and kubectl use: the old bundled form (`cf`,
`xvf`), short options (`-xmf -`, `-C DIR`) and the common long ones, the modes `c` `x` `t`,
`f` (`-` is stdin/stdout, the default), `C`, `m`, `v`, `z`, `--strip-components=N`.

What it prints follows GNU tar 1.34: `Removing leading '/' from member names` (and `../`),
`Cannot stat: No such file or directory`, `This does not look like a tar archive`,
`Exiting with failure status due to previous errors`, with status 2 for failures.

Safety: member names are made relative the way GNU tar does it (a leading `/` and everything up
to the last `..` component are removed, with a warning), so an archive never writes outside
the directory it is extracted into; links and devices in an archive are refused (the
filesystem has neither). Archives read from stdin are read whole first (the shell's stdin is
asynchronous; `tarfile` reads synchronously); archives written go out after each member.

It may import the standard library and `_sim_fs`; it knows nothing of shells or Kubernetes
(the `tar` command of `_sim_shell` calls `run_tar`).
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import time as _time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from rxkube.fakes._sim_fs import ContainerFS, Directory, File, FsError, Node

__all__: list[str] = []

Write = Callable[[bytes], Awaitable[None]]
ReadAll = Callable[[], Awaitable[bytes]]

_TRY: Final = "Try 'tar --help' or 'tar --usage' for more information.\n"
_FAILED: Final = "tar: Exiting with failure status due to previous errors\n"
_FATAL: Final = "tar: Error is not recoverable: exiting now\n"
_GZIP_MAGIC: Final = b"\x1f\x8b"
_WITH_ARGUMENT: Final = frozenset("fCb")
_LONG: Final = {
    "--create": "c",
    "--extract": "x",
    "--get": "x",
    "--list": "t",
    "--verbose": "v",
    "--gzip": "z",
    "--gunzip": "z",
    "--touch": "m",
    "--preserve-permissions": "p",
    "--same-permissions": "p",
    "--same-owner": "",
    "--no-same-owner": "o",
    "--no-same-permissions": "",
    "--overwrite": "",
    "--numeric-owner": "",
}
_NOOP: Final = frozenset("poh")


class _Usage(Exception):
    """A command line tar refuses (status 2, the message and the `Try` hint)."""


@dataclass(slots=True)
class TarOptions:
    mode: str = ""
    archive: str = "-"
    directory: str | None = None
    touch: bool = False
    verbose: bool = False
    gzip: bool = False
    strip: int = 0
    operands: list[str] = field(default_factory=list)


def parse_tar_args(args: list[str]) -> TarOptions:
    """GNU tar's three option styles: bundled (`cf x`), short (`-C d`) and long (`--file=x`)."""
    options = TarOptions()
    pending: list[str] = []  # option letters still waiting for their argument

    def letter(flag: str, rest: str, index: int) -> tuple[int, bool]:
        """Apply one short option; returns (next index, rest of the cluster consumed)."""
        if flag in "cxt":
            if options.mode and options.mode != flag:
                raise _Usage(
                    "tar: You may not specify more than one '-Acdtrux', '--delete' or "
                    "'--test-label' option\n"
                )
            options.mode = flag
        elif flag == "v":
            options.verbose = True
        elif flag == "z":
            options.gzip = True
        elif flag == "m":
            options.touch = True
        elif flag in _WITH_ARGUMENT:
            if rest:
                set_value(flag, rest)
                return index, True
            if index >= len(args):
                raise _Usage(f"tar: option requires an argument -- '{flag}'\n")
            set_value(flag, args[index])
            return index + 1, False
        elif flag not in _NOOP:
            raise _Usage(f"tar: invalid option -- '{flag}'\n")
        return index, False

    def set_value(flag: str, value: str) -> None:
        if flag == "f":
            options.archive = value
        elif flag == "C":
            options.directory = value

    index = 0
    if args and not args[0].startswith("-"):
        # The traditional form: the first word is a bundle of letters whose arguments follow.
        bundle = args[0]
        index = 1
        for flag in bundle:
            if flag in _WITH_ARGUMENT:
                pending.append(flag)
            else:
                letter(flag, "", index)
        for flag in pending:
            if index >= len(args):
                raise _Usage(f"tar: option requires an argument -- '{flag}'\n")
            set_value(flag, args[index])
            index += 1
    only_operands = False
    while index < len(args):
        arg = args[index]
        index += 1
        if only_operands or arg == "-" or not arg.startswith("-"):
            options.operands.append(arg)
            continue
        if arg == "--":
            only_operands = True
            continue
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in ("--file", "--directory", "--strip-components"):
                if not eq:
                    if index >= len(args):
                        raise _Usage(f"tar: option '{name}' requires an argument\n")
                    value = args[index]
                    index += 1
                if name == "--file":
                    options.archive = value
                elif name == "--directory":
                    options.directory = value
                else:
                    try:
                        options.strip = int(value)
                    except ValueError:
                        raise _Usage(f"tar: Invalid number of elements: '{value}'\n") from None
                continue
            if name not in _LONG:
                raise _Usage(f"tar: unrecognized option '{arg}'\n")
            if _LONG[name]:
                letter(_LONG[name], "", index)
            continue
        cluster = arg[1:]
        for position, flag in enumerate(cluster):
            index, consumed = letter(flag, cluster[position + 1 :], index)
            if consumed:
                break
    if not options.mode:
        raise _Usage(
            "tar: You must specify one of the '-Acdtrux', '--delete' or '--test-label' options\n"
        )
    if options.mode == "c" and not options.operands:
        raise _Usage("tar: Cowardly refusing to create an empty archive\n")
    return options


def safer_name(name: str) -> tuple[str, str]:
    """GNU tar's `safer_name_suffix`: (the name to use, the prefix removed or "").

    A leading `/` (any number) and everything up to and including the last `..` component
    are removed, so `/etc/x` -> `etc/x`, `../../x` -> `x`, `a/../../b` -> `b`."""
    prefix_len = len(name) - len(name.lstrip("/"))
    parts = name[prefix_len:].split("/")
    last_dotdot = max((i for i, part in enumerate(parts) if part == ".."), default=-1)
    if last_dotdot >= 0:
        kept = "/".join(parts[last_dotdot + 1 :])
        removed = name[: len(name) - len(kept)]
        name = kept
    else:
        removed = name[:prefix_len]
        name = name[prefix_len:]
    return name, removed


class _Run:
    """One tar invocation: its messages and whether something failed."""

    def __init__(self, fs: ContainerFS, stderr: Write, now: Callable[[], float]) -> None:
        self.fs = fs
        self.stderr = stderr
        self.now = now
        self.failed = False
        self.removed: set[str] = set()

    async def error(self, text: str) -> None:
        self.failed = True
        await self.stderr(text.encode("utf-8", "surrogateescape"))

    async def warn_removed(self, prefix: str) -> None:
        # GNU tar says it once per distinct prefix; it is a warning (the status stays 0).
        if prefix and prefix not in self.removed:
            self.removed.add(prefix)
            shown = prefix if prefix.strip("/") else "/"
            await self.stderr(f"tar: Removing leading `{shown}' from member names\n".encode())

    def status(self) -> int:
        return 2 if self.failed else 0


async def run_tar(
    args: list[str],
    fs: ContainerFS,
    cwd: str,
    *,
    read_stdin: ReadAll,
    stdout: Write,
    stderr: Write,
    now: Callable[[], float] = _time.time,
) -> int:
    """Run `tar ARGS` (without the `tar` itself) in `cwd` of `fs`; returns the exit status."""
    try:
        options = parse_tar_args(args)
    except _Usage as usage:
        await stderr(str(usage).encode() + _TRY.encode())
        return 2
    run = _Run(fs, stderr, now)
    base = cwd
    if options.directory is not None:
        if not fs.is_dir(options.directory, cwd):
            problem = (
                "Not a directory"
                if fs.exists(options.directory, cwd)
                else ("No such file or directory")
            )
            await stderr(
                f"tar: {options.directory}: Cannot open: {problem}\n".encode() + _FATAL.encode()
            )
            return 2
        base = fs.resolve(options.directory, cwd)
    if options.mode == "c":
        await _create(run, options, base, cwd, stdout)
        return run.status()
    if options.archive == "-":
        data = await read_stdin()
    else:
        try:
            data = fs.read_file(options.archive, cwd)
        except FsError as error:
            await stderr(
                f"tar: {options.archive}: Cannot open: {error.strerror}\n".encode()
                + _FATAL.encode()
            )
            return 2
    if not data:
        return 0  # GNU tar reads an empty archive as one with no members
    if data.startswith(_GZIP_MAGIC) and not options.gzip and options.archive == "-":
        await stderr(b"tar: Archive is compressed. Use -z option\n" + _FATAL.encode())
        return 2
    if options.gzip and not data.startswith(_GZIP_MAGIC):
        await stderr(
            b"gzip: stdin: not in gzip format\ntar: Child returned status 1\n" + _FATAL.encode()
        )
        return 2
    await _read(run, options, base, data, stdout)
    return run.status()


# -- create -------------------------------------------------------------------------------


class _Collector(io.RawIOBase):
    """What `tarfile` writes, kept until the caller sends it on."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.buffer.extend(data)
        return len(data)

    def take(self) -> bytes:
        out = bytes(self.buffer)
        self.buffer.clear()
        return out


def _info(name: str, node: Node) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = node.mode & 0o7777
    info.mtime = int(node.mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    if isinstance(node, Directory):
        info.type = tarfile.DIRTYPE
    elif isinstance(node, File):
        info.type = tarfile.REGTYPE
        info.size = len(node.data)
    else:
        info.type = tarfile.CHRTYPE
        info.devmajor, info.devminor = 1, 3
    return info


async def _add(
    run: _Run,
    options: TarOptions,
    archive: tarfile.TarFile,
    operand: str,
    base: str,
    listing: Write,
    flush: Callable[[], Awaitable[None]],
) -> None:
    """Archive `operand` (and what is under it), sending each member on as it is added."""
    # GNU tar makes the name safe before it stats the file: the warning comes first.
    await run.warn_removed(safer_name(operand)[1])
    try:
        top = run.fs.lookup(operand, base)
    except FsError as error:
        await run.error(f"tar: {operand}: Cannot stat: {error.strerror}\n")
        return
    start = run.fs.resolve(operand, base)
    for path, node in run.fs.walk(start):
        rel = posixpath.relpath(path, start)
        display = operand if rel == "." else posixpath.join(operand, rel)
        name, removed = safer_name(display)
        await run.warn_removed(removed)
        if not name:
            name = "./" if isinstance(top, Directory) else posixpath.basename(start)
        if options.verbose:
            slash = "/" if isinstance(node, Directory) and not name.endswith("/") else ""
            await listing((name + slash).encode("utf-8", "surrogateescape") + b"\n")
        data = node.data if isinstance(node, File) else b""
        archive.addfile(_info(name, node), io.BytesIO(data) if data else None)
        await flush()


async def _create(run: _Run, options: TarOptions, base: str, cwd: str, stdout: Write) -> None:
    collector = _Collector()
    to_stdout = options.archive == "-"
    # Verbose names go to stdout, unless the archive does (then to stderr, as GNU tar does).
    listing = run.stderr if to_stdout else stdout

    async def flush() -> None:
        if to_stdout and collector.buffer:
            await stdout(collector.take())

    with tarfile.open(
        fileobj=collector,
        mode="w|gz" if options.gzip else "w|",
        format=tarfile.GNU_FORMAT,
    ) as archive:
        for operand in options.operands:
            await _add(run, options, archive, operand, base, listing, flush)
    if to_stdout:
        await flush()
    else:
        try:
            run.fs.write_file(options.archive, collector.take(), cwd=cwd)
        except FsError as error:
            await run.error(f"tar: {options.archive}: Cannot open: {error.strerror}\n")
            return
    if run.failed:
        await run.stderr(_FAILED.encode())


# -- extract and list ---------------------------------------------------------------------


def _long_listing(member: tarfile.TarInfo, name: str) -> str:
    kind = "d" if member.isdir() else "c" if member.ischr() else "l" if member.issym() else "-"
    bits = ""
    for shift in (6, 3, 0):
        part = (member.mode >> shift) & 7
        bits += ("r" if part & 4 else "-") + ("w" if part & 2 else "-") + ("x" if part & 1 else "-")
    owner = f"{member.uname or member.uid}/{member.gname or member.gid}"
    stamp = _time.strftime("%Y-%m-%d %H:%M", _time.gmtime(member.mtime))
    return f"{kind}{bits} {owner} {member.size:>6} {stamp} {name}"


async def _read(run: _Run, options: TarOptions, base: str, data: bytes, stdout: Write) -> None:
    fs = run.fs
    wanted = {o.rstrip("/") for o in options.operands}
    found: set[str] = set()
    directories: list[tuple[str, tarfile.TarInfo]] = []
    try:
        with tarfile.open(
            fileobj=io.BytesIO(data), mode="r|gz" if options.gzip else "r|"
        ) as archive:
            await _members(run, options, archive, base, stdout, wanted, found, directories)
            rest = b"" if options.gzip else data[archive.offset :]
        if rest.strip(b"\0"):
            # tarfile takes a partial header for the end; GNU tar says the archive was cut.
            await run.stderr(b"tar: Unexpected EOF in archive\n" + _FATAL.encode())
            run.failed = True
            return
    except tarfile.ReadError as error:
        text = str(error)
        if "unexpected end" in text or "truncated" in text or "end of file" in text.lower():
            await run.stderr(b"tar: Unexpected EOF in archive\n" + _FATAL.encode())
        else:
            await run.stderr(b"tar: This does not look like a tar archive\n" + _FATAL.encode())
        run.failed = True
        return
    except (EOFError, OSError, tarfile.TarError):
        await run.stderr(b"tar: Unexpected EOF in archive\n" + _FATAL.encode())
        run.failed = True
        return
    # Directory times last: extracting their entries changed them (GNU tar does the same).
    for path, member in reversed(directories):
        node = fs.lookup(path)
        node.mtime = run.now() if options.touch else float(member.mtime)
    for name in sorted(wanted - found):
        await run.error(f"tar: {name}: Not found in archive\n")
    if run.failed:
        await run.stderr(_FAILED.encode())


async def _members(
    run: _Run,
    options: TarOptions,
    archive: tarfile.TarFile,
    base: str,
    stdout: Write,
    wanted: set[str],
    found: set[str],
    directories: list[tuple[str, tarfile.TarInfo]],
) -> None:
    fs = run.fs
    for member in archive:
        raw = member.name
        # tarfile drops the `/` GNU tar writes after a directory's name; listings show it.
        shown = raw + "/" if member.isdir() and not raw.endswith("/") else raw
        if wanted:
            hit = next((w for w in wanted if raw.rstrip("/") == w or raw.startswith(w + "/")), None)
            if hit is None:
                continue
            found.add(hit)
        if options.mode == "t":
            line = _long_listing(member, shown) if options.verbose else shown
            await stdout(line.encode("utf-8", "surrogateescape") + b"\n")
            continue
        name, removed = safer_name(raw)
        await run.warn_removed(removed)
        parts = [p for p in name.split("/") if p and p != "."]
        if options.strip:
            parts = parts[options.strip :]
        if not parts:
            continue
        if options.verbose:
            await stdout(shown.encode("utf-8", "surrogateescape") + b"\n")
        target = fs.resolve("/".join(parts), base)
        # Defence in depth: safer_name leaves no `..`, and the filesystem has no links.
        if target != base and not target.startswith(base.rstrip("/") + "/"):
            await run.error(f"tar: {raw}: Member name contains '..'\n")
            continue
        await _extract_one(run, options, archive, member, raw, target, directories)


async def _extract_one(
    run: _Run,
    options: TarOptions,
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    raw: str,
    target: str,
    directories: list[tuple[str, tarfile.TarInfo]],
) -> None:
    fs = run.fs
    try:
        fs.mkdir(posixpath.dirname(target), parents=True)
    except FsError as error:
        await run.error(f"tar: {raw}: Cannot mkdir: {error.strerror}\n")
        return
    if member.isdir():
        try:
            fs.mkdir(target, parents=True)
        except FsError as error:
            await run.error(f"tar: {raw}: Cannot mkdir: {error.strerror}\n")
            return
        fs.lookup(target).mode = member.mode & 0o7777
        directories.append((target, member))
        return
    if member.isfile():
        reader = archive.extractfile(member)
        payload = reader.read() if reader is not None else b""
        try:
            if fs.is_file(target):
                fs.remove(target)  # GNU tar unlinks first: the new file gets the member's mode
            fs.write_file(target, payload, mode=member.mode & 0o7777)
        except FsError as error:
            await run.error(f"tar: {raw}: Cannot open: {error.strerror}\n")
            return
        node = fs.lookup(target)
        node.mtime = run.now() if options.touch else float(member.mtime)
        return
    if member.issym() or member.islnk():
        kind = "symlink" if member.issym() else "hard link"
        await run.error(
            f"tar: {raw}: Cannot create {kind} to '{member.linkname}': Operation not supported\n"
        )
        return
    await run.error(f"tar: {raw}: Cannot mknod: Operation not permitted\n")
