"""Small helpers shared by the transaction tests."""

import asyncio

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
