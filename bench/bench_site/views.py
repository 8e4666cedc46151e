"""One realistic view in three forms, and the URLs.

Each does a ``get``, a ``count`` and a list of 10 rows with
``select_related``, and returns the same JSON:

* ``/native/<pk>/``: dualcall's dual names, awaited (native with
  ``DUALCALL_NATIVE``);
* ``/amethods/<pk>/``: Django's a-methods (``aget``, ``acount``, ``async for``);
* ``/sync/<pk>/``: the same view written sync (Django runs it in a thread).
"""

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import path
from dualcall_bench.models import Choice, Question


def _response(question: Any, count: int, choices: list[Any]) -> JsonResponse:
    return JsonResponse({
        "question": question.question_text,
        "choices": count,
        "first": [[c.pk, c.choice_text, c.question.question_text] for c in choices],
    })


def _first_ten() -> Any:
    return Choice.objects.select_related("question").order_by("pk")[:10]


async def native(request: HttpRequest, pk: int) -> JsonResponse:
    question = await Question.objects.get(pk=pk)
    count = await Choice.objects.count()
    choices = await _first_ten()
    return _response(question, count, choices)


async def amethods(request: HttpRequest, pk: int) -> JsonResponse:
    question = await Question.objects.aget(pk=pk)
    count = await Choice.objects.acount()
    choices = [choice async for choice in _first_ten()]
    return _response(question, count, choices)


def sync(request: HttpRequest, pk: int) -> JsonResponse:
    question = Question.objects.get(pk=pk)
    count = Choice.objects.count()
    choices = list(_first_ten())
    return _response(question, count, choices)


async def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


urlpatterns = [
    path("native/<int:pk>/", native),
    path("amethods/<int:pk>/", amethods),
    path("sync/<int:pk>/", sync),
    path("health/", health),
]
