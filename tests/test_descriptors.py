"""The dual-call descriptor: binding, the two lookups, __acall__, warnings, flags."""

import asyncio
import gc
import inspect
import types

import pytest
from django.db.models import Model, QuerySet

from dualcall import BoundDualMethod, DualMethod, dualmethod
from dualcall.descriptors import SyncBoundMethod
from tests.testapp.models import Post, PostQuerySet, Question


class Counter:
    def __init__(self):
        self.value = 0

    @dualmethod
    def bump(self, by=1):
        self.value += by
        return self.value

    @dualmethod
    @classmethod
    def kind(cls):
        return cls.__name__

    @dualmethod
    @staticmethod
    def twice(x):
        return 2 * x


def test_sync_lookup_returns_the_original_bound_method():
    # Without a running loop, looking a dual method up returns Django's own
    # function bound to the instance, called in C (no frame of dualcall's),
    # reading like Django's bound method, plus __acall__.
    method = Question.objects.get
    assert isinstance(method, SyncBoundMethod)
    proxy_class = next(c for c in type(Question.objects).__mro__ if "get" in vars(c))
    assert method.__func__ is vars(proxy_class)["get"].__wrapped__
    assert method.__self__ is Question.objects
    assert method == types.MethodType(method.__func__, Question.objects)
    assert method.__name__ == "get"
    assert method.__doc__ == QuerySet.get.__doc__
    assert str(inspect.signature(method)) == "(*args, **kwargs)"
    queryset = QuerySet()
    assert queryset.get.__func__ is QuerySet.__dict__["get"].__wrapped__
    assert str(inspect.signature(queryset.get)) == "(*args, **kwargs)"
    question = Question(pk=1)
    assert question.save.__func__ is Model.__dict__["save"].__wrapped__
    assert question.save.alters_data is True
    assert hash(question.save) == hash(question.save)
    assert repr(question.save).startswith("<bound method Model.save of <Question: ")


def test_class_attribute_is_a_dual_method():
    assert isinstance(QuerySet.__dict__["get"], DualMethod)
    assert isinstance(Model.__dict__["save"], DualMethod)
    # The user's own overrides are dual too.
    assert isinstance(Post.__dict__["save"], DualMethod)
    assert isinstance(PostQuerySet.__dict__["create"], DualMethod)


async def test_loop_lookup_returns_bound_dual_method():
    assert isinstance(Question.objects.get, BoundDualMethod)
    assert isinstance(Question(pk=1).save, BoundDualMethod)


def test_flags_and_metadata_read_through():
    assert QuerySet.__dict__["delete"].alters_data is True
    assert QuerySet.__dict__["delete"].queryset_only is True
    assert Model.__dict__["save"].alters_data is True
    assert Model.__dict__["save"].__name__ == "save"
    assert QuerySet.__dict__["get"].__doc__ == QuerySet.__dict__["get"].__wrapped__.__doc__
    assert inspect.signature(QuerySet.__dict__["update_or_create"]) == inspect.signature(
        QuerySet.__dict__["update_or_create"].__wrapped__
    )
    # inspect.isfunction() still sees a function: from_queryset() copies it.
    assert inspect.isfunction(QuerySet.__dict__["get"])


def test_dualmethod_sync_binding_kinds():
    counter = Counter()
    assert counter.bump() == 1
    assert counter.bump(by=2) == 3
    assert Counter.bump(counter) == 4
    assert counter.kind() == "Counter"
    assert Counter.kind() == "Counter"
    assert Counter.twice(3) == 6
    assert counter.twice(4) == 8


async def test_dualmethod_async_binding_kinds():
    counter = Counter()
    assert await counter.bump() == 1
    assert await Counter.bump(counter, by=2) == 3
    assert await counter.kind() == "Counter"
    assert await Counter.kind() == "Counter"
    assert await Counter.twice(3) == 6


def test_dualmethod_is_idempotent():
    once = dualmethod(lambda: 1)
    assert dualmethod(once) is once


def _bump_from_sync_helper(counter):
    return counter.bump.__acall__(by=5)


async def test_acall_returns_awaitable_from_a_sync_frame():
    counter = Counter()
    awaitable = _bump_from_sync_helper(counter)
    assert asyncio.iscoroutine(awaitable)
    assert counter.value == 0
    assert await awaitable == 5


async def test_acall_on_unbound_function():
    @dualmethod
    def add(a, b):
        return a + b

    awaitable = add(1, 2)
    assert asyncio.iscoroutine(awaitable)
    assert await awaitable == 3
    assert await add.__acall__(1, b=2) == 3


@pytest.mark.django_db(transaction=True)
async def test_never_awaited_warning_names_the_method(settings):
    # (tests/test_safety.py has the whole fail-closed story.)
    settings.DUALCALL_STRICT = False
    with pytest.warns(RuntimeWarning, match=r"coroutine 'Question\.objects\.count' was never"):
        Question.objects.count()
        gc.collect()
    with pytest.warns(RuntimeWarning, match=r"coroutine 'Post\.save' was never awaited"):
        Post(title="never saved").save()
        gc.collect()
    with pytest.warns(RuntimeWarning, match=r"coroutine 'Question QuerySet\.update' was never"):
        Question.objects.all().update(question_text="x")
        gc.collect()
    # Nothing of the above ran.
    assert await Post.objects.count() == 0


async def test_exceptions_propagate_through_the_awaitable():
    @dualmethod
    def fail():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await fail()
    with pytest.raises(ValueError, match="boom"):
        fail.__wrapped__()
