"""Canaries: the Django internals the guards and the ``.a`` namespace rely on.

Each test pins one internal, checked against Django's original function (the
``__wrapped__`` of the guard, where it is guarded).  When one breaks on a new
Django version, its comment says what to change; the targets are in
``dualcall.targets.guards()``, the readers in ``dualcall.namespace``, the
internals that differ between versions in ``dualcall.compat``.

dualcall detects each difference by feature; the canaries name the versions
that have it (``FETCH_MODES``: Django 6.1+), so a detection that goes wrong on
a supported version fails here.
"""

import inspect
import re
import sys

import django
import pytest
from django.contrib.contenttypes import fields as contenttypes_fields
from django.contrib.contenttypes.fields import GenericForeignKey
from django.db.models import Model, QuerySet
from django.db.models.fields.related_descriptors import (
    ForwardManyToOneDescriptor,
    ForwardOneToOneDescriptor,
    ReverseOneToOneDescriptor,
)
from django.db.models.query_utils import DeferredAttribute
from django.test.utils import isolate_apps

from dualcall import compat
from dualcall.guards import ORIGIN, related_manager_accessor
from dualcall.namespace import _prefetch_cache_name
from tests.testapp.models import Author, Choice, Comment, Place, Post, Profile, Question, Tag

pytestmark = pytest.mark.django_db

#: Django 6.1 loads single-valued lazy fields through fetch modes
#: (django.db.models.fetch_modes); earlier versions query in __get__.
FETCH_MODES = django.VERSION >= (6, 1)
before_fetch_modes = pytest.mark.skipif(
    FETCH_MODES, reason="Django 6.1+ loads through fetch modes: see the fetcher canaries"
)
with_fetch_modes = pytest.mark.skipif(
    not FETCH_MODES, reason="fetch modes are new in Django 6.1"
)


def record_calls(monkeypatch, owner, name):
    """Replace owner.name by a recorder of (args, kwargs, caller code) around Django's original."""
    value = vars(owner)[name]
    original = getattr(value, "__wrapped__", value)
    calls = []

    def recorder(*args, **kwargs):
        calls.append((args[1:], kwargs, sys._getframe(1).f_code))
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, recorder)
    return calls


def test_fetch_all_is_where_querysets_are_evaluated(monkeypatch):
    # If this breaks, find the QuerySet method that every evaluation (iter,
    # len, bool, [i], get()) calls and that runs the query; guard it instead
    # of _fetch_all in targets.guards().
    Question.objects.create(question_text="q")
    calls = record_calls(monkeypatch, QuerySet, "_fetch_all")
    evaluations = [list, len, bool, lambda qs: qs[0], lambda qs: qs.get(), iter]
    for evaluate in evaluations:
        calls.clear()
        evaluate(Question.objects.all())
        assert calls


def test_query_clone_copies_instance_attributes():
    # The relation a queryset was made for rides on its Query, which
    # Query.clone() copies attribute by attribute (__dict__).  If this breaks,
    # carry ORIGIN over some other way (for example in QuerySet._clone()).
    qs = Choice.objects.all()
    setattr(qs.query, ORIGIN, "origin")
    derived = [qs.filter(votes=1), qs.order_by("pk")[:1], qs.values("pk"), qs.exclude(pk=1)]
    assert [getattr(d.query, ORIGIN, None) for d in derived] == ["origin"] * 4


@before_fetch_modes
def test_forward_descriptor_gets_queryset_with_instance_only_to_fetch(monkeypatch):
    # ForwardManyToOneDescriptor.get_object() calls get_queryset(instance=...),
    # and only when the value is not cached; prefetching calls it without
    # instance.  If this breaks, guard the method that now builds the
    # queryset of the fetch (mark it with RELATED_OBJECT).
    question = Question.objects.create(question_text="q")
    choice = Choice.objects.create(question=question, choice_text="c")
    calls = record_calls(monkeypatch, ForwardManyToOneDescriptor, "get_queryset")
    choice = Choice.objects.get(pk=choice.pk)
    _ = choice.question, choice.question
    assert [kwargs for _, kwargs, _ in calls] == [{"instance": choice}]
    Choice.objects.prefetch_related("question").get(pk=choice.pk)
    _ = Choice.objects.select_related("question").get(pk=choice.pk).question
    assert [kwargs for _, kwargs, _ in calls[1:]] == [{}]


