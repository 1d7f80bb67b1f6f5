"""Label selectors: parse Kubernetes' selector syntax and match labels (or annotations) locally.

What this module is for: the same selection the API server does with `labelSelector=`, done in a
pipeline (the filter operators) or on a Deployment's `spec.selector`. Pure: no I/O.

Syntax (apimachinery `pkg/labels/selector.go`; wire reference 3.4): requirements separated by
commas are ANDed; each is `k=v`, `k==v`, `k!=v` (also true when k is absent), `k in (a,b)`,
`k notin (a,b)` (true when absent), `k` (exists), `!k` (absent), `k>5`, `k<5` (integer values).
Keys are an optional DNS-subdomain prefix (<= 253) and `/`, then a name (<= 63, alphanumeric at
both ends, `-_.` inside); values are <= 63 such characters and may be empty. A bad selector raises
`SelectorError` with the API server's wording, `unable to parse requirement: ...`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from rxkube.streams._types import LabelSelector

__all__ = [
    "Requirement",
    "Selector",
    "SelectorError",
    "SelectorLike",
    "parse_selector",
]

Operator: TypeAlias = Literal["=", "!=", "in", "notin", "exists", "!", "gt", "lt"]

_NAME: Final = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX: Final = r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?"
_KEY_RE: Final = re.compile(rf"(?:{_PREFIX}/)?{_NAME}")
_VALUE_RE: Final = re.compile(rf"(?:{_NAME})?")
_REQUIREMENT_RE: Final = re.compile(
    r"""\s*(?:
        !\s*(?P<absent>[^\s,!=<>()]+)
      | (?P<key>[^\s,!=<>()]+)(?:
            \s*(?P<op>==|=|!=|<|>)\s*(?P<value>[^\s,()]*)
          | \s+(?P<setop>in|notin)\s*\((?P<values>[^()]*)\)
          | (?P<exists>)
        )
    )\s*$""",
    re.VERBOSE,
)


class SelectorError(ValueError):
    """A label selector that does not parse (the message quotes the bad requirement)."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """One requirement of a selector: `key operator values`."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        operator = self.operator
        if operator == "=":
            return value == self.values[0]
        if operator == "!=":
            return value != self.values[0]
        if operator == "in":
            return value is not None and value in self.values
        if operator == "notin":
            return value is None or value not in self.values
        if operator == "exists":
            return value is not None
        if operator == "!":
            return value is None
        if value is None:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if operator == "gt" else number < bound

    def __str__(self) -> str:
        operator, key = self.operator, self.key
        if operator in ("=", "!="):
            return f"{key}{operator}{self.values[0]}"
        if operator in ("in", "notin"):
            return f"{key} {operator} ({','.join(self.values)})"
        if operator == "exists":
            return key
        if operator == "!":
            return f"!{key}"
        return f"{key}{'>' if operator == 'gt' else '<'}{self.values[0]}"


@dataclass(frozen=True, slots=True)
class Selector:
    """Requirements ANDed together; the empty selector matches everything.

    `str(selector)` is the canonical text to send as `labelSelector=`.
    """

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> Selector:
        """Equality on each pair (a `matchLabels`)."""
        return cls(
            tuple(
                Requirement(_check_key(key, str(labels)), "=", (_check_value(value, key),))
                for key, value in labels.items()
            )
        )

    @classmethod
    def from_label_selector(cls, selector: LabelSelector) -> Selector:
        """A meta/v1 LabelSelector (`matchLabels` and `matchExpressions`, as in a Deployment).

        Note the API's rule: an empty LabelSelector `{}` matches everything.
        """
        requirements = list(cls.from_labels(selector.get("matchLabels", {})).requirements)
        for expression in selector.get("matchExpressions", []):
            key = _check_key(expression["key"], str(expression))
            values = tuple(expression.get("values", []))
            operator = expression["operator"]
            if operator == "In":
                requirements.append(Requirement(key, "in", values))
            elif operator == "NotIn":
                requirements.append(Requirement(key, "notin", values))
            elif operator == "Exists":
                requirements.append(Requirement(key, "exists"))
            elif operator == "DoesNotExist":
                requirements.append(Requirement(key, "!"))
            else:
                raise SelectorError(f"{operator!r} is not a valid label selector operator")
        return cls(tuple(requirements))


SelectorLike: TypeAlias = str | Selector | Mapping[str, str]
"""What the filter operators accept: selector text, a parsed `Selector`, or labels to equal."""


def _check_key(key: str, where: str) -> str:
    if len(key) > 253 + 1 + 63 or not _KEY_RE.fullmatch(key):
        raise SelectorError(
            f"unable to parse requirement: {where}: invalid label key {key!r}: a name of at most "
            "63 alphanumerics, '-', '_' or '.' (alphanumeric at both ends), optionally after a "
            "DNS subdomain prefix and '/'"
        )
    return key


def _check_value(value: str, key: str) -> str:
    if len(value) > 63 or not _VALUE_RE.fullmatch(value):
        raise SelectorError(
            f"unable to parse requirement: invalid label value {value!r} for key {key!r}: at most"
            " 63 alphanumerics, '-', '_' or '.', alphanumeric at both ends (may be empty)"
        )
    return value


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def _parse_requirement(text: str) -> Requirement:
    match = _REQUIREMENT_RE.match(text)
    if match is None:
        raise SelectorError(f"unable to parse requirement: {text.strip()!r}")
    if match["absent"] is not None:
        return Requirement(_check_key(match["absent"], text), "!")
    key = _check_key(match["key"], text)
    if match["op"] is not None:
        op, value = match["op"], match["value"]
        if op in ("<", ">"):
            if not re.fullmatch(r"-?[0-9]+", value):
                raise SelectorError(
                    f"unable to parse requirement: {text.strip()!r}: for '{op}', the value must "
                    f"be an integer, got {value!r}"
                )
            return Requirement(key, "gt" if op == ">" else "lt", (value,))
        return Requirement(key, "!=" if op == "!=" else "=", (_check_value(value, key),))
    if match["setop"] is not None:
        values = tuple(_check_value(value.strip(), key) for value in match["values"].split(","))
        return Requirement(key, "in" if match["setop"] == "in" else "notin", values)
    return Requirement(key, "exists")


def parse_selector(selector: SelectorLike) -> Selector:
    """Parse selector text (or pass a `Selector` through, or equal a mapping of labels).

    `parse_selector("app=gmweb,tier in (web, api),!canary")`
    """
    if isinstance(selector, Selector):
        return selector
    if not isinstance(selector, str):
        return Selector.from_labels(selector)
    if not selector.strip():
        return Selector()
    return Selector(tuple(_parse_requirement(part) for part in _split_top_level(selector)))
