"""The mypy plugin: static types that follow dualcall's caller rule.

Enable it instead of django-stubs' plugin, which it includes::

    [mypy]
    plugins = dualcall.mypy

    [mypy.plugins.django-stubs]
    django_settings_module = mysite.settings

At run time a dual call returns an awaitable when it is made directly from a
coroutine and runs synchronously anywhere else.  The plugin applies the same
rule to the source: a call that is lexically in the body of an ``async def``
(comprehensions and generator expressions belong to the function they are
in; lambdas, nested ``def`` s and class bodies are not coroutines) gets the
async type, every other call keeps django-stubs' type exactly.

=================================  ===========================================
in an ``async def`` body           static type
=================================  ===========================================
``Question.objects.get(pk=1)``     ``Coroutine[Any, Any, Question]``: the
                                   sync return type T of every dual method
                                   (QuerySet, managers, related managers,
                                   ``as_manager()`` / ``from_queryset()``
                                   copies, model methods and overrides,
                                   ``@dualmethod`` functions and methods)
                                   becomes ``Coroutine[Any, Any, T]``
``qs.iterator()``                  ``AsyncIterator[Row]``
``await qs``                       ``list[Row]``: models, ``values()`` dicts,
                                   ``values_list()`` tuples or values
``instance.a.<name>``              ``Coroutine[Any, Any, T]`` of the field's
                                   or relation's type (``list[Model]`` for a
                                   to-many relation), anywhere; other names
                                   are an error
``method.__acall__(...)``          the async type above, anywhere
=================================  ===========================================

Forgotten awaits become errors: a dual call used as a statement is mypy's
``unused-coroutine``, an attribute of its result is ``attr-defined`` ("Maybe
you forgot to use await?"), and one tested for truth (``if qs.exists():``,
``not ...``, ``and``/``or``, ``while``, ``assert``, a conditional expression
or a comprehension's ``if``) is this plugin's ``truthy-coroutine``.

The plugin subclasses django-stubs' plugin class: mypy asks only the first
plugin of its list for a method's hook, and django-stubs hooks most QuerySet
and manager methods, so two separate plugins could not both apply.  Each hook
here runs django-stubs' hook first and changes only the result.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable
from functools import partial
from typing import Any

from mypy.checker import TypeChecker
from mypy.checkmember import analyze_member_access
from mypy.errorcodes import ATTR_DEFINED, TRUTHY_BOOL, ErrorCode
from mypy.maptype import map_instance_to_supertype
from mypy.nodes import (
    MDEF,
    Context,
    Decorator,
    FakeInfo,
    FuncBase,
    FuncDef,
    FuncItem,
    MypyFile,
    OverloadedFuncDef,
    RefExpr,
    SymbolTableNode,
    TypeInfo,
    Var,
)
from mypy.options import Options
from mypy.plugin import (
    AttributeContext,
    ClassDefContext,
    FunctionContext,
    MethodContext,
    Plugin,
)
from mypy.types import (
    AnyType,
    CallableType,
    Instance,
    NoneType,
    Type,
    TypeOfAny,
    TypeVarType,
    UnionType,
    get_proper_type,
)
from mypy_django_plugin.main import NewSemanalDjangoPlugin

from .descriptors import ASYNC_ITERATOR, AWAITABLE
from .targets import MODEL_METHODS, QUERYSET_METHODS, RELATED_MANAGER_METHODS

__all__ = ["TRUTHY_COROUTINE", "DualcallPlugin", "plugin"]

#: The error of an un-awaited dual call tested for truth (``if qs.exists():``).
TRUTHY_COROUTINE = ErrorCode(
    "truthy-coroutine",
    "Warn about a dual call's awaitable tested for truth instead of awaited",
    "General",
)

_QUERYSET = "django.db.models.query.QuerySet"
_RAW_QUERYSET = "django.db.models.query.RawQuerySet"
_BASE_MANAGER = "django.db.models.manager.BaseManager"
_MODEL = "django.db.models.base.Model"
_FUNCTION = "builtins.function"
_AWAITABLE_ATTRS = "dualcall.typed.AwaitableAttrs"
_BASE_COMMAND = "django.core.management.base.BaseCommand"
_DUALMETHOD = frozenset({"dualcall.dualmethod", "dualcall.descriptors.dualmethod"})
_MANAGER_METHODS = {**QUERYSET_METHODS, **RELATED_MANAGER_METHODS}

Hook = Callable[[Any], Type]


class DualcallPlugin(NewSemanalDjangoPlugin):
    """django-stubs' plugin, plus dualcall's async types (see the module docstring)."""

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        #: The namespace's name: the ``DUALCALL_NAMESPACE`` setting, default ``"a"``.
        self.namespace = str(getattr(self.django_context.settings, "DUALCALL_NAMESPACE", "a"))

    # -- semantic analysis: the attributes dualcall adds at run time ------------

    def get_additional_deps(self, file: MypyFile) -> list[tuple[int, str, int]]:
        """Django's model module also loads :mod:`dualcall.typed` (the type of ``.a``)."""
        deps = super().get_additional_deps(file)
        if file.fullname == "django.db.models.base":
            deps.append((10, "dualcall.typed", -1))
        return deps

    def get_customize_class_mro_hook(
        self, fullname: str
    ) -> Callable[[ClassDefContext], None] | None:
        """Declare ``QuerySet.__await__``, ``Model.a`` and ``function.__acall__``; widen
        ``BaseCommand.handle`` (see :func:`_awaitable_handle`).

        Each is an ``Any`` attribute whose precise type an attribute hook gives
        at each use (the type depends on the instance).
        """
        hook = super().get_customize_class_mro_hook(fullname)
        names = {
            _QUERYSET: "__await__",
            _RAW_QUERYSET: "__await__",
            _MODEL: self.namespace,
            _FUNCTION: "__acall__",
        }
        if fullname == _BASE_COMMAND:
            return partial(_awaitable_handle, then=hook)
        name = names.get(fullname)
        if name is None:
            return hook
        return partial(_declare_attribute, name=name, then=hook, read_only=name == self.namespace)

    # -- type checking --------------------------------------------------------

    def get_attribute_hook(self, fullname: str) -> Callable[[AttributeContext], Type] | None:
        """Type ``await qs``, ``instance.a``, ``instance.a.<name>`` and ``__acall__``."""
        class_name, _, name = fullname.rpartition(".")
        if name == "__await__" and class_name in (_QUERYSET, _RAW_QUERYSET):
            return _queryset_await
        if class_name == _MODEL and name == self.namespace:
            return self._namespace
        if class_name == _AWAITABLE_ATTRS:
            return partial(self._namespace_attribute, name=name)
        if class_name == _FUNCTION and name == "__acall__":
            return self._acall
        return super().get_attribute_hook(fullname)

    def get_method_hook(self, fullname: str) -> Callable[[MethodContext], Type] | None:
        """Dual methods called from a coroutine return a coroutine (or an async iterator)."""
        hook = super().get_method_hook(fullname)
        class_name, _, name = fullname.rpartition(".")
        if name.startswith("__") or class_name.startswith("builtins."):
            return hook
        info = self._get_typeinfo_or_none(class_name)
        kind = info and self._dual_kind(info, name)
        if not kind:
            return hook
        return partial(_dual_call, kind=kind, then=hook)

    def get_function_hook(self, fullname: str) -> Callable[[FunctionContext], Type] | None:
        """``@dualmethod`` functions called from a coroutine return a coroutine."""
        hook = super().get_function_hook(fullname)
        symbol = self.lookup_fully_qualified(fullname)
        if symbol is None or not self._is_dualmethod(symbol.node):
            return hook
        return partial(_dual_call, kind=AWAITABLE, then=hook)

    def _dual_kind(self, info: TypeInfo, name: str) -> str | None:
        """The kind of *info*'s method *name* if it is dual, else ``None``."""
        symbol = info.get(name)
        if symbol is None:
            return None
        if self._is_dualmethod(symbol.node):
            return AWAITABLE
        # A manager built by from_queryset() / as_manager(): django-stubs
        # copies the QuerySet's methods, not their decorators.
        for base in info.mro:
            queryset = base.metadata.get("django", {}).get("from_queryset_manager")
            if isinstance(queryset, str):
                queryset_info = self._get_typeinfo_or_none(queryset)
                found = queryset_info and queryset_info.get(name)
                if found and self._is_dualmethod(found.node):
                    return AWAITABLE
        if info.has_base(_QUERYSET):
            return QUERYSET_METHODS.get(name)
        if info.has_base(_BASE_MANAGER):
            return _MANAGER_METHODS.get(name)
        if info.has_base(_MODEL):
            return MODEL_METHODS.get(name)
        return None

    def _is_dualmethod(self, node: object) -> bool:
        """Whether *node* is a function or method decorated with :func:`dualcall.dualmethod`.

        A module loaded from mypy's cache keeps no decorator expressions: its
        source file says which functions are decorated.
        """
        if isinstance(node, OverloadedFuncDef):
            return any(self._is_dualmethod(item) for item in node.items)
        if not isinstance(node, Decorator):
            return False
        if node.original_decorators:
            return any(
                isinstance(decorator, RefExpr) and decorator.fullname in _DUALMETHOD
                for decorator in node.original_decorators
            )
        modules = self._modules or {}
        module_name = node.fullname.rpartition(".")[0]
        while module_name and module_name not in modules:
            module_name = module_name.rpartition(".")[0]
        module = modules.get(module_name)
        if module is None:
            return False
        qualified = node.fullname[len(module.fullname) + 1 :]
        return qualified in _source_dualmethods(module.path, module.fullname)

    def _namespace(self, ctx: AttributeContext) -> Type:
        """``instance.a``: ``AwaitableAttrs[Model]``."""
        model = get_proper_type(ctx.type)
        if isinstance(model, TypeVarType):  # self in a method: its bound
            model = get_proper_type(model.upper_bound)
        info = self._get_typeinfo_or_none(_AWAITABLE_ATTRS)
        if info is None or not isinstance(model, Instance):
            return ctx.default_attr_type
        return Instance(info, [model])

    def _namespace_attribute(self, ctx: AttributeContext, name: str) -> Type:
        """``instance.a.<name>``: a coroutine of the field's or relation's type."""
        api = ctx.api
        namespace = get_proper_type(ctx.type)
        if not isinstance(api, TypeChecker) or not isinstance(namespace, Instance):
            return ctx.default_attr_type
        model = get_proper_type(namespace.args[0]) if namespace.args else None
        if not isinstance(model, Instance):
            return ctx.default_attr_type
        kind = self._relation_kind(model.type, name)
        if kind is None:
            api.fail(
                f'"{model.type.name}" has no field or relation "{name}" to await '
                f"(instance.{self.namespace}.<name> takes a field or relation name)",
                ctx.context,
                code=ATTR_DEFINED,
            )
            return AnyType(TypeOfAny.from_error)
        value = analyze_member_access(
            name,
            model,
            ctx.context,
            is_lvalue=False,
            is_super=False,
            is_operator=False,
            original_type=model,
            chk=api,
            suppress_errors=True,
        )
        if kind == "many":
            value = api.named_generic_type("builtins.list", [_manager_model(value)])
        _check_truthiness(api, ctx.context)
        return _coroutine(api, value)

    def _relation_kind(self, info: TypeInfo, name: str) -> str | None:
        """``"one"`` (a value), ``"many"`` (a list) or ``None`` (no field or relation).

        Decided as at run time (:mod:`dualcall.namespace`): by the descriptor
        Django put on the model class under *name*.
        """
        model = self.django_context.get_model_class_by_fullname(info.fullname)
        if model is None:  # not a registered model (abstract): trust the stubs
            return "one" if info.get(name) is not None else None
        from django.db.models.fields.related_descriptors import (
            ForwardManyToOneDescriptor,
            ReverseManyToOneDescriptor,
            ReverseOneToOneDescriptor,
        )
        from django.db.models.query_utils import DeferredAttribute

        one: tuple[type, ...] = (
            DeferredAttribute,
            ForwardManyToOneDescriptor,
            ReverseOneToOneDescriptor,
        )
        if self.django_context.apps_registry.is_installed("django.contrib.contenttypes"):
            from .compat import generic_foreign_key_accessor

            # The GenericForeignKey itself, or 6.1's GenericForeignKeyDescriptor.
            one += (generic_foreign_key_accessor(),)
        for klass in model.__mro__:
            if name in vars(klass):
                descriptor = vars(klass)[name]
                if isinstance(descriptor, ReverseManyToOneDescriptor):
                    return "many"
                if isinstance(descriptor, one):
                    return "one"
                return None
        return None

    def _acall(self, ctx: AttributeContext) -> Type:
        """``method.__acall__``: the method's signature, returning its async type."""
        api = ctx.api
        method = get_proper_type(ctx.type)
        kind = None
        definition = method.definition if isinstance(method, CallableType) else None
        function = definition.func if isinstance(definition, Decorator) else definition
        if isinstance(function, FuncBase):
            symbol = self.lookup_fully_qualified(function.fullname)
            if self._is_dualmethod(definition) or (
                symbol is not None and self._is_dualmethod(symbol.node)
            ):
                kind = AWAITABLE
            elif not isinstance(function.info, FakeInfo):
                kind = self._dual_kind(function.info, function.name)
        if not isinstance(method, CallableType) or kind is None or not isinstance(api, TypeChecker):
            api.fail(
                '"__acall__" is defined only on dual methods (dualcall.targets, @dualmethod)',
                ctx.context,
                code=ATTR_DEFINED,
            )
            return AnyType(TypeOfAny.from_error)
        return method.copy_modified(ret_type=_async_type(api, kind, method.ret_type))


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point: ``plugins = dualcall.mypy``."""
    return DualcallPlugin


# -- semantic analysis ----------------------------------------------------------


def _declare_attribute(
    ctx: ClassDefContext,
    name: str,
    then: Callable[[ClassDefContext], None] | None,
    read_only: bool = False,
) -> None:
    """Declare *name* on the class being analysed, as an ``Any`` attribute.

    *read_only*: a read-only property, as ``Model.a`` is at run time.
    """
    if then is not None:
        then(ctx)
    info = ctx.cls.info
    if name in info.names:
        return
    var = Var(name, AnyType(TypeOfAny.special_form))
    var.info = info
    var._fullname = f"{info.fullname}.{name}"
    var.is_property = read_only
    info.names[name] = SymbolTableNode(MDEF, var, plugin_generated=True)


def _awaitable_handle(ctx: ClassDefContext, then: Callable[[ClassDefContext], None] | None) -> None:
    """``BaseCommand.handle`` may return an awaitable: ``AsyncCommand`` runs it.

    mypy checks an override against every base, so ``async def handle`` in an
    :class:`~dualcall.management.AsyncCommand` would conflict with
    django-stubs' ``BaseCommand.handle() -> str | None`` however
    ``AsyncCommand`` declares it.  The return type of the (not yet analysed)
    declaration gains ``| Awaitable[Any]``.
    """
    if then is not None:
        then(ctx)
    awaitable = ctx.api.lookup_fully_qualified_or_none("typing.Awaitable")
    if awaitable is None or not isinstance(awaitable.node, TypeInfo):
        return
    for statement in ctx.cls.defs.body:
        if isinstance(statement, FuncDef) and statement.name == "handle":
            declared = statement.unanalyzed_type
            if not isinstance(declared, CallableType):
                continue
            widened = get_proper_type(declared.ret_type)
            if isinstance(widened, UnionType) and any(
                isinstance(item, Instance) and item.type is awaitable.node
                for item in widened.items
            ):
                continue  # a second pass over the class
            extra = Instance(awaitable.node, [AnyType(TypeOfAny.special_form)])
            ret = UnionType([declared.ret_type, extra])
            statement.unanalyzed_type = declared.copy_modified(ret_type=ret)
            if isinstance(statement.type, CallableType):
                statement.type = statement.type.copy_modified(ret_type=ret)


# -- type checking ----------------------------------------------------------------


def in_coroutine(api: object) -> bool:
    """Whether the checker is in the body of an ``async def``, as the runtime decides.

    The innermost function or class being checked decides: an ``async def``
    (or async generator) is a coroutine; a lambda, a nested ``def``, a class
    body and module level are not.  Comprehensions are no scope here, so they
    belong to their function, as dualcall looks through their frames.
    """
    if not isinstance(api, TypeChecker):
        return False
    for item in reversed(api.scope.stack):
        if isinstance(item, FuncItem):
            return item.is_coroutine
        if isinstance(item, (TypeInfo, MypyFile)):
            return False
    return False


def _dual_call(ctx: Any, kind: str, then: Hook | None) -> Type:
    """A method or function hook: django-stubs' type, made async in a coroutine."""
    sync_type = then(ctx) if then is not None else ctx.default_return_type
    api = ctx.api
    if not in_coroutine(api):
        return sync_type
    _check_truthiness(api, ctx.context)
    return _async_type(api, kind, sync_type)