@before_fetch_modes
def test_reverse_one_to_one_gets_queryset_with_instance_only_to_fetch(monkeypatch):
    # As above, for ReverseOneToOneDescriptor.__get__.
    author = Author.objects.create(name="Ada")
    Profile.objects.create(author=author)
    calls = record_calls(monkeypatch, ReverseOneToOneDescriptor, "get_queryset")
    author = Author.objects.get(pk=author.pk)
    _ = author.profile, author.profile
    assert [kwargs for _, kwargs, _ in calls] == [{"instance": author}]
    _ = Author.objects.prefetch_related("profile").get(pk=author.pk).profile
    _ = Author.objects.select_related("profile").get(pk=author.pk).profile
    assert [kwargs for _, kwargs, _ in calls[1:]] == [{}]


def test_related_managers_apply_rel_filters_only_without_prefetch(monkeypatch):
    # Each related manager class (reverse FK, M2M both ways, generic relation)
    # defines _apply_rel_filters() itself and calls it from get_queryset()
    # only when the relation is not prefetched.  If this breaks, guard the
    # method that now filters the manager's queryset.
    question = Question.objects.create(question_text="q")
    post = Post.objects.create(title="p")
    tag = Tag.objects.create(name="t")
    post.tags.add(tag)
    Comment.objects.create(content_object=post, text="c")
    managers = [question.choice_set, post.tags, tag.posts, post.comments]
    calls = []
    for manager in managers:
        assert "_apply_rel_filters" in vars(type(manager))
        calls.append(record_calls(monkeypatch, type(manager), "_apply_rel_filters"))
    list(question.choice_set.all()), list(post.tags.all())
    list(tag.posts.all()), list(post.comments.all())
    assert [len(c) for c in calls] == [1, 1, 1, 1]
    # Prefetching builds each cached queryset with it too (in the thread
    # that prefetches), but reading the prefetched relation does not call it.
    question = Question.objects.prefetch_related("choice_set").get(pk=question.pk)
    post = Post.objects.prefetch_related("tags", "comments").get(pk=post.pk)
    tag = Tag.objects.prefetch_related("posts").get(pk=tag.pk)
    for c in calls:
        c.clear()
    list(question.choice_set.all()), list(post.tags.all())
    list(tag.posts.all()), list(post.comments.all())
    assert [len(c) for c in calls] == [0, 0, 0, 0]


def test_related_manager_accessor_and_prefetch_cache_names():
    # related_manager_accessor() reads each related manager's attributes
    # (through/reverse/model/query_field_name/prefetch_cache_name/field), and
    # _prefetch_cache_name() each descriptor's, to name the relation and find
    # its prefetch cache.  If this breaks, read the names from the new
    # attributes.
    question = Question.objects.create(question_text="q")
    post = Post.objects.create(title="p")
    tag = Tag.objects.create(name="t")
    post.tags.add(tag)
    assert related_manager_accessor(question.choice_set) == "choice_set"
    assert related_manager_accessor(post.tags) == "tags"
    assert related_manager_accessor(tag.posts) == "posts"
    assert related_manager_accessor(post.comments) == "comments"
    assert related_manager_accessor(Author(pk=1).posts) == "posts"
    question = Question.objects.prefetch_related("choice_set").get(pk=question.pk)
    post = Post.objects.prefetch_related("tags", "comments").get(pk=post.pk)
    tag = Tag.objects.prefetch_related("posts").get(pk=tag.pk)
    relations = [(question, "choice_set"), (post, "tags"), (tag, "posts"), (post, "comments")]
    for instance, name in relations:
        descriptor = vars(type(instance))[name]
        assert _prefetch_cache_name(descriptor) in instance._prefetched_objects_cache


@isolate_apps("tests.testapp")
def test_reverse_many_to_many_without_related_name():
    # The reverse side's accessor (reader_set) differs from its query name
    # (reader), which is its prefetch cache key.
    from django.db import models

    class Book(models.Model):
        class Meta:
            app_label = "testapp"

    class Reader(models.Model):
        books = models.ManyToManyField(Book)

        class Meta:
            app_label = "testapp"

    assert related_manager_accessor(Book(pk=1).reader_set) == "reader_set"
    assert _prefetch_cache_name(vars(Book)["reader_set"]) == "reader"
    assert _prefetch_cache_name(vars(Reader)["books"]) == "books"


@before_fetch_modes
def test_deferred_attribute_checks_parent_chain_only_for_missing_fields(monkeypatch):
    # DeferredAttribute.__get__ calls _check_parent_chain() only for a field
    # missing from instance.__dict__, and loads it with refresh_from_db() when
    # that returns None.  If this breaks, guard the method now called just
    # before the load.
    post = Post.objects.create(title="t", body="b")
    calls = record_calls(monkeypatch, DeferredAttribute, "_check_parent_chain")
    refreshes = record_calls(monkeypatch, Model, "refresh_from_db")
    post = Post.objects.defer("body").get(pk=post.pk)
    _ = post.title, post.body, post.body
    assert len(calls) == 1
    assert [kwargs for _, kwargs, _ in refreshes] == [{"fields": ["body"]}]
    restaurant = Place.objects.create(name="x")
    assert restaurant.name == "x"
    assert len(calls) == 1


