"""Fail closed: no forgotten ``await`` yields a truthy condition, a lost write or a 200.

Plain Django raises ``SynchronousOnlyOperation`` wherever async code uses the
ORM without ``await``.  With dualcall, a dual call in a coroutine returns an
awaitable; these tests check that every way of misusing it ends in a loud,
exact error, that nothing is written, and what a view returns.
"""

import asyncio
import contextlib
import gc
import logging
import re
import sys
import warnings

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation
from django.http import HttpResponse
from django.urls import path

import dualcall
from dualcall import (
    NotAwaitedAttributeError,
    NotAwaitedError,
    NotAwaitedTypeError,
    UnprefetchedRelatedModelAccessError,
)
from dualcall.awaitables import check_scope, close_scope, open_scope
from dualcall.shortcuts import get_list_or_404
from tests.testapp.models import Choice, Post, Question

pytestmark = pytest.mark.django_db(transaction=True)

SOO_MESSAGE = "You cannot call this from an async context - use a thread or sync_to_async."
STRICT = (
    "(dualcall strict mode: the DUALCALL_STRICT setting; on by default under DEBUG and in tests.)"
)


def here(offset=0):
    """``file:line`` of the caller's line plus *offset*."""
    frame = sys._getframe(1)
    return f"{frame.f_code.co_filename}:{frame.f_lineno + offset}"


def never_awaited(name, at, short=None):
    short = short or name.rsplit(".", 1)[-1]
    return (
        f"{name}() was never awaited, so it did not run (called at {at}). "
        f'Write "await ...{short}(...)".'
    )


def forget(awaitable):
    """Drop *awaitable* without awaiting it, as an expression statement does."""
    del awaitable
    gc.collect()


# -- truth value and attributes ------------------------------------------------


async def test_unawaited_read_is_never_a_truthy_condition():
    await Post.objects.create(title="exists")
    line = here(2)
    with pytest.raises(NotAwaitedError) as raised:
        if Post.objects.filter(title="exists").exists():
            pytest.fail("an un-awaited exists() was truthy")
    assert str(raised.value) == (
        "Post QuerySet.exists() was not awaited, so it has no truth value (a coroutine is always "
        f'true). Write "if await ...exists():" or "x = await ...exists()" (at {line}).'
    )
    assert isinstance(raised.value, TypeError)
    assert isinstance(raised.value, SynchronousOnlyOperation)
    with pytest.raises(NotAwaitedError, match=re.escape("Post.objects.first() was not awaited")):
        assert not Post.objects.first()
    line = here(2)
    with pytest.raises(NotAwaitedError, match=re.escape(f"(at {line})")):
        if Post.objects.filter(title="exists").update(title="changed"):
            pass
    with pytest.raises(NotAwaitedError, match=re.escape("Post.objects.contains() was not")):
        bool(Post.objects.contains(Post(pk=1)))
    # The misused calls did not run, and were not reported a second time.
    assert await Post.objects.filter(title="exists").count() == 1
    assert await Post.objects.count() == 1


async def test_unawaited_result_attribute_says_it_was_not_awaited():
    question = await Question.objects.create(question_text="Why?")
    line = here(2)
    with pytest.raises(NotAwaitedAttributeError) as raised:
        q = Question.objects.get(pk=question.pk)
        q.question_text  # noqa: B018
    assert str(raised.value) == (
        "Question.objects.get() was not awaited: 'question_text' was read from the coroutine it "
        'returned, not from its result. Write "(await ...get()).question_text" or '
        f'"x = await ...get()" (at {line}).'
    )
    # Not an AttributeError: getattr(x, name, default), hasattr() and Django's
    # templates would turn that into a default, a False or an empty string.
    assert not isinstance(raised.value, AttributeError)
    assert isinstance(raised.value, SynchronousOnlyOperation)
    q.close()  # dropped on purpose: not reported
    # Dropped on purpose: closed, so it is not reported (on Python 3.12+ the
    # traceback's reference cycle would keep it alive into the next test).
    q.close()
    awaitable = Question.objects.get(pk=question.pk)
    with pytest.raises(NotAwaitedAttributeError):
        getattr(awaitable, "question_text", "default")
    assert (await awaitable).question_text == "Why?"


