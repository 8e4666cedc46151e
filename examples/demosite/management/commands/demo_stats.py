"""``manage.py demo_stats``: print what the demo database holds (async command)."""

import asyncio

from blog.models import Comment, Post
from django.db.models import Avg, Count, Sum
from polls.models import Choice, Question
from school.models import Grade

from dualcall.management import AsyncCommand


class Command(AsyncCommand):
    help = "Print counts and aggregates of the demo data."

    async def handle(self, *args, **options):
        questions, votes, posts, published, comments, grades = await asyncio.gather(
            Question.objects.count(),
            Choice.objects.aggregate(total=Sum("votes")),
            Post.objects.count(),
            Post.objects.filter(published=True).count(),
            Comment.objects.count(),
            Grade.objects.aggregate(n=Count("id"), average=Avg("score")),
        )
        self.stdout.write(f"polls:  {questions} questions, {votes['total'] or 0} votes")
        self.stdout.write(f"blog:   {posts} posts ({published} published), {comments} comments")
        average = grades["average"]
        self.stdout.write(
            f"school: {grades['n']} grades, average "
            + (f"{average:.1f}" if average is not None else "-")
        )
        questions = Question.objects.annotate(votes=Sum("choice__votes")).order_by("-pub_date")
        async for question in questions:
            self.stdout.write(f"  {question.votes or 0:3d} votes  {question.question_text}")