@before_fetch_modes
def test_generic_foreign_key_fetches_after_get_content_type_with_id(monkeypatch):
    # GenericForeignKey.__get__ (defined on GenericForeignKey itself) calls
    # get_content_type(id=...) only when the object is not cached, right
    # before it fetches the object.  If this breaks, find the new call on the
    # fetching path and pre-check there.
    post = Post.objects.create(title="p")
    comment = Comment.objects.create(content_object=post, text="c")
    fetching_code = vars(GenericForeignKey)["__get__"].__code__
    calls = record_calls(monkeypatch, GenericForeignKey, "get_content_type")
    comment = Comment.objects.get(pk=comment.pk)
    _ = comment.content_object, comment.content_object
    with_id = [code for _, kwargs, code in calls if kwargs.get("id") is not None]
    assert with_id == [fetching_code]


# -- what differs between versions (dualcall.compat) --------------------------


def test_fetchers_exist_from_django_6_1():
    # Django 6.1's fetcher protocol: DeferredAttribute and the single-valued
    # relation descriptors define fetch_one(instance) and fetch_many(instances);
    # dualcall.targets.guards() guards those where compat.is_fetcher() says
    # so, and the older per-descriptor methods elsewhere.  If this breaks,
    # Django moved the loading: find the method every lazy load now calls
    # only to query, and guard it.
    accessor = compat.generic_foreign_key_accessor()
    for cls in (ForwardManyToOneDescriptor, ReverseOneToOneDescriptor, DeferredAttribute, accessor):
        assert compat.is_fetcher(cls) is FETCH_MODES, cls
        for name in compat.FETCHER_METHODS:
            value = vars(cls).get(name)
            if FETCH_MODES:
                # Guarded in place: the guard wraps Django's function.
                assert inspect.isfunction(value.__wrapped__), (cls, name)
                params = list(inspect.signature(value.__wrapped__).parameters)
                assert params == ["self", "instances" if name == "fetch_many" else "instance"]
            else:
                assert value is None, (cls, name)
    # Subclasses inherit the guarded fetchers (nothing of their own to guard).
    assert not {"fetch_one", "fetch_many"} & set(vars(ForwardOneToOneDescriptor))


def test_generic_foreign_key_accessor_per_version():
    # Up to 6.0 the GenericForeignKey field is its own descriptor (it defines
    # __get__); 6.1 puts a GenericForeignKeyDescriptor on the model class
    # instead.  compat.generic_foreign_key_accessor() returns what is on the
    # class: the .a namespace knows it as the generic FK kind.  If this
    # breaks, find what contribute_to_class() now installs.
    accessor = vars(Comment)["content_object"]
    assert type(accessor) is compat.generic_foreign_key_accessor()
    assert compat.generic_foreign_key_field(accessor) is Comment._meta.get_field("content_object")
    if FETCH_MODES:
        assert type(accessor) is contenttypes_fields.GenericForeignKeyDescriptor
        assert "__get__" not in vars(GenericForeignKey)
    else:
        assert type(accessor) is GenericForeignKey
        assert not hasattr(contenttypes_fields, "GenericForeignKeyDescriptor")


@with_fetch_modes
def test_get_queryset_takes_keyword_only_instance_and_serves_prefetching(monkeypatch):
    # Django 6.1: Forward/ReverseOneToOneDescriptor.get_queryset(*, instance)
    # is keyword-only and prefetching calls it too (with the first instance),
    # so it no longer tells a lazy load from a prefetch: dualcall guards the
    # fetchers instead and leaves get_queryset alone.  If this breaks, check
    # that the fetcher guards still see every lazy load.
    for cls in (ForwardManyToOneDescriptor, ReverseOneToOneDescriptor):
        assert not hasattr(vars(cls)["get_queryset"], "__wrapped__")
        (param,) = list(inspect.signature(cls.get_queryset).parameters.values())[1:]
        assert (param.name, param.kind) == ("instance", inspect.Parameter.KEYWORD_ONLY)
    question = Question.objects.create(question_text="q")
    Choice.objects.create(question=question, choice_text="c")
    calls = record_calls(monkeypatch, ForwardManyToOneDescriptor, "get_queryset")
    list(Choice.objects.prefetch_related("question"))
    assert [list(kwargs) for _, kwargs, _ in calls] == [["instance"]]


