"""dualcall.shortcuts and prefetch_related_objects: sync as Django, awaited in coroutines."""

import pytest
from django.core.exceptions import MultipleObjectsReturned, SynchronousOnlyOperation
from django.http import Http404

import dualcall
from dualcall.shortcuts import get_list_or_404, get_object_or_404, prefetch_related_objects
from tests.testapp.models import Choice, Post, Question


@pytest.fixture
def questions(db):
    first = Question.objects.create(question_text="first")
    second = Question.objects.create(question_text="second")
    Choice.objects.create(question=first, choice_text="a")
    Choice.objects.create(question=first, choice_text="b")
    return [first, second]


@pytest.fixture
def aquestions(transactional_db):
    first = Question.objects.create(question_text="first")
    second = Question.objects.create(question_text="second")
    Choice.objects.create(question=first, choice_text="a")
    Choice.objects.create(question=first, choice_text="b")
    return [first, second]


def test_exported_from_package():
    assert dualcall.prefetch_related_objects is prefetch_related_objects


# -- sync: exactly Django ---------------------------------------------------


def test_sync_get_object_or_404(questions):
    assert get_object_or_404(Question, pk=questions[0].pk) == questions[0]
    assert get_object_or_404(Question.objects, question_text="second") == questions[1]
    assert get_object_or_404(Question.objects.filter(pk=questions[1].pk)) == questions[1]
    with pytest.raises(Http404, match=r"No Question matches the given query\."):
        get_object_or_404(Question, pk=0)
    with pytest.raises(MultipleObjectsReturned):
        get_object_or_404(Question)
    with pytest.raises(ValueError, match="must be a Model, Manager, or QuerySet, not 'str'"):
        get_object_or_404("Question", pk=1)


def test_sync_get_list_or_404(questions):
    assert get_list_or_404(Question, question_text="first") == [questions[0]]
    assert get_list_or_404(Choice.objects.order_by("choice_text"), question=questions[0]) == list(
        Choice.objects.order_by("choice_text")
    )
    with pytest.raises(Http404, match=r"No Question matches the given query\."):
        get_list_or_404(Question, question_text="nope")


def test_sync_prefetch_related_objects(questions, django_assert_num_queries):
    fresh = list(Question.objects.order_by("pk"))
    with django_assert_num_queries(1):
        assert prefetch_related_objects(fresh, "choice_set") is None
    with django_assert_num_queries(0):
        assert [c.choice_text for c in fresh[0].choice_set.all()] == ["a", "b"]
        assert list(fresh[1].choice_set.all()) == []


# -- async: awaited ---------------------------------------------------------


async def test_await_get_object_or_404(aquestions):
    # The inner queryset.get() runs in the worker thread, where no loop runs:
    # it is a plain sync call there, so the result is the instance itself.
    question = await get_object_or_404(Question, pk=aquestions[0].pk)
    assert isinstance(question, Question)
    assert question == aquestions[0]
    assert await get_object_or_404(Question.objects.filter(question_text="second")) == aquestions[1]
    with pytest.raises(Http404, match=r"No Question matches the given query\."):
        await get_object_or_404(Question, pk=0)
    with pytest.raises(MultipleObjectsReturned):
        await get_object_or_404(Question)


async def test_await_get_object_or_404_on_a_custom_manager(transactional_db):
    post = await Post.objects.create(title="hello", published=True)
    assert await get_object_or_404(Post.published_objects, pk=post.pk) == post
    await Post.objects.filter(pk=post.pk).update(published=False)
    with pytest.raises(Http404, match="No Post matches"):
        await get_object_or_404(Post.published_objects, pk=post.pk)


async def test_await_get_list_or_404(aquestions):
    choices = await get_list_or_404(Choice.objects.order_by("choice_text"), question=aquestions[0])
    assert type(choices) is list
    assert [c.choice_text for c in choices] == ["a", "b"]
    with pytest.raises(Http404, match=r"No Choice matches the given query\."):
        await get_list_or_404(Choice, question=aquestions[1])


async def test_await_prefetch_related_objects(aquestions):
    fresh = await Question.objects.order_by("pk")
    assert await prefetch_related_objects(fresh, "choice_set") is None
    # Prefetched: sync access in async code does not query.
    assert [c.choice_text for c in fresh[0].choice_set.all()] == ["a", "b"]
    assert list(fresh[1].choice_set.all()) == []


async def test_awaited_prefetch_matches_djangos_async_twin(aquestions):
    # Django 5.0+ (6.0 and 6.1 included) has aprefetch_related_objects, a
    # sync_to_async twin of prefetch_related_objects: the dual function
    # populates the same caches, including under Django 6.1's fetch modes.
    from django.db.models import query

    aprefetch = getattr(query, "aprefetch_related_objects", None)
    if aprefetch is None:
        pytest.skip("no aprefetch_related_objects in this Django")
    ours = await Question.objects.order_by("pk")
    theirs = await Question.objects.order_by("pk")
    await prefetch_related_objects(ours, "choice_set")
    await aprefetch(theirs, "choice_set")
    assert [q._prefetched_objects_cache.keys() for q in ours] == [
        q._prefetched_objects_cache.keys() for q in theirs
    ]
    assert [list(q.choice_set.all()) for q in ours] == [list(q.choice_set.all()) for q in theirs]
    choices = await Choice.objects.order_by("pk")
    await prefetch_related_objects(choices, "question")
    assert [c.question for c in choices] == [aquestions[0], aquestions[0]]


async def test_acall_always_returns_an_awaitable(aquestions):
    def helper():
        return get_object_or_404.__acall__(Question, pk=aquestions[1].pk)

    assert await helper() == aquestions[1]


async def test_sync_helper_in_async_code_runs_sync_and_django_guard_raises(aquestions):
    # A sync frame never receives an awaitable it would drop: the call runs
    # synchronously, and Django refuses it on the event loop's thread.
    def helper():
        return get_object_or_404(Question, pk=aquestions[0].pk)

    with pytest.raises(SynchronousOnlyOperation):
        helper()


async def test_not_awaited_warns_with_the_name(aquestions, settings):
    settings.DUALCALL_STRICT = False
    with pytest.warns(RuntimeWarning, match="get_list_or_404' was never awaited"):
        get_list_or_404(Question)
        import gc

        gc.collect()
