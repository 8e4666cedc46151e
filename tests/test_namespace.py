"""The ``.a`` namespace: ``await instance.a.<name>`` for every field and relation kind.

``hops`` records each awaitable handed to the executor (a thread hop): a value
that is loaded, cached or null must resolve without one.  ``no_queries()``
(see ``test_guards``) checks that a sync access after the await is served from
the cache; any query in the loop's thread would raise anyway.
"""

import gc
import re
import types

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model, QuerySet
from django.test import override_settings

import dualcall
import dualcall.namespace
from dualcall import UnprefetchedRelatedModelAccessError
from dualcall.namespace import Namespace
from tests.test_guards import no_queries, related_object
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


@pytest.fixture
def hops(monkeypatch):
    """The names of the awaitables the namespace hands to the executor."""
    names = []
    run_sync = dualcall.namespace.run_sync

    def record(func, args, kwargs, name, at=None):
        names.append(name)
        return run_sync(func, args, kwargs, name, at)

    monkeypatch.setattr(dualcall.namespace, "run_sync", record)
    return names


async def make_poll():
    question = await Question.objects.create(question_text="Why?")
    first = await Choice.objects.create(question=question, choice_text="a")
    second = await Choice.objects.create(question=question, choice_text="b")
    return question, first, second


# -- forward foreign key and one-to-one ---------------------------------------


async def test_forward_foreign_key(hops):
    question, choice, _ = await make_poll()
    choice = await Choice.objects.get(pk=choice.pk)
    assert await choice.a.question == question
    assert hops == ["Choice.a.question"]
    # Cached exactly as choice.question caches it.
    with no_queries():
        assert choice.question == question
    assert await choice.a.question is choice.question
    assert hops == ["Choice.a.question"]


async def test_forward_foreign_key_select_related_resolves_without_hop(hops):
    question, choice, _ = await make_poll()
    choice = await Choice.objects.select_related("question").get(pk=choice.pk)
    with no_queries():
        assert await choice.a.question == question
    assert hops == []


async def test_null_foreign_key_resolves_to_none_without_hop(hops):
    post = await Post.objects.create(title="orphan")
    post = await Post.objects.get(pk=post.pk)
    with no_queries():
        assert await post.a.author is None
    assert hops == []


async def test_forward_one_to_one(hops):
    author = await Author.objects.create(name="Ada")
    profile = await Profile.objects.create(author=author)
    profile = await Profile.objects.get(pk=profile.pk)
    assert await profile.a.author == author
    with no_queries():
        assert profile.author == author
        # A one-to-one caches the reverse side too, as the sync access does.
        assert profile.author.profile is profile


async def test_reverse_one_to_one(hops):
    author = await Author.objects.create(name="Ada")
    profile = await Profile.objects.create(author=author)
    author = await Author.objects.get(pk=author.pk)
    assert await author.a.profile == profile
    assert hops == ["Author.a.profile"]
    with no_queries():
        assert author.profile == profile
        assert author.profile.author is author


async def test_missing_reverse_one_to_one_raises_when_awaited(hops):
    lonely = await Author.objects.create(name="Bob")
    lonely = await Author.objects.get(pk=lonely.pk)
    awaitable = lonely.a.profile  # no error yet
    with pytest.raises(Author.profile.RelatedObjectDoesNotExist, match="Author has no profile"):
        await awaitable
    # The miss is cached as a sync access caches it: no query the second time.
    with no_queries(), pytest.raises(Author.profile.RelatedObjectDoesNotExist):
        _ = lonely.profile
    with pytest.raises(Author.profile.RelatedObjectDoesNotExist):
        await lonely.a.profile
    assert hops == ["Author.a.profile"]


# -- multi-valued relations ---------------------------------------------------


async def test_reverse_foreign_key_resolves_to_a_list(hops):
    question, first, second = await make_poll()
    question = await Question.objects.get(pk=question.pk)
    choices = await question.a.choice_set
    assert choices == [first, second]
    assert type(choices) is list
    # Nothing is cached, exactly as question.choice_set.all() caches nothing.
    with pytest.raises(UnprefetchedRelatedModelAccessError):
        list(question.choice_set.all())


