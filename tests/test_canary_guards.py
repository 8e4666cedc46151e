"""Canaries: the Django internals the guards and the ``.a`` namespace rely on.

Each test pins one internal, checked against Django's original function (the
``__wrapped__`` of the guard).  When one breaks on a new Django version, its
comment says what to change; the targets are in ``dualcall.targets.guards()``,
the readers in ``dualcall.namespace``.
"""

import sys

import pytest
from django.contrib.contenttypes.fields import GenericForeignKey
from django.db.models import Model, QuerySet
from django.db.models.fields.related_descriptors import (
    ForwardManyToOneDescriptor,
    ReverseOneToOneDescriptor,
)
from django.db.models.query_utils import DeferredAttribute
from django.test.utils import isolate_apps

from dualcall.guards import ORIGIN, related_manager_accessor
from dualcall.namespace import _prefetch_cache_name
from tests.testapp.models import Author, Choice, Comment, Place, Post, Profile, Question, Tag

pytestmark = pytest.mark.django_db


def record_calls(monkeypatch, owner, name):
    """Replace owner.name by a recorder of (args, kwargs, caller code) around Django's original."""
    original = vars(owner)[name].__wrapped__
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
