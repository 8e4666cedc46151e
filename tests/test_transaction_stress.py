"""Randomized stress tests of dualcall.atomic: cancellation, concurrent nested blocks, tests.

Each test is bounded in time (``BUDGET`` seconds, with a minimum number of
blocks) and draws its timings from a seeded ``random.Random``: the seed is
in every assertion message; ``DUALCALL_STRESS_SEED=<seed>`` replays it.

What is checked, after every run: the committed rows are exactly those of
the blocks that reported success (an outer block either commits everything
that succeeded inside it or raises), ``on_commit`` ran exactly once per
committed outer block, no block thread is left, and on PostgreSQL the
number of server connections is back to where it was.
"""

import asyncio
import os
import random
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.test import TestCase

import dualcall
from tests.test_transaction import _assert_server_connections_settle_to, _busy, _server_connections
from tests.testapp.models import Question

pytestmark = pytest.mark.django_db(transaction=True)

BUDGET = 2.0  # seconds per test, after the minimum number of blocks


def _seed():
    return int(os.environ.get("DUALCALL_STRESS_SEED") or random.randrange(2**32))


class Boom(Exception):
    pass


async def _rows():
    return set(await Question.objects.values_list("question_text", flat=True))


async def _server_connection_count():
    if connection.vendor != "postgresql":
        return None
    return await sync_to_async(_server_connections)()


async def _assert_clean(before, seed):
    if before is not None:
        await _assert_server_connections_settle_to(before)
    deadline = asyncio.get_running_loop().time() + 5
    while [t for t in threading.enumerate() if t.name.startswith("dualcall-atomic")]:
        assert asyncio.get_running_loop().time() < deadline, f"block threads left (seed {seed})"
        await asyncio.sleep(0.02)


async def _run_cancelled(coroutine, mode, rng_value):
    """Run *coroutine* as a task cancelled as *mode* says; return whether it succeeded."""
    if mode == "wait_for":
        try:
            await asyncio.wait_for(coroutine, timeout=rng_value)
        except TimeoutError:
            return False
        return True
    task = asyncio.create_task(coroutine)
    if mode == "cancel":
        for _ in range(rng_value):
            await asyncio.sleep(0)
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return False
    return True


class _Fuzz:
    """Outer blocks with nested blocks, both cancelled at random moments."""

    def __init__(self, seed, busy_sibling=False, commits=True):
        self.seed = seed
        self.commits = commits  # False inside a TestCase: its transaction never commits
        self.rng = random.Random(seed)
        self.busy_sibling = busy_sibling
        self.expected = set()
        self.committed = []  # on_commit callbacks, by outer block
        self.blocks = 0
        self.outcomes = {"outer ok": 0, "outer cancelled": 0, "nested ok": 0, "nested lost": 0}

    def _outer_plan(self):
        mode = self.rng.choice(["none", "wait_for", "cancel"])
        value = {"none": 0, "wait_for": self.rng.uniform(0, 0.004)}.get(mode)
        if mode == "cancel":
            value = self.rng.randrange(0, 40)
        nested = []
        for _ in range(self.rng.randrange(1, 4)):
            if self.rng.random() < 0.5:
                cancel = ("wait_for", self.rng.uniform(0, 0.004))
            else:
                cancel = ("cancel", self.rng.randrange(0, 30))
            nested.append((cancel, self.rng.randrange(0, 3), self.rng.random() < 0.2))
        return mode, value, nested

    async def _nested(self, name, sleeps, fail):
        async with dualcall.atomic():
            await Question.objects.create(question_text=name)
            for _ in range(sleeps):
                await asyncio.sleep(0)
            if fail:
                raise Boom

    async def _outer(self, i, nested, kept):
        siblings = []
        async with dualcall.atomic():
            await Question.objects.create(question_text=f"o{i}")
            transaction.on_commit(lambda: self.committed.append(i))
            if self.busy_sibling:
                # A task of the block keeps the block's thread busy.
                siblings.append(asyncio.create_task(sync_to_async(_busy)(0.005)))
            for j, ((mode, value), sleeps, fail) in enumerate(nested):
                name = f"o{i}-n{j}"
                try:
                    ok = await _run_cancelled(self._nested(name, sleeps, fail), mode, value)
                except Boom:
                    continue
                if ok:
                    kept.append(name)
            if siblings:
                await asyncio.gather(*siblings)

    async def one(self, i):
        mode, value, nested = self._outer_plan()
        kept = []
        self.blocks += 1 + len(nested)
        if await _run_cancelled(self._outer(i, nested, kept), mode, value):
            self.outcomes["outer ok"] += 1
            self.outcomes["nested ok"] += len(kept)
            self.outcomes["nested lost"] += len(nested) - len(kept)
            self.expected |= {f"o{i}", *kept}
        else:
            self.outcomes["outer cancelled"] += 1

    async def run(self, minimum_blocks, concurrency=4):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BUDGET
        i = 0
        while self.blocks < minimum_blocks or (loop.time() < deadline and self.blocks < 5000):
            await asyncio.gather(*[self.one(i + k) for k in range(concurrency)])
            i += concurrency
        return i

    async def check(self):
        rows = await _rows()
        outers = {name for name in self.expected if name[0] == "o" and "-" not in name}
        report = f"seed {self.seed}, {self.blocks} blocks, {self.outcomes}"
        print(report)  # shown with pytest -rP
        assert rows == self.expected, (
            f"{report}: committed but not reported {sorted(rows - self.expected)[:10]}, "
            f"reported but not committed {sorted(self.expected - rows)[:10]}"
        )
        ran = sorted(int(o[1:]) for o in outers) if self.commits else []
        assert sorted(self.committed) == ran, report
        assert self.outcomes["outer ok"] and self.outcomes["outer cancelled"], report
        assert self.outcomes["nested ok"] and self.outcomes["nested lost"], report


