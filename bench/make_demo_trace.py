"""Record the demo trace shipped in the package: `streams/data/demo-trace.jsonl.gz`.

    python bench/make_demo_trace.py [OUTPUT]

Runs, as a person would (about two minutes of real time)::

    rxkube demo --users 40 --duration 120 --seed 1 --record OUTPUT

then checks what a shipped trace must show before it replaces OUTPUT: the runner's own
recording (watches, `tickets/default`, `autoscaler/default`), users who waited, autoscaled
pods created and all removed again, a plain replay that makes the recorded decisions (twice,
the same), and a size under 300 KB. Unlike `make_sample_trace.py` this is a live recording on
the real clock: a new run gives a similar trace, not the same bytes. Exit 1 if a check fails
(OUTPUT is then left as it was).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rxkube.controllers import replay_trace
from rxkube.streams import StreamEvent, load_trace

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "streams" / "data" / "demo-trace.jsonl.gz"
DEMO = ["demo", "--users", "40", "--duration", "120", "--seed", "1"]
MAX_BYTES = 300 * 1024


def check(path: Path) -> list[str]:
    """What is wrong with the recorded trace (nothing: an empty list)."""
    problems = []
    trace = load_trace(path)
    streams = list(trace.header.streams)
    if streams[-2:] != ["tickets/default", "autoscaler/default"]:
        problems.append(f"not the runner's recording: streams {streams}")
    demand = [r.event for r in trace.records if isinstance(r.event, StreamEvent)]
    if not any(e.type == "queued" for e in demand):
        problems.append("nobody waited")
    timeline = replay_trace(trace)
    kinds = [kind for _, _, kind, _ in timeline.commands]
    if not kinds.count("create") or kinds.count("create") != kinds.count("delete"):
        problems.append(f"no scaling up and all the way down: {kinds}")
    if timeline.matches_recording is not True:
        problems.append("a plain replay does not make the recorded decisions")
    if replay_trace(trace) != timeline:
        problems.append("two replays differ")
    if path.stat().st_size > MAX_BYTES:
        problems.append(f"{path.stat().st_size} bytes, more than {MAX_BYTES}")
    return problems


def main() -> int:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT
    with tempfile.TemporaryDirectory() as scratch:
        recorded = Path(scratch) / "demo-trace.jsonl.gz"
        command = [sys.executable, "-m", "rxkube.controllers", *DEMO, "--record", str(recorded)]
        print("running: rxkube", " ".join(command[3:]), flush=True)
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        summary = [line for line in done.stdout.splitlines() if line.startswith("summary:")]
        print(*summary, sep="\n")
        if done.returncode != 0:
            print(f"rxkube demo exited {done.returncode}:\n{done.stderr}", file=sys.stderr)
            return 1
        problems = check(recorded)
        if problems:
            print("not shipped:", *problems, sep="\n  ", file=sys.stderr)
            return 1
        shutil.copyfile(recorded, output)
    timeline = replay_trace(output)
    print(timeline.summary().table())
    print(f"{output}: {output.stat().st_size:,} bytes, {timeline.events} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
