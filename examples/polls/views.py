"""Django's tutorial polls, with async views and dualcall's plain method names."""

from django.db.models import Count, F, Sum
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse

import dualcall
from dualcall.shortcuts import get_object_or_404

from .models import Choice, Question


async def index(request):
    # Awaiting a sliced QuerySet evaluates it: a list.
    latest = await Question.objects.order_by("-pub_date")[:10]
    return render(request, "polls/index.html", {"latest_question_list": latest})


async def detail(request, question_id):
    # get_object_or_404 is dual; the choices are prefetched, so the template
    # reads question.choice_set.all without a query.
    question = await get_object_or_404(
        Question.objects.prefetch_related("choice_set"), pk=question_id
    )
    return render(request, "polls/detail.html", {"question": question})


async def vote(request, question_id):
    if request.method != "POST":
        return HttpResponseRedirect(reverse("polls:detail", args=(question_id,)))
    try:
        choice = await Choice.objects.get(pk=request.POST["choice"], question_id=question_id)
    except (KeyError, ValueError, Choice.DoesNotExist):
        question = await get_object_or_404(
            Question.objects.prefetch_related("choice_set"), pk=question_id
        )
        context = {"question": question, "error_message": "You didn't select a choice."}
        return render(request, "polls/detail.html", context, status=400)
    # A real transaction in async code; F() makes the increment race-free.
    async with dualcall.atomic():
        await Choice.objects.filter(pk=choice.pk).update(votes=F("votes") + 1)
    question = await choice.a.question  # the awaited lazy relation
    return HttpResponseRedirect(reverse("polls:results", args=(question.pk,)))


async def results(request, question_id):
    try:
        question = await Question.objects.get(pk=question_id)
    except Question.DoesNotExist:
        raise Http404("No such question.") from None
    choices = await question.choice_set.all()  # a list of Choice
    return render(request, "polls/results.html", {"question": question, "choices": choices})


async def api_questions(request):
    rows = await Question.objects.annotate(
        choices=Count("choice"), votes=Sum("choice__votes")
    ).order_by("-pub_date").values("id", "question_text", "choices", "votes")
    return JsonResponse({"questions": [{**row, "votes": row["votes"] or 0} for row in rows]})


async def api_choice(request, choice_id):
    try:
        choice = await Choice.objects.get(pk=choice_id)
    except Choice.DoesNotExist:
        return JsonResponse({"error": f"No choice {choice_id}."}, status=404)
    question = await choice.a.question
    return JsonResponse(
        {
            "id": choice.pk,
            "choice_text": choice.choice_text,
            "votes": choice.votes,
            "question": question.question_text,
            # After the await the relation is cached: plain access, no query.
            "question_id_via_cache": choice.question.pk,
        }
    )


async def broken(request, choice_id):
    """A deliberately wrong view: a lazy relation read synchronously in async code.

    The error is caught to show its message as a plain-text 500 response; left
    uncaught it would be Django's ordinary 500.
    """
    choice = await Choice.objects.get(pk=choice_id)
    try:
        text = choice.question.question_text  # wrong: not fetched
    except dualcall.UnprefetchedRelatedModelAccessError as exc:
        return HttpResponse(
            f"{type(exc).__name__}: {exc}\n", status=500, content_type="text/plain; charset=utf-8"
        )
    return HttpResponse(text, content_type="text/plain; charset=utf-8")
