"""rxkube.streams: cluster I/O as streams.

The Kubernetes client, watch sources, the informer store, orchestrator sinks, traces and
schedulers. This is the bottom layer: it imports none of rxkube's other packages
(checked by import-linter, see pyproject.toml).
"""

from rxkube.streams._bridge import (
    ChannelOverflowError,
    ChannelStatistics,
    ObservableReceiveChannel,
    Overflow,
    from_async_iterable,
    to_receive_channel,
)
from rxkube.streams._events import EventType, KubeObject, WatchEvent
from rxkube.streams._scheduler import (
    SchedulerStatistics,
    TrioScheduler,
    TrioThreadSafeScheduler,
    as_trio_scheduler,
)
from rxkube.streams._version import __version__

__all__ = [
    "ChannelOverflowError",
    "ChannelStatistics",
    "EventType",
    "KubeObject",
    "ObservableReceiveChannel",
    "Overflow",
    "SchedulerStatistics",
    "TrioScheduler",
    "TrioThreadSafeScheduler",
    "WatchEvent",
    "__version__",
    "as_trio_scheduler",
    "from_async_iterable",
    "to_receive_channel",
]
