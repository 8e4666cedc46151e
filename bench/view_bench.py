"""A realistic async view under uvicorn and a bounded load (``--only view``).

The view (``bench/bench_site/views.py``) does a ``get``, a ``count`` and a
list of 10 rows with ``select_related``, in three forms: dualcall's dual
names with ``DUALCALL_NATIVE`` on, Django's a-methods, and the same view
written sync.  One uvicorn process (one worker, 127.0.0.1, a free port)
serves the three; a load generator in this process (asyncio, raw HTTP/1.1
with keep-alive, ``CONCURRENCY`` connections) sends each view a warm-up
(discarded) and then a fixed number of requests, bounded in time too; the
views take turns, rotating which goes first, for several repetitions.  A
row reports requests/s and p50/p99 latency (medians over the repetitions)
and the median of the per-repetition throughput ratios, against the
issue's targets: native >= 1.2x the a-methods view, and >= 1.0x the sync
view.  Every response must be a 200 with the same body for the three views,
or the bench fails.

Only loopback traffic; the server is stopped (SIGTERM, then SIGKILL) on
every exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
CONCURRENCY = 32
VIEWS = ("native", "amethods", "sync")
LABELS = {"native": "dualcall native", "amethods": "Django a-methods", "sync": "sync view"}
#: (candidate, baseline, target): targets on ratios of requests/s (higher is better).
PAIRS = (
    ("native", "amethods", 1.2),
    ("native", "sync", 1.0),
    ("sync", "amethods", None),
)
#: Seconds one measured burst may take at most (it then stops, and the bench fails).
BURST_LIMIT = 120.0


class LoadError(RuntimeError):
    """A request failed, answered other than 200, or the load ran out of time."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(profile_to: str | None = None) -> Iterator[tuple[int, Path]]:
    """Run uvicorn on the bench site; yield its port and log file; always stop it."""
    port = _free_port()
    log = Path(tempfile.mkstemp(prefix="dualcall-bench-uvicorn-", suffix=".log")[1])
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench_site.settings",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable]
    if profile_to:
        command += ["-m", "cProfile", "-o", profile_to]
    command += [
        "-m", "uvicorn", "bench_site.asgi:application", "--app-dir", str(BENCH),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--no-access-log", "--log-level", "warning", "--lifespan", "off",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise LoadError(f"uvicorn exited with {proc.returncode}:\n{log.read_text()}")
            try:
                status, _ = asyncio.run(_one("127.0.0.1", port, "/health/"))
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise LoadError(f"uvicorn did not answer within 60 s:\n{log.read_text()}")
            time.sleep(0.1)
        yield port, log
    finally:
        # uvicorn shuts down gracefully, then re-raises the signal: SIGINT
        # becomes a KeyboardInterrupt, through which cProfile writes its file.
        stop = signal.SIGINT if profile_to else signal.SIGTERM
        if proc.poll() is None:
            proc.send_signal(stop)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not profile_to and proc.returncode not in (0, -signal.SIGTERM):
            print(f"  uvicorn exited with {proc.returncode}; its log:\n{log.read_text()}",
                  file=sys.stderr)
        log.unlink(missing_ok=True)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            chunked = "chunked" in value.lower()
    if not chunked:
        return status, await reader.readexactly(length) if length else b""
    chunks = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        chunks.append(await reader.readexactly(size + 2))  # the chunk and its CRLF
        if size == 0:
            return status, b"".join(c[:-2] for c in chunks)


def _request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


async def _one(host: str, port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(_request(path))
        await writer.drain()
        return await _read_response(reader)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def load(port: int, path: str, requests: int, concurrency: int = CONCURRENCY,
               limit: float = BURST_LIMIT) -> tuple[float, list[float], bytes]:
    """Send *requests* GETs of *path* over *concurrency* keep-alive connections.

    Return the elapsed seconds, the latency of each request and one body;
    raise :class:`LoadError` on any error, a status other than 200, bodies
    that differ, or when the burst takes longer than *limit* seconds.
    """
    latencies: list[float] = []
    bodies: set[bytes] = set()
    issued = 0
    request = _request(path)
    deadline = time.perf_counter() + limit

    async def client() -> None:
        nonlocal issued
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while issued < requests:
                if time.perf_counter() > deadline:
                    raise LoadError(f"{path}: {requests} requests took more than {limit:g} s")
                issued += 1
                start = time.perf_counter()
                writer.write(request)
                status, body = await _read_response(reader)
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    raise LoadError(f"{path}: HTTP {status}: {body[:2000]!r}")
                bodies.add(body)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    # Connecting is part of the timing: 32 connects on loopback are negligible.
    start = time.perf_counter()
    await asyncio.gather(*[client() for _ in range(concurrency)])
    elapsed = time.perf_counter() - start
    if len(bodies) != 1:
        raise LoadError(f"{path}: {len(bodies)} different bodies")
    return elapsed, latencies, bodies.pop()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def view_rows(run: Any, pk: int) -> None:
    """Measure the three views; record and print the rows."""
    quick = run.args.quick
    requests = 300 if quick else 1500
    warmup = 100 if quick else 300
    reps = 3 if quick else max(3, min(run.args.rounds // 10, 7))
    stats: dict[str, dict[str, list[float]]] = {
        v: {"rps": [], "p50": [], "p99": []} for v in VIEWS
    }
    reference: bytes | None = None
    with serve() as (port, _log):
        for view in VIEWS:  # warm-up: pools, caches, code paths
            asyncio.run(load(port, f"/{view}/{pk}/", warmup))
        for rep in range(reps):
            order = VIEWS[rep % len(VIEWS):] + VIEWS[: rep % len(VIEWS)]
            for view in order:
                path = f"/{view}/{pk}/"
                asyncio.run(load(port, path, warmup // 2))  # discarded
                elapsed, latencies, body = asyncio.run(load(port, path, requests))
                if reference is None:
                    reference = body
                elif body != reference:
                    raise LoadError(f"{path} answered {body[:500]!r}, not {reference[:500]!r}")
                stats[view]["rps"].append(requests / elapsed)
                stats[view]["p50"].append(_percentile(latencies, 0.50))
                stats[view]["p99"].append(_percentile(latencies, 0.99))
    medians = {v: {k: statistics.median(s) for k, s in stats[v].items()} for v in VIEWS}
    for view in VIEWS:
        m = medians[view]
        spread = f"{min(stats[view]['rps']):.0f}-{max(stats[view]['rps']):.0f}"
        print(f"  view/postgres  {LABELS[view]:<18} {m['rps']:8.0f} req/s ({spread})   p50 "
              f"{m['p50'] * 1000:6.1f} ms   p99 {m['p99'] * 1000:6.1f} ms"
              f"   ({reps} x {requests} requests, concurrency {CONCURRENCY})", flush=True)
    for candidate, baseline, target in PAIRS:
        ratios = [c / b for c, b in zip(stats[candidate]["rps"], stats[baseline]["rps"],
                                        strict=True)]
        row = {
            "group": "view/postgres",
            "name": f"view req/s: {LABELS[candidate]} vs {LABELS[baseline]}",
            "baseline": LABELS[baseline],
            "candidate": LABELS[candidate],
            "unit": "req/s",
            "higher_is_better": True,
            "rounds": reps,
            "requests": requests,
            "concurrency": CONCURRENCY,
            "baseline_rps": medians[baseline]["rps"],
            "candidate_rps": medians[candidate]["rps"],
            "baseline_p50_ms": medians[baseline]["p50"] * 1000,
            "candidate_p50_ms": medians[candidate]["p50"] * 1000,
            "baseline_p99_ms": medians[baseline]["p99"] * 1000,
            "candidate_p99_ms": medians[candidate]["p99"] * 1000,
            "ratio": statistics.median(ratios),
            "target": target,
            "baseline_rps_all": stats[baseline]["rps"],
            "candidate_rps_all": stats[candidate]["rps"],
        }
        row["ok"] = None if target is None else round(row["ratio"], 3) >= target
        run.rows.append(row)
        run.print_row(row)


def profile_view(pk: int, view: str, requests: int, top: int = 30) -> str:
    """Profile uvicorn (cProfile, its main thread) serving *view*; return the top entries."""
    import io
    import pstats

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "uvicorn.prof")
        with serve(profile_to=out) as (port, _log):
            asyncio.run(load(port, f"/{view}/{pk}/", requests))
        text = io.StringIO()
        stats = pstats.Stats(out, stream=text)
        stats.sort_stats("tottime").print_stats(top)
        # Cumulative times of coroutines include their waits: only the view's
        # own work is shown (the view, dualcall, Django's ORM, psycopg).
        stats.sort_stats("cumulative").print_stats("bench_site|dualcall|django/db|psycopg", top)
    return text.getvalue()
