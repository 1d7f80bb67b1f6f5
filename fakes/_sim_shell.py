"""A small POSIX shell and coreutils for simulated containers: what `exec` runs.

What this module is for: `kubectl exec POD -- CMD`, the official client's `stream(...)` and the
orchestrator's `pods.exec` need a container that answers commands the way a Debian image would,
without running anything on the host. This module interprets `argv` against a `ContainerFS`:

- `sh -c SCRIPT` (and `bash -c`) with a dash-like grammar: `;` `&&` `||` `|` `!`, newlines,
  comments, `'...'` `"..."` and `\\` quoting, `$VAR` `${VAR}` `${VAR:-x}` `$?` `$$` `$#` `$@`
  `$1`, `$(...)` and backquotes, `$((arithmetic))`, globs, redirections `>` `>>` `<` `2>`
  `2>&1` `>&2`, `if/elif/else/fi`, `for/in/do/done`, `while`/`until`, `{ ...; }`, `( ... )`,
  `set -e`; an interactive `sh` reading stdin (echo and prompt on a tty);
- the commands `cat echo printf ls mkdir rmdir rm touch cp mv chmod env printenv sleep true
  false test [ pwd cd export unset read exit hostname whoami id head tail wc grep tee date
  uname basename dirname seq kill tar` (`tar` lives in `_sim_tar`) with the output and error
  texts of coreutils and dash (`sh: 1: X: not found` and status 127 for an unknown command in
  a script; status 126 and the container runtime's "executable file not found" text when
  `exec` names one directly).

Bytes are bytes: files, stdin and stdout are never decoded, so binary data round-trips
(`cat` of a binary file returns its bytes). Time comes from the injected `Machine.sleep` and
`Machine.now` (the simulation's trio clock, so `sleep 5` takes five virtual seconds under
trio's MockClock). Not supported (a syntax error says so): here-documents, functions, `case`,
background jobs (`&` runs in the foreground). It may import trio, the standard library and
`_sim_fs`; it knows nothing of Kubernetes.
"""

from __future__ import annotations

import ast
import fnmatch
import math
import operator
import posixpath
import re
import time as _time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

import trio

from rxkube.fakes._sim_fs import ContainerFS, Directory, File, FsError, Sink
from rxkube.fakes._sim_tar import run_tar

__all__ = ["ExecResult"]

PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SIGNALS: Final = {"HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12, "TERM": 15}


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What a finished command gave: its exit code and everything it wrote."""

    exit_code: int
    stdout: bytes
    stderr: bytes


# -- the machine a command runs on --------------------------------------------------------


@dataclass(slots=True)
class Machine:
    """What commands may reach besides the filesystem: the clock, identity, the main process."""

    fs: ContainerFS
    hostname: str = "localhost"
    env: dict[str, str] = field(default_factory=dict)
    now: Callable[[], float] = _time.time
    sleep: Callable[[float], Awaitable[None]] = trio.sleep
    kill_main: Callable[[int], None] | None = None
    """Called with a signal number by `kill 1` (the kubelet turns it into an exit)."""


# -- I/O ----------------------------------------------------------------------------------


class BrokenPipe(Exception):
    """The reader of a pipe went away (the writer ends with status 141, as on SIGPIPE)."""


class Input:
    """A command's stdin: chunks from a source until EOF (b"")."""

    def __init__(self, source: Callable[[], Awaitable[bytes]] | None = None) -> None:
        self._source = source
        self._buffer = bytearray()
        self._eof = source is None

    @classmethod
    def of(cls, data: bytes) -> Input:
        stream = cls(None)
        stream._buffer.extend(data)
        return stream

    async def _fill(self) -> bool:
        if self._eof or self._source is None:
            return False
        chunk = await self._source()
        if not chunk:
            self._eof = True
            return False
        self._buffer.extend(chunk)
        return True

    async def read(self) -> bytes:
        """The next chunk (b"" at EOF)."""
        if not self._buffer:
            await self._fill()
        out = bytes(self._buffer)
        self._buffer.clear()
        return out

    async def read_all(self) -> bytes:
        while await self._fill():
            pass
        out = bytes(self._buffer)
        self._buffer.clear()
        return out

    async def readline(self) -> bytes:
        """One line with its newline (the rest at EOF; b"" when nothing is left)."""
        while b"\n" not in self._buffer and await self._fill():
            pass
        index = self._buffer.find(b"\n")
        end = len(self._buffer) if index < 0 else index + 1
        out = bytes(self._buffer[:end])
        del self._buffer[:end]
        return out


Write = Callable[[bytes], Awaitable[None]]


async def _discard(_data: bytes) -> None:
    return None


class Buffer:
    """An output collected in memory (command substitution, in-process exec)."""

    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, data: bytes) -> None:
        self.data.extend(data)