async def test_prefetched_relation_resolves_from_the_cache_without_hop(hops):
    question, first, second = await make_poll()
    question = await Question.objects.prefetch_related("choice_set").get(pk=question.pk)
    with no_queries():
        choices = await question.a.choice_set
    assert choices == [first, second]
    assert type(choices) is list
    assert hops == []


async def test_many_to_many_both_directions(hops):
    post = await Post.objects.create(title="p")
    django_tag = await Tag.objects.create(name="django")
    python_tag = await Tag.objects.create(name="python")
    await post.tags.add(django_tag, python_tag)
    post = await Post.objects.get(pk=post.pk)
    assert sorted(await post.a.tags, key=lambda t: t.pk) == [django_tag, python_tag]
    assert await django_tag.a.posts == [post]
    assert hops == ["Post.a.tags", "Tag.a.posts"]
    post = await Post.objects.prefetch_related("tags").get(pk=post.pk)
    tag = await Tag.objects.prefetch_related("posts").get(pk=python_tag.pk)
    with no_queries():
        assert len(await post.a.tags) == 2
        assert await tag.a.posts == [post]
    assert len(hops) == 2


async def test_generic_relation(hops):
    post = await Post.objects.create(title="p")
    comment = await Comment.objects.create(content_object=post, text="c")
    post = await Post.objects.get(pk=post.pk)
    assert await post.a.comments == [comment]
    post = await Post.objects.prefetch_related("comments").get(pk=post.pk)
    with no_queries():
        assert await post.a.comments == [comment]
    assert hops == ["Post.a.comments"]


async def test_generic_foreign_key(hops):
    post = await Post.objects.create(title="p")
    comment = await Comment.objects.create(content_object=post, text="c")
    comment = await Comment.objects.get(pk=comment.pk)
    assert await comment.a.content_object == post
    assert hops == ["Comment.a.content_object"]
    with no_queries():
        assert comment.content_object == post
        assert await comment.a.content_object == post
    prefetched = await Comment.objects.prefetch_related("content_object").get(pk=comment.pk)
    with no_queries():
        assert await prefetched.a.content_object == post
    assert hops == ["Comment.a.content_object"]


# -- concrete fields ----------------------------------------------------------


async def test_loaded_field_resolves_without_hop(hops):
    _, choice, _ = await make_poll()
    choice = await Choice.objects.get(pk=choice.pk)
    with no_queries():
        assert await choice.a.choice_text == "a"
        assert await choice.a.question_id == choice.question_id
        assert await choice.a.id == choice.pk
    assert hops == []


async def test_deferred_field_is_loaded_and_cached(hops):
    post = await Post.objects.create(title="t", body="long")
    post = await Post.objects.defer("body").get(pk=post.pk)
    assert await post.a.body == "long"
    assert hops == ["Post.a.body"]
    with no_queries():
        assert post.body == "long"
        assert await post.a.body == "long"
    assert hops == ["Post.a.body"]


async def test_deferred_foreign_key_column(hops):
    question, choice, _ = await make_poll()
    choice = await Choice.objects.only("choice_text").get(pk=choice.pk)
    assert await choice.a.question == question
    with no_queries():
        assert choice.question_id == question.pk


async def test_fields_inherited_through_multi_table_inheritance(hops):
    restaurant = await Restaurant.objects.create(name="Luigi's", serves_pizza=True)
    restaurant = await Restaurant.objects.get(pk=restaurant.pk)
    with no_queries():
        assert await restaurant.a.name == "Luigi's"
        assert await restaurant.a.serves_pizza is True
    assert hops == []
    deferred = await Restaurant.objects.defer("name").get(pk=restaurant.pk)
    assert await deferred.a.name == "Luigi's"
    with no_queries():
        assert deferred.name == "Luigi's"
    place_ptr = await restaurant.a.place_ptr
    assert (type(place_ptr), place_ptr.pk, place_ptr.name) == (Place, restaurant.pk, "Luigi's")
    place = await Place.objects.get(pk=restaurant.pk)
    assert await place.a.restaurant == restaurant
    with no_queries():
        assert place.restaurant == restaurant
    assert hops == ["Restaurant.a.name", "Restaurant.a.place_ptr", "Place.a.restaurant"]


# -- the namespace itself -----------------------------------------------------


async def test_namespace_never_queries(hops):
    post = await Post.objects.create(title="t", body="long")
    post = await Post.objects.defer("body").get(pk=post.pk)
    with no_queries():
        namespace = post.a
        awaitable = namespace.body
    assert type(namespace) is Namespace
    assert await awaitable == "long"


