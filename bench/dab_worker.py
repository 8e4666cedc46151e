"""django-async-backend's side of the native rows, in a process of its own.

    python bench/dab_worker.py          (started by bench/native_bench.py)

django-async-backend's ``async_new_connection()`` opens a connection for
every alias of ``DATABASES``, and it can only do that when every alias uses
its engine; dualcall's native path needs Django's own PostgreSQL engine on
its alias.  So this process configures Django the way django-async-backend's
documentation says (its engine, ``OPTIONS["pool"]``, the app in
``INSTALLED_APPS``), on the same database and tables as the bench, and
answers timing requests from the bench process, one JSON line each way on
stdin/stdout:

* ``{"op": "gather", "latency": 0.005, "fanout": 64, "pk": 1}``: one
  ``asyncio.gather`` of ``fanout`` ``Question.async_objects.aget(pk=)``, each
  wrapped in ``async_new_connection()`` (the documented way to run queries
  in parallel: a connection from the pool per task);
* ``{"op": "get", "n": 100, "pk": 1}``: ``n`` awaited ``aget(pk=)`` one after
  another in one task (on the task's own pooled connection);
* ``{"op": "quit"}``.

Each answer is ``{"elapsed": seconds}`` (the time of the work only: the
connection is given back to the pool afterwards, outside the timing, as the
request signals do at the end of a request), or ``{"error": "..."}``.  The
bench runs one side at a time, so this process never competes with another
side for the CPU.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: The pool of django-async-backend: the same size as the others of the bench.
POOL_SIZE = int(os.environ.get("DUALCALL_BENCH_POOL_SIZE", "16"))


def configure() -> None:
    import django
    from django.conf import settings
    from dualcall_bench import postgres_database

    settings.configure(
        DEBUG=False,
        INSTALLED_APPS=["django.contrib.contenttypes", "django_async_backend", "dualcall_bench"],
        DATABASES={
            "default": postgres_database(
                "django_async_backend.db.backends.postgresql",
                OPTIONS={"pool": {"min_size": POOL_SIZE, "max_size": POOL_SIZE}},
            ),
        },
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=True,
    )
    django.setup()


async def gather(latency: float, fanout: int, pk: int) -> float:
    from django.db.models.expressions import RawSQL
    from django_async_backend.db import async_new_connection
    from dualcall_bench.models import Question

    queryset = Question.async_objects.all()  # type: ignore[attr-defined]
    if latency:
        queryset = queryset.annotate(s=RawSQL("pg_sleep(%s)", (latency,)))
    start = time.perf_counter()
    results = await asyncio.gather(
        *[async_new_connection(queryset.aget(pk=pk)) for _ in range(fanout)]
    )
    elapsed = time.perf_counter() - start
    if len(results) != fanout or any(r.pk != pk for r in results):
        raise AssertionError(f"gather returned {results!r}")
    return elapsed


async def get(n: int, pk: int) -> float:
    from django_async_backend.db import close_old_async_connections
    from dualcall_bench.models import Question

    objects = Question.async_objects  # type: ignore[attr-defined]
    try:
        clock = time.perf_counter
        start = clock()
        for _ in range(n):
            await objects.aget(pk=pk)
        elapsed = clock() - start
    finally:
        await close_old_async_connections()  # back to the pool, as a request's end does
    return elapsed


def main() -> int:
    configure()
    loop = asyncio.new_event_loop()
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write to the protocol's stream
    try:
        for line in sys.stdin:
            request: dict[str, Any] = json.loads(line)
            op = request["op"]
            if op == "quit":
                break
            try:
                if op == "gather":
                    elapsed = loop.run_until_complete(
                        gather(request["latency"], request["fanout"], request["pk"])
                    )
                elif op == "get":
                    elapsed = loop.run_until_complete(get(request["n"], request["pk"]))
                else:
                    raise ValueError(f"unknown op {op!r}")
                answer: dict[str, Any] = {"elapsed": elapsed}
            except Exception:
                answer = {"error": traceback.format_exc()}
            out.write(json.dumps(answer) + "\n")
            out.flush()
    finally:
        from django_async_backend.db import async_connections

        async def close() -> None:
            await async_connections["default"].close_pool()

        loop.run_until_complete(close())
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
