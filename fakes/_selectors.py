"""Label and field selectors: parsing the query strings and matching objects.

What this module is for: the selector grammar of apimachinery's `pkg/labels/selector.go` and
`pkg/fields/selector.go` (reference section 3.4). Labels: comma = AND; `k=v`, `k==v`, `k!=v`
(true when the key is absent), `k in (a,b)`, `k notin (a,b)` (true when absent), `k` (exists),
`!k` (absent), `k>5`/`k<5` (integers). Fields: only `=`, `==`, `!=`, with `\\,` `\\=` `\\\\`
escapes, and only the labels the kind supports. Bad syntax raises the real 400 `StatusError`.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from rxkube.fakes._errors import StatusError

__all__ = ["FieldSelector", "LabelSelector"]

Op = Literal["=", "!=", "in", "notin", "exists", "!", ">", "<"]

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_KEY_RE = re.compile(rf"^({_PREFIX}/)?{_NAME}$")
_VALUE_RE = re.compile(rf"^({_NAME})?$")


def valid_label_key(key: str) -> bool:
    if not _KEY_RE.match(key):
        return False
    prefix, _, _ = key.rpartition("/")
    return len(prefix) <= 253


def valid_label_value(value: str) -> bool:
    return len(value) <= 63 and bool(_VALUE_RE.match(value))


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: Op
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.op
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        value = labels.get(self.key)
        if op == "=":
            return value is not None and value == self.values[0]
        if op == "!=":
            return value is None or value != self.values[0]
        if op == "in":
            return value is not None and value in self.values
        if op == "notin":
            return value is None or value not in self.values
        if value is None:
            return False
        try:
            have = int(value)
        except ValueError:
            return False
        bound = int(self.values[0])
        return have > bound if op == ">" else have < bound


class LabelSelector:
    """A parsed `labelSelector`: a conjunction of requirements. Empty matches everything."""

    __slots__ = ("requirements", "text")

    def __init__(self, requirements: tuple[Requirement, ...], text: str = "") -> None:
        self.requirements = requirements
        self.text = text

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        """Parse the query-string form; raise 400 `unable to parse requirement: ...`."""
        if not text or not text.strip():
            return cls((), "")
        return cls(tuple(_LabelParser(text).parse()), text)

    @classmethod
    def from_match_labels(cls, labels: Mapping[str, str]) -> LabelSelector:
        return cls(tuple(Requirement(k, "=", (v,)) for k, v in sorted(labels.items())))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __repr__(self) -> str:
        return f"LabelSelector({self.text!r})"


class _LabelParser:
    """A small tokenizer + recursive-descent parser for the label selector grammar."""

    _TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|>|<|[^\s(),!=<>]+)")

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[str] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = self._TOKEN.match(text, pos)
            if not m:
                self.fail(f"unexpected character at {pos}")
            assert m is not None
            self.tokens.append(m.group(1))
            pos = m.end()
        self.pos = 0

    def fail(self, why: str) -> None:
        raise StatusError.bad_request(f"unable to parse requirement: {why}")

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            self.fail(f"unexpected end of selector {self.text!r}")
        assert token is not None
        self.pos += 1
        return token

    def parse(self) -> list[Requirement]:
        out = [self.requirement()]
        while self.peek() is not None:
            if self.take() != ",":
                self.fail(f"expected ',' in selector {self.text!r}")
            out.append(self.requirement())
        return out

    def key(self) -> str:
        key = self.take()
        if key in ("(", ")", ",", "=", "==", "!=", "!", ">", "<", "in", "notin"):
            self.fail(f"found '{key}', expected: identifier")
        if not valid_label_key(key):
            self.fail(
                f'invalid label key "{key}": name part must consist of alphanumeric '
                "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                "character"
            )
        return key

    def value(self) -> str:
        token = self.peek()
        if token in (None, ",", ")"):
            return ""  # `k=` selects the empty value
        value = self.take()
        if not valid_label_value(value):
            self.fail(
                f'invalid label value: "{value}": a valid label must be an empty string or '
                "consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                "with an alphanumeric character"
            )
        return value

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.take()
            return Requirement(self.key(), "!")
        key = self.key()
        op = self.peek()
        if op in (None, ","):
            return Requirement(key, "exists")
        self.take()
        if op in ("=", "=="):
            return Requirement(key, "=", (self.value(),))
        if op == "!=":
            return Requirement(key, "!=", (self.value(),))
        if op in (">", "<"):
            bound = self.take()
            try:
                int(bound)
            except ValueError:
                self.fail(f"for 'Gt', 'Lt' operators, the value must be an integer: {bound}")
            return Requirement(key, ">" if op == ">" else "<", (bound,))
        if op in ("in", "notin"):
            if self.take() != "(":
                self.fail(f"found '{op}' without '(' in selector {self.text!r}")
            values: list[str] = []
            while True:
                values.append(self.value())
                token = self.take()
                if token == ")":
                    break
                if token != ",":
                    self.fail(f"found '{token}', expected: ',' or ')'")
            return Requirement(key, "in" if op == "in" else "notin", tuple(values))
        self.fail(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt")
        raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class _FieldTerm:
    field: str
    value: str
    negate: bool


class FieldSelector:
    """A parsed `fieldSelector`, checked against the labels a kind supports."""

    __slots__ = ("terms", "text")

    def __init__(self, terms: tuple[_FieldTerm, ...], text: str = "") -> None:
        self.terms = terms
        self.text = text

    @classmethod
    def parse(cls, text: str | None, supported: Mapping[str, object]) -> FieldSelector:
        if not text or not text.strip():
            return cls((), "")
        terms: list[_FieldTerm] = []
        for part in _split_unescaped(text, ","):
            if not part.strip():
                continue
            term = _parse_field_term(part)
            if term.field not in supported:
                raise StatusError.bad_request(
                    f'Unable to find "{term.field}" field label: '
                    f"field label not supported: {term.field}"
                )
            terms.append(term)
        return cls(tuple(terms), text)

    @property
    def empty(self) -> bool:
        return not self.terms

    def matches(self, fields: Mapping[str, str]) -> bool:
        for term in self.terms:
            equal = fields.get(term.field, "") == term.value
            if equal == term.negate:
                return False
        return True

    def exact_name(self) -> str | None:
        """The name when the selector pins `metadata.name=` (lets a watch skip other keys)."""
        for term in self.terms:
            if term.field == "metadata.name" and not term.negate:
                return term.value
        return None

    def __repr__(self) -> str:
        return f"FieldSelector({self.text!r})"


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "\\,=":
                raise StatusError.bad_request(
                    f"invalid field selector: invalid escape sequence in {text!r}"
                )
            out.append(text[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _parse_field_term(part: str) -> _FieldTerm:
    for op, negate in (("!=", True), ("==", False), ("=", False)):
        index = _find_unescaped(part, op)
        if index >= 0:
            field = part[:index].strip()
            value = _unescape(part[index + len(op) :])
            if not field:
                break
            return _FieldTerm(field, value, negate)
    raise StatusError.bad_request(f"invalid selector: '{part}'; can't understand '{part}'")


def _find_unescaped(text: str, op: str) -> int:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(op, i):
            return i
        i += 1
    return -1
