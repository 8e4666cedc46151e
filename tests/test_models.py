"""Model instance methods, and user overrides of them, on both paths."""

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError

from tests.testapp.models import Author, Note, Post, Question, Restaurant

pytestmark = pytest.mark.django_db(transaction=True)


async def test_save_insert_and_update():
    question = Question(question_text="draft")
    await question.save()
    assert question.pk is not None
    question.question_text = "final"
    await question.save(update_fields=["question_text"])
    assert (await Question.objects.get(pk=question.pk)).question_text == "final"


async def test_delete():
    question = await Question.objects.create(question_text="gone")
    assert await question.delete() == (1, {"testapp.Question": 1})
    assert await Question.objects.count() == 0


async def test_refresh_from_db():
    question = await Question.objects.create(question_text="old")
    await Question.objects.filter(pk=question.pk).update(question_text="new")
    assert question.question_text == "old"
    await question.refresh_from_db()
    assert question.question_text == "new"


async def test_full_clean_and_validate_unique():
    await Author.objects.create(name="Ada")
    with pytest.raises(ValidationError) as raised:
        await Author(name="Ada").full_clean()
    assert raised.value.message_dict == {"name": ["Author with this Name already exists."]}
    with pytest.raises(ValidationError):
        await Author(name="Ada").validate_unique()
    assert await Author(name="Grace").validate_unique() is None
    assert await Author(name="Grace").validate_constraints() is None


async def test_multi_table_inheritance_save_and_delete():
    restaurant = Restaurant(name="Chez", serves_pizza=True)
    await restaurant.save()
    assert await Restaurant.objects.filter(name="Chez", serves_pizza=True).count() == 1
    await restaurant.delete()
    assert await Restaurant.objects.count() == 0


def _save_counts():
    return list(Post.objects.order_by("pk").values_list("title", "save_count"))


async def test_save_override_runs_once_per_save_on_both_paths():
    post = Post(title="async")
    await post.save()
    await post.save()
    assert post.save_count == 2

    def sync_path():
        post = Post(title="sync")
        post.save()
        post.save()
        return post.save_count

    assert await sync_to_async(sync_path)() == 2
    assert await sync_to_async(_save_counts)() == [("async", 2), ("sync", 2)]


async def test_save_override_runs_through_create_and_django_a_methods():
    post = await Post.objects.create(title="created")
    assert post.save_count == 1
    await post.asave()
    assert await sync_to_async(_save_counts)() == [("created", 2)]


async def test_save_override_from_a_mixin_runs_once():
    note = Note(text="n")
    await note.save()
    await note.save()
    assert note.save_count == 2
    assert (await Note.objects.get(pk=note.pk)).save_count == 2


async def test_override_exceptions_reach_the_awaiting_code():
    with pytest.raises(TypeError, match='can only concatenate str \\(not "int"\\) to str'):
        # Post.save() adds 1 to save_count, which is not a number here.
        await Post(title="bad", save_count="x").save()
    assert await Post.objects.count() == 0
