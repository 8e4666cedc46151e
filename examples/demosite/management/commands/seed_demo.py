"""``manage.py seed_demo``: replace the demo data of the three apps (async command)."""

from datetime import timedelta

from blog.models import Comment, Post, Tag
from django.contrib.auth import get_user_model
from django.utils import timezone
from polls.models import Choice, Question
from school.models import Course, Grade, InSchoolUser

import dualcall
from dualcall.management import AsyncCommand

POLLS = {
    "What's your favourite way to call the ORM?": ["await it", "call it", "both, same name"],
    "Which database do you run in production?": ["PostgreSQL", "SQLite", "MySQL"],
    "How many sync_to_async wrappers does your project have?": ["none", "a few", "too many"],
}
TAGS = ["async", "django", "orm", "release"]
POSTS = [
    # title, published, tags, comments
    ("One name, two worlds", True, ["async", "orm"], ["Finally!", "Works with my save()."]),
    ("Migrating a sync codebase", True, ["django", "orm"], ["Nice write-up."]),
    ("Release notes 0.1", True, ["release"], []),
    ("Draft: PostgreSQL native path", False, ["orm"], []),
    ("Draft: websockets and dualcall", False, ["async"], []),
]
USERS = [
    # username, password, type
    ("frizzle", "magic-school-bus", InSchoolUser.TEACHER),
    ("arnold", "field-trip", InSchoolUser.STUDENT),
    ("wanda", "lets-do-it", InSchoolUser.STUDENT),
]
GRADES = {"Science": {"arnold": 71, "wanda": 94}, "Field trips": {"arnold": 88, "wanda": 90}}


class Command(AsyncCommand):
    help = "Delete and recreate the demo polls, posts, users and grades."

    async def handle(self, *args, **options):
        User = get_user_model()
        now = timezone.now()
        async with dualcall.atomic():
            # Plain Django names, awaited: delete(), bulk_create(), save(), set().
            await Question.objects.all().delete()
            await Post.objects.all().delete()
            await Tag.objects.all().delete()
            await User.objects.filter(username__in=[name for name, _, _ in USERS]).delete()

            for days, (text, choices) in enumerate(POLLS.items()):
                question = await Question.objects.create(
                    question_text=text, pub_date=now - timedelta(days=days)
                )
                await Choice.objects.bulk_create(
                    [Choice(question=question, choice_text=choice) for choice in choices]
                )

            tags = {tag.name: tag for tag in await Tag.objects.bulk_create(
                [Tag(name=name) for name in TAGS]
            )}
            for days, (title, published, tag_names, comments) in enumerate(POSTS):
                post = Post(title=title, body=f"{title}.\n\nLorem ipsum.", published=published)
                if published:
                    post.published_at = now - timedelta(days=days)
                await post.save()  # runs Post.save(), which fills in the slug
                await post.tags.set([tags[name] for name in tag_names])
                await Comment.objects.bulk_create(
                    [Comment(post=post, author="reader", body=body) for body in comments]
                )

            people = {}
            for username, password, kind in USERS:
                user = User(username=username)
                user.set_password(password)
                await user.save()
                people[username] = await InSchoolUser.objects.create(user=user, type=kind)
            for course_name, scores in GRADES.items():
                course = await Course.objects.create(name=course_name, teacher=people["frizzle"])
                await Grade.objects.bulk_create(
                    [Grade(course=course, student=people[name], score=score)
                     for name, score in scores.items()]
                )

        self.stdout.write(
            f"seeded {await Question.objects.count()} questions, "
            f"{await Post.objects.count()} posts, {await Grade.objects.count()} grades, "
            f"users: " + ", ".join(f"{name} ({kind})" for name, _, kind in USERS)
        )
