"""Label selectors: the API server's syntax, matching, canonical text, bad input."""

from __future__ import annotations

import pytest

from rxkube.streams import Selector, SelectorError, parse_selector

LABELS = {"app": "gmweb", "tier": "web", "replicas": "3", "example.com/team": "lab"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("app=gmweb", True),
        ("app==gmweb", True),
        ("app = gmweb", True),
        ("app!=gmweb", False),
        ("missing!=x", True),  # absent keys satisfy !=
        ("app=gmweb,tier=db", False),
        ("tier in (web, api)", True),
        ("tier notin (web)", False),
        ("missing notin (web)", True),
        ("app", True),
        ("!app", False),
        ("!missing", True),
        ("replicas>2", True),
        ("replicas<3", False),
        ("app>2", False),  # not an integer: no match
        ("example.com/team=lab", True),
        ("empty=", False),
        ("app in (gmweb),tier,!canary", True),
    ],
)
def test_matching(text: str, matches: bool) -> None:
    assert parse_selector(text).matches(LABELS) is matches


def test_an_empty_value_matches_an_empty_label() -> None:
    assert parse_selector("flag=").matches({"flag": ""})


def test_canonical_text_round_trips() -> None:
    text = "app=gmweb,tier in (web,api),!canary,team,replicas>2,zone!=a"
    selector = parse_selector(text)
    assert str(selector) == text
    assert parse_selector(str(selector)) == selector


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app in gmweb", "unable to parse requirement: 'app in gmweb'"),
        ("app in (a,b", "unable to parse requirement"),
        ("-bad=x", "invalid label key '-bad'"),
        ("app=in valid", "unable to parse requirement"),
        ("app=" + "x" * 64, "invalid label value"),
        ("replicas>many", "must be an integer"),
        ("a=b,,c=d", "unable to parse requirement: ''"),
    ],
)
def test_bad_selectors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(SelectorError, match=message):
        parse_selector(text)


def test_from_a_deployments_label_selector() -> None:
    selector = Selector.from_label_selector(
        {
            "matchLabels": {"app": "gmweb"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["web", "api"]},
                {"key": "canary", "operator": "DoesNotExist", "values": []},
            ],
        }
    )
    assert selector.matches(LABELS)
    assert not selector.matches({**LABELS, "canary": "1"})
    assert str(selector) == "app=gmweb,tier in (web,api),!canary"
    assert Selector.from_label_selector({}).matches({})  # the API's rule: {} selects all


def test_a_mapping_means_equality_and_a_selector_passes_through() -> None:
    selector = parse_selector({"app": "gmweb"})
    assert str(selector) == "app=gmweb"
    assert parse_selector(selector) is selector
    with pytest.raises(SelectorError, match="invalid label value"):
        parse_selector({"app": "not a label value"})
