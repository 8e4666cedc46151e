"""Rewrite Django's async ORM tests to dualcall's dual names, for ``compat/async_run.py``.

    python compat/async_rewrite.py DJANGO_TESTS_DIR OUT_DIR   # prints what it changed

Django's tests call the ``a``-methods (``await SimpleModel.objects.aget(field=1)``);
with dualcall the same call is ``await SimpleModel.objects.get(field=1)``.  For
each file of :data:`FILES` this rewrites, in the ``async def`` functions only:

* every call of an ``a``-method whose sync name is dual in dualcall
  (:mod:`dualcall.targets`: QuerySet and manager methods, related-manager
  methods, model methods): ``.aget(`` becomes ``.get(``, ``.aiterator(``
  ``.iterator(``, ``.asave(`` ``.save(``, ``.aadd(`` ``.add(``...  Other
  ``a`` names are left alone: ``aauthenticate()``, ``self.client.alogin()``,
  ``acreate_user()`` (a custom manager method, not dual), ``page.astart_index()``;
* the base ``TestCase`` (or ``TransactionTestCase``) of each class that has
  ``async def`` tests becomes ``dualcall_native_case.NativeAsyncTestCase``:
  a ``TransactionTestCase`` that runs ``setUpTestData()`` before each test and
  each ``async def`` test on a fresh event loop in a plain thread, so that the
  native path is allowed to run (in a ``TestCase`` transaction, or under
  ``async_to_sync``, dualcall takes the thread path by design); the class's
  sync tests are not collected (``make compat`` runs them unchanged);
* ``@async_to_sync`` on a test method of such a class is removed (the line
  is left blank), for the same reason.

The edits are made in place in the source text (the AST gives the
positions), so every line keeps its number and tracebacks point at the same
lines as upstream.  A required file in which nothing was rewritten fails the
run: Django's layout changed and this script must follow it.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: (file under tests/, required): the async ORM tests of Django 4.2 to 6.1.
#: A required file that is missing or has no rewritten call fails the run.
FILES: list[tuple[str, bool]] = [
    ("async/test_async_queryset.py", True),
    ("async/test_async_model_methods.py", True),
    ("async/test_async_related_managers.py", True),
    ("async/test_async_auth.py", False),  # asave() among the auth functions (5.0+)
    ("generic_relations/tests.py", False),  # generic related managers: aadd, aset (5.0+)
    # User.objects.acreate(), user.asave(), user.groups.aadd(), acount()... (5.0+)
    ("auth_tests/test_auth_backends.py", False),
    ("auth_tests/test_remote_user.py", False),
    ("auth_tests/test_models.py", False),
]

#: Receivers whose ``a`` methods are not the ORM's (the test client, caches).
NOT_ORM_RECEIVERS = frozenset({"client", "async_client", "cache", "caches", "session"})

#: The base class that replaces ``TestCase`` (compat/dualcall_native_case.py).
NATIVE_BASE = '__import__("dualcall_native_case").NativeAsyncTestCase'


def dual_names() -> frozenset[str]:
    """The sync names that are dual in dualcall (from its own tables)."""
    from dualcall.targets import MODEL_METHODS, QUERYSET_METHODS, RELATED_MANAGER_METHODS

    return frozenset(QUERYSET_METHODS) | frozenset(RELATED_MANAGER_METHODS) | frozenset(
        MODEL_METHODS
    )


@dataclass
class Rewritten:
    """What :func:`rewrite_source` changed in one file."""

    source: str
    calls: list[tuple[int, str, str]] = field(default_factory=list)  # (line, old, new)
    classes: list[str] = field(default_factory=list)
    unchanged_classes: list[str] = field(default_factory=list)  # async tests, other base
    decorators: list[int] = field(default_factory=list)
    sync_tests: int = 0  # sync tests of the rebased classes: not collected
    collected: list[str] = field(default_factory=list)  # rebased classes and their subclasses


def _receiver_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _is_async_to_sync(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "async_to_sync") or (
        isinstance(node, ast.Attribute) and node.attr == "async_to_sync"
    )


def rewrite_source(source: str, filename: str, names: frozenset[str]) -> Rewritten:
    """Rewrite one test module; see the module docstring."""
    tree = ast.parse(source, filename)
    lines = source.splitlines(keepends=True)
    # (line index, start col, end col, replacement), columns in UTF-8 bytes (the AST's).
    edits: list[tuple[int, int, int, str]] = []
    result = Rewritten(source)

    class Calls(ast.NodeVisitor):
        def __init__(self) -> None:
            self.in_async = False

        def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
            saved, self.in_async = self.in_async, False
            self.generic_visit(node)
            self.in_async = saved

        def visit_Lambda(self, node: ast.Lambda) -> None:
            saved, self.in_async = self.in_async, False
            self.generic_visit(node)
            self.in_async = saved

        def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
            saved, self.in_async = self.in_async, True
            self.generic_visit(node)
            self.in_async = saved

        def visit_Call(self, node: ast.Call) -> None:
            func = node.func
            if (
                self.in_async
                and isinstance(func, ast.Attribute)
                and func.attr.startswith("a")
                and func.attr[1:] in names
                and _receiver_name(func.value) not in NOT_ORM_RECEIVERS
                and func.end_lineno is not None
                and func.end_col_offset is not None
            ):
                line = func.end_lineno - 1
                end = func.end_col_offset
                start = end - len(func.attr)
                if lines[line].encode()[start:end].decode() != func.attr:
                    raise SystemExit(f"{filename}:{line + 1}: cannot locate .{func.attr}")
                edits.append((line, start, end, func.attr[1:]))
                result.calls.append((line + 1, func.attr, func.attr[1:]))
            self.generic_visit(node)

    Calls().visit(tree)

    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        tests = [
            f for f in cls.body
            if isinstance(f, ast.AsyncFunctionDef) and f.name.startswith("test")
        ]
        if not tests:
            continue
        bases = [
            b for b in cls.bases
            if (_receiver_name(b) in ("TestCase", "TransactionTestCase"))
        ]
        if len(bases) != 1:
            result.unchanged_classes.append(cls.name)
            continue
        base = bases[0]
        assert base.end_lineno is not None and base.end_col_offset is not None
        if base.lineno != base.end_lineno:
            raise SystemExit(f"{filename}:{base.lineno}: a base class over several lines")
        edits.append((base.lineno - 1, base.col_offset, base.end_col_offset, NATIVE_BASE))
        result.classes.append(cls.name)
        result.sync_tests += sum(
            1 for f in cls.body if isinstance(f, ast.FunctionDef) and f.name.startswith("test")
        )
        for test in tests:
            for deco in test.decorator_list:
                if not _is_async_to_sync(deco):
                    continue
                assert deco.end_lineno is not None
                text = lines[deco.lineno - 1]
                if deco.lineno != deco.end_lineno or text.strip() != "@" + ast.unparse(deco):
                    raise SystemExit(
                        f"{filename}:{deco.lineno}: @async_to_sync not on its own line"
                    )
                edits.append((deco.lineno - 1, 0, len(text.rstrip("\r\n").encode()), ""))
                result.decorators.append(deco.lineno)

    # The classes to run: the rebased ones and the module's classes that
    # inherit from them (in source order: a base is defined before its use).
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef) and (
            cls.name in result.classes
            or any(_receiver_name(b) in result.collected for b in cls.bases)
        ):
            result.collected.append(cls.name)

    # Apply right to left within a line, so earlier columns stay valid.
    for line, start, end, new in sorted(edits, reverse=True):
        raw = lines[line].encode()
        lines[line] = (raw[:start] + new.encode() + raw[end:]).decode()
    result.source = "".join(lines)
    if result.source.count("\n") != source.count("\n"):
        raise AssertionError(f"{filename}: the rewrite changed the number of lines")
    ast.parse(result.source, filename)  # still valid Python
    return result


def build(tests: Path, out: Path, names: frozenset[str] | None = None) -> tuple[list[str], bool]:
    """Make *out* a copy of Django's *tests* dir with :data:`FILES` rewritten.

    Every entry of *tests* is a symlink, except the apps of :data:`FILES`,
    which are directories of symlinks with the rewritten files written in
    (only those test modules: the app's other tests are not run).  Returns
    the runtests labels of the rebased classes and of the classes that
    inherit from them (not the modules' other classes: they are unchanged
    upstream tests, which ``make compat`` runs), and whether every required
    file was rewritten.
    """
    names = names or dual_names()
    if out.exists():
        _remove_tree(out)
    out.mkdir(parents=True)
    apps = {Path(rel).parts[0] for rel, _ in FILES}
    for entry in sorted(tests.iterdir()):
        if entry.name in apps or entry.name == "__pycache__":
            continue
        (out / entry.name).symlink_to(entry)
    for app in sorted(apps):
        if not (tests / app).is_dir():
            continue
        (out / app).mkdir()
        for entry in sorted((tests / app).iterdir()):
            if entry.name == "__pycache__" or (
                entry.suffix == ".py" and (entry.name.startswith("test"))
            ):
                continue  # the app's own tests: only the rewritten ones are copied
            (out / app / entry.name).symlink_to(entry)

    labels: list[str] = []
    ok = True
    for rel, required in FILES:
        path = tests / rel
        if not path.exists():
            print(f"compat-async: {rel}: not in this version"
                  + (" (REQUIRED: the upstream layout changed)" if required else ""))
            ok = ok and not required
            continue
        rewritten = rewrite_source(path.read_text(), str(path), names)
        (out / rel).write_text(rewritten.source)
        calls = len(rewritten.calls)
        if not calls or not rewritten.classes:
            if required:
                print(f"compat-async: {rel}: NOTHING REWRITTEN ({calls} calls,"
                      f" {len(rewritten.classes)} classes): the upstream layout changed")
                ok = False
            else:
                print(f"compat-async: {rel}: no async ORM test in this version")
            continue
        counts: dict[str, int] = {}
        for _, old, _new in rewritten.calls:
            counts[old] = counts.get(old, 0) + 1
        detail = ", ".join(f"{k}->{k[1:]} x{v}" for k, v in sorted(counts.items()))
        print(f"compat-async: {rel}: {calls} calls rewritten ({detail}); "
              f"{len(rewritten.classes)} class(es) on NativeAsyncTestCase"
              f" ({', '.join(rewritten.classes)}),"
              f" {len(rewritten.decorators)} @async_to_sync removed"
              + (f", {rewritten.sync_tests} sync tests left out" if rewritten.sync_tests else ""))
        for name in rewritten.unchanged_classes:
            print(f"compat-async: {rel}: class {name} has async tests and no TestCase base:"
                  " not rebased (its tests run on NativeAsyncTestCase in the classes that"
                  " inherit it from a rebased class, as upstream elsewhere)")
        module = rel[: -len(".py")].replace("/", ".")
        labels.extend(f"{module}.{name}" for name in rewritten.collected)
    return labels, ok


def _remove_tree(path: Path) -> None:
    # Symlinks are unlinked, never followed: the targets are Django's tests.
    for entry in path.iterdir():
        if entry.is_symlink() or entry.is_file():
            entry.unlink()
        else:
            _remove_tree(entry)
    path.rmdir()


if __name__ == "__main__":
    _labels, _ok = build(Path(sys.argv[1]), Path(sys.argv[2]))
    print(" ".join(_labels))
    sys.exit(0 if _ok else 1)
