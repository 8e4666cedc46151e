"""The native PostgreSQL path (``DUALCALL_NATIVE``), side by side in one process.

* ``gather`` of 64 ``get()``s at 5 ms of server latency (``pg_sleep`` in the
  query) and at none: dualcall native vs Django's ``aget`` vs dualcall's
  thread path vs a raw ``psycopg_pool.AsyncConnectionPool`` running the
  precompiled SQL.  One sample is one ``gather``; the sides are interleaved
  round by round (rotating which goes first) and each reports its median.
  Target: native at least 6x faster than ``aget`` at 5 ms (a ratio
  native/aget <= 0.167).
* awaited ``get`` (native) vs a sync ``get`` at zero latency: target <= 1.1,
  timed by ``run.compare`` like the other rows; the thread path's awaited
  ``get`` is shown for reference.

Both the native pool and the raw pool have 16 connections.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

FANOUT = 64
POOL_SIZE = 16
GATHER_TARGET = 1 / 6
GET_TARGET = 1.1


def native_rows(alias: str, run: Any) -> None:
    from django.db import connections
    from django.db.models.expressions import RawSQL
    from django.test.utils import override_settings
    from dualcall_bench.models import Question
    from psycopg_pool import AsyncConnectionPool

    native_on = override_settings(
        DUALCALL_NATIVE=[alias], DUALCALL_NATIVE_POOL={"max_size": POOL_SIZE}
    )
    native_off = override_settings(DUALCALL_NATIVE=[])
    pk = Question.objects.using(alias).order_by("pk").first().pk  # type: ignore[union-attr]
    loop = asyncio.new_event_loop()
    params = dict(connections[alias].get_connection_params())
    for key in ("cursor_factory", "context"):
        params.pop(key, None)
    raw_pool = AsyncConnectionPool(
        kwargs={**params, "autocommit": True}, min_size=POOL_SIZE, max_size=POOL_SIZE, open=False
    )
    loop.run_until_complete(raw_pool.open(wait=True))
    try:
        for latency in (0.005, 0.0):
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

            sides: dict[str, tuple[Callable[[], Any], Any]] = {
                "native": (native, native_on),
                "aget": (aget, native_off),
                "thread path": (native, native_off),
                "raw pool": (raw, native_off),
            }
            _gather_rows(run, alias, latency, sides, loop)
        _get_rows(run, alias, pk, loop, native_on, native_off)
    finally:
        loop.run_until_complete(raw_pool.close())
        with native_on:
            from dualcall.native import close_pools

            loop.run_until_complete(close_pools())
        loop.close()


def _gather_rows(
    run: Any,
    alias: str,
    latency: float,
    sides: dict[str, tuple[Callable[[], Any], Any]],
    loop: asyncio.AbstractEventLoop,
) -> None:
    rounds = max(5, min(run.args.rounds // 4, 21))
    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for name, (make, setting) in sides.items():  # warm up: pools, caches
        with setting:
            loop.run_until_complete(make())
    for i in range(rounds):
        order = names[i % len(names):] + names[: i % len(names)]
        for name in order:
            make, setting = sides[name]
            with setting:
                start = time.perf_counter()
                results = loop.run_until_complete(make())
                times[name].append(time.perf_counter() - start)
            assert len(results) == FANOUT
    medians = {name: statistics.median(values) for name, values in times.items()}
    label = f"gather x{FANOUT} @ {latency * 1000:g} ms"
    for candidate, baseline, target in (
        ("native", "aget", GATHER_TARGET if latency else None),
        ("thread path", "aget", None),
        ("native", "raw pool", None),
    ):
        ratios = [c / b for c, b in zip(times[candidate], times[baseline], strict=False)]
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


def _get_rows(
    run: Any, alias: str, pk: int, loop: asyncio.AbstractEventLoop, native_on: Any, native_off: Any
) -> None:
    from dualcall_bench.models import Question

    objects = Question.objects.db_manager(alias)

    async def awaited_get() -> Any:
        return await objects.get(pk=pk)

    sync_get = run.sync_sampler(lambda: objects.get(pk=pk))
    awaited = run.async_sampler(loop, awaited_get)
    native_on.enable()
    try:
        run.compare(
            f"native/{alias}", "get(pk=) at 0 ms: await (native) vs sync", sync_get, awaited,
            ("sync get", "await native"), GET_TARGET,
        )
    finally:
        native_on.disable()
    run.compare(
        f"native/{alias}", "get(pk=) at 0 ms: await (thread) vs sync", sync_get, awaited,
        ("sync get", "await thread"), None,
    )
