"""dualcall.atomic in the test setups users have: Django's TestCase and pytest-django.

Each group writes in a first test and checks in a second one that nothing
leaked: the order of the tests in each group matters (unittest runs a class's
methods by name, pytest runs functions in file order).
"""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.http import JsonResponse
from django.test import TestCase, TransactionTestCase, override_settings
from django.urls import path

import dualcall
from tests.helpers import Boom, write_in_block
from tests.helpers import atitles as atexts
from tests.helpers import titles as texts
from tests.testapp.models import Question


async def create_view(request):
    """A view that writes in a dualcall.atomic block and reports what it saw."""
    async with dualcall.atomic():
        await Question.objects.create(question_text=request.GET["text"])
        texts = await Question.objects.order_by("question_text").values_list(
            "question_text", flat=True
        )
    return JsonResponse({"texts": texts})


urlpatterns = [path("create/", create_view)]




# -- Django's TestCase, async test methods -------------------------------------


@override_settings(ROOT_URLCONF=__name__)
class AsyncTestCaseTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        Question.objects.create(question_text="fixture")

    async def test_1_block_joins_the_test_transaction(self):
        main_thread = threading.main_thread()
        async with dualcall.atomic():
            # The fixture is visible: the block is a savepoint of the test's
            # transaction, on the test's thread (no thread of its own).
            assert await atexts() == ["fixture"]
            assert await sync_to_async(threading.current_thread)() is main_thread
            await Question.objects.create(question_text="block")
            with self.assertRaises(Boom):
                async with dualcall.atomic():
                    await Question.objects.create(question_text="rolled back")
                    raise Boom
        # Directly in the test's transaction, a durable block is allowed, as
        # in Django's TestCase.
        async with dualcall.atomic(durable=True):
            await Question.objects.create(question_text="durable")
        assert await atexts() == ["block", "durable", "fixture"]
        # Django's stacks: only the test's own atomic blocks are left.
        assert await sync_to_async(lambda: len(connection.savepoint_ids))() == 1

    async def test_2_async_client_view_joins_the_test_transaction(self):
        response = await self.async_client.get("/create/", {"text": "from the view"})
        assert response.status_code == 200
        assert response.json() == {"texts": ["fixture", "from the view"]}
        assert await atexts() == ["fixture", "from the view"]

    async def test_3_cancelled_block_in_a_testcase_leaves_the_test_transaction_usable(self):
        async def slow_block():
            async with dualcall.atomic():
                await Question.objects.create(question_text="cancelled")
                await asyncio.sleep(1)

        with self.assertRaises(TimeoutError):
            await asyncio.wait_for(slow_block(), timeout=0.05)
        assert await atexts() == ["fixture"]

    async def test_4_nothing_leaked_from_the_previous_tests(self):
        assert await atexts() == ["fixture"]

    def test_5_nothing_leaked_sync(self):
        assert texts() == ["fixture"]


# -- Django's TransactionTestCase ------------------------------------------------


class AsyncTransactionTestCaseTests(TransactionTestCase):
    async def test_1_block_is_a_real_transaction(self):
        with self.assertRaises(Boom):
            async with dualcall.atomic():
                await Question.objects.create(question_text="rolled back")
                raise Boom
        async with dualcall.atomic():
            await Question.objects.create(question_text="committed")
        assert await atexts() == ["committed"]

    async def test_2_flushed_between_tests(self):
        assert await atexts() == []


# -- pytest-django + pytest-asyncio, with dualcall.testing (tests/conftest.py) ---


@pytest.fixture
def sync_fixture(db):
    return Question.objects.create(question_text="sync fixture")


@pytest.fixture
async def async_fixture(db):
    return await Question.objects.create(question_text="async fixture")


@pytest.mark.django_db
async def test_pytest_1_block_joins_the_test_transaction(sync_fixture, async_fixture):
    async with dualcall.atomic():
        assert await atexts() == ["async fixture", "sync fixture"]
        await Question.objects.create(question_text="block")
        transaction.on_commit(lambda: pytest.fail("the test transaction never commits"))
    await Question.objects.create(question_text="plain")
    assert await atexts() == ["async fixture", "block", "plain", "sync fixture"]


@pytest.mark.django_db
async def test_pytest_2_nothing_leaked():
    assert await atexts() == []


@pytest.mark.django_db
@pytest.mark.dualcall_separate_connection
async def test_pytest_without_the_shared_connection_the_block_refuses_to_start():
    message = (
        "dualcall.atomic: the connection 'default' of the event loop's thread is inside an "
        "atomic block (a test transaction, such as pytest-django's django_db without "
        "transaction=True under pytest-asyncio), but async code runs its queries on another "
        "thread and connection: the block would not see that transaction's data and its "
        "writes would outlive it. Enable dualcall's pytest plugin ('-p dualcall.testing', or "
        "pytest_plugins = ['dualcall.testing'] in conftest.py) so that async code uses the "
        "test's connection, or use django_db(transaction=True)."
    )
    with pytest.raises(transaction.TransactionManagementError) as raised:
        async with dualcall.atomic():
            pytest.fail("the block must not start")
    assert str(raised.value) == message


@pytest.mark.django_db(transaction=True)
async def test_pytest_transactional_1_block_commits():
    async with dualcall.atomic():
        await Question.objects.create(question_text="committed")
    assert await atexts() == ["committed"]


@pytest.mark.django_db(transaction=True)
async def test_pytest_transactional_2_flushed_between_tests():
    assert await atexts() == []


class ConcurrentBlocksInTestCaseTests(TestCase):
    async def test_1_sibling_outermost_blocks_join_one_after_the_other(self):
        results = await asyncio.gather(
            write_in_block("failing", fail=True), write_in_block("succeeding"),
            return_exceptions=True,
        )
        assert [type(r) for r in results] == [Boom, type(None)]
        assert await atexts() == ["succeeding"]

    async def test_2_nothing_leaked(self):
        assert await atexts() == []
