"""The native PostgreSQL path (``DUALCALL_NATIVE``), side by side in one run.

* ``gather`` of 64 ``get()``s at 5 ms of server latency (``pg_sleep`` in the
  query) and at none: dualcall native vs Django's ``aget`` vs dualcall's
  thread path vs a raw ``psycopg_pool.AsyncConnectionPool`` running the
  precompiled SQL vs django-async-backend (``Question.async_objects.aget``,
  each wrapped in ``async_new_connection()`` as its documentation says for
  parallel queries, on its pool).  One sample is one ``gather``; the sides
  are interleaved round by round (rotating which goes first), each row is
  the median of the per-round ratios against ``aget``.  Targets at 5 ms:
  native at least 6x faster than ``aget`` (ratio <= 0.167) and faster than
  django-async-backend; moonshots: 10x ``aget``, within 1.5x of the raw pool.
* awaited ``get`` vs a sync ``get`` at zero latency: native (target <= 1.1),
  and for reference the thread path, Django's ``aget`` and
  django-async-backend's ``aget``, each timed by ``run.compare`` like the
  other rows.

django-async-backend runs in a process of its own (``bench/dab_worker.py``:
its ``async_new_connection()`` needs its engine on every alias), asked for
one sample at a time while this process waits, so no two sides ever run at
once.  When it is not installed (it needs Python >= 3.12 and Django 6.1;
``bench/run.sh`` installs it), its rows are skipped with a note.

Every pool has ``POOL_SIZE`` (16) connections.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FANOUT = 64
POOL_SIZE = 16
GATHER_TARGET = 1 / 6
GATHER_MOONSHOT = 1 / 10
RAW_MOONSHOT = 1.5
GET_TARGET = 1.1
DAB = "django-async-backend"
#: Seconds the bench waits for one answer of the django-async-backend worker.
WORKER_TIMEOUT = 120


class Dab:
    """The django-async-backend worker process (``bench/dab_worker.py``)."""

    def __init__(self) -> None:
        env = {**os.environ, "DUALCALL_BENCH_POOL_SIZE": str(POOL_SIZE)}
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("dab_worker.py"))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
        )

    def ask(self, **request: Any) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        # One answer per request, so nothing is ever buffered ahead: select()
        # on the pipe bounds the wait.
        ready, _, _ = select.select([self.proc.stdout], [], [], WORKER_TIMEOUT)
        if not ready:
            self.proc.kill()
            raise RuntimeError(f"{DAB} worker did not answer {request} in {WORKER_TIMEOUT} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{DAB} worker exited ({self.proc.wait()}) on {request}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{DAB} worker failed on {request}:\n{answer['error']}")
        return float(answer["elapsed"])

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def dab_available(run: Any) -> bool:
    try:
        import django_async_backend  # noqa: F401
    except ImportError:
        note = (f"{DAB} rows skipped: not installed (it needs Python >= 3.12 and Django 6.1; "
                "make bench-pg installs it)")
        if note not in run.notes:
            run.notes.append(note)
            print(f"  ({note})")
        return False
    return True


def require_connections(alias: str, needed: int) -> None:
    """Fail unless the server accepts *needed* more connections (else pools wait: skewed times)."""
    from django.db import connections

    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT current_setting('max_connections')::int, count(*) "
                       "FROM pg_stat_activity WHERE backend_type = 'client backend'")
        limit, used = cursor.fetchone()
    if limit - used < needed:
        raise RuntimeError(
            f"the bench needs {needed} free connections to PostgreSQL and the server accepts "
            f"{limit - used} more (max_connections = {limit}, {used} in use): raise "
            "max_connections (make bench-pg starts a server with 120)"
        )


def native_rows(alias: str, run: Any) -> None:
    from django.db import connections
    from django.test.utils import override_settings
    from dualcall_bench.models import Question
    from psycopg_pool import AsyncConnectionPool

    # Only DUALCALL_NATIVE is switched: a change of DUALCALL_NATIVE_POOL (set
    # once, by run.configure) retires the pools, and every sample would pay
    # for opening a new one.
    native_on = override_settings(DUALCALL_NATIVE=[alias])
    native_off = override_settings(DUALCALL_NATIVE=[])
    pk = Question.objects.using(alias).order_by("pk").first().pk  # type: ignore[union-attr]
    with_dab = dab_available(run)
    require_connections(alias, POOL_SIZE * (3 if with_dab else 2) + 4)
    params = dict(connections[alias].get_connection_params())
    for key in ("cursor_factory", "context"):
        params.pop(key, None)
    loop = asyncio.new_event_loop()
    raw_pool = AsyncConnectionPool(
        kwargs={**params, "autocommit": True}, min_size=POOL_SIZE, max_size=POOL_SIZE, open=False
    )
    loop.run_until_complete(raw_pool.open(wait=True))
    _check_native_runs(alias, pk, loop, native_on)
    dab = Dab() if with_dab else None
    try:
        for latency in (0.005, 0.0):
            sides = _gather_sides(alias, pk, latency, loop, raw_pool, native_on, native_off)
            if dab is not None:
                sides[DAB] = _dab_gather(dab, latency, pk)
            _gather_rows(run, alias, latency, sides)
        _get_rows(run, alias, pk, loop, native_on, native_off, dab)
        if run.args.profile:
            _profile_get(alias, pk, loop, native_on)
    finally:
        if dab is not None:
            dab.close()
        loop.run_until_complete(raw_pool.close())
        with native_on:
            from dualcall.native import close_pools

            loop.run_until_complete(close_pools())
        loop.close()


def _gather_sides(
    alias: str, pk: int, latency: float, loop: asyncio.AbstractEventLoop, raw_pool: Any,
    native_on: Any, native_off: Any,
) -> dict[str, Callable[[], float]]:
    """The samplers of the sides that run in this process: each times one gather."""
    from django.db.models.expressions import RawSQL
    from dualcall_bench.models import Question

    queryset = Question.objects.using(alias)
    if latency:
        queryset = queryset.annotate(s=RawSQL("pg_sleep(%s)", (latency,)))
    sql, sql_params = queryset.filter(pk=pk).query.sql_with_params()

    async def native() -> Any:
        return await asyncio.gather(*[queryset.get(pk=pk) for _ in range(FANOUT)])

    async def aget() -> Any:
        return await asyncio.gather(*[queryset.aget(pk=pk) for _ in range(FANOUT)])

    async def raw_one() -> Any:
        async with raw_pool.connection() as conn:
            cursor = await conn.execute(sql, sql_params)
            return await cursor.fetchall()

    async def raw() -> Any:
        return await asyncio.gather(*[raw_one() for _ in range(FANOUT)])

    def local(make: Callable[[], Any], setting: Any) -> Callable[[], float]:
        def sample() -> float:
            with setting:  # not timed
                start = time.perf_counter()
                results = loop.run_until_complete(make())
                elapsed = time.perf_counter() - start
            if len(results) != FANOUT:
                raise AssertionError(f"gather returned {len(results)} results")
            return elapsed

        return sample

    return {
        "aget": local(aget, native_off),
        "native": local(native, native_on),
        "thread path": local(native, native_off),
        "raw pool": local(raw, native_off),
    }


def _dab_gather(dab: Dab, latency: float, pk: int) -> Callable[[], float]:
    def sample() -> float:
        return dab.ask(op="gather", latency=latency, fanout=FANOUT, pk=pk)

    return sample


def _gather_rows(
    run: Any, alias: str, latency: float, sides: dict[str, Callable[[], float]]
) -> None:
    rounds = max(5, min(run.args.rounds // 4, 21))
    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for sample in sides.values():  # warm up: pools, caches
        sample()
    for i in range(rounds):
        order = names[i % len(names):] + names[: i % len(names)]
        for name in order:
            times[name].append(sides[name]())
    medians = {name: statistics.median(values) for name, values in times.items()}
    label = f"gather x{FANOUT} @ {latency * 1000:g} ms"
    at_latency = bool(latency)
    pairs: list[tuple[str, str, float | None, float | None]] = [
        ("native", "aget", GATHER_TARGET if at_latency else None,
         GATHER_MOONSHOT if at_latency else None),
        ("thread path", "aget", None, None),
        ("raw pool", "aget", None, None),
    ]
    if DAB in sides:
        pairs += [(DAB, "aget", None, None), ("native", DAB, 1.0 if at_latency else None, None)]
    pairs.append(("native", "raw pool", None, RAW_MOONSHOT if at_latency else None))
    for candidate, baseline, target, moonshot in pairs:
        ratios = [c / b for c, b in zip(times[candidate], times[baseline], strict=True)]
        row = {
            "group": f"native/{alias}",
            "name": f"{label}: {candidate} vs {baseline}",
            "baseline": baseline,
            "candidate": candidate,
            "rounds": rounds,
            "baseline_us": medians[baseline] * 1e6,
            "candidate_us": medians[candidate] * 1e6,
            "ratio": statistics.median(ratios),
            "target": target,
            "moonshot": moonshot,
        }
        row["ok"] = None if target is None else round(row["ratio"], 3) <= target
        run.rows.append(row)
        run.print_row(row)
    print(
        f"  native/{alias:<7} {label}: medians "
        + ", ".join(f"{name} {value * 1000:.1f} ms" for name, value in medians.items())
        + f"; native is {medians['aget'] / medians['native']:.1f}x aget",
        flush=True,
    )


def _check_native_runs(
    alias: str, pk: int, loop: asyncio.AbstractEventLoop, native_on: Any
) -> None:
    """Fail the bench if the native rows would measure the thread path."""
    from dualcall_bench.models import Question

    from dualcall.native import methods
    from dualcall.native import run as native_run

    async def probe() -> Any:
        return await Question.objects.db_manager(alias).get(pk=pk)

    before = native_run.statements
    with native_on:
        loop.run_until_complete(probe())
    if native_run.statements == before:
        raise RuntimeError(
            "the native path did not run an awaited get() (see `manage.py check`, "
            f"dualcall.W002; last fallback: {methods.last_fallback!r}): the native rows "
            "would measure the thread path"
        )


def _get_rows(
    run: Any, alias: str, pk: int, loop: asyncio.AbstractEventLoop, native_on: Any,
    native_off: Any, dab: Dab | None,
) -> None:
    from dualcall_bench.models import Question

    objects = Question.objects.db_manager(alias)

    async def awaited_get() -> Any:
        return await objects.get(pk=pk)

    async def django_aget() -> Any:
        return await objects.aget(pk=pk)

    sync_get = run.sync_sampler(lambda: objects.get(pk=pk))
    awaited = run.async_sampler(loop, awaited_get)
    name = "get(pk=) at 0 ms"
    native_on.enable()
    try:
        run.compare(
            f"native/{alias}", f"{name}: await (native) vs sync", sync_get, awaited,
            ("sync get", "await native"), GET_TARGET,
        )
    finally:
        native_on.disable()
    run.compare(
        f"native/{alias}", f"{name}: await (thread) vs sync", sync_get, awaited,
        ("sync get", "await thread"), None,
    )
    run.compare(
        f"native/{alias}", f"{name}: Django aget vs sync", sync_get,
        run.async_sampler(loop, django_aget), ("sync get", "aget"), None,
    )
    if dab is not None:
        run.compare(
            f"native/{alias}", f"{name}: {DAB} aget vs sync", sync_get,
            lambda n: dab.ask(op="get", n=n, pk=pk), ("sync get", "dab aget"), None,
        )


def _profile_get(alias: str, pk: int, loop: asyncio.AbstractEventLoop, native_on: Any) -> None:
    """cProfile of awaited native ``get``s: the top entries, by own time and cumulative."""
    import cProfile
    import pstats

    from dualcall_bench.models import Question

    objects = Question.objects.db_manager(alias)
    calls = 3000

    async def loop_of_gets() -> None:
        for _ in range(calls):
            await objects.get(pk=pk)

    with native_on:
        loop.run_until_complete(loop_of_gets())  # warm
        profiler = cProfile.Profile()
        profiler.enable()
        loop.run_until_complete(loop_of_gets())
        profiler.disable()
    print(f"\nprofile: {calls} awaited native get(pk=) (cProfile; own time, then cumulative)")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
