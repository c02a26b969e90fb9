"""Shared plumbing for the benchmarks: an emulator in its own process, sides run in their own
processes, and the ratio line every benchmark ends with.

Each side runs in a fresh interpreter so peak RSS is its own, and sides alternate so that
machine noise falls on both alike.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def emulator_process() -> Iterator[str]:
    """Start ``batch-llm emulator`` in a child process; yield its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch_llm", "emulator", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/_emulator/stats", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def control(url: str, path: str, payload: dict[str, Any] | None = None) -> Any:
    """POST (or GET, without payload) to the emulator's control routes."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        url + path,
        data=data,
        method="POST" if data is not None else "GET",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def run_side(script: str, side: str, url: str, args: Sequence[str]) -> dict[str, Any]:
    """Run one side in a fresh interpreter; it prints one JSON line with wall and rss."""
    control(url, "/_emulator/reset", {})
    with tempfile.TemporaryDirectory() as tmp:
        # A fresh journal per run: the library's default (journal on), without a later run
        # finding an earlier run's answers on disk.
        env = {**os.environ, "PYTHONHASHSEED": "0", "BATCH_LLM_JOURNAL": f"{tmp}/journal.sqlite3"}
        out = subprocess.run(
            [sys.executable, script, "--side", side, "--url", url, *args],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["batches"] = control(url, "/_emulator/stats")["batches_created"]
    return result


#: OpenAI's most requests in one batch: the floor cuts larger workloads into batches this big.
BATCH_LIMIT = 50_000
_ENDED = ("completed", "failed", "expired", "cancelled")


def floor_batches(
    url: str,
    endpoint: str,
    bodies: Iterable[dict[str, Any]],
    *,
    poll: float,
    read: Callable[[Any], Any] | None = None,
) -> list[Any]:
    """The floor that keeps every response body: the bare openai SDK by hand, as lean as it
    goes. Each batch of at most ``BATCH_LIMIT`` bodies is taken from ``bodies`` (a list or a
    generator), built into JSONL, uploaded and created in turn, its JSONL dropped once
    uploaded; then all are polled, and each finished batch's output is read as a stream, a
    network chunk's lines decoded as one JSON array (keys shared, nothing held twice), into
    response bodies returned in input order, or what ``read`` makes of each body as its line
    is decoded (the body itself is then not kept)."""
    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-bench")
    running: set[str] = set()
    results: list[Any] = []
    source = iter(bodies)
    while chunk := list(itertools.islice(source, BATCH_LIMIT)):
        first = len(results)
        results += [None] * len(chunk)
        payload = "\n".join(
            json.dumps({"custom_id": f"r{i}", "method": "POST", "url": endpoint, "body": body})
            for i, body in enumerate(chunk, first)
        ).encode()
        del chunk
        uploaded = client.files.create(file=("in.jsonl", payload), purpose="batch")
        del payload
        batch = client.batches.create(
            input_file_id=uploaded.id,
            endpoint=endpoint,  # type: ignore[arg-type]
            completion_window="24h",
        )
        running.add(batch.id)
    while running:
        time.sleep(poll)
        for batch_id in list(running):
            batch = client.batches.retrieve(batch_id)
            if batch.status not in _ENDED:
                continue
            running.discard(batch_id)
            assert batch.output_file_id, batch
            with client.files.with_streaming_response.content(batch.output_file_id) as response:
                rest = b""
                for data in response.iter_bytes():
                    lines = (rest + data).split(b"\n")
                    rest = lines.pop()
                    _keep(results, lines, read)
                _keep(results, [rest], read)
    return results


def _keep(results: list[Any], lines: list[bytes], read: Callable[[Any], Any] | None) -> None:
    lines = [line for line in lines if line.strip()]
    if lines:
        for row in json.loads(b"[" + b",".join(lines) + b"]"):
            body = row["response"]["body"]
            results[int(row["custom_id"][1:])] = body if read is None else read(body)


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's resident memory now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_seconds() -> float:
    """CPU time this process has used, all its threads, user and system."""
    return time.process_time()


def report(sides: dict[str, list[dict[str, Any]]], project: str, floor: str) -> None:
    """Print each run, then medians, then the ``ratio=`` line (always last). Numbers a side
    reports beyond wall and rss (``cpu``, ``held``...) are printed with it, medians too."""
    extras = sorted(
        {k for runs in sides.values() for r in runs for k in r} - {"wall", "rss", "batches"}
    )
    for side, runs in sides.items():
        for run in runs:
            wall, rss, batches = run["wall"], run["rss"], run["batches"]
            more = "".join(f" {k}={run[k]:.3f}" for k in extras if k in run)
            print(f"{side:>8}: wall={wall:.3f}s rss={rss:.1f}MB batches={batches}{more}")
    wall = {s: statistics.median(r["wall"] for r in runs) for s, runs in sides.items()}
    rss = {s: statistics.median(r["rss"] for r in runs) for s, runs in sides.items()}
    for side, runs in sides.items():
        more = "".join(
            f" median {k}={statistics.median(r[k] for r in runs):.3f}"
            for k in extras
            if all(k in r for r in runs)
        )
        print(f"{side:>8}: median wall={wall[side]:.3f}s median rss={rss[side]:.1f}MB{more}")
    for side in sides:  # a side beyond the two compared is a second reference
        if side not in (project, floor):
            print(
                f"against {side}: ratio={wall[project] / wall[side]:.3f} "
                f"rss_ratio={rss[project] / rss[side]:.3f}"
            )
    print(f"ratio={wall[project] / wall[floor]:.3f} rss_ratio={rss[project] / rss[floor]:.3f}")


def main(
    script: str,
    description: str | None,
    sides: dict[str, Callable[[str, int], None]],
    title: Callable[[int], str],
    *,
    repeat: int,
    requests: int = 10_000,
    project: str = "project",
    floor: str = "floor",
    argv: list[str] | None = None,
) -> None:
    """A benchmark's command line: ``--side NAME --url URL`` runs one side in this process;
    otherwise every side runs ``--repeat`` times, alternating, against an emulator of its own,
    and the report ends with the ratio of ``project`` to ``floor`` (a third side is reported
    as a second reference, before that line).
    ``argv`` is the command line (default ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--requests", type=int, default=requests)
    parser.add_argument("--repeat", type=int, default=repeat)
    parser.add_argument("--side", choices=sorted(sides))
    parser.add_argument("--url")
    args = parser.parse_args(argv)
    if args.side:
        sides[args.side](args.url, args.requests)
        return
    runs: dict[str, list[dict[str, Any]]] = {floor: [], project: []}
    runs.update((side, []) for side in sides if side not in runs)
    with emulator_process() as url:
        for _ in range(args.repeat):
            for side in runs:
                runs[side].append(run_side(script, side, url, ["--requests", str(args.requests)]))
    print(title(args.requests))
    report(runs, project, floor)