@dataclass(slots=True)
class IO:
    stdin: Input
    stdout: Write
    stderr: Write

    def with_fd(self, fd: int, write: Write) -> IO:
        if fd == 1:
            return IO(self.stdin, write, self.stderr)
        if fd == 2:
            return IO(self.stdin, self.stdout, write)
        return self


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _s(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


# -- syntax -------------------------------------------------------------------------------


class ShellSyntaxError(Exception):
    """`eof` is True when more input could complete the script (interactive sh waits)."""

    def __init__(self, message: str, line: int, *, eof: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.eof = eof


@dataclass(slots=True)
class Part:
    kind: str  # lit | var | cmd | arith
    text: str
    quoted: bool
    default: str | None = None  # ${VAR:-default}
    default_op: str = ""


@dataclass(slots=True)
class Word:
    parts: list[Part]
    line: int

    def literal(self) -> str | None:
        """The text when the word is plain unquoted literal text (reserved words, names)."""
        if all(p.kind == "lit" and not p.quoted for p in self.parts):
            return "".join(p.text for p in self.parts)
        return None

    def raw(self) -> str:
        return "".join(p.text for p in self.parts)


@dataclass(slots=True)
class Op:
    op: str
    line: int


@dataclass(slots=True)
class RedirTok:
    fd: int
    op: str
    line: int


Token = Word | Op | RedirTok

_OPERATORS: Final = ("&&", "||", ";;", ">>", ">&", "<&", "<<", ";", "&", "|", "(", ")", ">", "<")
_VAR_START: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _matching(text: str, start: int, open_: str, close: str) -> int:
    """Index of the `close` matching the `open_` just before `start` (quotes skipped)."""
    depth = 1
    i = start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                return -1
            i = end + 1
            continue
        if c == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if text.startswith(open_, i):
            depth += 1
            i += len(open_)
            continue
        if text.startswith(close, i):
            depth -= 1
            if depth == 0:
                return i
            i += len(close)
            continue
        i += 1
    return -1


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    parts: list[Part] = []
    line = 1
    word_line = 1
    started = False
    i = 0
    n = len(text)

    def lit(s: str, quoted: bool) -> None:
        if parts and parts[-1].kind == "lit" and parts[-1].quoted == quoted:
            parts[-1].text += s
        else:
            parts.append(Part("lit", s, quoted))

    def end_word() -> None:
        nonlocal parts, started
        if started:
            tokens.append(Word(parts, word_line))
        parts = []
        started = False

    def begin() -> None:
        nonlocal started, word_line
        if not started:
            started = True
            word_line = line

    def dollar(at: int, quoted: bool) -> int:
        """Parse a `$` expansion at `at`; returns the index after it."""
        nxt = text[at + 1] if at + 1 < n else ""
        if text.startswith("$((", at):
            end = _matching(text, at + 3, "((", "))")
            if end < 0:
                raise ShellSyntaxError("Missing '))'", line, eof=True)
            parts.append(Part("arith", text[at + 3 : end], quoted))
            return end + 2
        if nxt == "(":
            end = _matching(text, at + 2, "(", ")")
            if end < 0:
                raise ShellSyntaxError("Missing ')'", line, eof=True)
            parts.append(Part("cmd", text[at + 2 : end], quoted))
            return end + 1
        if nxt == "{":
            end = text.find("}", at + 2)
            if end < 0:
                raise ShellSyntaxError("Missing '}'", line, eof=True)
            inner = text[at + 2 : end]
            match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[?$#@*!-])(:?[-=+?])?(.*)", inner)
            if match is None or (match.group(3) and not match.group(2)):
                raise ShellSyntaxError(f"${{{inner}}}: Bad substitution", line)
            part = Part("var", match.group(1), quoted)
            if match.group(2):
                part.default_op = match.group(2)
                part.default = match.group(3)
            parts.append(part)
            return end + 1
        if nxt and (nxt in "?$#@*!-" or nxt.isdigit()):
            parts.append(Part("var", nxt, quoted))
            return at + 2
        match = _VAR_START.match(text, at + 1)
        if match:
            parts.append(Part("var", match.group(0), quoted))
            return match.end()
        lit("$", quoted)
        return at + 1

    while i < n:
        c = text[i]
        if c == "\n":
            end_word()
            tokens.append(Op("\n", line))
            line += 1
            i += 1
            continue
        if c in " \t\r":
            end_word()
            i += 1
            continue
        if c == "#" and not started:
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c == "\\":
            if i + 1 < n and text[i + 1] == "\n":
                line += 1
                i += 2
                continue
            begin()
            lit(text[i + 1] if i + 1 < n else "\\", True)
            i += 2
            continue
        if c == "'":
            begin()
            end = text.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("Unterminated quoted string", line, eof=True)
            lit(text[i + 1 : end], True)
            line += text.count("\n", i, end)
            i = end + 1
            continue
        if c == '"':
            begin()
            parts.append(Part("lit", "", True))  # keeps "" a (empty) word
            i += 1
            while True:
                if i >= n:
                    raise ShellSyntaxError("Unterminated quoted string", line, eof=True)
                d = text[i]
                if d == '"':
                    i += 1
                    break
                if d == "\\" and i + 1 < n and text[i + 1] in '$`"\\\n':
                    if text[i + 1] != "\n":
                        lit(text[i + 1], True)
                    i += 2
                    continue
                if d == "$":
                    i = dollar(i, True)
                    continue
                if d == "`":
                    end = text.find("`", i + 1)
                    if end < 0:
                        raise ShellSyntaxError("Unterminated quoted string", line, eof=True)
                    parts.append(Part("cmd", text[i + 1 : end], True))
                    i = end + 1
                    continue
                if d == "\n":
                    line += 1
                lit(d, True)
                i += 1
            continue
        if c == "$":
            begin()
            i = dollar(i, False)
            continue
        if c == "`":
            begin()
            end = text.find("`", i + 1)
            if end < 0:
                raise ShellSyntaxError("Unterminated quoted string", line, eof=True)
            parts.append(Part("cmd", text[i + 1 : end], False))
            i = end + 1
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            if op in (">", ">>", "<", ">&", "<&", "<<"):
                fd = 0 if op[0] == "<" else 1
                literal = Word(parts, word_line).literal() if started else None
                if literal is not None and literal.isdigit():
                    fd = int(literal)
                    parts = []
                    started = False
                else:
                    end_word()
                if op == "<<":
                    raise ShellSyntaxError("here-documents are not supported", line)
                # `>|` clobbers like `>`.
                width = len(op)
                if op == ">" and text.startswith(">|", i):
                    width = 2
                tokens.append(RedirTok(fd, op, line))
                i += width
                continue
            end_word()
            tokens.append(Op(op, line))
            i += len(op)
            continue
        begin()
        lit(c, False)
        i += 1
    end_word()
    return tokens


# -- syntax tree --------------------------------------------------------------------------


@dataclass(slots=True)
class Redir:
    fd: int
    op: str
    target: Word


@dataclass(slots=True)
class Simple:
    assigns: list[tuple[str, Word]]
    words: list[Word]
    redirs: list[Redir]
    line: int


@dataclass(slots=True)
class Pipeline:
    commands: list[Command]
    negate: bool


@dataclass(slots=True)
class AndOr:
    first: Pipeline
    rest: list[tuple[str, Pipeline]]


@dataclass(slots=True)
class Seq:
    items: list[AndOr]


@dataclass(slots=True)
class If:
    branches: list[tuple[Seq, Seq]]
    otherwise: Seq | None
    redirs: list[Redir]


@dataclass(slots=True)
class For:
    var: str
    words: list[Word] | None
    body: Seq
    redirs: list[Redir]


@dataclass(slots=True)
class While:
    cond: Seq
    body: Seq
    until: bool
    redirs: list[Redir]


@dataclass(slots=True)
class Group:
    body: Seq
    subshell: bool
    redirs: list[Redir]


Command = Simple | If | For | While | Group

_RESERVED: Final = frozenset(
    {"if", "then", "else", "elif", "fi", "for", "in", "do", "done", "while", "until", "{", "}", "!"}
)
_ASSIGN: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


class Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _line(self) -> int:
        tok = self.peek()
        if tok is not None:
            return tok.line
        return self.tokens[-1].line if self.tokens else 1

    def _reserved(self, tok: Token | None) -> str | None:
        if isinstance(tok, Word):
            text = tok.literal()
            if text in _RESERVED:
                return text
        return None

    def _unexpected(self, tok: Token | None, expecting: str = "") -> ShellSyntaxError:
        if tok is None:
            suffix = f' (expecting "{expecting}")' if expecting else ""
            return ShellSyntaxError(
                f"end of file unexpected{suffix}", self._line(), eof=bool(expecting)
            )
        if isinstance(tok, Op):
            shown = "newline" if tok.op == "\n" else f'"{tok.op}"'
        elif isinstance(tok, RedirTok):
            shown = f'"{tok.op}"'
        else:
            shown = f'"{tok.raw()}"'
        return ShellSyntaxError(f"{shown} unexpected", tok.line)

    def skip_newlines(self) -> None:
        while isinstance(self.peek(), Op) and self.peek().op == "\n":  # type: ignore[union-attr]
            self.pos += 1

    def parse(self) -> Seq:
        seq = self.seq(())
        tok = self.peek()
        if tok is not None:
            raise self._unexpected(tok)
        return seq

    def seq(self, ends: tuple[str, ...], expecting: str = "") -> Seq:
        items: list[AndOr] = []
        while True:
            self.skip_newlines()
            tok = self.peek()
            if tok is None:
                if expecting:
                    raise self._unexpected(None, expecting)
                break
            if self._reserved(tok) in ends or (isinstance(tok, Op) and tok.op in ends):
                if not items:
                    raise self._unexpected(tok)
                break
            items.append(self.and_or(expecting))
            tok = self.peek()
            if isinstance(tok, Op) and tok.op in (";", "&", "\n"):
                self.pos += 1
                continue
            if tok is None:
                continue
            if self._reserved(tok) in ends or (isinstance(tok, Op) and tok.op in ends):
                break
            raise self._unexpected(tok)
        return Seq(items)

    def and_or(self, expecting: str) -> AndOr:
        first = self.pipeline(expecting)
        rest: list[tuple[str, Pipeline]] = []
        while isinstance(self.peek(), Op) and self.peek().op in ("&&", "||"):  # type: ignore[union-attr]
            op = self.tokens[self.pos]
            assert isinstance(op, Op)
            self.pos += 1
            self.skip_newlines()
            if self.peek() is None:
                raise ShellSyntaxError("end of file unexpected", op.line, eof=True)
            rest.append((op.op, self.pipeline(expecting)))
        return AndOr(first, rest)

    def pipeline(self, expecting: str) -> Pipeline:
        negate = False
        if self._reserved(self.peek()) == "!":
            negate = True
            self.pos += 1
        commands = [self.command(expecting)]
        while isinstance(self.peek(), Op) and self.peek().op == "|":  # type: ignore[union-attr]
            self.pos += 1
            self.skip_newlines()
            if self.peek() is None:
                raise ShellSyntaxError("end of file unexpected", self._line(), eof=True)
            commands.append(self.command(expecting))
        return Pipeline(commands, negate)

    def _expect(self, word: str) -> None:
        self.skip_newlines()
        tok = self.peek()
        if self._reserved(tok) != word:
            raise self._unexpected(tok, word)
        self.pos += 1

    def _redirs(self) -> list[Redir]:
        out: list[Redir] = []
        while isinstance(self.peek(), RedirTok):
            out.append(self._redir())
        return out

    def _redir(self) -> Redir:
        tok = self.tokens[self.pos]
        assert isinstance(tok, RedirTok)
        self.pos += 1
        target = self.peek()
        if not isinstance(target, Word):
            raise self._unexpected(target)
        self.pos += 1
        return Redir(tok.fd, tok.op, target)

    def command(self, expecting: str) -> Command:
        tok = self.peek()
        word = self._reserved(tok)
        if word == "if":
            self.pos += 1
            branches: list[tuple[Seq, Seq]] = []
            cond = self.seq(("then",), "then")
            self._expect("then")
            body = self.seq(("elif", "else", "fi"), "fi")
            branches.append((cond, body))
            otherwise: Seq | None = None
            while True:
                nxt = self._reserved(self.peek())
                if nxt == "elif":
                    self.pos += 1
                    cond = self.seq(("then",), "then")
                    self._expect("then")
                    branches.append((cond, self.seq(("elif", "else", "fi"), "fi")))
                    continue
                if nxt == "else":
                    self.pos += 1
                    otherwise = self.seq(("fi",), "fi")
                self._expect("fi")
                break
            return If(branches, otherwise, self._redirs())
        if word == "for":
            self.pos += 1
            name_tok = self.peek()
            name = name_tok.literal() if isinstance(name_tok, Word) else None
            if name is None or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise self._unexpected(name_tok)
            self.pos += 1
            self.skip_newlines()
            words: list[Word] | None = None
            if self._reserved(self.peek()) == "in":
                self.pos += 1
                words = []
                while isinstance(self.peek(), Word) and self._reserved(self.peek()) != "do":
                    tok_word = self.peek()
                    assert isinstance(tok_word, Word)
                    words.append(tok_word)
                    self.pos += 1
                if isinstance(self.peek(), Op) and self.peek().op in (";", "\n"):  # type: ignore[union-attr]
                    self.pos += 1
            elif isinstance(self.peek(), Op) and self.peek().op == ";":  # type: ignore[union-attr]
                self.pos += 1
            self._expect("do")
            body = self.seq(("done",), "done")
            self._expect("done")
            return For(name, words, body, self._redirs())
        if word in ("while", "until"):
            self.pos += 1
            cond = self.seq(("do",), "do")
            self._expect("do")
            body = self.seq(("done",), "done")
            self._expect("done")
            return While(cond, body, word == "until", self._redirs())
        if word == "{":
            self.pos += 1
            body = self.seq(("}",), "}")
            self._expect("}")
            return Group(body, False, self._redirs())
        if isinstance(tok, Op) and tok.op == "(":
            self.pos += 1
            body = self.seq((")",), ")")
            close = self.peek()
            if not (isinstance(close, Op) and close.op == ")"):
                raise self._unexpected(close, ")")
            self.pos += 1
            return Group(body, True, self._redirs())
        if word is not None and word not in ("{", "!"):
            raise self._unexpected(tok)
        return self.simple()

    def simple(self) -> Simple:
        assigns: list[tuple[str, Word]] = []
        words: list[Word] = []
        redirs: list[Redir] = []
        line = self._line()
        while True:
            tok = self.peek()
            if isinstance(tok, RedirTok):
                redirs.append(self._redir())
                continue
            if not isinstance(tok, Word):
                break
            if not words:
                first = tok.parts[0] if tok.parts else None
                match = (
                    _ASSIGN.match(first.text)
                    if first is not None and first.kind == "lit" and not first.quoted
                    else None
                )
                if match is not None:
                    assert first is not None
                    value_parts = [Part("lit", first.text[match.end() :], False), *tok.parts[1:]]
                    assigns.append((match.group(0)[:-1], Word(value_parts, tok.line)))
                    self.pos += 1
                    continue
            words.append(tok)
            self.pos += 1
        if not assigns and not words and not redirs:
            raise self._unexpected(self.peek())
        return Simple(assigns, words, redirs, line)


def parse(text: str) -> Seq:
    return Parser(tokenize(text)).parse()


# -- arithmetic ---------------------------------------------------------------------------

_ARITH_BIN: Final[dict[type[ast.operator], Callable[[int, int], int]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Mod: lambda a, b: int(math.fmod(a, b)),
    ast.FloorDiv: lambda a, b: int(a / b),
    ast.Div: lambda a, b: int(a / b),
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}
_ARITH_CMP: Final[dict[type[ast.cmpop], Callable[[int, int], bool]]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def arithmetic(expression: str, lookup: Callable[[str], str]) -> int:
    """`$((...))`: integers, variables by name, + - * / % << >> & | ^ comparisons && || !."""
    text = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", r"\1", expression)
    text = text.replace("&&", " and ").replace("||", " or ")
    text = re.sub(r"!(?!=)", " not ", text)
    text = text.replace("/", "//")

    def value(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return int(node.value)
        if isinstance(node, ast.Name):
            raw = lookup(node.id).strip() or "0"
            try:
                return int(raw, 0)
            except ValueError:
                raise ValueError(f"Illegal number: {raw}") from None
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH_BIN:
            right = value(node.right)
            if isinstance(node.op, (ast.FloorDiv, ast.Div, ast.Mod)) and right == 0:
                raise ValueError("divide by zero")
            return _ARITH_BIN[type(node.op)](value(node.left), right)
        if isinstance(node, ast.UnaryOp):
            operand = value(node.operand)
            if isinstance(node.op, ast.USub):
                return -operand
            if isinstance(node.op, ast.UAdd):
                return operand
            if isinstance(node.op, ast.Not):
                return int(not operand)
            if isinstance(node.op, ast.Invert):
                return ~operand
        if isinstance(node, ast.Compare):
            left = value(node.left)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = value(comparator)
                if type(op) not in _ARITH_CMP or not _ARITH_CMP[type(op)](left, right):
                    return 0
                left = right
            return 1
        if isinstance(node, ast.BoolOp):
            results = [value(v) for v in node.values]
            if isinstance(node.op, ast.And):
                return int(all(results))
            return int(any(results))
        if isinstance(node, ast.IfExp):
            return value(node.body) if value(node.test) else value(node.orelse)
        raise ValueError(f'arithmetic expression: expecting primary: "{expression.strip()}"')

    try:
        tree = ast.parse(text.strip() or "0", mode="eval")
    except SyntaxError:
        raise ValueError(
            f'arithmetic expression: expecting primary: "{expression.strip()}"'
        ) from None
    return value(tree)


# -- the interpreter ----------------------------------------------------------------------


class ShellExit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Break(Exception):
    pass


@dataclass(slots=True)
class Context:
    """What a command gets: its argv, its I/O, the shell it runs in and the machine."""

    argv: list[str]
    io: IO
    shell: Shell
    env: dict[str, str]

    @property
    def machine(self) -> Machine:
        return self.shell.machine

    @property
    def fs(self) -> ContainerFS:
        return self.shell.machine.fs

    @property
    def cwd(self) -> str:
        return self.shell.cwd

    async def out(self, data: bytes | str) -> None:
        await self.io.stdout(data if isinstance(data, bytes) else _b(data))

    async def err(self, data: bytes | str) -> None:
        await self.io.stderr(data if isinstance(data, bytes) else _b(data))


CommandFn = Callable[[Context], Awaitable[int]]
COMMANDS: dict[str, CommandFn] = {}
SHELL_BUILTINS: dict[str, CommandFn] = {}


def command(*names: str, builtin: bool = False) -> Callable[[CommandFn], CommandFn]:
    def register(fn: CommandFn) -> CommandFn:
        for name in names:
            (SHELL_BUILTINS if builtin else COMMANDS)[name] = fn
        return fn

    return register


class Shell:
    """One shell process: variables, working directory, last status, options."""

    def __init__(
        self,
        machine: Machine,
        *,
        arg0: str = "sh",
        args: Iterable[str] = (),
        env: dict[str, str] | None = None,
        cwd: str = "/",
        bash: bool = False,
    ) -> None:
        self.machine = machine
        self.arg0 = arg0
        self.args = list(args)
        self.vars: dict[str, str] = dict(env if env is not None else machine.env)
        self.exported: set[str] = set(self.vars)
        self.cwd = cwd
        self.status = 0
        self.errexit = False
        self.bash = bash
        self.tty = False
        self._condition = 0
        self._subst_status: int | None = None
        self.line = 1
        self.line_offset = 0  # lines read before the text being run (interactive sh)

    def child(self) -> Shell:
        """A subshell: a copy of this one (changes do not come back)."""
        copy = Shell(self.machine, arg0=self.arg0, args=self.args, env=dict(self.vars))
        copy.exported = set(self.exported)
        copy.cwd = self.cwd
        copy.status = self.status
        copy.errexit = self.errexit
        copy.bash = self.bash
        return copy

    def environ(self) -> dict[str, str]:
        return {k: v for k, v in self.vars.items() if k in self.exported}

    def prefix(self, line: int | None = None) -> str:
        where = (self.line if line is None else line) + self.line_offset
        if self.bash:
            return f"{self.arg0}: line {where}: "
        return f"{self.arg0}: {where}: "

    # -- running text ----------------------------------------------------------------------

    async def run_text(self, text: str, io: IO) -> int:
        """Parse and run a script; returns its status (exit N ends it with N)."""
        try:
            tree = parse(text)
        except ShellSyntaxError as error:
            await io.stderr(_b(f"{self.prefix(error.line)}Syntax error: {error.message}\n"))
            return 2
        try:
            return await self.run_seq(tree, io)
        except ShellExit as leave:
            return leave.code

    # -- the tree --------------------------------------------------------------------------

    async def run_seq(self, seq: Seq, io: IO) -> int:
        status = 0
        for item in seq.items:
            status = await self.run_and_or(item, io)
            if self.errexit and status != 0 and self._condition == 0:
                raise ShellExit(status)
        return status

    async def run_and_or(self, node: AndOr, io: IO) -> int:
        if node.rest:
            self._condition += 1
            try:
                status = await self.run_pipeline(node.first, io)
                for index, (op, pipe) in enumerate(node.rest):
                    if (op == "&&") != (status == 0):
                        continue
                    last = index == len(node.rest) - 1
                    if last:
                        self._condition -= 1
                    try:
                        status = await self.run_pipeline(pipe, io)
                    finally:
                        if last:
                            self._condition += 1
            finally:
                self._condition -= 1
            self.status = status
            return status
        status = await self.run_pipeline(node.first, io)
        self.status = status
        return status

    async def run_pipeline(self, node: Pipeline, io: IO) -> int:
        if node.negate:
            self._condition += 1
        try:
            if len(node.commands) == 1:
                status = await self.run_command(node.commands[0], io)
            else:
                status = await self._run_pipe(node.commands, io)
        finally:
            if node.negate:
                self._condition -= 1
        if node.negate:
            status = 0 if status else 1
        self.status = status
        return status

    async def _run_pipe(self, commands: list[Command], io: IO) -> int:
        statuses = [0] * len(commands)
        async with trio.open_nursery() as nursery:
            stdin = io.stdin
            for index, cmd in enumerate(commands):
                last = index == len(commands) - 1
                if last:
                    nursery.start_soon(
                        self._pipe_stage,
                        cmd,
                        IO(stdin, io.stdout, io.stderr),
                        statuses,
                        index,
                        None,
                    )
                    break
                send, receive = trio.open_memory_channel[bytes](8)
                writer = _pipe_writer(send)

                async def source(receive: trio.MemoryReceiveChannel[bytes] = receive) -> bytes:
                    try:
                        return await receive.receive()
                    except trio.EndOfChannel:
                        return b""

                stage_io = IO(stdin, writer, io.stderr)
                nursery.start_soon(self._pipe_stage, cmd, stage_io, statuses, index, send)
                stdin = _ClosingInput(source, receive)
        return statuses[-1]

    async def _pipe_stage(
        self,
        cmd: Command,
        io: IO,
        statuses: list[int],
        index: int,
        send: trio.MemorySendChannel[bytes] | None,
    ) -> None:
        shell = self.child()
        try:
            statuses[index] = await shell.run_command(cmd, io)
        except BrokenPipe:
            statuses[index] = 141
        except ShellExit as leave:
            statuses[index] = leave.code
        finally:
            if send is not None:
                await send.aclose()
            if isinstance(io.stdin, _ClosingInput):
                await io.stdin.close()

    async def run_command(self, node: Command, io: IO) -> int:
        if isinstance(node, Simple):
            return await self.run_simple(node, io)
        redirected = await self._redirect(node.redirs, io)
        if redirected is None:
            return 2
        io = redirected
        if isinstance(node, If):
            for cond, body in node.branches:
                self._condition += 1
                try:
                    ok = await self.run_seq(cond, io) == 0
                finally:
                    self._condition -= 1
                if ok:
                    return await self.run_seq(body, io)
            if node.otherwise is not None:
                return await self.run_seq(node.otherwise, io)
            return 0
        if isinstance(node, For):
            if node.words is None:
                values = list(self.args)
            else:
                values = []
                for word in node.words:
                    values.extend(await self.expand(word, io))
            status = 0
            for value in values:
                self.vars[node.var] = value
                try:
                    status = await self.run_seq(node.body, io)
                except _Break:
                    return 0
                await trio.lowlevel.checkpoint()
            return status
        if isinstance(node, While):
            status = 0
            while True:
                self._condition += 1
                try:
                    ok = await self.run_seq(node.cond, io) == 0
                finally:
                    self._condition -= 1
                if ok == node.until:
                    return status
                try:
                    status = await self.run_seq(node.body, io)
                except _Break:
                    return 0
                await trio.lowlevel.checkpoint()
        if node.subshell:
            shell = self.child()
            try:
                return await shell.run_seq(node.body, io)
            except ShellExit as leave:
                return leave.code
        return await self.run_seq(node.body, io)

    async def run_simple(self, node: Simple, io: IO) -> int:
        self.line = node.line
        self._subst_status = None
        argv: list[str] = []
        try:
            for word in node.words:
                argv.extend(await self.expand(word, io))
            assigns = [(name, await self.expand_one(value, io)) for name, value in node.assigns]
        except ValueError as error:
            await io.stderr(_b(f"{self.prefix()}{error}\n"))
            return 2
        redirected = await self._redirect(node.redirs, io)
        if redirected is None:
            return 2
        io = redirected
        if not argv:
            for name, value in assigns:
                self.vars[name] = value
            return self._subst_status or 0
        env = self.environ()
        for name, value in assigns:
            env[name] = value
        return await self.run_argv(argv, io, env)

    async def run_argv(self, argv: list[str], io: IO, env: dict[str, str]) -> int:
        name = argv[0]
        builtin = SHELL_BUILTINS.get(name)
        if builtin is not None:
            return await builtin(Context(argv, io, self, env))
        fn, problem = resolve_command(self.machine.fs, name, env.get("PATH", PATH), self.cwd)
        if fn is None:
            if problem == "EACCES":
                await io.stderr(_b(f"{self.prefix()}{name}: Permission denied\n"))
                return 126
            if self.bash:
                await io.stderr(_b(f"{self.prefix()}{name}: command not found\n"))
            else:
                await io.stderr(_b(f"{self.prefix()}{name}: not found\n"))
            return 127
        return await fn(Context(argv, io, self, env))

    # -- redirections ----------------------------------------------------------------------

    async def _redirect(self, redirs: list[Redir], io: IO) -> IO | None:
        for redir in redirs:
            try:
                target = await self.expand_one(redir.target, io)
            except ValueError as error:
                await io.stderr(_b(f"{self.prefix()}{error}\n"))
                return None
            if redir.op in (">&", "<&"):
                if target == "-":
                    io = io.with_fd(redir.fd, _discard)
                    continue
                if target in ("1", "2"):
                    source = io.stdout if target == "1" else io.stderr
                    io = io.with_fd(redir.fd, source)
                    continue
                if redir.op == "<&" or not target:
                    await io.stderr(_b(f"{self.prefix()}Syntax error: Bad fd number\n"))
                    return None
            if redir.op == "<":
                try:
                    data = self.machine.fs.read_file(target, self.cwd)
                except FsError:
                    await io.stderr(_b(f"{self.prefix()}cannot open {target}: No such file\n"))
                    return None
                if redir.fd == 0:
                    io = IO(Input.of(data), io.stdout, io.stderr)
                continue
            special = _special_output(target, io)
            if special is not None:
                io = io.with_fd(redir.fd, special)
                continue
            append = redir.op == ">>"
            try:
                self.machine.fs.write_file(target, b"", append=append, cwd=self.cwd)
            except FsError as error:
                reason = {
                    "ENOENT": "Directory nonexistent",
                    "EISDIR": "Is a directory",
                    "ENOTDIR": "Directory nonexistent",
                }.get(error.errno, error.strerror)
                await io.stderr(_b(f"{self.prefix()}cannot create {target}: {reason}\n"))
                return None
            io = io.with_fd(redir.fd, _file_writer(self.machine.fs, target, self.cwd))
        return io

    # -- expansion -------------------------------------------------------------------------

    def lookup(self, name: str) -> str:
        if name == "?":
            return str(self.status)
        if name == "$":
            return "1"
        if name == "#":
            return str(len(self.args))
        if name in ("@", "*"):
            return " ".join(self.args)
        if name == "0":
            return self.arg0
        if name.isdigit():
            index = int(name)
            return self.args[index - 1] if index <= len(self.args) else ""
        if name == "!" or name == "-":
            return ""
        return self.vars.get(name, "")

    async def _part_value(self, part: Part, io: IO) -> str:
        if part.kind == "lit":
            return part.text
        if part.kind == "var":
            value = self.lookup(part.text)
            is_set = part.text in self.vars or (not part.text[0].isalpha() and part.text != "_")
            if part.default is not None:
                empty = not value if part.default_op.startswith(":") else not is_set
                default = await self.expand_one(Word(tokenize_word(part.default), self.line), io)
                op = part.default_op.lstrip(":")
                if op == "-":
                    return default if empty else value
                if op == "=":
                    if empty:
                        self.vars[part.text] = default
                        return default
                    return value
                if op == "+":
                    return "" if empty else default
                if op == "?" and empty:
                    raise ValueError(f"{part.text}: {default or 'parameter not set'}")
            return value
        if part.kind == "arith":
            inner = await self.expand_one(Word(tokenize_word(part.text), self.line), io)
            return str(arithmetic(inner, self.lookup))
        # Command substitution: a subshell whose stdout is captured, trailing newlines cut.
        buffer = Buffer()
        shell = self.child()
        status = await shell.run_text(part.text, IO(io.stdin, buffer.write, io.stderr))
        self._subst_status = status
        self.status = status
        return _s(bytes(buffer.data)).rstrip("\n")

    async def expand_one(self, word: Word, io: IO) -> str:
        """A word as one string (assignments, redirection targets): no splitting, no globs."""
        return "".join([await self._part_value(p, io) for p in word.parts])

    async def expand(self, word: Word, io: IO) -> list[str]:
        """A word as fields: unquoted expansions split on blanks, then pathname expansion."""
        fields: list[list[tuple[str, bool]]] = []
        current: list[tuple[str, bool]] = []
        started = False
        for part in word.parts:
            value = await self._part_value(part, io)
            if part.kind == "var" and part.text == "@" and part.quoted:
                # "$@": one field per argument.
                for index, arg in enumerate(self.args):
                    if index:
                        fields.append(current)
                        current = []
                    current.append((arg, True))
                    started = True
                continue
            if part.quoted:
                current.append((value, True))
                started = True
                continue
            if part.kind == "lit":
                current.append((value, False))
                started = True
                continue
            pieces = re.split(r"[ \t\n]+", value)
            for index, piece in enumerate(pieces):
                if index:
                    if started:
                        fields.append(current)
                    current = []
                    started = False
                if piece:
                    current.append((piece, True))
                    started = True
        if started:
            fields.append(current)
        out: list[str] = []
        for segments in fields:
            text = "".join(s for s, _ in segments)
            if any(not quoted and any(c in s for c in "*?[") for s, quoted in segments):
                pattern = "".join(s if not quoted else _glob_escape(s) for s, quoted in segments)
                matches = glob(self.machine.fs, pattern, self.cwd)
                if matches:
                    out.extend(matches)
                    continue
            out.append(text)
        return out


def tokenize_word(text: str) -> list[Part]:
    """The parts of text inside `${X:-...}` or `$((...))` (expansions, quotes)."""
    tokens = tokenize(text.replace("\n", " "))
    parts: list[Part] = []
    for index, tok in enumerate(tokens):
        if index:
            parts.append(Part("lit", " ", True))
        if isinstance(tok, Word):
            parts.extend(tok.parts)
        elif isinstance(tok, Op):
            parts.append(Part("lit", tok.op, True))
        else:
            parts.append(Part("lit", tok.op, True))
    return parts


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def glob(fs: ContainerFS, pattern: str, cwd: str) -> list[str]:
    absolute = pattern.startswith("/")
    parts = [p for p in pattern.split("/") if p]
    bases = ["/" if absolute else ""]
    for part in parts:
        found: list[str] = []
        for base in bases:
            directory = base if base else cwd
            if not any(c in part for c in "*?["):
                candidate = posixpath.join(base, part) if base else part
                if fs.exists(candidate, cwd):
                    found.append(candidate)
                continue
            try:
                names = fs.listdir(directory, cwd)
            except FsError:
                continue
            for name in names:
                if name.startswith(".") and not part.startswith("."):
                    continue
                if fnmatch.fnmatchcase(name, part):
                    found.append(posixpath.join(base, name) if base else name)
        bases = found
    return sorted(bases)


def _special_output(target: str, io: IO) -> Write | None:
    if target in ("/dev/stdout", "/proc/self/fd/1", "/dev/fd/1"):
        return io.stdout
    if target in ("/dev/stderr", "/proc/self/fd/2", "/dev/fd/2"):
        return io.stderr
    return None


def _file_writer(fs: ContainerFS, path: str, cwd: str) -> Write:
    async def write(data: bytes) -> None:
        fs.write_file(path, data, append=True, cwd=cwd)

    return write


def _pipe_writer(send: trio.MemorySendChannel[bytes]) -> Write:
    async def write(data: bytes) -> None:
        if not data:
            return
        try:
            await send.send(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise BrokenPipe() from None

    return write


class _ClosingInput(Input):
    def __init__(
        self, source: Callable[[], Awaitable[bytes]], receive: trio.MemoryReceiveChannel[bytes]
    ) -> None:
        super().__init__(source)
        self._receive = receive

    async def close(self) -> None:
        await self._receive.aclose()


def resolve_command(
    fs: ContainerFS, name: str, path: str, cwd: str
) -> tuple[CommandFn | None, str]:
    """The command `name` names (a path, or a name looked up on PATH), or (None, reason)."""
    if "/" in name:
        try:
            node = fs.lookup(name, cwd)
        except FsError:
            return None, "ENOENT"
        if isinstance(node, Directory) or not (node.mode & 0o111):
            return None, "EACCES"
        base = posixpath.basename(name)
        if isinstance(node, File) and node.data.startswith(b"#!"):
            return _script_runner(fs.resolve(name, cwd)), ""
        fn = COMMANDS.get(base)
        return (fn, "") if fn is not None else (None, "EACCES")
    for directory in path.split(":"):
        if not directory:
            continue
        candidate = posixpath.join(directory, name)
        try:
            node = fs.lookup(candidate)
        except FsError:
            continue
        if isinstance(node, File) and node.mode & 0o111:
            if node.data.startswith(b"#!"):
                return _script_runner(candidate), ""
            fn = COMMANDS.get(name)
            if fn is not None:
                return fn, ""
    return None, "ENOENT"


def _script_runner(path: str) -> CommandFn:
    async def run(ctx: Context) -> int:
        text = _s(ctx.fs.read_file(path))
        shell = Shell(ctx.machine, arg0=path, args=ctx.argv[1:], env=dict(ctx.env), cwd=ctx.cwd)
        return await shell.run_text(text.partition("\n")[2], ctx.io)

    return run


# -- entry points -------------------------------------------------------------------------


def install_commands(fs: ContainerFS) -> None:
    """Put every command in /bin (so `ls /bin`, `/bin/cat` and PATH lookups see them)."""
    fs.mkdir("/bin", parents=True)
    for name in sorted(COMMANDS):
        fs.write_file(f"/bin/{name}", b"", mode=0o755)


async def run_command(
    machine: Machine,
    argv: list[str],
    io: IO,
    *,
    tty: bool = False,
) -> int:
    """Run `argv` as the container runtime would (no shell around it unless argv asks)."""
    if not argv:
        return 0
    shell = Shell(machine, arg0=argv[0], env=dict(machine.env))
    fn, problem = resolve_command(machine.fs, argv[0], machine.env.get("PATH", PATH), "/")
    if fn is None:
        # The text runc prints when exec names a missing binary; the runtime answers 126.
        # (Inside a shell script the shell's own `not found` and 127 apply.)
        await io.stdout(
            _b(
                "OCI runtime exec failed: exec failed: unable to start container process: "
                f'exec: "{argv[0]}": '
                + (
                    "permission denied"
                    if problem == "EACCES"
                    else "executable file not found in $PATH"
                )
                + ": unknown\r\n"
            )
        )
        return 126
    shell.tty = tty
    return await fn(Context(list(argv), io, shell, dict(machine.env)))


async def run_to_completion(machine: Machine, argv: list[str], *, stdin: bytes = b"") -> ExecResult:
    """Run `argv` with `stdin`, collecting stdout and stderr (no sockets)."""
    out, err = Buffer(), Buffer()
    code = await run_command(machine, argv, IO(Input.of(stdin), out.write, err.write))
    return ExecResult(code, bytes(out.data), bytes(err.data))


# -- shell builtins -----------------------------------------------------------------------


@command("exit", builtin=True)
async def _exit(ctx: Context) -> int:
    if len(ctx.argv) > 1:
        try:
            code = int(ctx.argv[1])
        except ValueError:
            await ctx.err(f"{ctx.shell.prefix()}exit: Illegal number: {ctx.argv[1]}\n")
            raise ShellExit(2) from None
        raise ShellExit(code & 0xFF)
    raise ShellExit(ctx.shell.status)


@command("cd", builtin=True)
async def _cd(ctx: Context) -> int:
    target = ctx.argv[1] if len(ctx.argv) > 1 else ctx.shell.vars.get("HOME", "/")
    if not ctx.fs.is_dir(target, ctx.cwd):
        await ctx.err(f"{ctx.shell.prefix()}cd: can't cd to {target}\n")
        return 2
    ctx.shell.cwd = ctx.fs.resolve(target, ctx.cwd)
    ctx.shell.vars["PWD"] = ctx.shell.cwd
    return 0


@command("export", builtin=True)
async def _export(ctx: Context) -> int:
    for arg in ctx.argv[1:]:
        name, eq, value = arg.partition("=")
        if eq:
            ctx.shell.vars[name] = value
        ctx.shell.exported.add(name)
    if len(ctx.argv) == 1:
        for name in sorted(ctx.shell.exported):
            if name in ctx.shell.vars:
                await ctx.out(f"export {name}='{ctx.shell.vars[name]}'\n")
    return 0


@command("unset", builtin=True)
async def _unset(ctx: Context) -> int:
    for name in ctx.argv[1:]:
        if name == "-v" or name == "-f":
            continue
        ctx.shell.vars.pop(name, None)
        ctx.shell.exported.discard(name)
    return 0


@command("set", builtin=True)
async def _set(ctx: Context) -> int:
    args = ctx.argv[1:]
    while args and args[0][:1] in ("-", "+") and args[0] != "--":
        flag = args.pop(0)
        if "e" in flag:
            ctx.shell.errexit = flag.startswith("-")
    if args and args[0] == "--":
        args.pop(0)
    if args:
        ctx.shell.args = args
    return 0


@command("read", builtin=True)
async def _read(ctx: Context) -> int:
    names = [a for a in ctx.argv[1:] if not a.startswith("-")] or ["REPLY"]
    raw = "-r" in ctx.argv[1:]
    line = await ctx.io.stdin.readline()
    text = _s(line)
    ended = text.endswith("\n")
    text = text.rstrip("\n")
    if not raw:
        text = re.sub(r"\\(.)", r"\1", text)
    fields = text.split(None, len(names) - 1) if text.strip() else []
    for index, name in enumerate(names):
        ctx.shell.vars[name] = fields[index].strip() if index < len(fields) else ""
    return 0 if ended else 1


@command("shift", builtin=True)
async def _shift(ctx: Context) -> int:
    count = int(ctx.argv[1]) if len(ctx.argv) > 1 else 1
    if count > len(ctx.shell.args):
        await ctx.err(f"{ctx.shell.prefix()}shift: can't shift that many\n")
        return 2
    ctx.shell.args = ctx.shell.args[count:]
    return 0


@command("break", builtin=True)
async def _break(ctx: Context) -> int:
    raise _Break()


@command("eval", builtin=True)
async def _eval(ctx: Context) -> int:
    return await ctx.shell.run_text(" ".join(ctx.argv[1:]), ctx.io)


@command("echo", builtin=True)
async def _echo_builtin(ctx: Context) -> int:
    # dash's echo: -n only; backslash escapes are always interpreted.
    args = ctx.argv[1:]
    newline = True
    if args and args[0] == "-n":
        newline = False
        args = args[1:]
    data, stop = _escapes(_b(" ".join(args)), echo=True)
    await ctx.out(data + (b"\n" if newline and not stop else b""))
    return 0


@command("pwd", builtin=True)
@command("pwd")
async def _pwd(ctx: Context) -> int:
    await ctx.out(ctx.cwd + "\n")
    return 0


@command("true", ":", builtin=True)
@command("true")
async def _true(ctx: Context) -> int:
    return 0


@command("false", builtin=True)
@command("false")
async def _false(ctx: Context) -> int:
    return 1


# -- commands -----------------------------------------------------------------------------


def _escapes(data: bytes, *, echo: bool = False) -> tuple[bytes, bool]:
    """Backslash escapes of printf formats and dash's echo: returns (bytes, stopped by \\c)."""
    out = bytearray()
    i = 0
    simple = {
        ord("n"): b"\n",
        ord("t"): b"\t",
        ord("r"): b"\r",
        ord("a"): b"\a",
        ord("b"): b"\b",
        ord("f"): b"\f",
        ord("v"): b"\v",
        ord("\\"): b"\\",
        ord("e"): b"\x1b",
    }
    while i < len(data):
        c = data[i]
        if c != 0x5C or i + 1 >= len(data):
            out.append(c)
            i += 1
            continue
        nxt = data[i + 1]
        if nxt in simple:
            out += simple[nxt]
            i += 2
        elif nxt == ord("c"):
            return bytes(out), True
        elif nxt == ord("0") or (not echo and 0x30 <= nxt <= 0x37):
            start = i + 2 if nxt == ord("0") else i + 1
            j = start
            while j < len(data) and j < start + 3 and 0x30 <= data[j] <= 0x37:
                j += 1
            out.append(int(data[start:j] or b"0", 8) & 0xFF)
            i = j
        elif nxt == ord("x") and not echo:
            j = i + 2
            while j < len(data) and j < i + 4 and chr(data[j]) in "0123456789abcdefABCDEF":
                j += 1
            if j == i + 2:
                out += b"\\x"
            else:
                out.append(int(data[i + 2 : j], 16))
            i = j
        elif nxt == ord('"') and not echo:
            out += b'"'
            i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out), False


@command("echo")
async def _echo(ctx: Context) -> int:
    # coreutils echo: -n, -e (escapes), -E.
    args = ctx.argv[1:]
    newline, escapes = True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        flags = args.pop(0)
        newline = newline and "n" not in flags
        if "e" in flags:
            escapes = True
        if "E" in flags:
            escapes = False
    data = _b(" ".join(args))
    stop = False
    if escapes:
        data, stop = _escapes(data, echo=True)
    await ctx.out(data + (b"\n" if newline and not stop else b""))
    return 0


_PRINTF_SPEC = re.compile(rb"%([-+ #0]*)(\*|\d+)?(?:\.(\*|\d+))?([diouxXeEfFgGcsb%])")


@command("printf", builtin=True)
@command("printf")
async def _printf(ctx: Context) -> int:
    if len(ctx.argv) < 2:
        await ctx.err("printf: usage: printf format [arg ...]\n")
        return 2
    fmt = _b(ctx.argv[1])
    args = list(ctx.argv[2:])
    status = 0
    out = bytearray()
    while True:
        consumed = False
        pos = 0
        for match in _PRINTF_SPEC.finditer(fmt):
            chunk, stop = _escapes(fmt[pos : match.start()])
            out += chunk
            if stop:
                await ctx.out(bytes(out))
                return status
            pos = match.end()
            flags, width, precision, conv = (
                match.group(1).decode(),
                (match.group(2) or b"").decode(),
                match.group(3),
                match.group(4).decode(),
            )
            if conv == "%":
                out += b"%"
                continue
            if width == "*":
                width = args.pop(0) if args else "0"
                consumed = True
            prec = precision.decode() if precision is not None else None
            if prec == "*":
                prec = args.pop(0) if args else "0"
                consumed = True
            arg = args.pop(0) if args else None
            consumed = consumed or arg is not None
            spec = "%" + flags + width + (f".{prec}" if prec is not None else "")
            if conv in "diouxX":
                try:
                    number = (
                        int(arg or "0", 0)
                        if not (arg or "").startswith(("'", '"'))
                        else ord((arg or "  ")[1])
                    )
                except ValueError:
                    await ctx.err(f"printf: {arg}: invalid number\n")
                    status = 1
                    number = 0
                out += _b((spec + ("d" if conv in "iu" else conv)) % number)
            elif conv in "eEfFgG":
                try:
                    value = float(arg or "0")
                except ValueError:
                    await ctx.err(f"printf: {arg}: invalid number\n")
                    status = 1
                    value = 0.0
                out += _b((spec + conv) % value)
            elif conv == "c":
                out += _b(arg[:1]) if arg else b""
            elif conv == "b":
                data, stop = _escapes(_b(arg or ""), echo=True)
                out += data
                if stop:
                    await ctx.out(bytes(out))
                    return status
            else:
                text = _b(arg or "")
                if prec is not None:
                    text = text[: int(prec)]
                if width:
                    pad = int(width) - len(text)
                    if pad > 0:
                        text = text + b" " * pad if "-" in flags else b" " * pad + text
                out += text
        chunk, stop = _escapes(fmt[pos:])
        out += chunk
        if stop or not args or not consumed:
            break
    await ctx.out(bytes(out))
    return status


def _options(ctx: Context, argv: list[str], allowed: str) -> tuple[set[str], list[str], str]:
    """Short options (clustered) until `--` or the first operand: (flags, operands, bad)."""
    flags: set[str] = set()
    operands: list[str] = []
    done = False
    for arg in argv:
        if done or arg == "-" or not arg.startswith("-"):
            operands.append(arg)
            continue
        if arg == "--":
            done = True
            continue
        for letter in arg[1:]:
            if letter not in allowed:
                return flags, operands, letter
            flags.add(letter)
    return flags, operands, ""


async def _bad_option(ctx: Context, name: str, letter: str) -> int:
    await ctx.err(
        f"{name}: invalid option -- '{letter}'\nTry '{name} --help' for more information.\n"
    )
    return 1 if name not in ("ls",) else 2


@command("cat")
async def _cat(ctx: Context) -> int:
    _flags, files, bad = _options(ctx, ctx.argv[1:], "uAvetn")
    if bad:
        return await _bad_option(ctx, "cat", bad)
    status = 0
    for name in files or ["-"]:
        if name == "-":
            while True:
                chunk = await ctx.io.stdin.read()
                if not chunk:
                    break
                await ctx.out(chunk)
            continue
        try:
            await ctx.out(ctx.fs.read_file(name, ctx.cwd))
        except FsError as error:
            await ctx.err(f"cat: {name}: {error.strerror}\n")
            status = 1
    return status


def _mode_string(node: File | Sink | Directory) -> str:
    kind = "d" if isinstance(node, Directory) else "c" if isinstance(node, Sink) else "-"
    bits = ""
    for shift in (6, 3, 0):
        part = (node.mode >> shift) & 7
        bits += ("r" if part & 4 else "-") + ("w" if part & 2 else "-") + ("x" if part & 1 else "-")
    return kind + bits


def _size(node: File | Sink | Directory) -> int:
    if isinstance(node, File):
        return len(node.data)
    return 4096 if isinstance(node, Directory) else 0


@command("ls")
async def _ls(ctx: Context) -> int:
    flags, paths, bad = _options(ctx, ctx.argv[1:], "laA1dhRtrsF")
    if bad:
        return await _bad_option(ctx, "ls", bad)
    status = 0
    targets = paths or ["."]
    files: list[tuple[str, File | Sink | Directory]] = []
    dirs: list[tuple[str, Directory]] = []
    for path in targets:
        try:
            node = ctx.fs.lookup(path, ctx.cwd)
        except FsError as error:
            await ctx.err(f"ls: cannot access '{path}': {error.strerror}\n")
            status = 2
            continue
        if isinstance(node, Directory) and "d" not in flags:
            dirs.append((path, node))
        else:
            files.append((path, node))

    def line(name: str, node: File | Sink | Directory) -> str:
        if "l" not in flags:
            return name
        stamp = _time.strftime("%b %e %H:%M", _time.gmtime(node.mtime))
        links = 2 if isinstance(node, Directory) else 1
        return f"{_mode_string(node)} {links} root root {_size(node):>5} {stamp} {name}"

    out: list[str] = [line(path, node) for path, node in sorted(files)]
    for index, (path, node) in enumerate(dirs):
        if len(targets) > 1:
            if out or index:
                out.append("")
            out.append(f"{path}:")
        names = sorted(node.children)
        if "a" in flags:
            names = [".", "..", *names]
        elif "A" not in flags:
            names = [n for n in names if not n.startswith(".")]
        if "l" in flags:
            out.append(f"total {len(names) * 4}")
        for name in names:
            child = node.children.get(name, node)
            out.append(line(name, child))
    if out:
        await ctx.out("\n".join(out) + "\n")
    return status


@command("mkdir")
async def _mkdir(ctx: Context) -> int:
    flags, paths, bad = _options(ctx, ctx.argv[1:], "pv")
    if bad:
        return await _bad_option(ctx, "mkdir", bad)
    if not paths:
        await ctx.err("mkdir: missing operand\nTry 'mkdir --help' for more information.\n")
        return 1
    status = 0
    for path in paths:
        try:
            ctx.fs.mkdir(path, parents="p" in flags, cwd=ctx.cwd)
        except FsError as error:
            await ctx.err(f"mkdir: cannot create directory '{path}': {error.strerror}\n")
            status = 1
    return status


@command("rmdir")
async def _rmdir(ctx: Context) -> int:
    status = 0
    for path in ctx.argv[1:]:
        try:
            ctx.fs.rmdir(path, ctx.cwd)
        except FsError as error:
            await ctx.err(f"rmdir: failed to remove '{path}': {error.strerror}\n")
            status = 1
    return status


@command("rm")
async def _rm(ctx: Context) -> int:
    flags, paths, bad = _options(ctx, ctx.argv[1:], "rRfvid")
    if bad:
        return await _bad_option(ctx, "rm", bad)
    if not paths and "f" not in flags:
        await ctx.err("rm: missing operand\nTry 'rm --help' for more information.\n")
        return 1
    status = 0
    for path in paths:
        try:
            ctx.fs.remove(path, recursive=bool(flags & {"r", "R"}), cwd=ctx.cwd)
        except FsError as error:
            if error.errno == "ENOENT" and "f" in flags:
                continue
            await ctx.err(f"rm: cannot remove '{path}': {error.strerror}\n")
            status = 1
    return status


@command("touch")
async def _touch(ctx: Context) -> int:
    status = 0
    for path in ctx.argv[1:]:
        if path.startswith("-"):
            continue
        try:
            ctx.fs.touch(path, ctx.cwd)
        except FsError as error:
            await ctx.err(f"touch: cannot touch '{path}': {error.strerror}\n")
            status = 1
    return status


@command("cp")
async def _cp(ctx: Context) -> int:
    flags, paths, bad = _options(ctx, ctx.argv[1:], "rRafpv")
    if bad:
        return await _bad_option(ctx, "cp", bad)
    if len(paths) < 2:
        await ctx.err("cp: missing file operand\nTry 'cp --help' for more information.\n")
        return 1
    *sources, target = paths
    status = 0
    for source in sources:
        try:
            node = ctx.fs.lookup(source, ctx.cwd)
        except FsError as error:
            await ctx.err(f"cp: cannot stat '{source}': {error.strerror}\n")
            status = 1
            continue
        dest = target
        if ctx.fs.is_dir(target, ctx.cwd):
            dest = posixpath.join(ctx.fs.resolve(target, ctx.cwd), posixpath.basename(source))
        if isinstance(node, Directory):
            if not flags & {"r", "R", "a"}:
                await ctx.err(f"cp: -r not specified; omitting directory '{source}'\n")
                status = 1
                continue
            base = ctx.fs.resolve(source, ctx.cwd)
            for path, child in list(ctx.fs.walk(base)):
                rel = posixpath.relpath(path, base)
                where = dest if rel == "." else posixpath.join(dest, rel)
                if isinstance(child, Directory):
                    ctx.fs.mkdir(where, parents=True, cwd=ctx.cwd)
                elif isinstance(child, File):
                    ctx.fs.write_file(where, child.data, cwd=ctx.cwd, mode=child.mode)
            continue
        try:
            data = ctx.fs.read_file(source, ctx.cwd)
            ctx.fs.write_file(dest, data, cwd=ctx.cwd)
        except FsError as error:
            await ctx.err(f"cp: cannot create regular file '{dest}': {error.strerror}\n")
            status = 1
    return status


@command("tar")
async def _tar(ctx: Context) -> int:
    return await run_tar(
        ctx.argv[1:],
        ctx.fs,
        ctx.cwd,
        read_stdin=ctx.io.stdin.read_all,
        stdout=ctx.io.stdout,
        stderr=ctx.io.stderr,
        now=ctx.machine.now,
    )


@command("mv")
async def _mv(ctx: Context) -> int:
    paths = [a for a in ctx.argv[1:] if not a.startswith("-")]
    if len(paths) < 2:
        await ctx.err("mv: missing file operand\nTry 'mv --help' for more information.\n")
        return 1
    *sources, target = paths
    status = 0
    for source in sources:
        try:
            ctx.fs.move(source, target, ctx.cwd)
        except FsError as error:
            await ctx.err(f"mv: cannot stat '{source}': {error.strerror}\n")
            status = 1
    return status


@command("chmod")
async def _chmod(ctx: Context) -> int:
    if len(ctx.argv) < 3:
        await ctx.err("chmod: missing operand\nTry 'chmod --help' for more information.\n")
        return 1
    spec = ctx.argv[1]
    status = 0
    for path in ctx.argv[2:]:
        try:
            node = ctx.fs.lookup(path, ctx.cwd)
        except FsError as error:
            await ctx.err(f"chmod: cannot access '{path}': {error.strerror}\n")
            status = 1
            continue
        if re.fullmatch(r"[0-7]{3,4}", spec):
            node.mode = int(spec, 8)
        elif match := re.fullmatch(r"([ugoa]*)([+-])([rwx]+)", spec):
            who = match.group(1) or "a"
            bits = sum({"r": 4, "w": 2, "x": 1}[c] for c in match.group(3))
            mask = 0
            for letter in who:
                for shift in {"u": (6,), "g": (3,), "o": (0,), "a": (6, 3, 0)}[letter]:
                    mask |= bits << shift
            node.mode = node.mode | mask if match.group(2) == "+" else node.mode & ~mask
        else:
            await ctx.err(f"chmod: invalid mode: '{spec}'\n")
            return 1
    return status


@command("env")
async def _env(ctx: Context) -> int:
    args = ctx.argv[1:]
    env = dict(ctx.env)
    while args and "=" in args[0] and not args[0].startswith("="):
        name, _, value = args.pop(0).partition("=")
        env[name] = value
    if args:
        return await ctx.shell.run_argv(args, ctx.io, env)
    await ctx.out("".join(f"{k}={v}\n" for k, v in env.items()))
    return 0


@command("printenv")
async def _printenv(ctx: Context) -> int:
    names = ctx.argv[1:]
    if not names:
        await ctx.out("".join(f"{k}={v}\n" for k, v in ctx.env.items()))
        return 0
    status = 0
    for name in names:
        if name in ctx.env:
            await ctx.out(ctx.env[name] + "\n")
        else:
            status = 1
    return status


def _duration(text: str) -> float | None:
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)", text)
    if match is None:
        return None
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return float(match.group(1)) * unit


@command("sleep")
async def _sleep(ctx: Context) -> int:
    if len(ctx.argv) < 2:
        await ctx.err("sleep: missing operand\nTry 'sleep --help' for more information.\n")
        return 1
    total = 0.0
    for arg in ctx.argv[1:]:
        seconds = _duration(arg)
        if seconds is None:
            await ctx.err(
                f"sleep: invalid time interval '{arg}'\nTry 'sleep --help' for more information.\n"
            )
            return 1
        total += seconds
    await ctx.machine.sleep(total)
    return 0


def _test(args: list[str], ctx: Context) -> bool:
    """POSIX `test` (raises ValueError with the message for a malformed expression)."""

    def unary(op: str, operand: str) -> bool:
        fs, cwd = ctx.fs, ctx.cwd
        if op == "-n":
            return operand != ""
        if op == "-z":
            return operand == ""
        if op == "-e":
            return fs.exists(operand, cwd)
        if op == "-f":
            return fs.is_file(operand, cwd)
        if op == "-d":
            return fs.is_dir(operand, cwd)
        if op == "-s":
            return fs.is_file(operand, cwd) and bool(fs.read_file(operand, cwd))
        if op in ("-r", "-w"):
            return fs.exists(operand, cwd)
        if op == "-x":
            try:
                return bool(fs.lookup(operand, cwd).mode & 0o111)
            except FsError:
                return False
        if op in ("-c",):
            try:
                return isinstance(fs.lookup(operand, cwd), Sink)
            except FsError:
                return False
        if op in ("-L", "-h", "-p", "-S", "-b", "-t"):
            return False
        raise ValueError(f"{op}: unexpected operator")

    def integer(text: str) -> int:
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(f"Illegal number: {text}") from None

    def binary(left: str, op: str, right: str) -> bool:
        if op in ("=", "=="):
            return left == right
        if op == "!=":
            return left != right
        if op in ("<", ">"):
            return left < right if op == "<" else left > right
        numeric = {
            "-eq": operator.eq,
            "-ne": operator.ne,
            "-lt": operator.lt,
            "-le": operator.le,
            "-gt": operator.gt,
            "-ge": operator.ge,
        }
        if op in numeric:
            return bool(numeric[op](integer(left), integer(right)))
        raise ValueError(f"{op}: unexpected operator")

    binaries = ("=", "==", "!=", "<", ">", "-eq", "-ne", "-lt", "-le", "-gt", "-ge")

    def expr(items: list[str]) -> bool:
        # -o binds looser than -a; both looser than !.
        for index, item in enumerate(items):
            if item == "-o" and 0 < index < len(items) - 1:
                return expr(items[:index]) or expr(items[index + 1 :])
        for index, item in enumerate(items):
            if item == "-a" and 0 < index < len(items) - 1:
                return expr(items[:index]) and expr(items[index + 1 :])
        return primary(items)

    def primary(items: list[str]) -> bool:
        if not items:
            return False
        if items[0] == "!" and len(items) > 1:
            return not primary(items[1:])
        if items[0] == "(" and items[-1] == ")":
            return expr(items[1:-1])
        if len(items) == 1:
            return items[0] != ""
        if len(items) == 2:
            return unary(items[0], items[1])
        if len(items) == 3 and items[1] in binaries:
            return binary(items[0], items[1], items[2])
        raise ValueError(f"{items[1] if len(items) > 1 else items[0]}: unexpected operator")

    return expr(args)


@command("test", "[", builtin=True)
@command("test", "[")
async def _test_cmd(ctx: Context) -> int:
    name = ctx.argv[0].rsplit("/", 1)[-1]
    args = ctx.argv[1:]
    prefix = ctx.shell.prefix() if ctx.argv[0] in SHELL_BUILTINS else ""
    if name == "[":
        if not args or args[-1] != "]":
            await ctx.err(f"{prefix}[: missing ]\n")
            return 2
        args = args[:-1]
    try:
        return 0 if _test(args, ctx) else 1
    except ValueError as error:
        await ctx.err(f"{prefix}{name}: {error}\n")
        return 2


@command("hostname")
async def _hostname(ctx: Context) -> int:
    await ctx.out(ctx.machine.hostname + "\n")
    return 0


@command("whoami")
async def _whoami(ctx: Context) -> int:
    await ctx.out("root\n")
    return 0


@command("id")
async def _id(ctx: Context) -> int:
    await ctx.out("uid=0(root) gid=0(root) groups=0(root)\n")
    return 0


async def _read_inputs(ctx: Context, files: list[str], name: str) -> tuple[list[bytes], int]:
    out: list[bytes] = []
    status = 0
    for path in files or ["-"]:
        if path == "-":
            out.append(await ctx.io.stdin.read_all())
            continue
        try:
            out.append(ctx.fs.read_file(path, ctx.cwd))
        except FsError as error:
            await ctx.err(f"{name}: cannot open '{path}' for reading: {error.strerror}\n")
            status = 1
    return out, status


def _count_option(argv: list[str], default: int) -> tuple[str, int, list[str]]:
    """`-n N`, `-nN`, `-c N`, `-N`: returns (unit "n"|"c", count, operands)."""
    unit, count = "n", default
    operands: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-n", "-c") and i + 1 < len(argv):
            unit, count = arg[1], int(argv[i + 1].lstrip("+-") or "0")
            i += 2
            continue
        if re.fullmatch(r"-[nc][+-]?\d+", arg):
            unit, count = arg[1], int(arg[2:].lstrip("+-"))
        elif re.fullmatch(r"-\d+", arg):
            count = int(arg[1:])
        else:
            operands.append(arg)
        i += 1
    return unit, count, operands


@command("head")
async def _head(ctx: Context) -> int:
    try:
        unit, count, files = _count_option(ctx.argv[1:], 10)
    except ValueError:
        await ctx.err("head: invalid number of lines\n")
        return 1
    if unit == "n" and files in ([], ["-"]):
        # Stream stdin so `... | head -1` ends as soon as it has its lines.
        for _ in range(count):
            line = await ctx.io.stdin.readline()
            if not line:
                break
            await ctx.out(line)
        return 0
    inputs, status = await _read_inputs(ctx, files, "head")
    for data in inputs:
        if unit == "c":
            await ctx.out(data[:count])
        else:
            await ctx.out(b"".join(data.splitlines(keepends=True)[:count]))
    return status


@command("tail")
async def _tail(ctx: Context) -> int:
    try:
        unit, count, files = _count_option(ctx.argv[1:], 10)
    except ValueError:
        await ctx.err("tail: invalid number of lines\n")
        return 1
    inputs, status = await _read_inputs(ctx, files, "tail")
    for data in inputs:
        if unit == "c":
            await ctx.out(data[-count:] if count else b"")
        else:
            lines = data.splitlines(keepends=True)
            await ctx.out(b"".join(lines[-count:] if count else []))
    return status


@command("wc")
async def _wc(ctx: Context) -> int:
    flags, files, bad = _options(ctx, ctx.argv[1:], "lwcm")
    if bad:
        return await _bad_option(ctx, "wc", bad)
    wanted = [f for f in "lwc" if f in flags or (f == "c" and "m" in flags)] or ["l", "w", "c"]
    inputs, status = await _read_inputs(ctx, files, "wc")
    rows: list[tuple[list[int], str]] = []
    for data, name in zip(inputs, files or [""], strict=False):
        counts = {"l": data.count(b"\n"), "w": len(data.split()), "c": len(data)}
        rows.append(([counts[f] for f in wanted], name))
    if len(rows) > 1:
        totals = [sum(r[0][i] for r in rows) for i in range(len(wanted))]
        rows.append((totals, "total"))
    single = len(wanted) == 1 and len(rows) == 1
    width = 1 if single else max(len(str(n)) for r in rows for n in r[0])
    if not files and not single:
        width = max(width, 7)
    for numbers, name in rows:
        text = " ".join(f"{n:>{width}}" for n in numbers)
        await ctx.out(f"{text} {name}\n" if name else f"{text}\n")
    return status


@command("grep")
async def _grep(ctx: Context) -> int:
    flags, operands, bad = _options(ctx, ctx.argv[1:], "vicqnEFlsHhwx")
    if bad:
        await ctx.err(
            f"grep: invalid option -- '{bad}'\nUsage: grep [OPTION]... PATTERNS [FILE]...\n"
        )
        return 2
    if not operands:
        await ctx.err("Usage: grep [OPTION]... PATTERNS [FILE]...\n")
        return 2
    pattern, files = operands[0], operands[1:]
    text = re.escape(pattern) if "F" in flags else pattern
    if "w" in flags:
        text = rf"\b(?:{text})\b"
    if "x" in flags:
        text = rf"^(?:{text})$"
    try:
        regex = re.compile(_b(text), re.IGNORECASE if "i" in flags else 0)
    except re.error as error:
        await ctx.err(f"grep: {error}\n")
        return 2
    inputs, status = await _read_inputs(ctx, files, "grep")
    status = 2 if status else 0
    matched = False
    show_names = (len(files) > 1 and "h" not in flags) or "H" in flags
    for data, name in zip(inputs, files or ["(standard input)"], strict=False):
        count = 0
        for number, line in enumerate(data.splitlines(), start=1):
            hit = regex.search(line) is not None
            if hit == ("v" in flags):
                continue
            count += 1
            matched = True
            if "q" in flags:
                return 0
            if "c" in flags or "l" in flags:
                continue
            prefix = (f"{name}:" if show_names else "") + (f"{number}:" if "n" in flags else "")
            await ctx.out(_b(prefix) + line + b"\n")
        if "c" in flags:
            await ctx.out((f"{name}:" if show_names else "") + f"{count}\n")
        if "l" in flags and count:
            await ctx.out(f"{name}\n")
    if status:
        return status
    return 0 if matched else 1


@command("tee")
async def _tee(ctx: Context) -> int:
    flags, files, _ = _options(ctx, ctx.argv[1:], "ai")
    status = 0
    for path in files:
        try:
            ctx.fs.write_file(path, b"", append="a" in flags, cwd=ctx.cwd)
        except FsError as error:
            await ctx.err(f"tee: {path}: {error.strerror}\n")
            status = 1
    while True:
        chunk = await ctx.io.stdin.read()
        if not chunk:
            break
        for path in files:
            if ctx.fs.exists(path, ctx.cwd):
                ctx.fs.write_file(path, chunk, append=True, cwd=ctx.cwd)
        await ctx.out(chunk)
    return status


@command("date")
async def _date(ctx: Context) -> int:
    now = ctx.machine.now()
    fmt = next((a[1:] for a in ctx.argv[1:] if a.startswith("+")), "%a %b %e %H:%M:%S UTC %Y")
    fmt = fmt.replace("%s", str(int(now))).replace("%N", f"{int((now % 1) * 1e9):09d}")
    await ctx.out(_time.strftime(fmt, _time.gmtime(now)) + "\n")
    return 0


@command("uname")
async def _uname(ctx: Context) -> int:
    fields = {
        "s": "Linux",
        "n": ctx.machine.hostname,
        "r": "6.8.0-rxkube-sim",
        "v": "#1 SMP",
        "m": "x86_64",
        "o": "GNU/Linux",
    }
    flags, _, bad = _options(ctx, ctx.argv[1:], "asnrvmo")
    if bad:
        return await _bad_option(ctx, "uname", bad)
    order = "snrvmo" if "a" in flags else "".join(f for f in "snrvmo" if f in flags) or "s"
    await ctx.out(" ".join(fields[f] for f in order) + "\n")
    return 0


@command("basename")
async def _basename(ctx: Context) -> int:
    if len(ctx.argv) < 2:
        await ctx.err("basename: missing operand\n")
        return 1
    name = posixpath.basename(ctx.argv[1].rstrip("/")) or "/"
    if len(ctx.argv) > 2 and name.endswith(ctx.argv[2]) and name != ctx.argv[2]:
        name = name[: -len(ctx.argv[2])]
    await ctx.out(name + "\n")
    return 0


@command("dirname")
async def _dirname(ctx: Context) -> int:
    if len(ctx.argv) < 2:
        await ctx.err("dirname: missing operand\n")
        return 1
    await ctx.out((posixpath.dirname(ctx.argv[1].rstrip("/")) or ".") + "\n")
    return 0


@command("seq")
async def _seq(ctx: Context) -> int:
    try:
        numbers = [int(a) for a in ctx.argv[1:]]
    except ValueError:
        await ctx.err(f"seq: invalid floating point argument: '{ctx.argv[-1]}'\n")
        return 1
    if not 1 <= len(numbers) <= 3:
        await ctx.err("seq: missing operand\n")
        return 1
    first, step, last = 1, 1, numbers[-1]
    if len(numbers) >= 2:
        first = numbers[0]
    if len(numbers) == 3:
        step = numbers[1]
    if step == 0:
        await ctx.err("seq: invalid Zero increment value: '0'\n")
        return 1
    values = range(first, last + (1 if step > 0 else -1), step)
    for start in range(0, len(values), 1000):
        await ctx.out("".join(f"{v}\n" for v in values[start : start + 1000]))
    return 0


@command("kill")
async def _kill(ctx: Context) -> int:
    args = ctx.argv[1:]
    signal = 15
    if args and args[0].startswith("-") and len(args[0]) > 1:
        spec = args.pop(0)[1:]
        if spec == "s" and args:
            spec = args.pop(0)
        spec = spec.upper().removeprefix("SIG")
        if spec.isdigit():
            signal = int(spec)
        elif spec in SIGNALS:
            signal = SIGNALS[spec]
        else:
            await ctx.err(f"kill: invalid signal specification {spec}\n")
            return 1
    status = 0
    for pid in args:
        if pid == "1" and ctx.machine.kill_main is not None:
            if signal != 0:
                ctx.machine.kill_main(signal)
            continue
        await ctx.err(f"kill: ({pid}) - No such process\n")
        status = 1
    return status


@command("sh", "bash", "dash")
async def _sh(ctx: Context) -> int:
    name = posixpath.basename(ctx.argv[0])
    bash = name == "bash"
    args = ctx.argv[1:]
    script: str | None = None
    errexit = False
    while args and args[0].startswith("-") and args[0] not in ("-", "--"):
        flag = args.pop(0)
        if "e" in flag:
            errexit = True
        if "c" in flag:
            if not args:
                await ctx.err(f"{name}: 0: -c requires an argument\n")
                return 2
            script = args.pop(0)
    if args and args[0] == "--":
        args.pop(0)
    if script is not None:
        arg0 = args[0] if args else name
        shell = Shell(
            ctx.machine, arg0=arg0, args=args[1:], env=dict(ctx.env), cwd=ctx.cwd, bash=bash
        )
        shell.errexit = errexit
        return await shell.run_text(script, ctx.io)
    if args:
        path = args[0]
        try:
            text = _s(ctx.fs.read_file(path, ctx.cwd))
        except FsError:
            await ctx.err(f"{name}: 0: cannot open {path}: No such file\n")
            return 2
        shell = Shell(
            ctx.machine, arg0=path, args=args[1:], env=dict(ctx.env), cwd=ctx.cwd, bash=bash
        )
        shell.errexit = errexit
        return await shell.run_text(text, ctx.io)
    shell = Shell(ctx.machine, arg0=name, env=dict(ctx.env), cwd=ctx.cwd, bash=bash)
    shell.errexit = errexit
    return await interactive(shell, ctx.io, tty=ctx.shell.tty)


async def interactive(shell: Shell, io: IO, *, tty: bool) -> int:
    """`sh` reading commands from stdin; on a tty: echo what is typed, prompt `# `."""
    pending = ""
    line_buffer = bytearray()
    prompt = b"# "
    if tty:
        await io.stdout(prompt)
    while True:
        chunk = await io.stdin.read()
        if not chunk:
            break
        lines: list[bytes] = []
        for byte in chunk:
            if tty and byte in (0x7F, 0x08):
                if line_buffer:
                    line_buffer.pop()
                    await io.stdout(b"\b \b")
                continue
            if tty and byte == 0x03:
                line_buffer.clear()
                pending = ""
                await io.stdout(b"^C\r\n" + prompt)
                continue
            if tty and byte == 0x04 and not line_buffer:
                await io.stdout(b"\r\n")
                return shell.status
            if byte in (0x0A, 0x0D):
                if tty:
                    await io.stdout(b"\r\n")
                lines.append(bytes(line_buffer))
                line_buffer.clear()
                continue
            line_buffer.append(byte)
            if tty:
                await io.stdout(bytes([byte]))
        for line in lines:
            pending += _s(line) + "\n"
            try:
                tree = parse(pending)
            except ShellSyntaxError as error:
                if error.eof:
                    continue
                await io.stderr(_b(f"{shell.prefix(error.line)}Syntax error: {error.message}\n"))
                shell.line_offset += pending.count("\n")
                pending = ""
                shell.status = 2
                if tty:
                    await io.stdout(prompt)
                continue
            try:
                await shell.run_seq(tree, io)
            except ShellExit as leave:
                return leave.code
            shell.line_offset += pending.count("\n")
            pending = ""
            if tty:
                await io.stdout(prompt)
    if line_buffer or pending:
        try:
            return await shell.run_seq(parse(pending + _s(bytes(line_buffer))), io)
        except ShellSyntaxError as error:
            await io.stderr(_b(f"{shell.prefix(error.line)}Syntax error: {error.message}\n"))
            return 2
        except ShellExit as leave:
            return leave.code
    return shell.status