async def test_unknown_names_raise_attribute_error_at_access():
    _, choice, _ = await make_poll()
    for name in ("nope", "save", "pk", "objects", "question_set", "_state"):
        message = f"Choice has no field or relation {name!r}"
        with pytest.raises(AttributeError, match=re.escape(message)):
            getattr(choice.a, name)


def test_namespace_has_slots_and_lists_the_known_names():
    assert Namespace.__slots__ == ("_instance",)
    assert not hasattr(Question().a, "__dict__")
    assert {"choice_text", "id", "question", "question_id", "votes"} <= set(dir(Choice().a))
    assert "save" not in dir(Choice().a)
    assert {"choice_set", "question_text"} <= set(dir(Question().a))
    assert {"comments", "tags", "author", "body"} <= set(dir(Post().a))
    assert {"name", "place_ptr", "serves_pizza"} <= set(dir(Restaurant().a))


def test_class_access_returns_the_descriptor():
    assert isinstance(Question.a, dualcall.namespace.NamespaceDescriptor)
    assert isinstance(Model.__dict__["a"], dualcall.namespace.NamespaceDescriptor)


def test_awaitable_never_awaited_warns_with_its_name(settings):
    settings.DUALCALL_STRICT = False
    choice = Choice(choice_text="c")
    message = "coroutine 'Choice.a.choice_text' was never awaited"
    with pytest.warns(RuntimeWarning, match=re.escape(message)):
        choice.a.choice_text  # noqa: B018
        gc.collect()


def test_awaitable_in_sync_code_without_loop(django_assert_num_queries):
    """Sync code can drive the awaitable with asyncio.run(); the access stays plain Django."""
    import asyncio

    question = Question.objects.create(question_text="q")
    choice = Choice.objects.create(question=question, choice_text="c")
    choice = Choice.objects.get(pk=choice.pk)

    async def fetch():
        return await choice.a.question

    assert asyncio.run(fetch()) == question
    with django_assert_num_queries(0):
        assert choice.question == question


# -- the DUALCALL_NAMESPACE setting -------------------------------------------


@pytest.fixture
def repatch():
    """Re-install the patches after the test, under the default settings."""
    yield
    dualcall.unpatch()
    dualcall.patch()


@pytest.mark.usefixtures("repatch")
async def test_namespace_setting_renames_the_namespace(hops):
    question, choice, _ = await make_poll()
    choice = await Choice.objects.get(pk=choice.pk)
    with override_settings(DUALCALL_NAMESPACE="aio"):
        dualcall.unpatch()
        dualcall.patch()
        assert "a" not in vars(Model)
        assert not hasattr(choice, "a")
        assert await choice.aio.question == question
        other = await Choice.objects.get(pk=choice.pk)
        message = related_object("Choice", "question").replace("choice.a.", "choice.aio.")
        with pytest.raises(UnprefetchedRelatedModelAccessError, match=re.escape(message)):
            _ = other.question
    assert hops == ["Choice.aio.question"]


@pytest.mark.usefixtures("repatch")
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("save", "is already an attribute of django.db.models.Model"),
        ("pk", "is already an attribute of django.db.models.Model"),
        ("not an identifier", "is not a Python identifier"),
        ("", "is not a Python identifier"),
        (None, "is a NoneType, not a string"),
        (1, "is a int, not a string"),
        ("class", "is a Python keyword (instance.class is a syntax error)"),
        ("_state", "starts with an underscore"),
        ("_prefetched_objects_cache", "starts with an underscore"),
    ],
)
def test_invalid_namespace_setting(name, reason):
    dualcall.unpatch()
    prefix = (
        'DUALCALL_NAMESPACE must name the attribute of the awaitable namespace (default "a"); '
        f"{name!r} {reason}"
    )
    with override_settings(DUALCALL_NAMESPACE=name), pytest.raises(
        ImproperlyConfigured, match="^" + re.escape(prefix)
    ):
        dualcall.patch()
    # patch() is all or nothing: what it installed before failing is undone.
    assert not dualcall.is_patched()
    assert type(vars(Model)["save"]) is types.FunctionType
    assert "__await__" not in vars(QuerySet)
