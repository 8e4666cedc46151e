"""UnprefetchedRelatedModelAccessError: sync attribute access that would query from async code.

Each test runs in the event loop's thread, where Django refuses to query; what
it checks is the exact error (type and full message), and that cached,
``select_related``ed, prefetched and loaded values read without error and
without a query.  ``no_queries()`` counts the queries of the loop thread's
connection with an execute wrapper: ``CaptureQueriesContext`` cannot be used
there, since entering it connects (``ensure_connection()`` is async-unsafe).
"""

import re
from contextlib import contextmanager

import pytest
from asgiref.sync import sync_to_async
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import SynchronousOnlyOperation
from django.db import connection
from django.db.models import Prefetch, QuerySet

import dualcall
from dualcall import UnprefetchedRelatedModelAccessError
from tests.testapp.models import (
    Author,
    Choice,
    Comment,
    Place,
    Post,
    Profile,
    Question,
    Restaurant,
    Tag,
)

pytestmark = pytest.mark.django_db(transaction=True)

ASYNC = "cannot be fetched synchronously from within an async context."


def related_object(model, name):
    var = model.lower()
    return (
        f"Related model {model}.{name} {ASYNC} Use select_related(\"{name}\") or "
        f'prefetch_related("{name}") before accessing it, or await {var}.a.{name}.'
    )


def related_objects(model, name):
    var = model.lower()
    return (
        f'Related objects {model}.{name} {ASYNC} Use prefetch_related("{name}") before '
        f"accessing them, or await {var}.a.{name}."
    )


def deferred_field(model, name):
    return (
        f"Deferred field {model}.{name} {ASYNC} Load it with the queryset (do not defer() "
        f"it) or await {model.lower()}.a.{name}."
    )


def queryset_message(model):
    return (
        f"QuerySet of {model} cannot be evaluated synchronously from within an async "
        "context. Use await queryset (which returns a list) or async for instead."
    )


def raises(message):
    return pytest.raises(UnprefetchedRelatedModelAccessError, match=f"^{re.escape(message)}$")


@contextmanager
def no_queries():
    """Fail if the current thread's connection runs a query inside the block."""
    executed = []

    def record(execute, sql, params, many, context):
        executed.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield
    assert executed == []


async def make_poll():
    question = await Question.objects.create(question_text="Why?")
    first = await Choice.objects.create(question=question, choice_text="a")
    second = await Choice.objects.create(question=question, choice_text="b")
    return question, first, second


# -- the error class ----------------------------------------------------------


def test_error_is_a_synchronous_only_operation_exported_from_dualcall():
    assert issubclass(UnprefetchedRelatedModelAccessError, SynchronousOnlyOperation)
    assert "UnprefetchedRelatedModelAccessError" in dualcall.__all__


# -- forward foreign key and one-to-one ---------------------------------------


async def test_forward_foreign_key_unfetched():
    _, choice, _ = await make_poll()
    choice = await Choice.objects.get(pk=choice.pk)
    with raises(related_object("Choice", "question")) as info:
        _ = choice.question
    # Translated from Django's own error, raised where Django raises it.
    assert type(info.value.__cause__) is SynchronousOnlyOperation
    # Existing handlers of Django's error still catch it.
    with pytest.raises(SynchronousOnlyOperation):
        _ = choice.question


async def test_forward_foreign_key_select_related_prefetched_and_cached():
    question, choice, _ = await make_poll()
    selected = await Choice.objects.select_related("question").get(pk=choice.pk)
    prefetched = await Choice.objects.prefetch_related("question").get(pk=choice.pk)
    with no_queries():
        assert selected.question == question
        assert prefetched.question == question
        assert selected.question_id == question.pk
    fetched = await Choice.objects.get(pk=choice.pk)
    assert await fetched.a.question == question
    with no_queries():
        assert fetched.question == question


async def test_null_foreign_key_reads_none_without_query():
    post = await Post.objects.create(title="orphan")
    post = await Post.objects.get(pk=post.pk)
    with no_queries():
        assert post.author is None


async def test_forward_one_to_one():
    author = await Author.objects.create(name="Ada")
    profile = await Profile.objects.create(author=author, bio="b")
    profile = await Profile.objects.get(pk=profile.pk)
    with raises(related_object("Profile", "author")):
        _ = profile.author
    profile = await Profile.objects.select_related("author").get(pk=profile.pk)
    with no_queries():
        assert profile.author == author


