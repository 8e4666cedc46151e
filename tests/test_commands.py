"""dualcall.management.AsyncCommand and ``manage.py ashell``, in-process and in subprocesses."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.core.management.base import CommandError

from dualcall.management.console import AsyncConsole, Runner, compile_statements, new_namespace
from tests.testapp.models import Question

MANAGE = Path(__file__).with_name("manage.py")


# -- AsyncCommand through call_command --------------------------------------


@pytest.mark.django_db
def test_call_command_runs_async_handle_in_the_callers_transaction():
    # The awaited ORM calls run in this thread (async_to_sync makes it serve
    # the loop's thread-sensitive calls): same connection, inside the test's
    # transaction, so the rows are visible here without a commit.
    Question.objects.create(question_text="before")
    out, err = io.StringIO(), io.StringIO()
    result = call_command("apolls", "a", "b", stdout=out, stderr=err, verbosity=2)
    assert result == "total 3"
    assert out.getvalue() == "created 2\ntotal 3\n"
    assert err.getvalue() == "verbose\n"
    assert sorted(Question.objects.values_list("question_text", flat=True)) == ["a", "b", "before"]


@pytest.mark.django_db
def test_call_command_error_and_exceptions_propagate():
    err = io.StringIO()
    with pytest.raises(CommandError, match="failing with 4") as info:
        call_command("apolls", "x", fail=4, stderr=err)
    assert info.value.returncode == 4
    assert err.getvalue() == "about to fail\n"
    with pytest.raises(ZeroDivisionError, match="crash"):
        call_command("apolls", "--crash")
    # The instance attribute that hands execute() the sync form is gone again.
    from tests.testapp.management.commands.apolls import Command

    command = Command()
    call_command(command, stdout=io.StringIO())
    assert "handle" not in command.__dict__


@pytest.mark.django_db
def test_async_command_with_a_sync_handle():
    Question.objects.create(question_text="q")
    out = io.StringIO()
    assert call_command("syncpolls", stdout=out) == "total 1"
    assert out.getvalue() == "total 1\n"


@pytest.mark.django_db(transaction=True)
async def test_call_command_from_async_code_through_sync_to_async():
    out = io.StringIO()
    result = await sync_to_async(call_command)("apolls", "from-async", stdout=out)
    assert result == "total 1"
    assert await Question.objects.count() == 1


# -- ashell in-process -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_ashell_command_runs_await_and_sync_statements(capsys):
    Question.objects.create(question_text="q1")
    call_command(
        "ashell",
        command=(
            "print(await Question.objects.count())\n"
            "print(Question.objects.count())\n"
            "q = await Question.objects.create(question_text='q2')\n"
            "q.question_text = 'q2!'; q.save()\n"
            "print(sorted([x.question_text async for x in Question.objects.all()]))\n"
            "print(list(Question.objects.values_list('question_text', flat=True).order_by('pk')))\n"
        ),
        verbosity=0,
    )
    assert capsys.readouterr().out == "1\n1\n['q1', 'q2!']\n['q1', 'q2!']\n"


@pytest.mark.django_db(transaction=True)
def test_ashell_reads_stdin_when_it_is_not_a_terminal(capsys, monkeypatch):
    script = "await Question.objects.create(question_text='x')\nprint(Question.objects.count())\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(script))
    call_command("ashell", verbosity=0)
    assert capsys.readouterr().out == "1\n"


@pytest.mark.django_db(transaction=True)
def test_ashell_exception_propagates_with_the_users_traceback():
    with pytest.raises(Question.DoesNotExist) as info:
        call_command("ashell", command="x = 1\nawait Question.objects.get(pk=0)\n", verbosity=0)
    frames = []
    tb = info.value.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    # The runner's frames between the command and the user's statement are trimmed.
    before_user_code = frames[: frames.index("<command>")]
    assert before_user_code[-1].endswith("console.py")
    assert not any("concurrent" in name or "asgiref" in name for name in before_user_code)


def test_ashell_syntax_error_runs_nothing(capsys):
    with pytest.raises(SyntaxError):
        call_command("ashell", command="print('ran')\ndef (:\n", verbosity=0)
    assert capsys.readouterr().out == ""


@pytest.mark.django_db
def test_ashell_lists_the_automatic_imports(capsys):
    from django.apps import apps

    # asyncio and every model (the test app's models change with the suite).
    count = 1 + len(apps.get_models())
    call_command("ashell", command="print(Question.__name__, asyncio.__name__)")
    out = capsys.readouterr().out
    assert out.startswith(f"{count} objects imported automatically (use -v 2 for details).\n\n")
    assert out.endswith("Question asyncio\n")

    call_command("ashell", command="pass", verbosity=2)
    out = capsys.readouterr().out
    assert out.startswith(f"{count} objects imported automatically:\n\n  import asyncio\n")
    assert "  from django.contrib.auth.models import User, Group, Permission\n" in out
    assert "  from tests.testapp.models import " in out and " InSchoolUser, " in out

    call_command("ashell", command="print('Question' in globals())", no_imports=True)
    assert capsys.readouterr().out == "False\n"


def test_compile_statements_splits_sync_and_async_code():
    source = "a = 1\nb = await f()\nfor i in x:\n    await g(i)\nprint(a)\n"
    codes = compile_statements(source, "<s>")
    flags = [bool(code.co_flags & 0x80) for code in codes]  # CO_COROUTINE
    assert flags == [False, True, True, False]


@pytest.mark.django_db(transaction=True)
def test_console_keeps_one_loop_and_one_connection(capsys):
    namespace = new_namespace({"Question": Question})
    with Runner() as runner:
        console = AsyncConsole(runner, namespace)
        lines = [
            "import asyncio, threading",
            "from django.db import connection",
            # A task started at one prompt runs on the same loop at the next.
            "task = asyncio.create_task(asyncio.sleep(0, 'from an earlier prompt'));"
            " await asyncio.sleep(0)",
            "await task",
            "await Question.objects.create(question_text='q')",
            "sync_conn = id(connection.connection), threading.get_ident()",
            "from asgiref.sync import sync_to_async",
            "async_conn = await sync_to_async("
            "lambda: (id(connection.connection), threading.get_ident()))()",
            "sync_conn == async_conn",
            "Question.objects.count()",
            "await Question.objects.count()",
            "1 / 0",
            "Question.objects.count() + 1",
        ]
        for line in lines:
            assert not console.push(line)
    out, err = capsys.readouterr()
    assert out == "'from an earlier prompt'\n<Question: q>\nTrue\n1\n1\n2\n"
    assert "ZeroDivisionError: division by zero" in err
    assert 'File "<console>", line 1, in <module>' in err
    assert "concurrent" not in err and "asgiref" not in err


@pytest.mark.django_db(transaction=True)
def test_console_exit_raises_system_exit():
    with Runner() as runner:
        console = AsyncConsole(runner, new_namespace({}))
        with pytest.raises(SystemExit):
            console.push("raise SystemExit(3)")
        console = AsyncConsole(runner, new_namespace({}))
        with pytest.raises(SystemExit):
            console.push("import asyncio; await asyncio.sleep(0); raise SystemExit(4)")
        # The loop survived both.
        assert runner.loop.is_running()


# -- real subprocesses -------------------------------------------------------


@pytest.fixture(scope="session")
def manage(tmp_path_factory):
    """Run tests/manage.py in a subprocess on a fresh SQLite file (migrated once per session)."""
    env = {
        **os.environ,
        "DUALCALL_SQLITE_FILE": str(tmp_path_factory.mktemp("manage") / "db.sqlite3"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)

    def run(*args, input=None, check=False):
        return subprocess.run(
            [sys.executable, str(MANAGE), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=check,
        )

    run("migrate", "--run-syncdb", "-v", "0", check=True)
    run.env = env
    return run


def test_subprocess_async_command(manage):
    result = manage("apolls", "one", "two")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("created 2\ntotal 2\n") or "created 2\n" in result.stdout
    assert result.stderr == ""

    result = manage("apolls", "--fail", "3")
    assert result.returncode == 3
    assert result.stderr == "about to fail\nCommandError: failing with 3\n"

    result = manage("apolls", "--crash")
    assert result.returncode == 1
    assert "ZeroDivisionError: crash" in result.stderr

    result = manage("apolls", "--no-such-option")
    assert result.returncode == 2
    assert "unrecognized arguments: --no-such-option" in result.stderr


def test_subprocess_ashell_script_on_stdin(manage):
    script = (
        "n = await Question.objects.count()\n"
        "await Question.objects.create(question_text='from ashell')\n"
        "print(await Question.objects.count() - n)\n"
        "print(Question.objects.count() - n)\n"
    )
    result = manage("ashell", "-v", "0", input=script)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1\n1\n"

    script = "print(await Question.objects.filter(question_text='from ashell').count())\n"
    result = manage("ashell", input=script)
    assert result.returncode == 0, result.stderr
    from django.apps import apps

    count = 1 + len(apps.get_models())  # asyncio and every model
    assert result.stdout == f"{count} objects imported automatically (use -v 2 for details).\n\n1\n"

    result = manage("ashell", "-v", "0", "-c", "print(len(await Question.objects.all()) > 0)")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True\n"

    result = manage("ashell", "-v", "0", input="await Question.objects.get(pk=-1)\n")
    assert result.returncode == 1
    assert 'File "<stdin>", line 1, in <module>' in result.stderr
    assert result.stderr.rstrip().endswith("Question matching query does not exist.")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_subprocess_ashell_interactive_in_a_terminal(manage):
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.execve(
            sys.executable,
            [sys.executable, str(MANAGE), "ashell", "--no-startup"],
            {**manage.env, "TERM": "dumb"},
        )
    output = b""

    def read_until(marker, timeout=30):
        nonlocal output
        while marker not in output:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                raise AssertionError(f"timed out waiting for {marker!r} in {output!r}")
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        return output

    try:
        read_until(b">>> ")
        os.write(fd, b"await Question.objects.create(question_text='tty')\n")
        read_until(b"<Question: tty>")
        os.write(fd, b"Question.objects.filter(question_text='tty').count() * 100\n")
        read_until(b"100")
        os.write(fd, b"exit()\n")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, output
    assert b'use "await" directly' in output
    assert b"Traceback" not in output
