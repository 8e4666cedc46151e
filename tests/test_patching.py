"""patch() / unpatch() / is_patched(): idempotent, and unpatch() restores exactly."""

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.db import models
from django.db.models import Model, QuerySet

import dualcall
from dualcall import DualMethod
from tests.testapp.models import Note, Post, PostQuerySet, Question

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def restore_patch():
    yield
    dualcall.patch()


def _django_get():
    return QuerySet.__dict__["get"]


def test_unpatch_patch_patch_unpatch_unpatch(restore_patch):
    patched_get = _django_get()
    original_get = patched_get.__wrapped__
    assert dualcall.is_patched()

    dualcall.unpatch()
    assert not dualcall.is_patched()
    assert _django_get() is original_get
    assert type(_django_get()) is types.FunctionType
    assert "__await__" not in vars(QuerySet)
    assert "__init_subclass__" not in vars(QuerySet)
    assert type(vars(Model)["save"]) is types.FunctionType
    assert type(vars(Post)["save"]) is types.FunctionType
    assert type(vars(PostQuerySet)["create"]) is types.FunctionType
    # Note inherited save() from a mixin before patching: no shadow is left.
    assert "save" not in vars(Note)

    dualcall.patch()
    dualcall.patch()
    assert dualcall.is_patched()
    assert isinstance(_django_get(), DualMethod)
    assert _django_get().__wrapped__ is original_get
    # Patching twice does not wrap twice.
    assert type(_django_get().__wrapped__) is types.FunctionType
    assert isinstance(vars(Note)["save"], DualMethod)

    dualcall.unpatch()
    dualcall.unpatch()
    assert _django_get() is original_get
    assert "save" not in vars(Note)


@pytest.mark.django_db(transaction=True)
async def test_unpatched_async_code_behaves_as_plain_django(restore_patch):
    dualcall.unpatch()
    with pytest.raises(SynchronousOnlyOperation):
        Question.objects.count()
    assert await Question.objects.acount() == 0
    dualcall.patch()
    assert await Question.objects.count() == 0


def test_class_created_while_patched_is_restored(restore_patch):
    class LateQuerySet(QuerySet):
        def count(self):
            return 42

    assert isinstance(vars(LateQuerySet)["count"], DualMethod)
    dualcall.unpatch()
    assert type(vars(LateQuerySet)["count"]) is types.FunctionType
    assert LateQuerySet().count() == 42


def test_class_created_while_unpatched_is_left_alone(restore_patch):
    dualcall.unpatch()

    class PlainQuerySet(QuerySet):
        def count(self):
            return 7

    dualcall.patch()
    # patch() walks every existing subclass, this one included.
    assert isinstance(vars(PlainQuerySet)["count"], DualMethod)
    dualcall.unpatch()
    assert type(vars(PlainQuerySet)["count"]) is types.FunctionType


def test_alters_data_copied_to_overrides_created_while_patched():
    class Custom(models.QuerySet):
        def delete(self):
            return super().delete()

    assert Custom.delete.alters_data is True


SNAPSHOT = r"""
import json, sys
import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "tests.testapp"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
)
django.setup()

import dualcall
from django.db import models
from tests.testapp.models import Post, Question


def every_class():
    seen, stack = {object}, [object]
    while stack:
        for sub in type.__subclasses__(stack.pop()):
            if sub not in seen:
                seen.add(sub)
                stack.append(sub)
    return seen


def snapshot():
    # BaseManager.creation_counter counts manager instances: it moves by itself.
    return {
        f"{cls.__qualname__}@{id(cls)}": {
            name: id(value) for name, value in vars(cls).items()
            if name not in ("__weakref__", "creation_counter")
        }
        for cls in every_class()
        if not str(vars(cls).get("__module__", "")).startswith("dualcall")
    }


# Related manager classes Django builds lazily, before patching.
Question(pk=1).choice_set
before = snapshot()
dualcall.patch()
# Classes created while patched: a model's related managers, a QuerySet subclass.
Post(pk=1).tags
class Late(models.QuerySet):
    def count(self):
        return 1
dualcall.unpatch()
after = snapshot()
changed = sorted(
    key for key in before if key in after and before[key] != after[key]
)
late = [name for name, value in vars(Late).items() if isinstance(value, dualcall.DualMethod)]
manager = [
    name for name, value in vars(type(Post(pk=1).tags)).items()
    if isinstance(value, dualcall.DualMethod)
]
print(json.dumps({"changed": changed, "late": late, "manager": manager, "n": len(before)}))
"""


def test_unpatch_restores_every_attribute_of_every_class():
    """In a fresh process: snapshot every class, patch, unpatch, compare."""
    result = subprocess.run(
        [sys.executable, "-c", SNAPSHOT], cwd=ROOT, capture_output=True, text=True, check=True
    )
    report = json.loads(result.stdout)
    assert report["n"] > 1000
    assert report["changed"] == []
    assert report["late"] == []
    assert report["manager"] == []
