"""The pattern the README documents for pyright, and the one thing it cannot accept."""

from typing import Any, reveal_type

from django.shortcuts import aget_object_or_404

from dualcall.management import AsyncCommand
from dualcall.shortcuts import get_object_or_404

from .models import Choice, Question


async def view(choice: Choice) -> None:
    question = await Question.objects.aget(pk=1)
    reveal_type(question)
    reveal_type(await Question.objects.acount())
    await question.asave()
    reveal_type([q async for q in Question.objects.filter(pk=1)])
    async for q in Question.objects.all().aiterator():
        reveal_type(q)
    reveal_type(await choice.a.question)
    reveal_type(await aget_object_or_404(Question, pk=1))


def sync_view() -> None:
    reveal_type(get_object_or_404(Question, pk=1))
    reveal_type(Question.objects.get(pk=1))


class Command(AsyncCommand):
    async def handle(self, *args: Any, **options: Any) -> None:
        await Question.objects.filter(pk=1).adelete()


async def dual_names() -> None:
    # No plugin: a dual name awaited is "Question" is not awaitable.
    await Question.objects.get(pk=1)
