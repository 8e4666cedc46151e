"""dualcall.decorators: every combination of sync/async view and sync/async test function."""

import functools

import django
import pytest
from asgiref.sync import iscoroutinefunction, sync_to_async
from django.contrib.auth import login
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.auth.models import AnonymousUser, Permission, User
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.test import AsyncRequestFactory, RequestFactory

from dualcall.decorators import (
    TestResultError,
    login_required,
    permission_required,
    user_passes_test,
)
from tests.testapp.models import InSchoolUser

pytestmark = pytest.mark.django_db(transaction=True)

# The login URL is resolved with reverse() first, which needs a URLconf.
urlpatterns = []


@pytest.fixture(autouse=True)
def _urlconf(settings):
    settings.ROOT_URLCONF = __name__


def sync_view(request, *args, **kwargs):
    return HttpResponse(f"sync ok {args} {sorted(kwargs)}")


async def async_view(request, *args, **kwargs):
    return HttpResponse(f"async ok {args} {sorted(kwargs)}")


async def call(view, request, *args, **kwargs):
    """Call *view* the way Django's handler would: await async views, thread sync ones."""
    if iscoroutinefunction(view):
        return await view(request, *args, **kwargs)
    return await sync_to_async(view)(request, *args, **kwargs)


def make_request(path="/grades/?term=1", user=None):
    request = RequestFactory().get(path)
    request.user = AnonymousUser() if user is None else user
    return request


@pytest.fixture
def teacher(transactional_db):
    user = User.objects.create_user("teacher")
    InSchoolUser.objects.create(user=user, type="teacher")
    return user


@pytest.fixture
def pupil(transactional_db):
    user = User.objects.create_user("pupil")
    InSchoolUser.objects.create(user=user, type="pupil")
    return user


def sync_is_teacher(user):
    return InSchoolUser.objects.get(user=user).type == "teacher"


async def async_is_teacher(user):
    # A dual ORM call awaited inside the async test function.
    return (await InSchoolUser.objects.get(user=user)).type == "teacher"


def assert_redirect(response, expected):
    assert response.status_code == 302
    assert response["Location"] == expected


@pytest.mark.parametrize("view", [sync_view, async_view], ids=["sync-view", "async-view"])
@pytest.mark.parametrize(
    "test_func", [sync_is_teacher, async_is_teacher], ids=["sync-test", "async-test"]
)
async def test_user_passes_test_every_combination(view, test_func, teacher, pupil):
    decorated = user_passes_test(test_func)(view)
    assert iscoroutinefunction(decorated) == iscoroutinefunction(view)
    assert decorated.__name__ == view.__name__

    response = await call(decorated, make_request(user=teacher), 1, pk=2)
    assert response.status_code == 200
    assert response.content.decode().endswith("ok (1,) ['pk']")

    response = await call(decorated, make_request(user=pupil), 1, pk=2)
    assert_redirect(response, "/accounts/login/?next=/grades/%3Fterm%3D1")


@pytest.mark.parametrize("view", [sync_view, async_view], ids=["sync-view", "async-view"])
async def test_login_url_and_redirect_field_name(view, pupil, settings):
    decorated = user_passes_test(async_is_teacher, login_url="/signin/", redirect_field_name="to")(
        view
    )
    response = await call(decorated, make_request(user=pupil))
    assert_redirect(response, "/signin/?to=/grades/%3Fterm%3D1")
    # A login page on another host gets the full URL, as in Django.
    settings.LOGIN_URL = "https://login.example.com/"
    decorated = user_passes_test(async_is_teacher)(view)
    assert_redirect(
        await call(decorated, make_request(user=pupil)),
        "https://login.example.com/?next=http%3A//testserver/grades/%3Fterm%3D1",
    )
    decorated = user_passes_test(async_is_teacher, redirect_field_name=None)(view)
    assert_redirect(await call(decorated, make_request(user=pupil)), "https://login.example.com/")


def test_sync_view_in_plain_sync_code(teacher, pupil):
    # No event loop anywhere: async_to_sync runs the async test function.
    decorated = user_passes_test(async_is_teacher)(sync_view)
    assert decorated(make_request(user=teacher)).status_code == 200
    assert decorated(make_request(user=pupil)).status_code == 302
    decorated = user_passes_test(sync_is_teacher)(sync_view)
    assert decorated(make_request(user=teacher)).status_code == 200


async def test_async_callable_object_is_awaited(teacher):
    class IsTeacher:
        async def __call__(self, user):
            return await async_is_teacher(user)

    decorated = user_passes_test(IsTeacher())(async_view)
    assert (await decorated(make_request(user=teacher))).status_code == 200


