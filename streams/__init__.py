"""rxkube.streams: cluster I/O as streams.

The Kubernetes client, watch sources, the informer store, orchestrator sinks, traces and
schedulers. This is the bottom layer: it imports none of rxkube's other packages
(checked by import-linter, see pyproject.toml).
"""

from rxkube.streams._events import EventType, KubeObject, WatchEvent
from rxkube.streams._version import __version__

__all__ = [
    "EventType",
    "KubeObject",
    "WatchEvent",
    "__version__",
]