@with_fetch_modes
def test_fetch_modes_dispatch_to_fetch_one_and_fetch_many():
    # FetchMode.fetch(fetcher, instance): FETCH_ONE calls fetcher.fetch_one(
    # instance); FETCH_PEERS calls fetcher.fetch_many(peers) when the instance
    # has live peers (fetch_one otherwise); FETCH_RAISE calls neither and
    # raises FieldFetchBlocked naming the field.  dualcall's fetcher guards
    # rely on this: Django's FieldFetchBlocked stands under RAISE, and
    # FETCH_PEERS errors name the field.  If this breaks, re-read
    # django/db/models/fetch_modes.py and guard what the modes now call.
    from django.core.exceptions import FieldFetchBlocked
    from django.db.models import FETCH_ONE, FETCH_PEERS, FETCH_RAISE

    calls = []

    class Fetcher:
        field = Post._meta.get_field("body")

        def fetch_one(self, instance):
            calls.append(("one", instance))

        def fetch_many(self, instances):
            calls.append(("many", list(instances)))

    for title in ("a", "b"):
        Post.objects.create(title=title)
    peers = list(Post.objects.fetch_mode(FETCH_PEERS))
    alone = Post.objects.get(title="a")
    FETCH_ONE.fetch(Fetcher(), alone)
    FETCH_PEERS.fetch(Fetcher(), peers[0])
    FETCH_PEERS.fetch(Fetcher(), alone)
    assert calls == [("one", alone), ("many", peers), ("one", alone)]
    with pytest.raises(FieldFetchBlocked, match=r"^Fetching of Post\.body blocked\.$"):
        FETCH_RAISE.fetch(Fetcher(), alone)
    assert len(calls) == 3
    assert peers[0]._state.fetch_mode is FETCH_PEERS and alone._state.fetch_mode is FETCH_ONE


@with_fetch_modes
def test_lazy_loads_go_through_the_instance_fetch_mode():
    # Every single-valued lazy load calls instance._state.fetch_mode.fetch(
    # descriptor, instance), and only when it must query (not for a cached,
    # select_related, prefetched or null value).  If this breaks, a lazy load
    # bypasses the fetchers: guard its new path.
    from django.db.models import FETCH_ONE

    calls = []

    class Recording:
        track_peers = False

        def fetch(self, fetcher, instance):
            calls.append(type(fetcher).__name__)
            FETCH_ONE.fetch(fetcher, instance)

    question = Question.objects.create(question_text="q")
    choice = Choice.objects.create(question=question, choice_text="c")
    author = Author.objects.create(name="Ada")
    Profile.objects.create(author=author)
    post = Post.objects.create(title="p", body="b")
    comment = Comment.objects.create(content_object=post, text="c")
    instances = [
        (Choice.objects.get(pk=choice.pk), "question"),
        (Author.objects.get(pk=author.pk), "profile"),
        (Post.objects.defer("body").get(pk=post.pk), "body"),
        (Comment.objects.get(pk=comment.pk), "content_object"),
    ]
    for instance, name in instances:
        instance._state.fetch_mode = Recording()
        getattr(instance, name), getattr(instance, name)
    assert calls == [
        "ForwardManyToOneDescriptor",
        "ReverseOneToOneDescriptor",
        "DeferredAttribute",
        "GenericForeignKeyDescriptor",
    ]
    calls.clear()
    selected = Choice.objects.select_related("question").get(pk=choice.pk)
    prefetched = Comment.objects.prefetch_related("content_object").get(pk=comment.pk)
    for instance in (selected, prefetched, Post.objects.create(title="orphan")):
        instance._state.fetch_mode = Recording()
    _ = selected.question, prefetched.content_object, Post.objects.last().author
    assert calls == []


def test_unsaved_instance_deferred_field_per_version():
    # Reading a deferred field of an unsaved instance: Django 4.2 loads it
    # (refresh_from_db()), 5.2 raises AttributeError for a generated field
    # only, 6.0+ raises AttributeError for every field.  The deferred-field
    # guard lets Django's AttributeError stand where compat's probe of
    # DeferredAttribute.__get__ says Django raises.  If this breaks, the
    # probe in compat._unsaved_read_raises() no longer fits
    # DeferredAttribute.__get__: adapt its stubs.
    generated = (compat._unsaved_read_raises(False), compat._unsaved_read_raises(True))
    expected = {(4, 2): (False, False), (5, 2): (False, True)}.get(django.VERSION[:2], (True, True))
    assert generated == expected
    # The probe agrees with Django's real behaviour (sync code: plain Django).
    post = Post.objects.create(title="t", body="b")
    post = Post.objects.defer("body").get(pk=post.pk)
    post.pk = None
    field = Post._meta.get_field("body")
    if compat.unsaved_deferred_read_raises(field):
        message = "Cannot retrieve deferred field 'body' from an unsaved model."
        with pytest.raises(AttributeError, match=f"^{re.escape(message)}$"):
            _ = post.body
    else:
        with pytest.raises(Post.DoesNotExist):
            _ = post.body
