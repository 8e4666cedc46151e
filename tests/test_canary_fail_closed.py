"""Canaries: the Django internals the fail-closed machinery relies on.

Each test pins one fact about Django.  When one fails after a Django upgrade,
the comment says what dualcall must change.
"""

import inspect

from django.core.handlers.base import BaseHandler
from django.db.models import QuerySet
from django.db.models.query import RawQuerySet
from django.test.utils import _TestState, setup_test_environment

from dualcall.guards import _special_codes


def test_make_view_atomic_receives_and_returns_the_view():
    # dualcall.awaitables.scoped_views wraps BaseHandler.make_view_atomic: both
    # request paths call it with the resolved view and call what it returns.
    # If this breaks, find where Django now wraps the view (the handler's
    # _get_response/_get_response_async) and wrap there.
    original = inspect.unwrap(BaseHandler.make_view_atomic)
    assert list(inspect.signature(original).parameters) == ["self", "view"]
    for name in ("_get_response", "_get_response_async"):
        source = inspect.getsource(getattr(BaseHandler, name))
        assert "wrapped_callback = self.make_view_atomic(callback)" in source


def test_test_environment_is_marked_by_test_state_saved_data():
    # dualcall.awaitables._in_test_environment (strict mode's default in tests)
    # reads _TestState.saved_data, which setup_test_environment() sets.  If
    # this breaks, find the new marker of setup_test_environment().
    assert hasattr(_TestState, "saved_data")  # pytest-django set it up
    source = inspect.getsource(setup_test_environment)
    assert "_TestState.saved_data = saved_data" in source


def test_lazy_request_user_loads_through_middleware_get_user():
    # dualcall.guards.evaluation_message recognizes the lazy request.user by
    # the code of django.contrib.auth.middleware.get_user.  If this breaks,
    # find the function AuthenticationMiddleware's SimpleLazyObject calls.
    from django.contrib.auth import middleware

    source = inspect.getsource(middleware.AuthenticationMiddleware.process_request)
    assert "SimpleLazyObject(lambda: get_user(request))" in source
    lazy_user, getitem = _special_codes()
    assert lazy_user is middleware.get_user.__code__
    assert getitem is inspect.unwrap(vars(QuerySet)["__getitem__"]).__code__


def test_indexing_evaluates_through_fetch_all():
    # Indexing (qs[0]) evaluates in QuerySet.__getitem__ through _fetch_all,
    # where the guard sees __getitem__ among its callers.
    source = inspect.getsource(inspect.unwrap(vars(QuerySet)["__getitem__"]))
    assert "qs._fetch_all()" in source


def test_raw_queryset_is_not_a_queryset_and_has_no_await_of_its_own():
    # dualcall adds RawQuerySet.__await__ (a list, as for QuerySet); if
    # Django adds its own, drop ours.
    assert not issubclass(RawQuerySet, QuerySet)
    assert vars(RawQuerySet)["__await__"].__module__ == "dualcall.descriptors"
