"""rxkube.controllers: k8sTicket semantics as pipelines.

Annotations -> app specs, pods -> server lists, the autoscaler, metrics, the runner and the CLI.
Every arrow inside is a pipeable operator without I/O or clock. It may import `rxkube.streams`
and `rxkube.proxy`; only the CLI module imports `rxkube.fakes` (checked by import-linter).
"""

from rxkube.controllers._cli import main

__all__ = ["main"]
