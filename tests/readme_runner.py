"""Run every code block of README.md against the example site; print a JSON report.

    python tests/readme_runner.py README.md      (tests/test_readme.py runs it)

Each fenced block of the README is preceded by a label, an HTML comment that
says how it is checked:

===============================  ============================================
label                            what is done with the block
===============================  ============================================
``<!-- readme: shell -->``       every ``make X`` in it must be a target
                                 (``make -n X``); other commands must be in
                                 :data:`CHECKED_ELSEWHERE`
``<!-- readme: source -->``      compiled (top-level ``await`` allowed): a
                                 models or settings fragment, a view
``<!-- readme: define -->``      run as sync code; its names are kept for the
                                 blocks after it
``<!-- readme: sync -->``        run as sync code (no event loop)
``<!-- readme: async -->``       run as the body of a coroutine, with an event
                                 loop in the thread (an async view)
``<!-- readme: transcript X -->``  a ``>>>`` session, each statement run in
                                 turn as sync code (``sync``), in a coroutine
                                 (``async``: an async view) or as
                                 ``manage.py ashell`` runs it (``ashell``);
                                 its output and exceptions are compared
===============================  ============================================

Runnable blocks start from the same data (see :func:`seed`), in the example
site (``examples/``: the ``polls``, ``blog`` and ``school`` apps) on a fresh
SQLite database.  Code is compiled with the README's name and line numbers,
so a message that names a line names the README's.  In compared output, a
location (``views.py:12``, ``README.md:174``) matches any location, and a
traceback's body (``...``) is not compared: only its last line.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT

#: Commands of shell blocks that are not make targets, and the test that runs them.
CHECKED_ELSEWHERE = {
    "pip install /path/to/dualcall": "scripts/package.sh installs the package alone",
    "pip install dist/dualcall-*.whl": "scripts/package.sh installs the wheel alone",
    "bash scripts/pgserver.sh start|env|stop": "scripts/test.sh runs the server",
}

LABEL = re.compile(r"<!--\s*readme:\s*([\w ]+?)\s*-->")
LOCATION = re.compile(r"[\w./<>-]+\.(?:py|md):\d+")


@dataclass
class Block:
    label: str
    info: str
    line: int  # README line of the block's first code line
    code: str


def blocks(text: str) -> list[Block]:
    """Every fenced block with its label; a block without one is an error block."""
    lines = text.split("\n")
    found: list[Block] = []
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith("```"):
            info = stripped[3:].strip()
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            match = LABEL.fullmatch(lines[j].strip()) if j >= 0 else None
            indent = len(lines[i]) - len(lines[i].lstrip())
            k = i + 1
            while not lines[k].strip().startswith("```"):
                k += 1
            code = "\n".join(line[indent:] for line in lines[i + 1 : k])
            found.append(Block(match.group(1) if match else "", info, i + 2, code))
            i = k + 1
        else:
            i += 1
    return found


# -- the project ------------------------------------------------------------


def setup_django(database: str) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "demosite.settings"
    os.environ["DUALCALL_EXAMPLES_DB"] = "sqlite"
    os.environ["DUALCALL_EXAMPLES_SQLITE"] = database
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def seed() -> None:
    """The data every runnable block starts from."""
    from blog.models import Post, Tag
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.utils import timezone
    from polls.models import Choice, Question
    from school.models import InSchoolUser

    call_command("flush", verbosity=0, interactive=False)
    when = timezone.datetime(2026, 11, 1, 12, tzinfo=timezone.get_current_timezone())
    question = Question.objects.create(pk=1, question_text="What's new?", pub_date=when)
    Choice.objects.create(pk=1, question=question, choice_text="Not much")
    Choice.objects.create(pk=2, question=question, choice_text="The sky")
    tag = Tag.objects.create(name="django")
    post = Post.objects.create(pk=1, title="Hello", body="First post", published=True)
    post.tags.add(tag)
    teacher = User.objects.create_user("frizzle", password="magic-school-bus")
    InSchoolUser.objects.create(user=teacher, type=InSchoolUser.TEACHER)


def namespace() -> dict[str, object]:
    """What the README's code may use without importing it."""
    import blog.models
    import polls.models
    import school.models
    from asgiref.sync import async_to_sync, sync_to_async
    from django.contrib.auth.models import User
    from django.db import models, transaction
    from django.db.models import F, Prefetch
    from django.utils import timezone

    import dualcall

    ns: dict[str, object] = {"__name__": "readme", "__builtins__": __builtins__}
    for module in (polls.models, blog.models, school.models):
        ns.update({k: v for k, v in vars(module).items() if not k.startswith("_")})
    ns.update(
        asyncio=asyncio, dualcall=dualcall, sync_to_async=sync_to_async,
        async_to_sync=async_to_sync, models=models, transaction=transaction, F=F,
        Prefetch=Prefetch, timezone=timezone, User=User,
    )
    return ns


