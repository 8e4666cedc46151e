"""Forgotten awaits and other mistakes: each line marked ``# E:`` must be reported, exactly."""

from __future__ import annotations

from .models import Choice, Post, Question, latest_question


async def forgotten_awaits(choice: Choice, post: Post) -> None:
    Question.objects.create(question_text="lost")
    post.save()
    choice.question.choice_set.add(choice)
    latest_question()
    if Question.objects.filter(pk=1).exists():
        pass
    if not Question.objects.exists():
        pass
    while Question.objects.filter(pk=1).exists():
        break
    ok = Question.objects.exists() and Post.objects.exists()
    pending = [q for q in [choice] if Question.objects.exists()]
    question = Question.objects.get(pk=1)
    print(question.question_text)
    count = Question.objects.count()
    print(count + 1)
    for q in Question.objects.iterator():
        print(q)
    if choice.a.question:
        pass
    print(ok, pending)


async def namespace_mistakes(choice: Choice) -> None:
    await choice.a.question_text
    await choice.a.save
    question = choice.a.question
    print(question.question_text)


async def more_forgotten_awaits(choice: Choice) -> Question:
    if Question.objects.filter(
        pk=1,
    ).exists():
        pass
    label = "yes" if choice.question.choice_set.exists() else "no"
    print(label)
    return Question.objects.get(pk=1)


def sync_code(choice: Choice) -> None:
    Question.objects.count.__acall__()
    len.__acall__()
    if choice.a.question:  # .a is awaitable in sync code too
        pass