async def test_reverse_one_to_one():
    author = await Author.objects.create(name="Ada")
    profile = await Profile.objects.create(author=author, bio="b")
    author = await Author.objects.get(pk=author.pk)
    with raises(related_object("Author", "profile")) as info:
        _ = author.profile
    assert type(info.value.__cause__) is SynchronousOnlyOperation
    selected = await Author.objects.select_related("profile").get(pk=author.pk)
    prefetched = await Author.objects.prefetch_related("profile").get(pk=author.pk)
    with no_queries():
        assert selected.profile == profile
        assert prefetched.profile == profile


async def test_missing_reverse_one_to_one_selected_raises_does_not_exist():
    lonely = await Author.objects.create(name="Bob")
    lonely = await Author.objects.select_related("profile").get(pk=lonely.pk)
    with no_queries(), pytest.raises(Author.profile.RelatedObjectDoesNotExist):
        _ = lonely.profile


async def test_unsaved_instance_reverse_one_to_one_does_not_query():
    with no_queries(), pytest.raises(Author.profile.RelatedObjectDoesNotExist):
        _ = Author(name="new").profile


async def test_multi_table_inheritance_links():
    restaurant = await Restaurant.objects.create(name="Luigi's", serves_pizza=True)
    place = await Place.objects.get(pk=restaurant.pk)
    with raises(related_object("Place", "restaurant")):
        _ = place.restaurant
    restaurant = await Restaurant.objects.get(pk=restaurant.pk)
    # The parent link is built from the child's own columns: no query.
    with no_queries():
        assert restaurant.place_ptr.name == "Luigi's"
    selected = await Place.objects.select_related("restaurant").get(pk=restaurant.pk)
    with no_queries():
        assert selected.restaurant.serves_pizza is True


# -- related managers ---------------------------------------------------------


async def test_reverse_foreign_key_manager_evaluations():
    question, _, _ = await make_poll()
    question = await Question.objects.get(pk=question.pk)
    message = related_objects("Question", "choice_set")
    evaluations = [
        list,
        len,
        bool,
        lambda qs: qs[0],
        lambda qs: [choice for choice in qs],
        lambda qs: qs.get(choice_text="a"),
    ]
    for evaluate in evaluations:
        with raises(message):
            evaluate(question.choice_set.all())
    # Querysets derived from the manager's name it too.
    with raises(message):
        list(question.choice_set.filter(votes=0).order_by("-pk"))


async def test_reverse_foreign_key_manager_prefetched():
    question, first, second = await make_poll()
    question = await Question.objects.prefetch_related("choice_set").get(pk=question.pk)
    with no_queries():
        assert list(question.choice_set.all()) == [first, second]
        assert len(question.choice_set.all()) == 2
        assert question.choice_set.all()[1] == second


async def test_many_to_many_both_directions():
    post = await Post.objects.create(title="p")
    tag = await Tag.objects.create(name="django")
    await post.tags.add(tag)
    post = await Post.objects.get(pk=post.pk)
    tag = await Tag.objects.get(pk=tag.pk)
    with raises(related_objects("Post", "tags")):
        list(post.tags.all())
    with raises(related_objects("Tag", "posts")):
        list(tag.posts.all())
    post = await Post.objects.prefetch_related("tags").get(pk=post.pk)
    tag = await Tag.objects.prefetch_related("posts").get(pk=tag.pk)
    with no_queries():
        assert list(post.tags.all()) == [tag]
        assert list(tag.posts.all()) == [post]


async def test_nullable_reverse_foreign_key():
    author = await Author.objects.create(name="Ada")
    post = await Post.objects.create(title="p", author=author)
    author = await Author.objects.get(pk=author.pk)
    with raises(related_objects("Author", "posts")):
        list(author.posts.all())
    author = await Author.objects.prefetch_related(
        Prefetch("posts", queryset=Post.objects.order_by("pk"))
    ).get(pk=author.pk)
    with no_queries():
        assert list(author.posts.all()) == [post]


async def test_generic_relation_manager():
    post = await Post.objects.create(title="p")
    comment = await Comment.objects.create(content_object=post, text="c")
    post = await Post.objects.get(pk=post.pk)
    with raises(related_objects("Post", "comments")):
        list(post.comments.all())
    post = await Post.objects.prefetch_related("comments").get(pk=post.pk)
    with no_queries():
        assert list(post.comments.all()) == [comment]


# -- generic foreign key ------------------------------------------------------


