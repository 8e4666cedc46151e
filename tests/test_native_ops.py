"""The native path's connections in production: settings, exhaustion, restarts, lifespan.

The PostgreSQL tests count the sessions of the native pools in
``pg_stat_activity`` (their ``application_name`` is ``dualcall-native``),
asked on a psycopg connection of their own that is never one of them.
"""

import asyncio
import contextlib
import datetime
import decimal
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections
from django.db.utils import InterfaceError, OperationalError
from django.test import override_settings

from dualcall.native import NativePoolTimeout, close_pools
from dualcall.native.asgi import lifespan
from dualcall.native.pool import DEFAULT_APPLICATION_NAME, check_pool_setting, get_pool, loop_pools
from tests.helpers import NATIVE_TESTS
from tests.testapp.models import NativeItem

ROOT = Path(__file__).resolve().parent.parent



@pytest.fixture
def items(db):
    """Eight items numbered 0..7, named item0..item7 (committed: transactional tests)."""
    for i in range(8):
        NativeItem.objects.create(
            name=f"item{i}",
            number=i,
            price=decimal.Decimal("1.5"),
            created=datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC),
        )


# -- DUALCALL_NATIVE_POOL is checked at startup ---------------------------------

OPTIONS = "max_idle, max_lifetime, max_size, max_waiting, min_size, timeout"


@pytest.mark.parametrize(
    "value, message",
    [
        (
            5,
            "DUALCALL_NATIVE_POOL must be a dict of pool options, or of such dicts by database "
            "alias, not 5.",
        ),
        (
            {"max_sise": 3},
            f"DUALCALL_NATIVE_POOL: unknown option 'max_sise'; the options are {OPTIONS}.",
        ),
        (
            {"default": {"size": 3}},
            f"DUALCALL_NATIVE_POOL['default']: unknown option 'size'; the options are {OPTIONS}.",
        ),
        (
            {"replica": {"max_size": 2}},
            "DUALCALL_NATIVE_POOL names the database 'replica', which is not in DATABASES.",
        ),
        ({"max_size": 0}, "DUALCALL_NATIVE_POOL['max_size'] must be an int >= 1, not 0."),
        ({"max_size": True}, "DUALCALL_NATIVE_POOL['max_size'] must be an int >= 1, not True."),
        ({"max_size": 2.5}, "DUALCALL_NATIVE_POOL['max_size'] must be an int >= 1, not 2.5."),
        (
            {"max_size": {"default": 2}},
            "DUALCALL_NATIVE_POOL['max_size'] must be an int >= 1, not {'default': 2}.",
        ),
        (
            {"default": {"timeout": "5"}},
            "DUALCALL_NATIVE_POOL['default']['timeout'] must be a number > 0 (seconds), not '5'.",
        ),
        (
            {"timeout": 0},
            "DUALCALL_NATIVE_POOL['timeout'] must be a number > 0 (seconds), not 0.",
        ),
        (
            {"max_lifetime": -1.0},
            "DUALCALL_NATIVE_POOL['max_lifetime'] must be a number > 0 (seconds), not -1.0.",
        ),
        (
            {"min_size": -1},
            "DUALCALL_NATIVE_POOL['min_size'] must be None or an int >= 0, not -1.",
        ),
        (
            {"max_waiting": None},
            "DUALCALL_NATIVE_POOL['max_waiting'] must be an int >= 0 (0: no limit), not None.",
        ),
        (
            {"min_size": 5, "max_size": 2},
            "DUALCALL_NATIVE_POOL: min_size (5) is larger than max_size (2).",
        ),
        (
            {"default": {"min_size": 20}},
            "DUALCALL_NATIVE_POOL['default']: min_size (20) is larger than max_size (10).",
        ),
    ],
)
def test_pool_setting_errors(value, message):
    with override_settings(DUALCALL_NATIVE_POOL=value):
        with pytest.raises(ImproperlyConfigured) as caught:
            check_pool_setting()
        assert str(caught.value) == message
        with pytest.raises(ImproperlyConfigured) as caught:
            apps.get_app_config("dualcall").ready()  # what startup runs
        assert str(caught.value) == message


