"""Issue 10, item 1: the watch layer under seeded chaos, in `make test` (`make chaos`).

Each seed is one schedule of `tests/chaos/_harness.py`: about 70 writes of pods, Deployments and
ConfigMaps with 14 or more faults among them, run against twin fake API servers over loopback
through the real client, with the informers of `VIEWS` and the ticket controller's pipeline on
both twins. A schedule passes when every Store equals the server's state, every event stream
folds to it strictly and is grounded in the server's history, the fault-free twin saw exactly
the server's change sequence, and the controller's final state (apps, server lists, the proxy's
desired state) equals the fault-free run's. About 2-3 s of wall time per seed, a third of a CPU
second. A longer randomized campaign: `python bench/chaos.py --schedules N --seed S`.

Histories end settled (valid annotations, every pod that was ready ready again): two of the
controller's rules remember the past by design (an invalid annotation keeps the last good spec;
a pod that was ready stays listed while not ready), so a faulted run whose relists coalesced
those states away ends elsewhere. `bench/chaos.py --no-settle` shows it: about one schedule in
six then differs in the controller's state (never in a Store or an event stream).

Regression seeds (a seed that ever failed stays here, with what broke) are at the bottom.
"""

from __future__ import annotations

from collections import Counter

import pytest
import trio

from tests.chaos._consumers import ticket_pipeline_consumer
from tests.chaos._harness import (
    FAULT_KINDS,
    VIEWS,
    Consumer,
    ScheduleReport,
    format_campaign,
    generate_schedule,
    run_schedule,
    store_consumer,
    trace_consumer,
)

SEEDS = range(12)


def consumers() -> list[Consumer]:
    return [
        ticket_pipeline_consumer(),
        trace_consumer(),
        *(store_consumer(view.name) for view in VIEWS),
    ]


def faults_fired(report: ScheduleReport) -> int:
    return sum(report.fired[kind] for kind in FAULT_KINDS)


@pytest.mark.parametrize("seed", SEEDS)
async def test_a_seeded_schedule_of_faults_loses_nothing(seed: int) -> None:
    report = await run_schedule(generate_schedule(seed), consumers=consumers())
    assert report.passed, report.describe()
    # The schedule really broke things, and the informers really had to recover.
    assert faults_fired(report) >= 10, report.describe()
    assert report.totals["relists"] >= 1, report.describe()
    assert report.totals["reconnects"] >= 1, report.describe()


async def test_every_kind_of_fault_takes_effect() -> None:
    """Four schedules, run at once, each with every kind of fault twice: each kind takes
    effect at least once (whether a given one does depends on timing: a stream fault needs
    its watch to live long enough, an immediate one an open watch), and nothing is lost."""
    reports: list[ScheduleReport] = []

    async def one(seed: int) -> None:
        schedule = generate_schedule(seed, faults=2 * len(FAULT_KINDS), writes=90, duration=1.5)
        assert set(schedule.planned()) >= set(FAULT_KINDS)
        reports.append(await run_schedule(schedule, consumers=consumers()))

    async with trio.open_nursery() as nursery:
        for seed in range(1000, 1004):
            nursery.start_soon(one, seed)
    for report in reports:
        assert report.passed, report.describe()
    fired: Counter[str] = Counter()
    for report in reports:
        fired.update(report.fired)
    missing = [kind for kind in FAULT_KINDS if fired[kind] == 0]
    assert not missing, f"never took effect: {missing}\n{format_campaign(reports)}"
    # Compactions while a view was held off: its resume met a genuine 410, its relist
    # synthesized the deletions it had missed.
    assert fired["too_old_watch"] >= 1, format_campaign(reports)
    assert sum(r.totals["synthesized_deletions"] for r in reports) >= 1


# -- regression seeds ----------------------------------------------------------------------


async def test_seed_0_of_bursts_resumes_a_watch_that_fell_behind() -> None:
    """Failed before d234dc7 (the fake): a burst of writes longer than the faulted server's
    per-watch buffer ends the watches that fell behind (as the watch cache does); they resume
    from their last resourceVersion, and the fake counted that replay against the buffer too,
    so it ended every resume at once: the informer of configmaps/beta looped on "very short
    watch" (39 times in 10 s) and never converged, until a compaction would have forced a
    relist."""
    schedule = generate_schedule(0, kinds=["burst"], faults=3)
    report = await run_schedule(schedule, consumers=consumers())
    assert report.passed, report.describe()
    assert report.fired["burst"] >= 1, report.describe()
    assert report.client_errors["ShortWatch"] < 5, report.describe()