async def test_unawaited_call_is_never_a_value():
    """Text, comparison, iteration, a model field: each is an error, and nothing is written."""
    await Question.objects.create(question_text="q")
    line = here(1)
    first = Question.objects.filter(pk=-1).first()
    expected = (
        "Question QuerySet.first() was not awaited: its coroutine was {}, not its result. "
        f'Write "x = await ...first()" and use x (at {line}).'
    )
    for what, misuse in [
        ("converted to text", lambda: str(first)),
        ("formatted", lambda: f"{first}"),
        ("compared", lambda: first == None),  # noqa: E711
        ("compared", lambda: first != 0),
        ("iterated", lambda: list(first)),
        ("measured with len()", lambda: len(first)),
        ("indexed", lambda: first[0]),
    ]:
        with pytest.raises(NotAwaitedError) as raised:
            misuse()
        assert str(raised.value) == expected.format(what)
    first.close()
    # Stored in a model field (Django probes it for resolve_expression), it
    # would have been written as text.
    pending = Question.objects.filter(pk=-1).first()
    with pytest.raises(NotAwaitedError, match=re.escape("first() was not awaited: 'resolve_")):
        await Question.objects.create(question_text=pending)
    pending.close()
    assert await Question.objects.count() == 1


async def test_an_awaited_awaitable_is_no_truth_value_either():
    exists = Question.objects.filter(pk=-1).exists()
    await asyncio.gather(exists)
    line = exists._at[1]
    with pytest.raises(NotAwaitedTypeError) as raised:
        if exists:
            pytest.fail("the awaitable of exists() was truthy")
    assert str(raised.value) == (
        f"The awaitable of Question QuerySet.exists() (at {__file__}:{line}) was tested for "
        'truth: it is always true, whatever its result. Keep the result: "x = await '
        '...exists()", then test x.'
    )


async def test_the_awaitable_is_a_coroutine_for_asyncio():
    await Question.objects.create(question_text="a")
    task = asyncio.create_task(Question.objects.count())
    assert await task == 1
    assert await asyncio.gather(Question.objects.count(), Question.objects.exists()) == [1, True]
    assert await asyncio.wait_for(Question.objects.count(), timeout=10) == 1
    async with asyncio.TaskGroup() as group:
        counted = group.create_task(Question.objects.count())
    assert counted.result() == 1
    awaitable = Question.objects.count()
    assert asyncio.iscoroutine(awaitable)
    assert "Question.objects.count" in repr(task)
    awaitable.close()  # closed on purpose: not reported


# -- never awaited --------------------------------------------------------------


@pytest.fixture
def not_strict(settings):
    settings.DUALCALL_STRICT = False


@pytest.mark.usefixtures("not_strict")
async def test_every_forgotten_write_is_reported_with_its_line(caplog):
    caplog.set_level(logging.ERROR, logger="dualcall")
    lines = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for i in range(3):
            lines.append(here(1))
            Question.objects.create(question_text=f"lost {i}")
        lines.append(here(1))
        Post(title="lost").save()
        lines.append(here(1))
        Question.objects.all().update(question_text="x")
        gc.collect()
    names = ["Question.objects.create"] * 3 + ["Post.save", "Question QuerySet.update"]
    assert [r.getMessage() for r in caplog.records] == [
        never_awaited(name, line) for name, line in zip(names, lines, strict=True)
    ]
    assert [r.levelno for r in caplog.records] == [logging.ERROR] * 5
    # Python's RuntimeWarning too, once per call (not once per line), at the
    # caller's line.
    runtime = [w for w in caught if w.category is RuntimeWarning]
    assert [str(w.message) for w in runtime] == [
        f"coroutine '{name}' was never awaited" for name in names
    ]
    assert [f"{w.filename}:{w.lineno}" for w in runtime] == lines
    assert await Question.objects.count() == 0
    assert await Post.objects.count() == 0


@pytest.mark.usefixtures("not_strict")
async def test_forgotten_awaits_of_every_kind_are_reported(caplog):
    question = await Question.objects.create(question_text="q")
    choice = await Choice.objects.create(question=question, choice_text="c")
    choice = await Choice.objects.get(pk=choice.pk)
    caplog.set_level(logging.ERROR, logger="dualcall")
    lines = [here(1)]
    choice.a.question  # noqa: B018
    lines.append(here(1))
    get_list_or_404(Question)
    lines.append(here(1))
    question.choice_set.create(choice_text="lost")
    gc.collect()
    assert [r.getMessage() for r in caplog.records] == [
        never_awaited("Choice.a.question", lines[0], "Choice.a.question"),
        never_awaited("get_list_or_404", lines[1]),
        never_awaited("Question.choice_set.create", lines[2]),
    ]
    assert await Choice.objects.count() == 1


