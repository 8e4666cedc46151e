"""``user_passes_test``, ``login_required`` and ``permission_required`` for any view.

Django's signatures and behaviour (redirect to the login page with the
``next`` parameter, ``login_url``, ``redirect_field_name``,
``raise_exception`` and ``PermissionDenied``), with every combination of view
and test function working on every supported Django version:

===========  ==============  ===================================================
view         test function   how the test runs
===========  ==============  ===================================================
sync         sync            called directly with ``request.user``
sync         async           ``async_to_sync(test)(user)``; the lazy
                             ``request.user`` is resolved first, in the view's
                             thread, so the test gets a loaded user
async        sync            ``await sync_to_async(test)(user)``
async        async           ``await test(user)``
===========  ==============  ===================================================

**Fail closed.**  The test's result decides access only when it is a
``bool``.  A result that is awaitable (a coroutine from an ``async def`` test
wrapped by a sync decorator, a dual call that was not awaited inside the test)
is awaited first.  Anything else that is not a ``bool`` (a ``QuerySet``, a
model instance, ``None`` from a forgotten ``return``) denies access: an ERROR
record on the ``dualcall`` logger names the test and what it returned, and in
strict mode (see :func:`dualcall.awaitables.strict_mode`) :class:`TestResultError`
is raised instead, so the mistake is a 500 in development, never a 200.

In an async view the user is ``await request.auser()`` where the request has
it (Django 5.0+ with ``AuthenticationMiddleware``); elsewhere (Django 4.2, or
a request whose ``user`` was set by hand) the lazy ``request.user`` is resolved
off the event loop.  Either way the test gets the user object itself, not a
lazy proxy, so ``await user.a.profile`` works in an async test function::

    async def is_teacher(user):
        return (await user.a.inschooluser).type == "teacher"

    @user_passes_test(is_teacher)
    async def gradebook(request): ...
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, TypeVar, cast, overload
from urllib.parse import urlsplit

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.exceptions import PermissionDenied
from django.shortcuts import resolve_url
from django.utils.functional import LazyObject, empty

from .awaitables import strict_mode

__all__ = ["TestResultError", "login_required", "permission_required", "user_passes_test"]

V = TypeVar("V", bound=Callable[..., Any])

logger = logging.getLogger("dualcall")


class TestResultError(TypeError):
    """A ``user_passes_test`` test function returned something other than a ``bool``.

    Raised in strict mode; otherwise access is denied and the mistake logged.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name


def _verdict(result: Any, test_func: Callable[..., Any]) -> bool:
    """Return whether *result* (already awaited) grants access: only ``True`` does."""
    if type(result) is bool:  # not isinstance(): __class__ can be spoofed
        return result is True
    name = getattr(test_func, "__qualname__", None) or repr(test_func)
    message = (
        f"user_passes_test: {name}(user) returned {_describe(result)}, not a bool, so access "
        'is denied. Return True or False (for example "return await qs.exists()"), on '
        "every path."
    )
    if strict_mode():
        raise TestResultError(message)
    logger.error("%s", message)
    return False


def _describe(value: Any) -> str:
    """Say what *value* is without calling its ``repr()`` (which may query)."""
    if value is None or isinstance(value, (int, float, str)):
        return repr(value)[:80]
    return f"a {type(value).__qualname__}"


def _pending(result: Any) -> bool:
    """Whether *result* is a call still to be awaited (not a queryset: that is no verdict)."""
    from django.db.models.query import QuerySet, RawQuerySet

    return inspect.isawaitable(result) and not isinstance(result, (QuerySet, RawQuerySet))


async def _await_all(result: Any) -> Any:
    """Await *result* until it is not a pending call any more (a coroutine may return one)."""
    while _pending(result):
        result = await result
    return result


def _is_async(func: Any) -> bool:
    """Return whether calling *func* returns a coroutine, as far as can be told.

    Covers ``async def`` functions and methods, ``functools.partial`` of them,
    callables marked with ``asgiref.sync.markcoroutinefunction`` and objects
    whose ``__call__`` is ``async def``.
    """
    from asgiref.sync import iscoroutinefunction

    return bool(
        iscoroutinefunction(func)
        or inspect.iscoroutinefunction(getattr(func, "__call__", None))  # noqa: B004
    )


def _resolve_user(request: Any) -> Any:
    """Return ``request.user`` loaded: the user object behind the lazy proxy.

    Runs synchronously (the session and the user are loaded from the
    database on first access).
    """
    user = request.user
    if isinstance(user, LazyObject):
        if user._wrapped is empty:
            user._setup()
        return user._wrapped
    return user


async def _aresolve_user(request: Any) -> Any:
    """Return the request's user from async code, loading it off the event loop."""
    auser = getattr(request, "auser", None)
    if auser is not None:
        return await auser()
    return await sync_to_async(_resolve_user)(request)


