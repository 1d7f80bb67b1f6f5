"""A small in-memory filesystem for one simulated container (what `exec` commands act on).

What this module is for: the files a simulated container has (`/etc/hostname`, `/tmp`, mounted
ConfigMaps, whatever a test or an `exec` wrote), kept as bytes so that binary content written
through `exec` stdin reads back byte for byte. Paths are POSIX paths resolved against a working
directory; errors carry an errno name and the C library's text so that the commands of
`_sim_shell` print what coreutils and dash print. Two kinds of node are special: a `Sink` (for
`/dev/null`, or `/proc/1/fd/1` whose writes go to the container's log) and directories. Pure:
no I/O, no clock (modification times come from the injected `now`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = ["ContainerFS", "FsError"]

_STRERROR = {
    "ENOENT": "No such file or directory",
    "ENOTDIR": "Not a directory",
    "EISDIR": "Is a directory",
    "EEXIST": "File exists",
    "ENOTEMPTY": "Directory not empty",
    "EACCES": "Permission denied",
    "EINVAL": "Invalid argument",
}


class FsError(Exception):
    """A failed filesystem call: `errno` (`ENOENT`, ...), `path`, and the C library's text."""

    def __init__(self, errno: str, path: str) -> None:
        self.errno = errno
        self.path = path
        self.strerror = _STRERROR.get(errno, errno)
        super().__init__(f"{path}: {self.strerror}")


@dataclass(slots=True)
class File:
    data: bytes = b""
    mode: int = 0o644
    mtime: float = 0.0


@dataclass(slots=True)
class Sink:
    """A character device: reads are empty; writes go to `write` (or nowhere)."""

    write: Callable[[bytes], None] | None = None
    mode: int = 0o666
    mtime: float = 0.0


@dataclass(slots=True)
class Directory:
    children: dict[str, Node] = field(default_factory=dict)
    mode: int = 0o755
    mtime: float = 0.0


Node = File | Sink | Directory