@contextlib.contextmanager
def own_scope():
    """A strict-mode scope of the test's own, closed unchecked (the test checks it)."""
    token = open_scope()
    try:
        yield token
    finally:
        close_scope(token)


async def test_strict_mode_fails_the_next_dual_call_and_the_scope():
    with own_scope() as token:
        line = here(1)
        Question.objects.create(question_text="lost")
        message = never_awaited("Question.objects.create", line) + " " + STRICT
        with pytest.raises(NotAwaitedError) as raised:
            await Question.objects.count()
        assert str(raised.value) == message
        # The scope keeps failing until it ends (a request fails as a whole).
        with pytest.raises(NotAwaitedError):
            await Post.objects.count()
        with pytest.raises(NotAwaitedError) as raised:
            check_scope(token)
        assert str(raised.value) == message
    assert await Question.objects.count() == 0


async def test_strict_mode_covers_tasks_started_in_the_scope():
    async def guilty():
        Question.objects.create(question_text="lost in a task")

    async def innocent():
        await asyncio.sleep(0.01)
        return await Question.objects.create(question_text="innocent")

    with own_scope() as token:
        results = await asyncio.gather(guilty(), innocent(), return_exceptions=True)
        assert results[0] is None
        assert isinstance(results[1], NotAwaitedError)
        # The scope (the request) fails, even though the guilty task returned.
        with pytest.raises(NotAwaitedError, match=re.escape("Question.objects.create() was")):
            check_scope(token)


async def test_strict_scope_end_fails_for_an_awaitable_still_referenced():
    """Kept in a variable, a template context or a model field, it is not collected."""
    with own_scope() as token:
        line = here(1)
        context = {"question": Question.objects.get(pk=1)}
        with pytest.raises(NotAwaitedError) as raised:
            check_scope(token)
        assert str(raised.value) == (
            f"Question.objects.get() was not awaited by the end of the scope (called at {line}; "
            "the awaitable is still referenced: stored in a variable, a model field or a "
            "template context?). " + STRICT
        )
        del context


async def test_awaitable_handed_to_create_task_is_not_stranded():
    with own_scope() as token:
        task = asyncio.create_task(Question.objects.count())
        await asyncio.sleep(0)
        check_scope(token)
        assert await task == 0


# A test that forgets an await and makes no dual call after it fails too:
# dualcall's pytest plugin checks each test's scope when it ends.  Shown with a
# test file run by pytest in a subprocess.
PLUGIN_TEST = '''
import pytest
from tests.testapp.models import Question

pytestmark = pytest.mark.django_db(transaction=True)

async def test_forgets_an_await():
    Question.objects.create(question_text="lost")

async def test_awaits():
    await Question.objects.create(question_text="kept")
'''


def test_pytest_plugin_fails_a_test_that_forgot_an_await(tmp_path):
    import os
    import subprocess

    test_file = tmp_path / "test_forgetful.py"
    test_file.write_text(PLUGIN_TEST)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file),
         "--rootdir", root, "-c", os.path.join(root, "setup.cfg")],
        cwd=root, capture_output=True, text=True, timeout=120,
    )
    assert "1 failed, 1 passed" in result.stdout, result.stdout + result.stderr
    assert "NotAwaitedError: Question.objects.create() was never awaited" in result.stdout


# -- views ------------------------------------------------------------------------


async def forgetful_view(request):
    Question.objects.create(question_text="lost in a view")
    return HttpResponse("created")


async def careful_view(request):
    await Question.objects.create(question_text="kept")
    return HttpResponse("created")


urlpatterns = [path("forgetful/", forgetful_view), path("careful/", careful_view)]


@pytest.fixture
def urls(settings):
    settings.ROOT_URLCONF = __name__


@pytest.mark.usefixtures("urls")
async def test_strict_view_that_forgets_an_await_is_an_error(async_client):
    with pytest.raises(NotAwaitedError, match=re.escape("Question.objects.create() was never")):
        await async_client.get("/forgetful/")
    assert await Question.objects.count() == 0


@pytest.mark.usefixtures("urls")
async def test_strict_view_is_a_500_never_a_200(settings):
    from django.test import AsyncClient

    settings.DEBUG = True
    response = await AsyncClient(raise_request_exception=False).get("/forgetful/")
    assert response.status_code == 500
    response = await AsyncClient(raise_request_exception=False).get("/careful/")
    assert response.status_code == 200
    assert await Question.objects.count() == 1