async def _call_and_await(test_func: Callable[[Any], Any], user: Any) -> Any:
    return await _await_all(test_func(user))


def _redirect_to_login(request: Any, login_url: str | None, redirect_field_name: str | None) -> Any:
    """Redirect to the login page, as Django's ``user_passes_test`` does."""
    from django.contrib.auth.views import redirect_to_login

    path = request.build_absolute_uri()
    resolved_login_url = resolve_url(login_url or settings.LOGIN_URL)
    # If the login URL has the same scheme and host, use the path as "next".
    login_scheme, login_netloc = urlsplit(resolved_login_url)[:2]
    current_scheme, current_netloc = urlsplit(path)[:2]
    if (not login_scheme or login_scheme == current_scheme) and (
        not login_netloc or login_netloc == current_netloc
    ):
        path = request.get_full_path()
    return redirect_to_login(path, resolved_login_url, redirect_field_name)


def user_passes_test(
    test_func: Callable[[Any], Any],
    login_url: str | None = None,
    redirect_field_name: str | None = REDIRECT_FIELD_NAME,
) -> Callable[[V], V]:
    """Decorate a view so that only users passing *test_func* reach it.

    Others are redirected to the login page (``login_url``, default
    ``settings.LOGIN_URL``) with the current path in ``redirect_field_name``.
    The view and *test_func* may each be sync or ``async def``.
    """
    test_is_async = _is_async(test_func)

    def decorator(view_func: V) -> V:
        wrapper: Any
        if _is_async(view_func):

            async def async_wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
                user = await _aresolve_user(request)
                if test_is_async:
                    result = test_func(user)
                else:
                    result = await sync_to_async(test_func)(user)
                if _verdict(await _await_all(result), test_func):
                    return await view_func(request, *args, **kwargs)
                return _redirect_to_login(request, login_url, redirect_field_name)

            wrapper = async_wrapper
        else:

            def sync_wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
                if test_is_async:
                    result = async_to_sync(_call_and_await)(test_func, _resolve_user(request))
                else:
                    result = test_func(request.user)
                    if _pending(result):
                        result = async_to_sync(_await_all)(result)
                if _verdict(result, test_func):
                    return view_func(request, *args, **kwargs)
                return _redirect_to_login(request, login_url, redirect_field_name)

            wrapper = sync_wrapper

        # Read by Django 5.1+'s LoginRequiredMiddleware.
        wrapper.login_url = login_url
        wrapper.redirect_field_name = redirect_field_name
        return cast(V, wraps(view_func)(wrapper))

    return decorator


@overload
def login_required(
    function: V, redirect_field_name: str | None = ..., login_url: str | None = ...
) -> V: ...
@overload
def login_required(
    function: None = None, redirect_field_name: str | None = ..., login_url: str | None = ...
) -> Callable[[V], V]: ...
def login_required(
    function: V | None = None,
    redirect_field_name: str | None = REDIRECT_FIELD_NAME,
    login_url: str | None = None,
) -> Any:
    """Decorate a view so that only authenticated users reach it; others go to login.

    Usable bare (``@login_required``) or with arguments
    (``@login_required(login_url="/login/")``), on sync and async views.
    """
    actual_decorator = user_passes_test(
        lambda user: user.is_authenticated,
        login_url=login_url,
        redirect_field_name=redirect_field_name,
    )
    if function:
        return actual_decorator(function)
    return actual_decorator


def permission_required(
    perm: str | Iterable[str],
    login_url: str | None = None,
    raise_exception: bool = False,
) -> Callable[[V], V]:
    """Decorate a view so that only users with *perm* (one or several) reach it.

    Others are redirected to the login page, or get ``PermissionDenied`` (a
    403) when *raise_exception* is true.  On an async view the permissions are
    checked with ``user.ahas_perms()`` where it exists (Django 5.0+), else with
    ``has_perms()`` off the event loop.
    """
    perms: tuple[str, ...] = (perm,) if isinstance(perm, str) else tuple(perm)

    def decorator(view_func: V) -> V:
        check_perms: Callable[[Any], Any]
        if _is_async(view_func):

            async def acheck_perms(user: Any) -> bool:
                ahas_perms = getattr(user, "ahas_perms", None)
                if ahas_perms is not None:
                    allowed = await ahas_perms(perms)
                else:
                    allowed = await sync_to_async(user.has_perms)(perms)
                if allowed:
                    return True
                if raise_exception:
                    raise PermissionDenied
                return False

            check_perms = acheck_perms
        else:

            def sync_check_perms(user: Any) -> bool:
                if user.has_perms(perms):
                    return True
                if raise_exception:
                    raise PermissionDenied
                return False

            check_perms = sync_check_perms
        return user_passes_test(check_perms, login_url=login_url)(view_func)

    return decorator
