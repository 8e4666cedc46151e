"""Correct code, async and sync: mypy with the plugin reports nothing but the revealed types."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, reveal_type

from asgiref.sync import sync_to_async
from django.db.models import Count
from django.http import HttpRequest, HttpResponse

import dualcall
from dualcall import dualmethod
from dualcall.decorators import login_required, permission_required, user_passes_test
from dualcall.management import AsyncCommand
from dualcall.shortcuts import get_list_or_404, get_object_or_404, prefetch_related_objects

from .models import Author, Choice, Comment, Note, Post, Profile, Question, Tag, latest_question


async def queryset_and_manager_methods() -> None:
    question = await Question.objects.get(pk=1)
    reveal_type(question)
    count = await Question.objects.filter(pk=1).count()
    reveal_type(count)
    if await Question.objects.exists():
        pass
    first = await Question.objects.order_by("pk").first()
    reveal_type(first)
    latest = await Question.objects.latest("pub_date")
    reveal_type(latest)
    created = await Question.objects.create(question_text="?", pub_date=question.pub_date)
    reveal_type(created)
    pair = await Question.objects.get_or_create(question_text="?")
    reveal_type(pair)
    updated = await Question.objects.filter(pk=1).update(question_text="!")
    reveal_type(updated)
    deleted = await Question.objects.filter(pk=1).delete()
    reveal_type(deleted)
    totals = await Question.objects.aggregate(n=Count("pk"))
    reveal_type(totals)
    by_pk = await Question.objects.in_bulk([1, 2])
    reveal_type(by_pk)
    made = await Question.objects.bulk_create([Question(question_text="?")])
    reveal_type(made)
    contains = await Question.objects.contains(question)
    reveal_type(contains)


async def awaiting_querysets() -> None:
    questions = await Question.objects.filter(question_text__startswith="W")
    reveal_type(questions)
    top = await Question.objects.order_by("-pub_date")[:10]
    reveal_type(top)
    dicts = await Question.objects.values("pk", "question_text")
    reveal_type(dicts)
    rows = await Question.objects.values_list("pk", "question_text")
    reveal_type(rows)
    pks = await Question.objects.values_list("pk", flat=True)
    reveal_type(pks)
    raw = await Question.objects.raw("SELECT * FROM sample_question")
    reveal_type(raw)
    published = await Post.objects.published()
    reveal_type(published)


async def iterating() -> None:
    async for question in Question.objects.iterator(chunk_size=100):
        reveal_type(question)
    async for text in Question.objects.values_list("question_text", flat=True).iterator():
        reveal_type(text)
    async for choice in Choice.objects.all():  # Django's own __aiter__
        reveal_type(choice)
    iterator = Question.objects.iterator()
    reveal_type(iterator)


async def related_managers(question: Question, post: Post, tag: Tag, author: Author) -> None:
    choice = await question.choice_set.create(choice_text="Not much", votes=0)
    reveal_type(choice)
    choices = await question.choice_set.all()
    reveal_type(choices)
    n = await question.choice_set.count()
    reveal_type(n)
    await post.tags.add(tag)
    await post.tags.set([tag])
    await author.posts.clear()
    await tag.posts.remove(post)


async def model_methods(question: Question, post: Post) -> None:
    await question.save()
    await question.save(update_fields=["question_text"])
    await question.refresh_from_db()
    await question.full_clean()
    removed = await question.delete()
    reveal_type(removed)
    await post.save()  # the model's own override


async def user_dual_methods(post: Post) -> None:
    n = await Post.objects.publish_all()
    reveal_type(n)
    m = await Post.by_queryset.publish_all()
    reveal_type(m)
    k = await Post.objects.filter(published=False).publish_all()
    reveal_type(k)
    words = await post.word_count()
    reveal_type(words)
    latest = await latest_question()
    reveal_type(latest)


async def namespace(choice: Choice, post: Post, author: Author, profile: Profile) -> None:
    question = await choice.a.question
    reveal_type(question)
    text = await choice.a.choice_text
    reveal_type(text)
    question_id = await choice.a.question_id
    reveal_type(question_id)
    post_author = await post.a.author
    reveal_type(post_author)
    author_profile = await author.a.profile
    reveal_type(author_profile)
    profile_author = await profile.a.author
    reveal_type(profile_author)
    choices = await question.a.choice_set
    reveal_type(choices)
    tags = await post.a.tags
    reveal_type(tags)
    posts = await author.a.posts
    reveal_type(posts)
    comment = await Comment.objects.get(pk=1)
    reveal_type(await comment.a.content_object)  # a generic foreign key
    reveal_type(await post.a.comments)  # a generic relation
    note = await Note.objects.get(pk=1)
    note_post = await note.a.post  # declared by the AsyncAttrs mixin: the same types
    reveal_type(note_post)


async def shortcuts_and_acall() -> None:
    question = await get_object_or_404(Question, pk=1)
    reveal_type(question)
    choices = await get_list_or_404(Choice.objects.filter(question=question))
    reveal_type(choices)
    await prefetch_related_objects([question], "choice_set")
    count = await Question.objects.count.__acall__()
    reveal_type(count)


async def the_caller_rule(ids: list[int]) -> None:
    # Comprehensions belong to the coroutine: each call is an awaitable.
    questions = await asyncio.gather(*[Question.objects.get(pk=i) for i in ids])
    reveal_type(questions)
    n, exists = await asyncio.gather(Question.objects.count(), Question.objects.exists())
    reveal_type(n)
    reveal_type(exists)
    # A lambda, and a nested def, are sync code.
    total = await sync_to_async(lambda: Question.objects.count())()
    reveal_type(total)

    def helper() -> Question:
        return Question.objects.get(pk=1)

    reveal_type(await sync_to_async(helper)())
    async with dualcall.atomic():
        await Question.objects.filter(pk=1).update(question_text="?")


class Service:
    """A plain class with dual methods of each binding kind."""

    @dualmethod
    def total(self) -> int:
        return Question.objects.count()

    @dualmethod
    @classmethod
    def for_class(cls) -> int:
        return Question.objects.count()

    @dualmethod
    @staticmethod
    def static() -> str:
        return "static"


async def more_of_the_caller_rule(service: Service) -> None:
    reveal_type(await service.total())
    reveal_type(await Service.for_class())
    reveal_type(await Service.static())
    reveal_type(await latest_question.__acall__())
    counts = await asyncio.gather(*(Question.objects.count() for _ in range(2)))
    reveal_type(counts)

    class Inner:  # a class body is sync code
        total = Question.objects.count()

    reveal_type(Inner.total)


def sync_with_a_coroutine_inside() -> None:
    async def inner() -> int:
        return await Question.objects.count()

    reveal_type(asyncio.run(inner()))


async def stream() -> AsyncIterator[Question]:
    # An async generator is a coroutine too.
    yield await Question.objects.get(pk=1)


@login_required
async def private_view(request: HttpRequest, pk: int) -> HttpResponse:
    question = await get_object_or_404(Question, pk=pk)
    return HttpResponse(question.question_text)


@login_required(login_url="/login/")
async def other_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(await Question.objects.count()))


async def is_teacher(user: Any) -> bool:
    return bool((await user.a.inschooluser).type == "teacher")


@user_passes_test(is_teacher)
@permission_required("sample.change_question")
async def gradebook(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(await Choice.objects.filter(votes__gt=0).count()))


async def call_views(request: HttpRequest) -> None:
    reveal_type(await private_view(request, 1))
    reveal_type(await gradebook(request))


class Command(AsyncCommand):
    help = "An async management command."

    async def handle(self, *args: Any, **options: Any) -> None:
        await Question.objects.filter(pk=1).delete()


def sync_code(question: Question, choice: Choice) -> None:
    # Sync code keeps django-stubs' types exactly.
    reveal_type(Question.objects.get(pk=1))
    reveal_type(Question.objects.count())
    reveal_type(Question.objects.iterator())
    reveal_type(question.save())
    reveal_type(question.choice_set.create(choice_text="x"))
    reveal_type(Post.objects.publish_all())
    reveal_type(latest_question())
    reveal_type(get_object_or_404(Question, pk=1))
    reveal_type(get_list_or_404(Question))
    for q in Question.objects.iterator():
        reveal_type(q)
    with dualcall.atomic():
        Question.objects.filter(pk=1).update(question_text="?")
    # .a and __acall__ are awaitables anywhere.
    reveal_type(asyncio.run(choice.a.question))
    reveal_type(asyncio.run(Question.objects.count.__acall__()))
