"""End to end: the example site under uvicorn, every endpoint checked over real HTTP.

Runs what ``make demo`` runs (``examples/demo.py``: migrate, the async
``seed_demo`` command, uvicorn on 127.0.0.1, then the requests and their
expected results) against the database the suite runs on: a SQLite file, or
with ``DUALCALL_TEST_DB=postgres`` a fresh PostgreSQL database, created here
and dropped afterwards.  The site runs in subprocesses, so nothing here needs
the test database of pytest-django.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="uvicorn (the 'examples' extra) is not installed")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load_demo():
    spec = importlib.util.spec_from_file_location("dualcall_examples_demo", EXAMPLES / "demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


demo = _load_demo()


@pytest.fixture
def site_env(tmp_path):
    """The environment that points the example site at this run's database."""
    env = demo.site_env(tmp_path / "e2e.sqlite3")
    if os.environ.get("DUALCALL_TEST_DB", "sqlite") != "postgres":
        yield env
        return
    import psycopg

    # The PG* variables of the suite reach the server; the site gets its own database.
    name = f"dualcall_examples_e2e_{os.getpid()}"
    admin = {"dbname": os.environ.get("PGDATABASE", "postgres"), "autocommit": True}
    with psycopg.connect(**admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**env, "DUALCALL_EXAMPLES_DB": "postgres", "PGDATABASE": name}
    finally:
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_every_endpoint_over_http(site_env):
    seeded = demo.prepare(site_env)
    assert seeded.startswith("seeded 3 questions, 5 posts, 4 grades"), seeded

    with demo.serve(site_env) as server:
        scenario = demo.run_checks(server.url)
        log = server.log()

    report = demo.report(scenario.results, scenario.error_message)
    assert all(result.ok for result in scenario.results), f"{report}\n\nserver log:\n{log}"
    assert len(scenario.results) == 22, report
    assert scenario.error_message == (
        "UnprefetchedRelatedModelAccessError: Related model Choice.question cannot be "
        "fetched synchronously from within an async context. Use "
        'select_related("question") or prefetch_related("question") before accessing it, '
        "or await choice.a.question."
    )

    # The second async command sees what the requests wrote.
    stats = demo.manage(site_env, "demo_stats")
    assert "polls:  3 questions, 1 votes" in stats, stats
    assert "blog:   6 posts (6 published), 3 comments" in stats, stats