def _async_type(api: TypeChecker, kind: str, sync_type: Type) -> Type:
    if kind == ASYNC_ITERATOR:
        item: Type = AnyType(TypeOfAny.special_form)
        iterator = get_proper_type(sync_type)
        if isinstance(iterator, Instance):
            iterator_info = api.named_type("typing.Iterator").type
            if iterator.type.has_base(iterator_info.fullname):
                item = map_instance_to_supertype(iterator, iterator_info).args[0]
        return api.named_generic_type("typing.AsyncIterator", [item])
    return _coroutine(api, sync_type)


def _coroutine(api: TypeChecker, value: Type) -> Type:
    any_type = AnyType(TypeOfAny.special_form)
    return api.named_generic_type("typing.Coroutine", [any_type, any_type, value])


def _queryset_await(ctx: AttributeContext) -> Type:
    """``QuerySet.__await__``: a method returning a generator whose value is ``list[Row]``."""
    api = ctx.api
    queryset = get_proper_type(ctx.type)
    if not isinstance(api, TypeChecker) or not isinstance(queryset, Instance):
        return ctx.default_attr_type
    row: Type = AnyType(TypeOfAny.special_form)
    for fullname, index in ((_QUERYSET, 1), (_RAW_QUERYSET, 0)):
        base = next((b for b in queryset.type.mro if b.fullname == fullname), None)
        if base is not None:
            args = map_instance_to_supertype(queryset, base).args
            if len(args) > index:
                row = args[index]
            break
    any_type = AnyType(TypeOfAny.special_form)
    generator = api.named_generic_type(
        "typing.Generator", [any_type, NoneType(), api.named_generic_type("builtins.list", [row])]
    )
    return CallableType(
        [],
        [],
        [],
        generator,
        api.named_type("builtins.function"),
        name="__await__",
    )


