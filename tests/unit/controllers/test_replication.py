"""The replicas' role from the Lease (pure), the advertised address, the lease timings."""

from __future__ import annotations

import pytest

from rxkube.controllers import AUTHORITY_ANNOTATION, AuthorityRole, authority_role, lease_policy
from rxkube.controllers._replication import address_problem, advertised_address
from rxkube.streams import LeaseHolder


def holder(identity: str, address: str | None = None) -> LeaseHolder:
    return LeaseHolder(identity, {} if address is None else {AUTHORITY_ANNOTATION: address})


def test_the_lease_holder_leads_and_the_others_follow_its_advertised_address() -> None:
    assert authority_role(leads=True, holder=holder("a", "10.0.0.1:9091"), identity="a") == (
        AuthorityRole("lead")
    )
    assert authority_role(leads=False, holder=holder("a", "10.0.0.1:9091"), identity="b") == (
        AuthorityRole("follow", "10.0.0.1:9091")
    )
    ipv6 = holder("a", "[fd00::7]:9091")
    assert authority_role(leads=False, holder=ipv6, identity="b").address == "[fd00::7]:9091"
    # Other annotations on the Lease are not ours to read.
    other = LeaseHolder("a", {"example.com/x": "1", AUTHORITY_ANNOTATION: "10.0.0.1:9091"})
    assert authority_role(leads=False, holder=other, identity="b").role == "follow"


@pytest.mark.parametrize(
    ("seen", "reason"),
    [
        (holder(""), "the Lease has no holder"),
        (holder("b", "10.0.0.2:9091"), "this replica's Lease is not renewed"),
        (holder("a"), f"annotation {AUTHORITY_ANNOTATION} is missing"),
        (holder("a", "10.0.0.1"), "not HOST:PORT"),
        (holder("a", "10.0.0.1:http"), "not HOST:PORT"),
        (holder("a", "10.0.0.1:0"), "not HOST:PORT"),
        (holder("a", "10.0.0.1:70000"), "not HOST:PORT"),
        (holder("a", ":9091"), "not HOST:PORT"),
        (holder("a", "fd00::7:9091"), "IPv6 address goes in brackets"),
    ],
)
def test_without_a_leader_to_follow_the_authority_stands_by(seen: LeaseHolder, reason: str) -> None:
    role = authority_role(leads=False, holder=seen, identity="b")
    assert (role.role, role.address) == ("stand-by", None)
    assert reason in role.reason


def test_addresses_are_checked_and_advertised_as_others_reach_them() -> None:
    assert address_problem("rxkube-0.rxkube:9091") is None  # a DNS name is fine too
    assert advertised_address("10.0.0.5", 9091) == "10.0.0.5:9091"
    assert advertised_address("fd00::5", 9091) == "[fd00::5]:9091"
    assert advertised_address("[fd00::5]", 9091) == "[fd00::5]:9091"
    assert advertised_address("node-1.example", 9091) == "node-1.example:9091"
    for wildcard in ("0.0.0.0", "::", "[::]", ""):
        with pytest.raises(ValueError, match="POD_IP"):
            advertised_address(wildcard, 9091)


def test_lease_timings_scale_from_client_gos_defaults() -> None:
    default = lease_policy(15.0)
    assert (default.lease_duration, default.renew_deadline, default.retry_period) == (
        15.0,
        10.0,
        2.0,
    )
    short = lease_policy(2.0)
    assert short.retry_period < short.renew_deadline < short.lease_duration == 2.0
    with pytest.raises(ValueError, match="at least 1s"):
        lease_policy(0.5)
