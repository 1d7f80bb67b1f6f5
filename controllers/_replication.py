"""Several replicas of the ticket controller: the Lease decides which one owns the ticket table.

What this module is for: issue 10 item 4, the controllers side. With leader election, every
replica runs a `ReplicatedTicketAuthority` (rxkube.proxy, docs/reliability.md section 3) and takes
part in the election on a coordination.k8s.io Lease (rxkube.streams). The Lease holder leads the
ticket table (`authority.lead()`), the others follow it (`authority.follow(address)`); so
`tickets.max` holds across replicas, and the replica that runs the autoscaler and posts Events is
the one that decides tickets.

How followers find the leader: the leader writes where its authority listens on the Lease, in
the annotation `rxkube.io/authority-address` ("host:port", the pod IP from the downward API's
`POD_IP` and the authority port), in the same PUT that names it holder; every candidate reads
the Lease on each try (every `retry_period` or so) and re-decides its role from what it read.
Why the Lease and not the pod informer: the Lease is read anyway, holder and address change in
one write (no window where the holder is known and its address is not), and it needs no watch
of rxkube's own pods (RBAC stays as it is).

The role, from the candidate's view of the Lease (`authority_role`, pure):

    this candidate leads                         -> lead
    another holder with a valid address          -> follow that address
    no holder, this candidate's own lapsed Lease,
    or a holder without a (valid) address        -> stand by (holders are served from the copy;
                                                    new tickets 503 until a leader is known)

Losing the Lease (no renewal within `renew_deadline`) therefore stands the authority down at
once, before anybody else can take the Lease over (`renew_deadline < lease_duration`): two
leaders at once need a clock running more than `lease_duration - renew_deadline` slow.

The authority's port carries tickets between replicas: its calls are authenticated with a token
derived from the shared ticket key, and deploy/ keeps it off the public Service (a
NetworkPolicy admits only rxkube's own pods to it).

It may import `rxkube.streams` and `rxkube.proxy`; never `rxkube.fakes`.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, Literal

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from reactivex.disposable import CompositeDisposable

from rxkube.controllers._logs import fields
from rxkube.proxy import ReplicatedTicketAuthority, open_replicated_authority
from rxkube.streams import (
    KubeClient,
    LeaderElection,
    LeaseHolder,
    LeasePolicy,
    open_leader_election,
)

__all__ = [
    "AUTHORITY_ANNOTATION",
    "AUTHORITY_PORT",
    "AuthorityRole",
    "Replication",
    "authority_role",
    "lease_policy",
    "open_replication",
]

log: Final = logging.getLogger("rxkube.controllers.replication")

AUTHORITY_ANNOTATION: Final = "rxkube.io/authority-address"
"""On the Lease: "host:port" of the leader's ticket authority, written by the leader."""
AUTHORITY_PORT: Final = 9091
"""The authority's port in a cluster (deploy/deployment.yaml, the NetworkPolicy)."""


@dataclass(frozen=True, slots=True)
class AuthorityRole:
    """What the ticket authority of this replica should do now."""

    role: Literal["lead", "follow", "stand-by"]
    address: str | None = None
    """The leader's authority ("host:port") when following."""
    reason: str = ""
    """Why standing by (for the log)."""


def authority_role(*, leads: bool, holder: LeaseHolder, identity: str) -> AuthorityRole:
    """The authority's role from this candidate's view of the Lease (see the module docstring)."""
    if leads:
        return AuthorityRole("lead")
    if not holder.identity:
        return AuthorityRole("stand-by", reason="the Lease has no holder")
    if holder.identity == identity:
        # Read just before this candidate is told it leads, or its own Lease lapsed.
        return AuthorityRole("stand-by", reason="this replica's Lease is not renewed")
    address = holder.annotations.get(AUTHORITY_ANNOTATION, "")
    problem = address_problem(address)
    if problem is not None:
        return AuthorityRole(
            "stand-by",
            reason=f"the holder {holder.identity!r} advertises no ticket authority: "
            f"annotation {AUTHORITY_ANNOTATION} {problem}",
        )
    return AuthorityRole("follow", address)


def address_problem(address: str) -> str | None:
    """Why `address` is not a "host:port" to follow (None when it is)."""
    if not address:
        return "is missing"
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"is {address!r}, not HOST:PORT"
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        return f"is {address!r}: an IPv6 address goes in brackets, [::1]:9091"
    return None


def advertised_address(host: str, port: int) -> str:
    """The "host:port" other replicas reach an authority bound on `port` at, via `host`."""
    bare = host.strip("[]")
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        ip = None
    if not bare or (ip is not None and ip.is_unspecified):
        raise ValueError(
            f"the ticket authority listens on {host or '*'}:{port}, an address other replicas "
            "cannot reach it at: give the pod's IP (POD_IP from the downward API, see "
            "deploy/deployment.yaml) or a specific --authority-listen host"
        )
    return f"[{bare}]:{port}" if ip is not None and ip.version == 6 else f"{bare}:{port}"