async def test_generic_foreign_key():
    post = await Post.objects.create(title="p")
    comment = await Comment.objects.create(content_object=post, text="c")
    comment = await Comment.objects.get(pk=comment.pk)
    message = (
        f'Related model Comment.content_object {ASYNC} Use prefetch_related("content_object") '
        "before accessing it, or await comment.a.content_object."
    )
    with raises(message):
        _ = comment.content_object
    prefetched = await Comment.objects.prefetch_related("content_object").get(pk=comment.pk)
    with no_queries():
        assert prefetched.content_object == post
    assert await comment.a.content_object == post
    with no_queries():
        assert comment.content_object == post


# -- deferred fields ----------------------------------------------------------


async def test_deferred_field():
    post = await Post.objects.create(title="t", body="long")
    deferred = await Post.objects.defer("body").get(pk=post.pk)
    with no_queries():
        assert deferred.title == "t"
    with raises(deferred_field("Post", "body")):
        _ = deferred.body
    only = await Post.objects.only("title").get(pk=post.pk)
    with raises(deferred_field("Post", "published")):
        _ = only.published
    assert await deferred.a.body == "long"
    with no_queries():
        assert deferred.body == "long"


async def test_deferred_foreign_key_column():
    _, choice, _ = await make_poll()
    choice = await Choice.objects.only("choice_text").get(pk=choice.pk)
    with raises(deferred_field("Choice", "question_id")):
        _ = choice.question_id
    # Reading the relation needs the column first.
    with raises(deferred_field("Choice", "question_id")):
        _ = choice.question


async def test_deferred_field_inherited_through_multi_table_inheritance():
    restaurant = await Restaurant.objects.create(name="Luigi's")
    deferred = await Restaurant.objects.defer("name").get(pk=restaurant.pk)
    with raises(deferred_field("Restaurant", "name")):
        _ = deferred.name
    # The parent's primary key comes from the child's parent link: no query.
    only = await Restaurant.objects.only("serves_pizza").get(pk=restaurant.pk)
    with no_queries():
        assert only.id == restaurant.pk


async def test_unsaved_instance_deferred_field_keeps_djangos_attribute_error():
    # Django 6.0+ refuses to load a deferred field of an unsaved instance
    # (AttributeError, no query); that error must stand in async code too.
    # Where Django loads it instead (4.2, 5.2), the guard raises as usual.
    post = await Post.objects.create(title="t", body="long")

    async def unsaved():
        deferred = await Post.objects.defer("body").get(pk=post.pk)
        deferred.pk = None
        return deferred

    def read(instance):
        return instance.body

    try:
        await sync_to_async(read)(await unsaved())  # no loop there: plain Django
    except AttributeError as exc:
        expected = str(exc)
    except Post.DoesNotExist:
        with raises(deferred_field("Post", "body")):
            read(await unsaved())
        pytest.skip("this Django loads a deferred field of an unsaved instance")
    assert expected == "Cannot retrieve deferred field 'body' from an unsaved model."
    instance = await unsaved()
    with no_queries(), pytest.raises(AttributeError) as info:
        read(instance)
    assert type(info.value) is AttributeError
    assert str(info.value) == expected
    with pytest.raises(AttributeError, match=re.escape(expected)):
        await instance.a.body


# -- plain querysets ----------------------------------------------------------


async def test_plain_queryset_evaluated_synchronously():
    await make_poll()
    with raises(queryset_message("Choice")) as info:
        list(Choice.objects.all())
    assert type(info.value.__cause__) is SynchronousOnlyOperation
    with raises(queryset_message("Question")):
        bool(Question.objects.filter(question_text="Why?"))
    # Indexing evaluates synchronously before any await: its own advice
    # (tests/test_safety.py).
    with pytest.raises(UnprefetchedRelatedModelAccessError, match="cannot be indexed"):
        Choice.objects.values_list("pk", flat=True)[0]


async def test_queryset_that_runs_no_query_still_evaluates():
    with no_queries():
        assert list(Choice.objects.none()) == []
    evaluated = await Choice.objects.all()
    qs = Choice.objects.all()
    await qs
    with no_queries():
        assert list(qs) == evaluated


async def test_sync_helper_called_from_async_code_raises_too():
    _, choice, _ = await make_poll()
    choice = await Choice.objects.get(pk=choice.pk)

    def helper(obj):
        return obj.question

    with raises(related_object("Choice", "question")):
        helper(choice)


