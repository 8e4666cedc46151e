"""Canaries: the Django internals dualcall relies on.

Each test pins one fact about Django.  When one fails after a Django upgrade,
the comment says what dualcall must change.
"""

import inspect
import sys

import django
from django.db.models import Model, QuerySet
from django.db.models.manager import BaseManager, Manager
from django.db.models.utils import AltersData

from dualcall import context, targets
from dualcall.context import is_coroutine_frame


def test_manager_proxies_share_one_pass_through_code():
    # dualcall.targets.pass_through_codes() takes the code of the function
    # BaseManager._get_queryset_methods() builds for every manager proxy
    # ("manager_method"), and dualcall.context looks through its frames.  If
    # this breaks, Django changed how managers forward to QuerySets: find the
    # new forwarding function and register its code instead.
    methods = BaseManager._get_queryset_methods(QuerySet)
    codes = {methods[name].__code__ for name in ("get", "count", "filter")}
    assert len(codes) == 1
    (code,) = codes
    assert code.co_name == "manager_method"
    assert code in targets.pass_through_codes()
    source = inspect.getsource(code)
    assert "return getattr(self.get_queryset(), name)(*args, **kwargs)" in source


def test_manager_class_gets_proxies_from_from_queryset():
    # Manager's query methods live in the class built by
    # BaseManager.from_queryset(QuerySet), which dualcall wraps in place.
    holder = next(c for c in Manager.__mro__ if "get" in vars(c))
    assert holder is not Manager and issubclass(holder, BaseManager)
    assert vars(holder)["get"].__wrapped__.__code__.co_name == "manager_method"


def test_every_dual_name_exists_on_this_django():
    # The tables in dualcall.targets name what Django 4.2 to 6.1 define.  A
    # name missing here means Django renamed or removed a method: update the
    # table (per version if needed).
    for name in targets.QUERYSET_METHODS:
        assert inspect.isfunction(getattr(QuerySet, name)), name
        # Managers proxy every one of them but those marked queryset_only.
        assert hasattr(Manager, name) or getattr(QuerySet, name).queryset_only, name
    for name in targets.MODEL_METHODS:
        assert inspect.isfunction(getattr(Model, name)), name
    # Django's own async twins: the iterator kind calls "a" + name.
    for name, kind in targets.QUERYSET_METHODS.items():
        if kind == "async-iterator":
            assert inspect.isasyncgenfunction(getattr(QuerySet, "a" + name))


def test_related_managers_are_built_as_manager_subclasses():
    # Related managers (reverse FK, M2M, generic relations) are classes built
    # per relation by create_*_manager(superclass, ...) with the model's
    # default manager class as superclass; dualcall reaches them through the
    # __init_subclass__ hook on BaseManager.  If Django stops subclassing,
    # the related manager factories must be patched instead.
    from django.contrib.contenttypes.fields import create_generic_related_manager
    from django.db.models.fields.related_descriptors import (
        create_forward_many_to_many_manager,
        create_reverse_many_to_one_manager,
    )

    for factory in (
        create_reverse_many_to_one_manager,
        create_forward_many_to_many_manager,
        create_generic_related_manager,
    ):
        assert next(iter(inspect.signature(factory).parameters)) == "superclass"


def test_alters_data_init_subclass():
    # AltersData.__init_subclass__ copies alters_data to overrides; dualcall's
    # hook calls it first (super()), then wraps.  If AltersData disappears the
    # hook keeps working (it calls whatever __init_subclass__ comes next).
    assert issubclass(QuerySet, AltersData) and issubclass(Model, AltersData)
    assert "__init_subclass__" in vars(AltersData)


def test_comprehension_frames_exist_on_this_python():
    # dualcall.context looks through comprehension and generator-expression
    # frames to the frame that runs them.  Generator expressions always have
    # a "<genexpr>" frame.  Python 3.11 also runs list/set/dict
    # comprehensions in frames of their own ("<listcomp>" ...); Python 3.12+
    # inlines them (PEP 709: no frame, the call is made from the enclosing
    # frame itself), which needs nothing.  If this breaks, a new Python
    # changed how comprehensions run: update
    # dualcall.context._comprehension_frame_names().
    frames = [is_coroutine_frame(inspect.currentframe()) for _ in range(1)]
    assert frames == [False]
    names = [inspect.currentframe().f_code.co_name for _ in range(1)]
    genexpr_names = list(inspect.currentframe().f_code.co_name for _ in range(1))
    assert genexpr_names == ["<genexpr>"]
    if sys.version_info >= (3, 12):
        assert names == [sys._getframe().f_code.co_name]  # inlined
        assert {"<genexpr>"} == context._COMPREHENSIONS
    else:
        assert names == ["<listcomp>"]
        assert {"<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>"} == context._COMPREHENSIONS


def test_supported_django_version():
    # The versions dualcall is tested on (docs, setup.cfg classifiers, the
    # venv matrix).  A new series needs the canaries run on it first.
    assert django.VERSION[:2] in ((4, 2), (5, 2), (6, 0), (6, 1))