@pytest.mark.parametrize(
    "value",
    [
        None,
        {},
        {"max_size": 4, "timeout": 2},
        {"min_size": None, "max_idle": 30.5, "max_waiting": 0},
        {"default": {"min_size": 1, "max_size": 2, "timeout": 0.5}},
        {"max_size": 3, "default": {"max_size": 2}},
    ],
)
def test_pool_setting_accepted(value):
    with override_settings(DUALCALL_NATIVE_POOL=value):
        assert check_pool_setting() == (value or {})
        apps.get_app_config("dualcall").ready()


def test_pool_setting_fails_at_startup(tmp_path):
    """``django.setup()`` of a project with a wrong option fails, naming it."""
    code = (
        "import django\n"
        "from django.conf import settings\n"
        "settings.configure(INSTALLED_APPS=['django.contrib.contenttypes', 'dualcall'],\n"
        "                   DUALCALL_NATIVE_POOL={'max_size': 10, 'timeuot': 5})\n"
        "django.setup()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: DUALCALL_NATIVE_POOL: unknown option "
        f"'timeuot'; the options are {OPTIONS}."
    )


# -- helpers: sessions in pg_stat_activity --------------------------------------


def _admin(sql, params=()):
    """Run *sql* on a new psycopg connection of its own (closed at once)."""
    import psycopg

    conn_params = dict(connection.get_connection_params())
    for key in ("cursor_factory", "context", "prepare_threshold"):
        conn_params.pop(key, None)
    conn_params["dbname"] = connection.settings_dict["NAME"]
    conn_params["application_name"] = "dualcall-tests-admin"
    with psycopg.connect(**conn_params, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def _sessions(application_name=DEFAULT_APPLICATION_NAME, gone=(), timeout=10.0):
    """Pids of the test database's sessions named *application_name*.

    With *gone*, waits (up to *timeout* seconds) until none of those pids is
    left: a session whose client closed it leaves ``pg_stat_activity`` a
    moment later.
    """
    gone = set(gone)
    deadline = time.monotonic() + timeout
    while True:
        pids = {
            row[0]
            for row in _admin(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = %s",
                [application_name],
            )
        }
        if not (pids & gone) or time.monotonic() > deadline:
            return pids
        time.sleep(0.05)


def _terminate(pids):
    for pid in pids:
        _admin("SELECT pg_terminate_backend(%s)", [pid])
    _wait_ended(pids)


def _wait_ended(pids, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _admin("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", [list(pids)])
        if not rows:
            return
        time.sleep(0.05)
    raise AssertionError(f"sessions {sorted(pids)} did not end within {timeout} s")


@contextlib.contextmanager
def _options(**options):
    """Add *options* to ``DATABASES["default"]["OPTIONS"]`` (the dict Django and the pool read)."""
    settings_dict = connections.settings["default"]
    saved = settings_dict["OPTIONS"]
    settings_dict["OPTIONS"] = {**saved, **options}
    try:
        yield
    finally:
        settings_dict["OPTIONS"] = saved


# -- application_name ------------------------------------------------------------


class TestApplicationName:
    pytestmark = NATIVE_TESTS

    def test_default_name(self, native, items, settings):
        settings.DUALCALL_NATIVE_POOL = {"max_size": 2}

        async def work():
            assert await NativeItem.objects.count() == 8
            return _sessions()

        assert len(asyncio.run(work())) == 2

    def test_name_from_options(self, native, items, settings):
        settings.DUALCALL_NATIVE_POOL = {"max_size": 2}

        async def work():
            assert await NativeItem.objects.count() == 8
            return _sessions("my-site"), _sessions()

        with _options(application_name="my-site"):
            own, default = asyncio.run(work())
        assert len(own) == 2 and not default


# -- exhaustion and unreachable server: NativePoolTimeout -------------------------


class TestPoolTimeout:
    pytestmark = NATIVE_TESTS

    async def test_exhausted(self, native, items, settings):
        settings.DUALCALL_NATIVE_POOL = {"max_size": 1, "timeout": 0.2}
        assert await NativeItem.objects.count() == 8
        pool = await get_pool("default")
        async with pool.connection():  # the one connection is busy
            with pytest.raises(NativePoolTimeout) as caught:
                await NativeItem.objects.count()
        assert str(caught.value) == (
            "dualcall native path: no connection of the pool for database 'default' became "
            "free within 0.2 s: all its connections (max_size=1) are in use. Raise "
            "DUALCALL_NATIVE_POOL['max_size'] or ['timeout'], or run fewer queries at once."
        )
        assert isinstance(caught.value, OperationalError)
        assert await NativeItem.objects.count() == 8  # free again

    def test_cannot_connect(self, native, items, settings):
        settings.DUALCALL_NATIVE_POOL = {"max_size": 1, "timeout": 1.0}

        async def work():
            with _options(dbname="dualcall_no_such_db"), pytest.raises(NativePoolTimeout) as caught:
                await NativeItem.objects.count()
            return caught.value

        error = asyncio.run(work())
        message = str(error)
        prefix = (
            "dualcall native path: no connection to database 'default' could be made within "
            "1.0 s (max_size=1): connection failed: "
        )
        assert message.startswith(prefix), message
        assert 'database "dualcall_no_such_db" does not exist' in message
        assert message.endswith(
            ". The pool keeps reconnecting; check that the server is up."
        ), message
        assert "\n" not in message
        assert isinstance(error, OperationalError)


# -- dead sessions are found before use ------------------------------------------


class TestDeadSessions:
    pytestmark = NATIVE_TESTS

    def test_killed_idle_sessions_replaced_before_a_write(self, native, items, settings):
        """A write is never retried: it succeeds because the dead sessions are skipped."""
        settings.DUALCALL_NATIVE_POOL = {"max_size": 2}

        async def work():
            assert await NativeItem.objects.count() == 8
            first = _sessions()
            assert len(first) == 2
            _terminate(first)  # both idle sessions of the pool
            assert await NativeItem.objects.filter(number=1).update(text="after") == 1
            assert await NativeItem.objects.filter(number=2).update(text="again") == 1
            now = _sessions()
            assert now and not (now & first), (first, now)
            assert await NativeItem.objects.filter(text__in=["after", "again"]).count() == 2

        asyncio.run(work())
        assert sorted(NativeItem.objects.exclude(text="").values_list("number", "text")) == [
            (1, "after"),
            (2, "again"),
        ]
        assert _sessions(gone=_sessions()) == set()

    @pytest.mark.parametrize("seed", range(3))
    def test_loop_ends_while_the_pool_reconnects(self, native, items, settings, caplog, seed):
        """Replacements still connecting when the loop shuts down leave no session behind.

        psycopg_pool logs the cancelled attempts, and pytest keeps the log
        records (with their exceptions) until the test ends.
        """
        settings.DUALCALL_NATIVE_POOL = {"max_size": 8}
        rng = random.Random(seed)

        async def work():
            assert await NativeItem.objects.count() == 8
            _terminate(_sessions())
            assert await NativeItem.objects.count() == 8  # the first replacement
            await asyncio.sleep(rng.uniform(0, 0.005))  # the others are connecting

        for _ in range(3):
            asyncio.run(work())
            assert _sessions(gone=_sessions()) == set()

    def test_killed_idle_sessions_under_gather(self, native, items, settings):
        settings.DUALCALL_NATIVE_POOL = {"max_size": 3}

        async def work():
            assert await NativeItem.objects.count() == 8
            _terminate(_sessions())
            counts = await asyncio.gather(
                *[NativeItem.objects.filter(number__lte=i).count() for i in range(8)]
            )
            assert counts == list(range(1, 9))
            assert len(_sessions()) <= 3

        asyncio.run(work())


# -- ASGI lifespan -----------------------------------------------------------------


class TestLifespan:
    pytestmark = NATIVE_TESTS

    def test_shutdown_closes_the_pools_of_its_loop(self, native, items, settings):
        settings.DUALCALL_NATIVE_POOL = {"max_size": 2}
        seen = []

        async def inner(scope, receive, send):
            seen.append(scope["type"])

        application = lifespan(inner)

        async def work():
            await application({"type": "http"}, None, None)
            await application({"type": "websocket"}, None, None)
            assert await NativeItem.objects.count() == 8
            sessions = _sessions()
            assert len(sessions) == 2 and set(loop_pools()) == {"default"}
            incoming = asyncio.Queue()
            sent = []

            async def send(message):
                sent.append(message)

            server = asyncio.create_task(application({"type": "lifespan"}, incoming.get, send))
            await incoming.put({"type": "lifespan.startup"})
            await incoming.put({"type": "lifespan.shutdown"})
            await server
            assert sent == [
                {"type": "lifespan.startup.complete"},
                {"type": "lifespan.shutdown.complete"},
            ]
            # While this loop still runs: no pool, no session left.
            assert loop_pools() == {}
            assert _sessions(gone=sessions) == set()
            # A later call makes a new pool (closed with the loop).
            assert await NativeItem.objects.count() == 8
            return _sessions()

        again = asyncio.run(work())
        assert len(again) == 2
        assert _sessions(gone=again) == set()
        assert seen == ["http", "websocket"]

    @pytest.mark.parametrize("stop_signal", ["SIGTERM", "SIGINT"])
    def test_uvicorn(self, items, stop_signal, tmp_path):
        """uvicorn serves Django wrapped by ``lifespan``: native queries, then a clean shutdown."""
        pytest.importorskip("uvicorn", reason="uvicorn (the 'examples' extra) is not installed")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.native_site_settings",
            "DUALCALL_NATIVE_SITE_DB": connection.settings_dict["NAME"],
            "DUALCALL_TEST_DB": "postgres",
        }
        command = [
            sys.executable, "-m", "uvicorn", "tests.native_site:application",
            "--host", "127.0.0.1", "--port", str(port), "--lifespan", "on",
        ]  # fmt: skip
        before = _sessions()
        log_path = tmp_path / "uvicorn.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            url = f"http://127.0.0.1:{port}/counts?n=8"
            body = _get_when_up(url, proc, log_path)
            assert json.loads(body) == {"counts": [1] * 8}
            served = _sessions() - before
            assert len(served) == 3  # the site's pool (max_size 3), from the uvicorn process
            signum = getattr(signal, stop_signal)
            proc.send_signal(signum)
            # uvicorn shuts down, then raises the signal it caught again.
            assert proc.wait(timeout=30) in (0, -signum), log_path.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log_text = log_path.read_text()
        assert "Application startup complete." in log_text, log_text
        assert "native-site: pools=1 open=0" in log_text, log_text  # closed by the lifespan
        assert "Application shutdown complete." in log_text, log_text
        assert "Finished server process" in log_text, log_text
        assert "Traceback" not in log_text, log_text
        assert "lifespan" not in log_text.lower(), log_text  # no "unsupported" complaint
        assert not (_sessions(gone=served) & served)


def _get_when_up(url, proc, log_path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"uvicorn exited: {log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# -- load through a server restart -------------------------------------------------


def _server_state():
    """The throwaway server of scripts/pgserver.sh that the suite runs on, or None."""
    state_dir = Path(os.environ.get("DUALCALL_PG_STATE_DIR", ROOT / ".pg"))
    try:
        text = (state_dir / "state").read_text()
    except OSError:
        return None
    state = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        parts = shlex.split(value)
        state[key] = parts[0] if parts else ""
    if not state.get("PG_TMP", "").startswith("/tmp/dualcall-pg."):
        return None
    if str(state.get("PG_PORT")) != str(connection.settings_dict["PORT"]):
        return None  # the suite runs on another server: never touch this one
    return state


def _terminate_all():
    """End every other session of the test database (the lighter stand-in for a restart)."""
    _admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )


class TestServerRestart:
    pytestmark = NATIVE_TESTS

    @pytest.mark.parametrize("how", ["terminate", "restart"])
    @pytest.mark.parametrize("seed", [1, 2])
    def test_load_through_restart(self, native, items, settings, how, seed):
        """Concurrent native reads and writes while the server restarts (or kills every session).

        Every call returns the right result or raises Django's
        ``OperationalError``/``InterfaceError``; none hangs; once the server
        is back, calls succeed; the pool never holds more than ``max_size``
        sessions, and none once closed.
        """
        state = None
        if how == "restart":
            state = _server_state()
            if state is None:
                pytest.skip("no throwaway server of scripts/pgserver.sh to restart")
        max_size, timeout = 4, 5.0
        settings.DUALCALL_NATIVE_POOL = {"max_size": max_size, "timeout": timeout}
        rng = random.Random(seed)
        outcomes = {"ok": 0}
        unexpected = []

        async def one():
            kind = rng.choice(["list", "slow", "get", "count", "values", "update", "slow update"])
            number = rng.randrange(8)
            qs = NativeItem.objects.filter(number=number)
            # Slow statements are more likely to run when the server goes away.
            sleep = ["pg_sleep(%s) IS NOT NULL"], [round(rng.uniform(0, 0.3), 3)]
            if kind == "list":
                call, expected = qs, None
            elif kind == "slow":
                call, expected = qs.extra(where=sleep[0], params=sleep[1]), None
            elif kind == "get":
                call, expected = NativeItem.objects.get(number=number), None
            elif kind == "count":
                call, expected = NativeItem.objects.filter(number__lte=number).count(), number + 1
            elif kind == "values":
                call, expected = qs.values_list("name", flat=True), [f"item{number}"]
            elif kind == "update":
                call, expected = qs.update(price=decimal.Decimal("1.5")), 1
            else:
                slow_qs = qs.extra(where=sleep[0], params=sleep[1])
                call, expected = slow_qs.update(price=decimal.Decimal("1.5")), 1
            try:
                # A liveness bound (a hang fails the test): waiting for a
                # connection, a failed read's retry waiting again, the query.
                result = await asyncio.wait_for(call, timeout=3 * timeout + 10)
            except (OperationalError, InterfaceError) as exc:
                key = f"{kind}: {type(exc).__name__}: {str(exc).splitlines()[0][:60]}"
                outcomes[key] = outcomes.get(key, 0) + 1
                return
            except BaseException as exc:
                unexpected.append((kind, number, repr(exc)))
                return
            if kind in ("list", "slow"):
                result = [(item.number, item.name) for item in result]
                expected = [(number, f"item{number}")]
            elif kind == "get":
                result, expected = (result.number, result.name), (number, f"item{number}")
            else:
                result = list(result) if kind == "values" else result
            if result != expected:
                unexpected.append((kind, number, result, expected))
            else:
                outcomes["ok"] += 1

        async def worker(stop):
            calls = 0
            while not stop.is_set() and calls < 100:
                calls += 1
                await one()
                await asyncio.sleep(rng.uniform(0, 0.02))
            return calls

        async def load(stop):
            # Three times as many workers as connections: some always wait for one.
            return sum(await asyncio.gather(*[worker(stop) for _ in range(3 * max_size)]))

        async def count_sessions(stop, counts):
            while not stop.is_set():
                with contextlib.suppress(Exception):  # the server may be down
                    counts.append(len(await asyncio.to_thread(_sessions)))
                await asyncio.sleep(0.1)

        async def work():
            assert await NativeItem.objects.count() == 8  # the pool is up
            first = _sessions()
            started = _admin("SELECT pg_postmaster_start_time()")
            stop = asyncio.Event()
            loader = asyncio.create_task(load(stop))
            counts = []
            counter = asyncio.create_task(count_sessions(stop, counts))
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            if how == "restart":
                await asyncio.to_thread(_pg_ctl, state, "restart")
                assert _admin("SELECT pg_postmaster_start_time()") != started
            else:
                await asyncio.to_thread(_terminate_all)
            # The pool's first sessions all ended.
            assert not (await asyncio.to_thread(_sessions, gone=first) & first)
            await asyncio.sleep(rng.uniform(0.2, 1.0))  # load goes on, the server back
            stop.set()
            calls = await loader
            await counter
            assert counts and max(counts) <= max_size, counts
            # The server is back: every call succeeds (waiting, at most the
            # pool's timeout, for psycopg_pool to reconnect).
            after = await asyncio.gather(
                *[NativeItem.objects.filter(number__lte=i).count() for i in range(8)]
            )
            assert after == list(range(1, 9))
            assert await NativeItem.objects.filter(number=3).update(text="back") == 1
            sessions = _sessions()
            assert 0 < len(sessions) <= max_size, sessions
            await close_pools()
            assert _sessions(gone=sessions) == set()
            return calls

        try:
            calls = asyncio.run(work())
        finally:
            # Django's own sessions of this thread ended with the others.
            connections.close_all()
        print(f"{how} seed={seed}: {calls} calls, outcomes {outcomes}")  # shown with -s
        assert not unexpected, unexpected
        assert calls == sum(outcomes.values()) and outcomes["ok"] > 0, outcomes
        assert NativeItem.objects.get(number=3).text == "back"
        assert _sessions() == set()


def _pg_ctl(state, action):
    """``pg_ctl -m fast`` *action* (stop, start, restart) of the throwaway server, as its user."""
    pg_ctl = [
        f"{state['PG_BIN']}/pg_ctl", "-D", f"{state['PG_TMP']}/data",
        "-l", f"{state['PG_TMP']}/server.log", "-m", "fast", "-w", "-t", "60", action,
    ]  # fmt: skip
    # setsid: a (re)started server gets its own session, out of reach of a
    # Ctrl-C in the terminal that runs the tests (as scripts/pgserver.sh).
    command = ["setsid", "-w", *pg_ctl]
    if os.geteuid() == 0 and state["PG_USER"] != "root":
        command = ["runuser", "-u", state["PG_USER"], "--", *command]
    subprocess.run(
        command,
        cwd=state["PG_TMP"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=90,
        check=True,
    )


class TestServerDown:
    pytestmark = NATIVE_TESTS

    def test_calls_while_down_then_up(self, native, items, settings):
        """Down: each call waits ``timeout`` and says it cannot connect.  Up: calls succeed."""
        state = _server_state()
        if state is None:
            pytest.skip("no throwaway server of scripts/pgserver.sh to stop")
        settings.DUALCALL_NATIVE_POOL = {"max_size": 2, "timeout": 2.0}

        async def work():
            assert await NativeItem.objects.count() == 8
            first = _sessions()
            await asyncio.to_thread(_pg_ctl, state, "stop")
            try:
                down = []
                # Down for 8 s and more: psycopg_pool alone would try again
                # 7 s and 15 s after the first failure, too late for the
                # calls below.
                for _ in range(4):
                    down += await asyncio.gather(
                        NativeItem.objects.count(),
                        NativeItem.objects.filter(number=1).update(text="down"),
                        NativeItem.objects.get(number=2),
                        return_exceptions=True,
                    )
            finally:
                await asyncio.to_thread(_pg_ctl, state, "start")
            # Back: every call succeeds (the pool reconnects within about 1 s).
            counts = await asyncio.gather(
                *[NativeItem.objects.filter(number__lte=i).count() for i in range(8)]
            )
            assert counts == list(range(1, 9))
            assert await NativeItem.objects.filter(number=1).update(text="up") == 1
            sessions = _sessions()
            assert 0 < len(sessions) <= 2 and not (sessions & first)
            await close_pools()
            assert _sessions(gone=sessions) == set()
            return down

        try:
            down = asyncio.run(work())
        finally:
            connections.close_all()  # Django's own session ended with the server
        prefix = (
            "dualcall native path: no connection to database 'default' could be made within "
            "2.0 s (max_size=2): connection failed: "
        )
        suffix = ". The pool keeps reconnecting; check that the server is up."
        for error in down:
            assert isinstance(error, NativePoolTimeout), down
            # In between, the first line of libpq's error: "Connection refused",
            # or "server closed the connection unexpectedly" when it stopped.
            assert str(error).startswith(prefix) and str(error).endswith(suffix), str(error)
            assert "\n" not in str(error)
        assert NativeItem.objects.get(number=1).text == "up"
        assert _sessions() == set()
