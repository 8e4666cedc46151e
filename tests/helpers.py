"""Small helpers shared by the tests: the transaction tests' and the native path's marks."""

import asyncio

import pytest
from django.db import connection

import dualcall
from tests.testapp.models import Question


def titles():
    """The question texts in the database, sorted (sync code)."""
    return sorted(Question.objects.values_list("question_text", flat=True))


async def atitles():
    """The question texts in the database, sorted (awaited)."""
    return sorted(await Question.objects.values_list("question_text", flat=True))


class Boom(Exception):
    """The exception a test block raises to roll back."""


async def write_in_block(text, fail=False, delay=0.01):
    """``async with dualcall.atomic()``: write *text*, wait *delay*, raise Boom if *fail*."""
    async with dualcall.atomic():
        await Question.objects.create(question_text=text)
        await asyncio.sleep(delay)
        if fail:
            raise Boom


#: The native path's tests need PostgreSQL.
POSTGRES_ONLY = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the native path runs on PostgreSQL only (DUALCALL_TEST_DB=postgres)",
)
#: A native-path test module: PostgreSQL, and committed data (the native path
#: never sees a test's transaction).
NATIVE_TESTS = [POSTGRES_ONLY, pytest.mark.django_db(transaction=True)]
