"""No write is ever lost silently: sync helpers in async code fail loudly."""

import gc

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation

from tests.testapp.models import Post, Question

pytestmark = pytest.mark.django_db(transaction=True)

SOO_MESSAGE = "You cannot call this from an async context - use a thread or sync_to_async."


def create_question(text):
    """A sync helper, as found in any existing codebase."""
    return Question.objects.create(question_text=text)


def rename(question, text):
    question.question_text = text
    question.save()


async def test_sync_helper_called_from_coroutine_raises_and_writes_nothing():
    with pytest.raises(SynchronousOnlyOperation) as raised:
        create_question("lost?")
    assert str(raised.value) == SOO_MESSAGE
    assert await Question.objects.count() == 0


async def test_sync_helper_saving_an_instance_raises_and_writes_nothing():
    question = await Question.objects.create(question_text="before")
    with pytest.raises(SynchronousOnlyOperation):
        rename(question, "after")
    assert (await Question.objects.get(pk=question.pk)).question_text == "before"


async def test_same_helper_through_sync_to_async_works():
    await sync_to_async(create_question)("kept")
    assert await Question.objects.filter(question_text="kept").count() == 1


async def test_lambda_called_from_coroutine_is_sync_code():
    # A lambda is a sync frame: it gets the sync call, and Django's guard.
    with pytest.raises(SynchronousOnlyOperation):
        (lambda: Question.objects.count())()


async def test_forgotten_await_warns_names_the_method_and_writes_nothing():
    with pytest.warns(RuntimeWarning, match=r"coroutine 'Manager\.create' was never awaited"):
        Question.objects.create(question_text="forgotten")
        gc.collect()
    with pytest.warns(RuntimeWarning, match=r"coroutine 'Post\.save' was never awaited"):
        Post(title="forgotten").save()
        gc.collect()
    assert await Question.objects.count() == 0
    assert await Post.objects.count() == 0


def test_unsafe_allowed_sync_helper_runs_sync_in_async_context(monkeypatch):
    # With DJANGO_ALLOW_ASYNC_UNSAFE, Django lets sync ORM calls run with a
    # loop in the thread (notebooks); a sync helper then just works.
    import asyncio

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    async def main():
        create_question("unsafe but asked for")
        return await Question.objects.count()

    assert asyncio.run(main()) == 1