@pytest.mark.skipif(
    not hasattr(User(), "a"), reason="the .a namespace (dualcall/namespace.py) is not installed yet"
)
async def test_seed_example_user_a_inschooluser(teacher, pupil):
    async def is_teacher(user):
        return (await user.a.inschooluser).type == "teacher"

    @user_passes_test(is_teacher)
    async def gradebook(request):
        return HttpResponse("grades")

    assert (await gradebook(make_request(user=teacher))).content == b"grades"
    assert (await gradebook(make_request(user=pupil))).status_code == 302


# -- login_required ---------------------------------------------------------


@pytest.mark.parametrize("view", [sync_view, async_view], ids=["sync-view", "async-view"])
async def test_login_required(view, teacher):
    for decorated in (login_required(view), login_required()(view)):
        assert iscoroutinefunction(decorated) == iscoroutinefunction(view)
        assert (await call(decorated, make_request(user=teacher))).status_code == 200
        assert_redirect(
            await call(decorated, make_request()), "/accounts/login/?next=/grades/%3Fterm%3D1"
        )
    decorated = login_required(view, redirect_field_name="back", login_url="/in/")
    assert_redirect(await call(decorated, make_request()), "/in/?back=/grades/%3Fterm%3D1")
    decorated = login_required(redirect_field_name="back", login_url="/in/")(view)
    assert_redirect(await call(decorated, make_request()), "/in/?back=/grades/%3Fterm%3D1")
    # Read by Django 5.1+'s LoginRequiredMiddleware.
    assert decorated.login_url == "/in/"
    assert decorated.redirect_field_name == "back"


# -- permission_required ----------------------------------------------------


@pytest.fixture
def grader(transactional_db):
    user = User.objects.create_user("grader")
    user.user_permissions.add(
        Permission.objects.get(codename="change_inschooluser"),
        Permission.objects.get(codename="view_inschooluser"),
    )
    return User.objects.get(pk=user.pk)  # fresh: no permission cache


@pytest.mark.parametrize("view", [sync_view, async_view], ids=["sync-view", "async-view"])
async def test_permission_required(view, grader, pupil):
    one = permission_required("testapp.change_inschooluser")(view)
    both = permission_required(["testapp.change_inschooluser", "testapp.view_inschooluser"])(view)
    missing = permission_required(["testapp.change_inschooluser", "testapp.delete_inschooluser"])(
        view
    )
    assert iscoroutinefunction(one) == iscoroutinefunction(view)
    assert (await call(one, make_request(user=grader))).status_code == 200
    assert (await call(both, make_request(user=grader))).status_code == 200
    assert_redirect(
        await call(missing, make_request(user=grader)), "/accounts/login/?next=/grades/%3Fterm%3D1"
    )
    response = await call(one, make_request(user=pupil))
    assert_redirect(response, "/accounts/login/?next=/grades/%3Fterm%3D1")
    custom = permission_required("testapp.change_inschooluser", login_url="/in/")(view)
    assert_redirect(await call(custom, make_request()), "/in/?next=/grades/%3Fterm%3D1")
    raising = permission_required("testapp.change_inschooluser", raise_exception=True)(view)
    assert (await call(raising, make_request(user=grader))).status_code == 200
    with pytest.raises(PermissionDenied):
        await call(raising, make_request(user=pupil))
    with pytest.raises(PermissionDenied):
        await call(raising, make_request())


# -- the real request.user: AuthenticationMiddleware over a session ---------


async def logged_in_request(user, factory):
    request = factory.get("/grades/")
    request.session = SessionStore()
    await sync_to_async(login)(request, user, backend="django.contrib.auth.backends.ModelBackend")
    vars(request).pop("user", None)  # login() may set it: let the middleware install its own
    AuthenticationMiddleware(lambda request: None).process_request(request)
    return request


@pytest.mark.parametrize("view", [sync_view, async_view], ids=["sync-view", "async-view"])
@pytest.mark.parametrize(
    "test_func", [sync_is_teacher, async_is_teacher], ids=["sync-test", "async-test"]
)
async def test_with_authentication_middleware(view, test_func, teacher, pupil):
    # Django 5.x: the async view reads `await request.auser()`; Django 4.2 has
    # no auser and the lazy request.user is loaded off the event loop.  The
    # sync view with an async test loads request.user in its own thread first.
    factory = AsyncRequestFactory() if iscoroutinefunction(view) else RequestFactory()
    decorated = user_passes_test(test_func)(view)
    request = await logged_in_request(teacher, factory)
    assert hasattr(request, "auser") == (django.VERSION >= (5, 0))
    assert (await call(decorated, request)).status_code == 200
    request = await logged_in_request(pupil, factory)
    assert (await call(decorated, request)).status_code == 302
    anonymous = factory.get("/grades/")
    anonymous.session = SessionStore()
    AuthenticationMiddleware(lambda request: None).process_request(anonymous)
    assert (await call(login_required(view), anonymous)).status_code == 302