# -- compiling with the README's line numbers ----------------------------------


def parse(code: str, line: int, mode: str = "exec") -> ast.AST:
    tree = ast.parse(code, "README.md", mode)
    return ast.increment_lineno(tree, line - 1)


def compile_at(code: str, line: int, mode: str = "exec") -> types.CodeType:
    return compile(parse(code, line, mode), "README.md", mode, flags=FLAGS)


def as_coroutine(code: str, line: int) -> types.CodeType:
    """Compile *code* as the body of ``async def __readme__()``, its names global."""
    return _coroutine_from_tree(parse(code, line), line)


async def run_in_coroutine(code: str, line: int, ns: dict[str, object]) -> None:
    exec(as_coroutine(code, line), ns)
    await ns.pop("__readme__")()  # type: ignore[operator]


# -- transcripts -----------------------------------------------------------------


def statements(code: str, first_line: int) -> list[tuple[str, int, list[str]]]:
    """``(source, line, expected output lines)`` of each ``>>>`` statement."""
    result: list[tuple[str, int, list[str]]] = []
    for offset, raw in enumerate(code.split("\n")):
        if raw.startswith(">>> "):
            result.append((raw[4:], first_line + offset, []))
        elif raw.startswith("...") and result and (raw == "..." or raw.startswith("... ")):
            if not result[-1][2]:
                result[-1] = (result[-1][0] + "\n" + raw[4:], result[-1][1], [])
            else:
                result[-1][2].append(raw)
        elif raw.strip() and result:
            result[-1][2].append(raw)
    return result


def normalize(lines: list[str]) -> list[str]:
    """Outputs compared: a traceback by its last line, locations made generic."""
    if lines and lines[0].startswith("Traceback"):
        lines = [lines[-1]]
        name, _, message = lines[0].partition(": ")
        lines = [f"{name.rsplit('.', 1)[-1]}: {message}"]
    return [LOCATION.sub("FILE:LINE", line.rstrip()) for line in lines]


def as_coroutine_single(source: str, line: int) -> types.CodeType:
    """Like :func:`as_coroutine`, echoing the value of an expression statement."""
    tree = parse(source, line)
    body = tree.body  # type: ignore[attr-defined]
    if len(body) == 1 and isinstance(body[0], ast.Expr):
        call = ast.Call(func=ast.Name("__readme_echo__", ast.Load()), args=[body[0].value],
                        keywords=[])
        tree.body = [ast.copy_location(ast.Expr(call), body[0])]  # type: ignore[attr-defined]
    return _coroutine_from_tree(tree, line)


def _coroutine_from_tree(tree: ast.AST, line: int) -> types.CodeType:
    """``async def __readme__(): <tree's statements>``, with every assigned name global."""
    body = list(tree.body)  # type: ignore[attr-defined]
    assigned = sorted(
        {
            node.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
        }
        | {
            node.name
            for node in body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        }
    )
    if assigned:
        body.insert(0, ast.Global(names=assigned))
    arguments = ast.arguments(
        posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]
    )
    extra = {"type_params": []} if sys.version_info >= (3, 12) else {}
    func = ast.AsyncFunctionDef(
        name="__readme__", args=arguments, body=body or [ast.Pass()], decorator_list=[],
        returns=None, **extra,
    )
    module = ast.Module(body=[ast.copy_location(func, body[0]) if body else func],
                        type_ignores=[])
    ast.fix_missing_locations(module)
    return compile(module, "README.md", "exec")


