"""rxkube.fakes: a fake Kubernetes API server that speaks the real protocol over HTTP.

For tests, the demo, notebooks and users' own tests. It may import `rxkube.streams` (shared
types and codecs) and nothing else of rxkube; library code never imports it (only the CLI).
"""

__all__: list[str] = []
