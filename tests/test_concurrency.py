"""Gathering dual calls: comprehensions, generator expressions, many writes."""

import asyncio

import pytest

from tests.testapp.models import Question

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ids():
    return [Question.objects.create(question_text=f"q{i}").pk for i in range(5)]


async def test_gather_over_list_comprehension(ids):
    questions = await asyncio.gather(*[Question.objects.get(pk=pk) for pk in ids])
    assert [q.pk for q in questions] == ids


async def test_gather_over_generator_expression(ids):
    questions = await asyncio.gather(*(Question.objects.get(pk=pk) for pk in ids))
    assert [q.question_text for q in questions] == [f"q{i}" for i in range(5)]


async def test_gather_mixed_methods(ids):
    count, first, exists = await asyncio.gather(
        Question.objects.count(),
        Question.objects.order_by("pk").first(),
        Question.objects.filter(pk=ids[-1]).exists(),
    )
    assert (count, first.pk, exists) == (5, ids[0], True)


async def test_hundred_concurrent_creates_all_land():
    created = await asyncio.gather(
        *[Question.objects.create(question_text=f"c{i}") for i in range(100)]
    )
    assert len({q.pk for q in created}) == 100
    assert await Question.objects.count() == 100
    texts = await Question.objects.values_list("question_text", flat=True)
    assert sorted(texts) == sorted(f"c{i}" for i in range(100))


async def test_tasks_and_task_groups_accept_dual_awaitables(ids):
    # Dual awaitables are real coroutines: create_task() and TaskGroup take them.
    task = asyncio.create_task(Question.objects.get(pk=ids[0]))
    async with asyncio.TaskGroup() as group:
        counted = group.create_task(Question.objects.count())
    assert (await task).pk == ids[0]
    assert counted.result() == 5


async def test_wait_for_timeout_on_dual_awaitable(ids):
    assert await asyncio.wait_for(Question.objects.count(), timeout=30) == 5