@pytest.mark.usefixtures("urls", "not_strict")
async def test_view_without_strict_mode_logs_every_forgotten_await(async_client, caplog):
    caplog.set_level(logging.ERROR, logger="dualcall")
    for _ in range(2):
        response = await async_client.get("/forgetful/")
        assert response.status_code == 200
    line = f"{__file__}:{forgetful_view.__code__.co_firstlineno + 1}"
    assert [r.getMessage() for r in caplog.records] == [
        never_awaited("Question.objects.create", line)
    ] * 2
    assert await Question.objects.count() == 0


# -- sync helpers and messages that fit where they are raised ----------------------


def create_question(text):
    """A sync helper, as found in any existing codebase."""
    return Question.objects.create(question_text=text)


def first_question():
    return Question.objects.first()


def count_questions():
    return Question.objects.count()


def get_or_create_question(text):
    return Question.objects.get_or_create(question_text=text)


def list_questions():
    return list(Question.objects.all())


def rename(question, text):
    question.question_text = text
    question.save()


def sync_call(call, function, line):
    return (
        f"{call}() cannot run synchronously in {function}() at {__file__}:{line}: an event "
        f"loop runs in this thread. {function}() is a sync function, so it gets the "
        "synchronous call (only a coroutine can await). Call it through sync_to_async "
        f"(await sync_to_async({function})(...)), or make the call in the coroutine: "
        f"await {call}(...)."
    )


def line_of(function, text):
    lines, start = __import__("inspect").getsourcelines(function)
    return start + next(i for i, line in enumerate(lines) if text in line)


async def test_sync_helper_gets_advice_for_sync_code_and_writes_nothing():
    await Question.objects.create(question_text="existing")
    cases = [
        (create_question, ("lost?",), "Question.objects.create"),
        (first_question, (), "Question.objects.first"),
        (count_questions, (), "Question.objects.count"),
        (get_or_create_question, ("lost?",), "Question.objects.get_or_create"),
    ]
    for helper, args, call in cases:
        with pytest.raises(UnprefetchedRelatedModelAccessError) as raised:
            helper(*args)
        line = line_of(helper, "Question.objects")
        assert str(raised.value) == sync_call(call, helper.__name__, line)
        assert isinstance(raised.value, SynchronousOnlyOperation)
    assert await Question.objects.count() == 1


async def test_sync_helper_evaluating_a_queryset_gets_advice_for_sync_code():
    with pytest.raises(UnprefetchedRelatedModelAccessError) as raised:
        list_questions()
    line = line_of(list_questions, "list(")
    assert str(raised.value) == (
        f"QuerySet of Question cannot be evaluated synchronously in list_questions() at "
        f"{__file__}:{line}: an event loop runs in this thread. list_questions() is a sync "
        "function, so it gets the synchronous call (only a coroutine can await). Call it "
        "through sync_to_async (await sync_to_async(list_questions)(...)), or evaluate the "
        "queryset in the coroutine with await queryset or async for."
    )


async def test_sync_helper_saving_an_instance_raises_and_writes_nothing():
    question = await Question.objects.create(question_text="before")
    with pytest.raises(UnprefetchedRelatedModelAccessError) as raised:
        rename(question, "after")
    assert str(raised.value) == sync_call("Question.save", "rename", line_of(rename, "save()"))
    assert (await Question.objects.get(pk=question.pk)).question_text == "before"


async def test_same_helper_through_sync_to_async_works():
    await sync_to_async(create_question)("kept")
    assert await Question.objects.filter(question_text="kept").count() == 1


async def test_lambda_called_from_coroutine_is_sync_code():
    # A lambda is a sync frame: it gets the sync call, and a refusal.
    with pytest.raises(SynchronousOnlyOperation, match=re.escape("<lambda>() is a sync")):
        (lambda: Question.objects.count())()


async def test_indexing_a_queryset_suggests_first_or_a_slice():
    await Question.objects.create(question_text="q")
    message = (
        "QuerySet of Question cannot be indexed from within an async context: indexing "
        "(queryset[0]) evaluates it synchronously, before any await. Use await "
        "queryset.first(), or await a slice: rows = await queryset[:1]."
    )
    with pytest.raises(UnprefetchedRelatedModelAccessError) as raised:
        await Question.objects.all()[0]
    assert str(raised.value) == message
    rows = await Question.objects.all()[:1]
    assert [q.question_text for q in rows] == ["q"]