def _manager_model(manager: Type) -> Type:
    """The model of a related manager type (``RelatedManager[Choice]`` -> ``Choice``)."""
    manager = get_proper_type(manager)
    if isinstance(manager, Instance):
        for base in manager.type.mro:
            if base.fullname == _BASE_MANAGER:
                args = map_instance_to_supertype(manager, base).args
                if args:
                    return args[0]
    return AnyType(TypeOfAny.special_form)


# Per source file: the qualified names of its @dualmethod functions, keyed
# by (path, size, modification time).
_dualmethods: dict[tuple[tuple[str, int, int], str], frozenset[str]] = {}


def _source_key(path: str) -> tuple[str, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (path, stat.st_size, stat.st_mtime_ns)


def _parse(path: str) -> ast.Module | None:
    try:
        with open(path, "rb") as source:
            return ast.parse(source.read(), path)
    except (OSError, SyntaxError, ValueError):
        return None


def _source_dualmethods(path: str, module: str) -> frozenset[str]:
    """The qualified names (``f``, ``Class.method``) of *path*'s ``@dualmethod`` functions.

    *module* is the module's name, for relative imports.  A decorator counts
    when it is ``dualmethod`` imported from ``dualcall`` or
    ``dualcall.descriptors`` (under any alias), or ``dualcall.dualmethod``.
    """
    source = _source_key(path)
    if source is None:
        return frozenset()
    key = (source, module)
    found = _dualmethods.get(key)
    if found is not None:
        return found
    tree = _parse(path)
    names: set[str] = set()
    if tree is not None:
        package = module if os.path.basename(path) == "__init__.py" else module.rpartition(".")[0]
        aliases = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and _absolute(node, package) in ("dualcall", "dualcall.descriptors")
            for alias in node.names
            if alias.name == "dualmethod"
        }

        def is_dual(decorator: ast.expr) -> bool:
            if isinstance(decorator, ast.Name):
                return decorator.id in aliases
            return ast.unparse(decorator) in _DUALMETHOD

        def visit(body: list[ast.stmt], prefix: str) -> None:
            for node in body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    if any(is_dual(d) for d in node.decorator_list):
                        names.add(prefix + node.name)
                elif isinstance(node, ast.ClassDef):
                    visit(node.body, f"{prefix}{node.name}.")
                elif isinstance(node, (ast.If, ast.Try)):
                    visit(node.body, prefix)
                    visit(node.orelse, prefix)

        visit(tree.body, "")
    found = _dualmethods[key] = frozenset(names)
    return found


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The module an ``import from`` names, relative imports resolved from *package*."""
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join([*base, node.module] if node.module else base)


# Per source file: the spans of its expressions that are tested for truth,
# keyed by (path, size, modification time).
_conditions: dict[tuple[str, int, int], frozenset[tuple[int, int, int, int]]] = {}


def _truth_tested(path: str) -> frozenset[tuple[int, int, int, int]]:
    """The spans ``(line, column, end line, end column)`` of *path*'s tested expressions.

    Tested for truth: the test of ``if``, ``elif``, ``while``, ``assert`` and
    of a conditional expression, the operand of ``not``, the operands of
    ``and`` / ``or``, and a comprehension's ``if``.  mypy's expressions carry
    the same spans as Python's, so a hook can tell whether the expression it
    types is one of them.
    """
    key = _source_key(path)
    if key is None:
        return frozenset()
    found = _conditions.get(key)
    if found is not None:
        return found
    tree = _parse(path)
    if tree is None:
        return frozenset()
    tested: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.If, ast.While, ast.Assert, ast.IfExp)):
            tested.append(node.test)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            tested.append(node.operand)
        elif isinstance(node, ast.BoolOp):
            tested.extend(node.values)
        elif isinstance(node, ast.comprehension):
            tested.extend(node.ifs)
    found = frozenset(
        (e.lineno, e.col_offset, e.end_lineno or -1, e.end_col_offset or -1) for e in tested
    )
    _conditions[key] = found
    return found


def _check_truthiness(api: TypeChecker, expression: Context) -> None:
    """Report *expression* (an awaitable in a coroutine) if it is tested for truth."""
    if TRUTHY_BOOL in api.options.enabled_error_codes:
        return  # mypy's own truthy-bool reports it
    span = (
        expression.line,
        expression.column,
        expression.end_line or -1,
        expression.end_column or -1,
    )
    if span in _truth_tested(api.path):
        api.fail(
            "A dual call's awaitable is always true; maybe you forgot to use await?",
            expression,
            code=TRUTHY_COROUTINE,
        )