async def test_async_test_function_gets_the_user_not_a_lazy_proxy(teacher):
    seen = []

    async def record(user):
        seen.append(type(user))
        return True

    request = await logged_in_request(teacher, AsyncRequestFactory())
    await user_passes_test(record)(async_view)(request)
    request = await logged_in_request(teacher, RequestFactory())
    await sync_to_async(user_passes_test(record)(sync_view))(request)
    assert seen == [User, User]


# -- fail closed: only a bool decides ----------------------------------------------


def teachers(user):
    return InSchoolUser.objects.filter(user_id=user.pk, type="teacher")


async def forgets_await(user):
    # The classic mistake: a dual call not awaited returns an awaitable.
    return InSchoolUser.objects.filter(user_id=user.pk, type="teacher").exists()


def sync_decorator(func):
    @functools.wraps(func)
    def wrapper(user):
        return func(user)  # a coroutine, when func is async

    return wrapper


@sync_decorator
async def wrapped_async(user):
    return await InSchoolUser.objects.filter(user_id=user.pk, type="teacher").aexists()


def returns_queryset(user):
    return teachers(user)


def forgets_return(user):
    teachers(user).exists()


@pytest.fixture
def inactive_teacher(transactional_db):
    user = User.objects.create_user("inactive", is_active=False)
    InSchoolUser.objects.create(user=user, type="teacher")
    return user


@pytest.mark.parametrize("view", [sync_view, async_view], ids=["sync-view", "async-view"])
@pytest.mark.parametrize("test_func", [forgets_await, wrapped_async], ids=["no-await", "wrapped"])
async def test_awaitable_results_are_awaited(view, test_func, teacher, pupil):
    decorated = user_passes_test(test_func)(view)
    assert (await call(decorated, make_request(user=teacher))).status_code == 200
    assert (await call(decorated, make_request(user=pupil))).status_code == 302
    assert (await call(decorated, make_request())).status_code == 302


def result_error(name, what):
    return (
        f"user_passes_test: {name}(user) returned {what}, not a bool, so access is denied. "
        'Return True or False (for example "return await qs.exists()"), on every path.'
    )


@pytest.mark.parametrize("view", [sync_view, async_view], ids=["sync-view", "async-view"])
@pytest.mark.parametrize(
    ("test_func", "what"),
    [(returns_queryset, "a QuerySet"), (forgets_return, "None")],
    ids=["queryset", "none"],
)
async def test_non_bool_result_denies_access(view, test_func, what, teacher, settings, caplog):
    # Without strict mode: denied (even to the teacher) and logged.
    settings.DUALCALL_STRICT = False
    decorated = user_passes_test(test_func)(view)
    for user in (teacher, None):
        response = await call(decorated, make_request(user=user))
        assert_redirect(response, "/accounts/login/?next=/grades/%3Fterm%3D1")
    assert [r.getMessage() for r in caplog.records if r.name == "dualcall"] == [
        result_error(test_func.__qualname__, what)
    ] * 2
    # Strict mode (on in tests and under DEBUG): an error, never a 200.
    settings.DUALCALL_STRICT = None
    with pytest.raises(TestResultError) as raised:
        await call(decorated, make_request(user=teacher))
    assert str(raised.value) == result_error(test_func.__qualname__, what)


@pytest.mark.parametrize("view", [sync_view, async_view], ids=["sync-view", "async-view"])
async def test_inactive_and_anonymous_users(view, inactive_teacher, grader):
    permission = await Permission.objects.get(codename="change_inschooluser")
    await inactive_teacher.user_permissions.add(permission)
    needs_perm = permission_required("testapp.change_inschooluser", raise_exception=True)(view)
    with pytest.raises(PermissionDenied):
        await call(needs_perm, make_request(user=inactive_teacher))
    with pytest.raises(PermissionDenied):
        await call(needs_perm, make_request())
    assert (await call(needs_perm, make_request(user=grader))).status_code == 200
    # login_required is Django's: an inactive user is authenticated.
    response = await call(login_required(view), make_request(user=inactive_teacher))
    assert response.status_code == 200
    assert (await call(login_required(view), make_request())).status_code == 302


async def test_readme_is_teacher_example_is_safe(teacher, pupil):
    """The README's example: anonymous users and users without a profile are denied, no 500."""

    async def is_teacher(user):
        if not user.is_authenticated:
            return False
        try:
            return (await user.a.inschooluser).type == "teacher"
        except InSchoolUser.DoesNotExist:
            return False

    nobody = await User.objects.acreate_user("nobody") if hasattr(User.objects, "acreate_user") \
        else await sync_to_async(User.objects.create_user)("nobody")
    decorated = user_passes_test(is_teacher)(async_view)
    assert (await decorated(make_request(user=teacher))).status_code == 200
    for user in (pupil, nobody, None):
        assert (await decorated(make_request(user=user))).status_code == 302