def echo(value: object) -> None:
    if value is not None:
        print(repr(value))


# -- the run -----------------------------------------------------------------------


def check_shell(block: Block) -> str | None:
    """Every ``make X`` (after ``VAR=value`` words) must be a target; other commands known."""
    for raw in block.code.split("\n"):
        command = raw.split(" #", 1)[0].strip().removeprefix("$ ").strip()
        if not command or command.startswith("#"):
            continue
        for part in (p.strip() for p in command.split("&&")):
            words = shlex.split(part)
            index = next((i for i, w in enumerate(words) if "=" not in w), len(words))
            if index < len(words) and words[index] == "make":
                targets = [w for w in words[index + 1 :] if not w.startswith("-") and "=" not in w]
                for target in targets or ["help"]:
                    done = subprocess.run(
                        ["make", "-n", target], cwd=ROOT, capture_output=True, text=True
                    )
                    if done.returncode != 0:
                        return f"line {block.line}: 'make {target}' is not a make target"
            elif part not in CHECKED_ELSEWHERE:
                return f"line {block.line}: {part!r} is neither a make target nor checked elsewhere"
    return None


def main() -> int:
    readme = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "README.md")
    found = blocks(readme.read_text())
    report: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        setup_django(os.path.join(tmp, "readme.sqlite3"))
        from dualcall.management.console import Runner

        ns = namespace()
        ns["__readme_echo__"] = echo
        with Runner() as runner:
            for block in found:
                # What the blocks print is theirs, not the report's.
                with contextlib.redirect_stdout(io.StringIO()):
                    error = run_block(block, ns, runner)
                report.append({"line": block.line, "label": block.label, "error": error})
    print(json.dumps(report))
    return 0


def run_block(block: Block, ns: dict[str, object], runner: object) -> str | None:
    kind, _, arg = block.label.partition(" ")
    try:
        if kind == "shell":
            return check_shell(block)
        if kind == "source":
            compile_at(block.code, block.line)
            return None
        if kind == "define":
            exec(compile_at(block.code, block.line), ns)
            return None
        if kind not in ("sync", "async", "transcript"):
            return f"unknown or missing label {block.label!r} (before the ```{block.info} block)"
        seed()
        if kind == "sync":
            exec(compile_at(block.code, block.line), ns)
        elif kind == "async":
            asyncio.run_coroutine_threadsafe(
                run_in_coroutine(block.code, block.line, ns), runner.loop  # type: ignore[attr-defined]
            ).result()
        else:
            for source, line, expected in statements(block.code, block.line):
                got = run_transcript_statement(arg, source, line, ns, runner)
                if normalize(got) != normalize(expected):
                    return (f"line {line}: {source!r}\n  expected: {normalize(expected)}\n"
                            f"  got:      {normalize(got)}")
        return None
    except BaseException:
        return traceback.format_exc(limit=-3)


def run_transcript_statement(kind: str, source: str, line: int, ns: dict[str, object],
                             runner: object) -> list[str]:
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            if kind == "sync":
                exec(compile_at(source, line, "single"), ns)
            elif kind == "async":
                code = as_coroutine_single(source, line)

                async def in_loop() -> None:
                    exec(code, ns)
                    await ns.pop("__readme__")()  # type: ignore[operator]

                asyncio.run_coroutine_threadsafe(in_loop(), runner.loop).result()  # type: ignore[attr-defined]
            elif kind == "ashell":
                runner.run(compile_at(source, line, "single"), ns)  # type: ignore[attr-defined]
            else:
                raise ValueError(f"unknown transcript kind {kind!r}")
    except BaseException as exc:
        text = out.getvalue().rstrip("\n").split("\n") if out.getvalue() else []
        return [*text, "Traceback (most recent call last):", f"{type(exc).__name__}: {exc}"]
    return out.getvalue().rstrip("\n").split("\n") if out.getvalue() else []


if __name__ == "__main__":
    sys.exit(main())