async def test_building_the_message_never_calls_repr_or_str(monkeypatch):
    _, choice, _ = await make_poll()
    choice = await Choice.objects.get(pk=choice.pk)

    def explode(self):
        raise AssertionError("repr() called")

    monkeypatch.setattr(Choice, "__repr__", explode)
    monkeypatch.setattr(Choice, "__str__", explode)
    monkeypatch.setattr(Question, "__repr__", explode)
    with raises(related_object("Choice", "question")):
        _ = choice.question


# -- opting out ---------------------------------------------------------------


async def test_django_allow_async_unsafe_keeps_djangos_behaviour(monkeypatch):
    question, choice, _ = await make_poll()
    post = await Post.objects.create(title="t", body="long")
    comment = await Comment.objects.create(content_object=post, text="c")
    choice = await Choice.objects.get(pk=choice.pk)
    question = await Question.objects.get(pk=question.pk)
    deferred = await Post.objects.defer("body").get(pk=post.pk)
    comment = await Comment.objects.get(pk=comment.pk)
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    assert choice.question == question
    assert len(question.choice_set.all()) == 2
    assert deferred.body == "long"
    assert comment.content_object == post
    assert len(Choice.objects.all()) == 2


# -- sync code is unchanged ---------------------------------------------------


def test_sync_code_is_plain_django(django_assert_num_queries):
    question = Question.objects.create(question_text="q")
    choice = Choice.objects.create(question=question, choice_text="c")
    choice = Choice.objects.get(pk=choice.pk)
    with django_assert_num_queries(1):
        assert choice.question == question
    with django_assert_num_queries(0):
        assert choice.question == question
    with django_assert_num_queries(1):
        assert list(question.choice_set.all()) == [choice]
    post = Post.objects.create(title="t", body="b")
    deferred = Post.objects.defer("body").get(pk=post.pk)
    with django_assert_num_queries(1):
        assert deferred.body == "b"


def test_sync_lookups_return_djangos_own_methods():
    """With no event loop in the thread, a guarded method is Django's own bound method."""
    from dualcall import targets
    from dualcall.guards import SyncGuard

    # One object per guarded class: each guard target looked up on it.
    samples = {
        QuerySet: Choice.objects.all(),
        **{type(vars(m)[n]): vars(m)[n] for m, n in [(Choice, "question"), (Author, "profile")]},
        type(vars(Post)["body"]): vars(Post)["body"],
        type(vars(Comment)["content_object"]): vars(Comment)["content_object"],
    }
    guarded = list(targets.guards())
    assert len(guarded) >= 5
    for owner, name, _ in guarded:
        guard = vars(owner)[name]
        assert type(guard) is SyncGuard, (owner, name)
        (sample,) = [s for cls, s in samples.items() if issubclass(cls, owner)]
        assert getattr(sample, name).__func__ is guard.__wrapped__, (owner, name)
    question = Question(pk=1)
    manager_class = type(question.choice_set)
    assert (
        question.choice_set._apply_rel_filters.__func__
        is vars(manager_class)["_apply_rel_filters"].__wrapped__
    )


# -- install and uninstall ----------------------------------------------------


async def test_unpatch_removes_the_guards_and_patch_restores_them():
    question, choice, _ = await make_poll()
    question = await Question.objects.get(pk=question.pk)
    choice = await Choice.objects.get(pk=choice.pk)
    manager_class = type(question.choice_set)  # made (and guarded) before unpatch()
    dualcall.unpatch()
    try:
        assert "_apply_rel_filters" in vars(manager_class)
        assert not hasattr(vars(manager_class)["_apply_rel_filters"], "__wrapped__")
        assert not hasattr(vars(QuerySet)["_fetch_all"], "__wrapped__")
        with pytest.raises(SynchronousOnlyOperation) as info:
            _ = choice.question
        assert type(info.value) is SynchronousOnlyOperation
    finally:
        dualcall.patch()
    with raises(related_object("Choice", "question")):
        _ = choice.question
    with raises(related_objects("Question", "choice_set")):
        list(question.choice_set.all())


async def test_content_type_cache_warm_for_generic_relations():
    # Creating a generic relation's manager looks up the content type; from
    # the worker thread it is cached for the loop thread too.
    post = await Post.objects.create(title="p")
    ContentType.objects.clear_cache()
    await Comment.objects.create(content_object=post, text="c")
    with raises(related_objects("Post", "comments")):
        list(post.comments.all())