async def test_sync_for_over_iterator_says_async_for():
    await Question.objects.create(question_text="q")
    with pytest.raises(TypeError) as raised:
        for _ in Question.objects.iterator():
            pass
    assert str(raised.value) == (
        "Question.objects.iterator() called from a coroutine returns an async iterator: "
        'write "async for row in ...iterator():", not "for".'
    )
    assert [q.question_text async for q in Question.objects.iterator()] == ["q"]


async def test_await_raw_queryset_returns_a_list():
    question = await Question.objects.create(question_text="raw")
    table = Question._meta.db_table
    rows = await Question.objects.raw(f"SELECT * FROM {table}")
    assert rows == [question]
    assert rows[0].question_text == "raw"


# -- warnings raised inside a dual call point at the caller's line ------------------


@dualcall.dualmethod
def deprecated_helper(value):
    warnings.warn("deprecated_helper() is deprecated", DeprecationWarning, stacklevel=2)
    return value


async def test_warning_inside_a_dual_call_names_the_callers_line():
    with pytest.warns(DeprecationWarning, match="deprecated_helper") as caught:
        line = here(1)
        assert await deprecated_helper(3) == 3
    assert f"{caught[0].filename}:{caught[0].lineno}" == line


@pytest.mark.skipif(
    not hasattr(Question, "_parse_save_params"), reason="positional save() arguments: Django 5.x"
)
async def test_positional_save_warning_names_the_callers_line():
    from django.utils.deprecation import RemovedInDjango60Warning

    question = Question(question_text="x")
    with pytest.warns(RemovedInDjango60Warning) as caught:
        line = here(1)
        await question.save(False)
    assert f"{caught[0].filename}:{caught[0].lineno}" == line
    assert await Question.objects.count() == 1


# -- __acall__ ---------------------------------------------------------------------


def test_acall_works_with_no_loop_running(django_db_blocker):
    Question.objects.create(question_text="q")
    assert asyncio.run(Question.objects.count.__acall__()) == 1


def test_unsafe_allowed_sync_helper_runs_sync_in_async_context(monkeypatch):
    # With DJANGO_ALLOW_ASYNC_UNSAFE, Django lets sync ORM calls run with a
    # loop in the thread (notebooks); a sync helper then just works.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    async def main():
        create_question("unsafe but asked for")
        return await Question.objects.count()

    assert asyncio.run(main()) == 1


async def test_template_using_an_unawaited_result_is_an_error(settings):
    """Django's templates swallow AttributeError and TypeError: these errors are neither."""
    from django.template import Context, Engine

    settings.DUALCALL_STRICT = False
    question = await Question.objects.create(question_text="q")
    engine = Engine()
    for source in ("[{{ q.question_text }}]", "{% if q.pk %}pk{% endif %}", "{{ q }}"):
        awaitable = Question.objects.get(pk=question.pk)
        with pytest.raises(NotAwaitedError):
            engine.from_string(source).render(Context({"q": awaitable}))
        awaitable.close()
    rendered = engine.from_string("[{{ q.question_text }}]").render(
        Context({"q": await Question.objects.get(pk=question.pk)})
    )
    assert rendered == "[q]"


def make_questions(texts):
    """A sync helper that returns a generator: it is consumed elsewhere."""
    return (Question.objects.create(question_text=t) for t in texts)


async def test_generator_of_a_sync_helper_consumed_in_a_coroutine_stays_sync():
    # The generator expression belongs to the sync helper, not to the coroutine
    # that consumes it: its calls are sync code, and refused on the loop's thread.
    with pytest.raises(SynchronousOnlyOperation):
        list(make_questions(["a", "b"]))
    assert await Question.objects.count() == 0
    # A generator expression written in the coroutine is the coroutine's.
    questions = await asyncio.gather(*(Question.objects.create(question_text=t) for t in "ab"))
    assert sorted(q.question_text for q in questions) == ["a", "b"]


@pytest.mark.parametrize("value", ["False", 0, "off"])
def test_strict_setting_must_be_a_bool(value):
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from dualcall.awaitables import strict_mode, strict_setting

    message = (
        "DUALCALL_STRICT must be True, False or None (unset: on under DEBUG and in tests), "
        f"not {value!r}."
    )
    # strict_setting() is what DualcallConfig.ready() checks at startup.
    for check in (strict_setting, strict_mode):
        refused = pytest.raises(ImproperlyConfigured)
        with override_settings(DUALCALL_STRICT=value), refused as raised:
            check()
        assert str(raised.value) == message
