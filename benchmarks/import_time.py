"""Import benchmark: what ``import batch_llm`` costs, as ``python -X importtime`` reports it.

    python benchmarks/import_time.py --repeat 9
    python benchmarks/import_time.py --module langchain_batch_llm

Each run is a fresh interpreter importing this tree's package; the number is the cumulative
column of the module's own line (its import and everything it imports, in microseconds there).
The last line is ``import_s=<median> max_s=<slowest>``; the goal for ``batch_llm`` is at most
0.06 s. It was about 0.17 s while the package imported its whole API, the provider adapters,
asyncio, tenacity and ``importlib.metadata`` up front; now it loads one file (about 1-2 ms), and
each public name loads its module when first used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_seconds(module: str) -> float:
    """The cumulative import time of ``module`` in a fresh interpreter, in seconds."""
    path = os.pathsep.join(
        p for p in (str(ROOT), str(ROOT / "integrations"), os.environ.get("PYTHONPATH")) if p
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        env={**os.environ, "PYTHONPATH": path},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    for line in reversed(done.stderr.splitlines()):
        fields = line.split("|")
        # The module's own line is the top-level one: nested imports are indented.
        if len(fields) == 3 and fields[2] == f" {module}" and fields[1].strip().isdigit():
            return int(fields[1]) / 1e6
    raise RuntimeError(f"no importtime line for {module}:\n{done.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", default="batch_llm")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    times = []
    for run in range(args.repeat):
        seconds = import_seconds(args.module)
        times.append(seconds)
        print(f"run {run + 1}: import {args.module} {seconds:.4f}s")
    print(f"import_s={statistics.median(times):.4f} max_s={max(times):.4f}")


if __name__ == "__main__":
    main()