class ContainerFS:
    """The files of one container instance. All paths may be relative to `cwd` arguments."""

    def __init__(self, *, now: Callable[[], float] = lambda: 0.0) -> None:
        self.now = now
        self.root = Directory(mtime=now())

    # -- paths -----------------------------------------------------------------------------

    @staticmethod
    def resolve(path: str, cwd: str = "/") -> str:
        """An absolute, normalized path (`..` above `/` stays at `/`)."""
        joined = path if path.startswith("/") else posixpath.join(cwd, path)
        normal = posixpath.normpath(joined)
        # normpath keeps a leading "//"; POSIX allows it to mean something else, we do not.
        return "/" + normal.lstrip("/")

    def _parts(self, path: str, cwd: str) -> list[str]:
        return [p for p in self.resolve(path, cwd).split("/") if p]

    def lookup(self, path: str, cwd: str = "/") -> Node:
        """The node at `path`, or FsError ENOENT/ENOTDIR."""
        node: Node = self.root
        for part in self._parts(path, cwd):
            if not isinstance(node, Directory):
                raise FsError("ENOTDIR", path)
            child = node.children.get(part)
            if child is None:
                raise FsError("ENOENT", path)
            node = child
        return node

    def _parent(self, path: str, cwd: str) -> tuple[Directory, str]:
        parts = self._parts(path, cwd)
        if not parts:
            raise FsError("EISDIR", path)
        node: Node = self.root
        for part in parts[:-1]:
            if not isinstance(node, Directory):
                raise FsError("ENOTDIR", path)
            child = node.children.get(part)
            if child is None:
                raise FsError("ENOENT", path)
            node = child
        if not isinstance(node, Directory):
            raise FsError("ENOTDIR", path)
        return node, parts[-1]

    # -- queries ---------------------------------------------------------------------------

    def exists(self, path: str, cwd: str = "/") -> bool:
        try:
            self.lookup(path, cwd)
        except FsError:
            return False
        return True

    def is_dir(self, path: str, cwd: str = "/") -> bool:
        try:
            return isinstance(self.lookup(path, cwd), Directory)
        except FsError:
            return False

    def is_file(self, path: str, cwd: str = "/") -> bool:
        try:
            return isinstance(self.lookup(path, cwd), File)
        except FsError:
            return False

    def listdir(self, path: str, cwd: str = "/") -> list[str]:
        node = self.lookup(path, cwd)
        if not isinstance(node, Directory):
            raise FsError("ENOTDIR", path)
        return sorted(node.children)

    def walk(self, path: str = "/") -> Iterator[tuple[str, Node]]:
        """Every (absolute path, node) under `path`, parents first."""
        start = self.resolve(path)
        stack: list[tuple[str, Node]] = [(start, self.lookup(start))]
        while stack:
            here, node = stack.pop()
            yield here, node
            if isinstance(node, Directory):
                for name in sorted(node.children, reverse=True):
                    stack.append((posixpath.join(here, name), node.children[name]))

    # -- reads and writes ------------------------------------------------------------------

    def read_file(self, path: str, cwd: str = "/") -> bytes:
        node = self.lookup(path, cwd)
        if isinstance(node, Directory):
            raise FsError("EISDIR", path)
        if isinstance(node, Sink):
            return b""
        return node.data

    def write_file(
        self,
        path: str,
        data: bytes | str,
        *,
        append: bool = False,
        cwd: str = "/",
        mode: int | None = None,
    ) -> None:
        """Create or truncate (or append to) a regular file; the parent must exist."""
        payload = data.encode() if isinstance(data, str) else bytes(data)
        parent, name = self._parent(path, cwd)
        node = parent.children.get(name)
        if isinstance(node, Directory):
            raise FsError("EISDIR", path)
        if isinstance(node, Sink):
            if node.write is not None and payload:
                node.write(payload)
            return
        now = self.now()
        if node is None:
            parent.children[name] = File(payload, mode if mode is not None else 0o644, now)
            parent.mtime = now
            return
        node.data = node.data + payload if append else payload
        node.mtime = now
        if mode is not None:
            node.mode = mode

    def touch(self, path: str, cwd: str = "/") -> None:
        parent, name = self._parent(path, cwd)
        node = parent.children.get(name)
        if node is None:
            self.write_file(path, b"", cwd=cwd)
        else:
            node.mtime = self.now()

    def add_sink(self, path: str, write: Callable[[bytes], None] | None) -> None:
        """A device file at `path` (parents are created)."""
        self.mkdir(posixpath.dirname(self.resolve(path)), parents=True)
        parent, name = self._parent(path, "/")
        parent.children[name] = Sink(write, mtime=self.now())

    def mkdir(self, path: str, *, parents: bool = False, cwd: str = "/", mode: int = 0o755) -> None:
        """`mkdir` (EEXIST if present) or `mkdir -p` (existing directories are fine)."""
        if parents:
            node: Node = self.root
            for part in self._parts(path, cwd):
                if not isinstance(node, Directory):
                    raise FsError("ENOTDIR", path)
                child = node.children.get(part)
                if child is None:
                    child = node.children[part] = Directory(mode=mode, mtime=self.now())
                elif not isinstance(child, Directory):
                    raise FsError("EEXIST", path)
                node = child
            return
        parent, name = self._parent(path, cwd)
        if name in parent.children:
            raise FsError("EEXIST", path)
        parent.children[name] = Directory(mode=mode, mtime=self.now())
        parent.mtime = self.now()

    def remove(self, path: str, *, recursive: bool = False, cwd: str = "/") -> None:
        """`rm` (EISDIR for a directory unless `recursive`)."""
        parent, name = self._parent(path, cwd)
        node = parent.children.get(name)
        if node is None:
            raise FsError("ENOENT", path)
        if isinstance(node, Directory) and not recursive:
            raise FsError("EISDIR", path)
        del parent.children[name]
        parent.mtime = self.now()

    def rmdir(self, path: str, cwd: str = "/") -> None:
        parent, name = self._parent(path, cwd)
        node = parent.children.get(name)
        if node is None:
            raise FsError("ENOENT", path)
        if not isinstance(node, Directory):
            raise FsError("ENOTDIR", path)
        if node.children:
            raise FsError("ENOTEMPTY", path)
        del parent.children[name]

    def move(self, source: str, target: str, cwd: str = "/") -> None:
        """`mv`: into `target` when it is a directory, else to the name `target`."""
        node = self.lookup(source, cwd)
        if self.is_dir(target, cwd):
            target = posixpath.join(self.resolve(target, cwd), posixpath.basename(source))
        dest_parent, dest_name = self._parent(target, cwd)
        src_parent, src_name = self._parent(source, cwd)
        del src_parent.children[src_name]
        dest_parent.children[dest_name] = node