def lease_policy(lease_duration: float) -> LeasePolicy:
    """Timings scaled from client-go's defaults (15 s lease, 10 s renew deadline, 2 s retry)."""
    if lease_duration < 1:
        raise ValueError(f"the lease duration must be at least 1s, got {lease_duration}s")
    return LeasePolicy(
        lease_duration=lease_duration,
        renew_deadline=lease_duration * 2 / 3,
        retry_period=lease_duration * 2 / 15,
    )


class Replication:
    """This replica's part in the replication: its authority, its candidacy, its role.

    Made by `open_replication`; the runner passes `authority` to the proxy."""

    def __init__(
        self, authority: ReplicatedTicketAuthority, election: LeaderElection, address: str
    ) -> None:
        self.authority = authority
        self.election = election
        self.address = address
        """Where this replica's authority is reached (written on the Lease while it leads)."""
        self.role: AuthorityRole | None = None
        """The role last decided (None before the first decision)."""
        self.changes = 0
        """Role changes so far."""

    def _evaluate(self, *_: object) -> None:
        election = self.election
        role = authority_role(
            leads=election.is_leader, holder=election.holder, identity=election.identity
        )
        if role == self.role:
            return
        self.role = role
        self.changes += 1
        authority = self.authority
        if role.role == "lead":
            authority.lead()
            log.info("leading the ticket table", extra=fields(address=self.address))
        elif role.role == "follow":
            assert role.address is not None
            authority.follow(role.address)
            log.info(
                "following the ticket table's leader",
                extra=fields(leader=election.holder.identity, address=role.address),
            )
        else:
            authority.stand_by()
            level = logging.WARNING if AUTHORITY_ANNOTATION in role.reason else logging.INFO
            log.log(level, "ticket authority stands by: %s", role.reason)


class _ReplicationCollector(Collector):
    def __init__(self, replication: Replication) -> None:
        self._replication = replication

    def collect(self) -> Iterable[Metric]:
        stats = self._replication.authority.statistics()
        synced = GaugeMetricFamily(
            "rxkube_ticket_authority_synced",
            "1 while this replica leads the ticket table or follows a leader with its table.",
        )
        synced.add_metric([], 1.0 if stats.synced else 0.0)
        followers = GaugeMetricFamily(
            "rxkube_ticket_authority_followers", "Replicas following this one (leader)."
        )
        followers.add_metric([], float(stats.followers))
        promotions = CounterMetricFamily(
            "rxkube_ticket_authority_promotions", "Times this replica took the ticket table over."
        )
        promotions.add_metric([], float(stats.promotions))
        refused = CounterMetricFamily(
            "rxkube_ticket_authority_refused",
            "Tickets this replica reported that the leader refused (no room any more).",
        )
        refused.add_metric([], float(stats.refused))
        return [synced, followers, promotions, refused]


@asynccontextmanager
async def open_replication(
    client: KubeClient,
    *,
    namespace: str,
    lease_name: str,
    identity: str,
    policy: LeasePolicy,
    keys: Sequence[bytes],
    listen: tuple[str, int],
    advertise_host: str | None = None,
    registry: CollectorRegistry | None = None,
    rng: random.Random | None = None,
) -> AsyncIterator[Replication]:
    """Run this replica's ticket authority on `listen` and its candidacy for Lease
    `namespace/lease_name`, keeping the authority's role in step with the Lease.

    ::

        async with open_replication(client, namespace="apps", lease_name="rxkube",
                                    identity=pod_name, policy=LeasePolicy(),
                                    keys=config.ticket_keys, listen=("0.0.0.0", 9091),
                                    advertise_host=os.environ["POD_IP"]) as replication:
            async with open_ticket_proxy(config, authority=replication.authority) as proxy:
                ...

    `keys`: the shared ticket keys (the authority's token derives from them; required).
    `advertise_host`: the host other replicas reach this one at (default: the `listen` host,
    which then must not be a wildcard). `registry`: where the authority's metrics go.
    Leaving the block releases the Lease (unless the policy says not to) and closes the
    authority's port.
    """
    if not keys:
        raise ValueError(
            "replicas need a shared ticket key (ProxyConfig.ticket_keys; `rxkube run`: "
            "--ticket-key-file or RXKUBE_TICKET_KEY): the replicas' API is authenticated with it"
        )
    async with open_replicated_authority(keys=keys, listen=listen, identity=identity) as authority:
        address = advertised_address(advertise_host or listen[0], authority.address[1])
        async with open_leader_election(
            client,
            namespace=namespace,
            name=lease_name,
            identity=identity,
            policy=policy,
            rng=rng,
            annotations={AUTHORITY_ANNOTATION: address},
        ) as election:
            replication = Replication(authority, election, address)
            subscription = CompositeDisposable(
                election.changes.subscribe(replication._evaluate),
                election.holders.subscribe(replication._evaluate),
            )
            collector = _ReplicationCollector(replication)
            if registry is not None:
                registry.register(collector)
            log.info(
                "ticket authority listening",
                extra=fields(
                    listen=f"{authority.address[0]}:{authority.address[1]}", address=address
                ),
            )
            try:
                yield replication
            finally:
                subscription.dispose()
                if registry is not None:
                    registry.unregister(collector)
