"""Every QuerySet/manager method awaited from a coroutine gives what the sync call gives."""

import datetime

import pytest
from asgiref.sync import sync_to_async
from django.db.models import Max, Sum
from django.utils import timezone

from tests.testapp.models import Choice, Question

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@pytest.fixture
def questions():
    return [
        Question.objects.create(question_text=f"q{i}", pub_date=T0 + datetime.timedelta(days=i))
        for i in range(3)
    ]


@pytest.fixture(params=["manager", "queryset"])
def source(request):
    """``Question.objects`` itself, or a QuerySet of it."""
    return Question.objects if request.param == "manager" else Question.objects.all()


def texts():
    return sorted(Question.objects.values_list("question_text", flat=True))


async def test_get(source, questions):
    assert await source.get(pk=questions[1].pk) == questions[1]
    with pytest.raises(Question.DoesNotExist):
        await source.get(pk=-1)
    with pytest.raises(Question.MultipleObjectsReturned):
        await source.get(question_text__startswith="q")


async def test_create(source):
    question = await source.create(question_text="new", pub_date=T0)
    assert question.pk is not None
    assert await sync_to_async(texts)() == ["new"]


async def test_get_or_create(source, questions):
    assert await source.get_or_create(question_text="q0") == (questions[0], False)
    created, was_created = await source.get_or_create(
        question_text="q9", defaults={"pub_date": T0}
    )
    assert was_created is True
    assert created.pub_date == T0


async def test_update_or_create(source, questions):
    updated, created = await source.update_or_create(
        question_text="q0", defaults={"pub_date": T0 + datetime.timedelta(days=30)}
    )
    assert (updated.pk, created) == (questions[0].pk, False)
    assert (await Question.objects.get(pk=questions[0].pk)).pub_date == T0 + datetime.timedelta(
        days=30
    )


async def test_bulk_create_and_bulk_update(source):
    made = await source.bulk_create([Question(question_text=t, pub_date=T0) for t in "abc"])
    assert [q.question_text for q in made] == ["a", "b", "c"]
    saved = await Question.objects.order_by("question_text")
    for q in saved:
        q.question_text = q.question_text.upper()
    assert await source.bulk_update(saved, ["question_text"]) == 3
    assert await sync_to_async(texts)() == ["A", "B", "C"]


async def test_count_exists_contains(source, questions):
    assert await source.count() == 3
    assert await source.exists() is True
    assert await source.contains(questions[0]) is True
    assert await source.filter(pk=-1).exists() is False


async def test_aggregate(source, questions):
    assert await source.aggregate(latest=Max("pub_date")) == {
        "latest": T0 + datetime.timedelta(days=2)
    }


async def test_first_last_earliest_latest(source, questions):
    assert await source.order_by("pk").first() == questions[0]
    assert await source.order_by("pk").last() == questions[2]
    assert await source.earliest("pub_date") == questions[0]
    assert await source.latest("pub_date") == questions[2]
    assert await source.filter(pk=-1).first() is None


async def test_in_bulk(source, questions):
    ids = [questions[0].pk, questions[2].pk]
    assert await source.in_bulk(ids) == {q.pk: q for q in (questions[0], questions[2])}


async def test_update_and_delete(questions):
    assert await Question.objects.filter(question_text="q0").update(question_text="z") == 1
    deleted = await Question.objects.filter(question_text__startswith="q").delete()
    assert deleted == (2, {"testapp.Question": 2})
    assert await sync_to_async(texts)() == ["z"]


async def test_explain(source, questions):
    plan = await source.filter(pk=questions[0].pk).explain()
    assert isinstance(plan, str) and plan


async def test_iterator_is_an_async_iterator(source, questions):
    assert [q async for q in source.order_by("pk").iterator()] == questions
    assert [q async for q in source.order_by("pk").iterator(chunk_size=1)] == questions


def test_iterator_sync(questions):
    assert list(Question.objects.order_by("pk").iterator()) == questions


async def test_await_queryset_returns_a_list(questions):
    result = await Question.objects.order_by("pk")
    assert result == questions
    assert type(result) is list
    assert await Question.objects.order_by("pk").values_list("question_text", flat=True) == [
        "q0",
        "q1",
        "q2",
    ]
    assert await Question.objects.none() == []


async def test_await_queryset_fills_its_cache(questions):
    queryset = Question.objects.order_by("pk")
    await queryset
    # The results are cached: reading them again needs no query (and no await).
    assert queryset._result_cache == questions
    assert list(queryset) == questions


async def test_async_for_and_django_a_methods_still_work(questions):
    assert [q async for q in Question.objects.order_by("pk")] == questions
    assert await Question.objects.aget(pk=questions[0].pk) == questions[0]
    assert await Question.objects.acount() == 3
    question = await Question.objects.acreate(question_text="a", pub_date=timezone.now())
    question.question_text = "b"
    await question.asave()
    assert await Question.objects.filter(question_text="b").aexists()
    await question.adelete()
    assert await Question.objects.acount() == 3


async def test_related_lookups_and_annotations_through_await(questions):
    await Choice.objects.abulk_create(
        [Choice(question=questions[0], choice_text=str(i), votes=i) for i in range(3)]
    )
    assert await Choice.objects.aggregate(total=Sum("votes")) == {"total": 3}
    assert await Question.objects.filter(choice__votes__gte=1).distinct().count() == 1


def test_sync_calls_unchanged(questions):
    # Plain sync code, no event loop: Django's behaviour, unchanged.
    assert Question.objects.get(pk=questions[0].pk) == questions[0]
    assert Question.objects.count() == 3
    assert Question.objects.filter(question_text="q1").update(question_text="x") == 1
    assert list(Question.objects.order_by("pk").values_list("question_text", flat=True)) == [
        "q0",
        "x",
        "q2",
    ]
    question = Question.objects.get(question_text="x")
    question.question_text = "y"
    question.save()
    assert Question.objects.filter(question_text="y").exists()