async def test_random_cancellation_of_outer_and_nested_blocks():
    before = await _server_connection_count()
    fuzz = _Fuzz(_seed())
    await fuzz.run(minimum_blocks=400)
    await fuzz.check()
    await _assert_clean(before, fuzz.seed)


async def test_random_cancellation_with_a_sibling_keeping_the_block_thread_busy():
    before = await _server_connection_count()
    fuzz = _Fuzz(_seed(), busy_sibling=True)
    await fuzz.run(minimum_blocks=300)
    await fuzz.check()
    await _assert_clean(before, fuzz.seed)


async def test_gathered_nested_blocks_keep_exactly_the_succeeding_ones():
    seed = _seed()
    rng = random.Random(seed)
    before = await _server_connection_count()
    expected = set()
    blocks = 0

    async def nested(name, sleeps, fail, cancel_after):
        async def body():
            async with dualcall.atomic():
                await Question.objects.create(question_text=name)
                for _ in range(sleeps):
                    await asyncio.sleep(0)
                if fail:
                    raise Boom
            return name

        return await _run_cancelled(body(), "cancel" if cancel_after else "none", cancel_after)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUDGET
    i = 0
    while blocks < 300 or (loop.time() < deadline and blocks < 5000):
        plan = [
            (f"r{i}-n{j}", rng.randrange(0, 4), rng.random() < 0.4, rng.choice([0, 0, 3, 10]))
            for j in range(rng.randrange(2, 6))
        ]
        async with dualcall.atomic():
            results = await asyncio.gather(*[nested(*p) for p in plan], return_exceptions=True)
        blocks += 1 + len(plan)
        expected |= {p[0] for p, ok in zip(plan, results, strict=True) if ok is True}
        i += 1
    rows = await _rows()
    print(f"seed {seed}, {blocks} blocks in {i} gathers")  # shown with pytest -rP
    assert rows == expected, (
        f"seed {seed}, {blocks} blocks: committed but failed {sorted(rows - expected)[:10]}, "
        f"succeeded but lost {sorted(expected - rows)[:10]}"
    )
    await _assert_clean(before, seed)


# -- the test transaction: nothing leaks into the next test ----------------------


class CancellationInTestCaseTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        Question.objects.create(question_text="fixture")

    async def test_1_random_cancellation_inside_the_test_transaction(self):
        fuzz = _Fuzz(_seed(), commits=False)
        fuzz.expected = {"fixture"}
        await fuzz.run(minimum_blocks=200, concurrency=1)
        await fuzz.check()

    async def test_2_the_previous_test_left_nothing(self):
        assert await _rows() == {"fixture"}
        # Only the test's own atomic blocks are open on its connection.
        assert await sync_to_async(lambda: len(connection.atomic_blocks))() == 2
