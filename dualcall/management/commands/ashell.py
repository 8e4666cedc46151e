"""``manage.py ashell``: a Python shell with top-level ``await`` and the models imported."""

from __future__ import annotations

import os
import sys
import traceback
from collections import defaultdict
from importlib import import_module
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string

from dualcall.management.console import AsyncConsole, Runner, new_namespace, run_source

HELP = """\
Runs a Python interactive interpreter with top-level "await", like
"python -m asyncio", with the project's models imported. When standard input
is not a terminal, it is read to the end and run as a script; -c runs one
command. A statement that contains "await" runs as a coroutine on the shell's
event loop, so dual calls in it must be awaited
("await Question.objects.count()"); any other statement runs synchronously,
off the loop, so dual calls in it are plain Django calls
("Question.objects.count()"). Both kinds run in one worker thread, on one
database connection. Ctrl-C cancels a running await.
"""


class Command(BaseCommand):  # type: ignore[misc]
    """The ``ashell`` management command."""

    help = HELP
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        """Add Django's shell options: ``--no-startup``, ``--no-imports``, ``-c``."""
        parser.add_argument(
            "--no-startup",
            action="store_true",
            help="Ignore the PYTHONSTARTUP environment variable and ~/.pythonrc.py.",
        )
        parser.add_argument(
            "--no-imports",
            action="store_true",
            help="Disable automatic imports of models.",
        )
        parser.add_argument(
            "-c",
            "--command",
            help="Instead of opening an interactive shell, run a command and exit.",
        )

    def get_auto_imports(self) -> list[str]:
        """Return the dotted paths of what is imported automatically.

        ``asyncio`` and every installed model; on a name clash the model of
        the app listed first in ``INSTALLED_APPS`` wins, as in Django 5.2's
        ``shell``.  Override to change the list.
        """
        return ["asyncio"] + [
            f"{model.__module__}.{model.__name__}"
            for model in reversed(apps.get_models())
            if model.__module__
        ]

    def get_namespace(self, **options: Any) -> dict[str, Any]:
        """Import :meth:`get_auto_imports` and report it as Django 5.2's ``shell`` does."""
        if options.get("no_imports"):
            return {}
        verbosity = options.get("verbosity", 1)
        by_module: dict[str | None, list[tuple[str, Any]]] = defaultdict(list)
        errors = []
        for path in self.get_auto_imports():
            try:
                obj = import_string(path) if "." in path else import_module(path)
            except ImportError:
                errors.append(path)
                continue
            module, _, name = path.rpartition(".")
            if (name, obj) not in by_module[module or None]:
                by_module[module or None].append((name, obj))
        namespace = {name: obj for items in by_module.values() for name, obj in items}
        if verbosity < 1:
            return namespace

        if errors:
            objects = "objects" if len(errors) != 1 else "object"
            listing = "\n".join(f"  {path}" for path in errors)
            self.stdout.write(
                f"{len(errors)} {objects} could not be automatically imported:\n\n{listing}",
                self.style.ERROR,
                ending="\n\n",
            )
        amount = len(namespace)
        msg = f"{amount} {'objects' if amount != 1 else 'object'} imported automatically"
        if verbosity < 2:
            if amount:
                msg += " (use -v 2 for details)"
            self.stdout.write(f"{msg}.", self.style.SUCCESS, ending="\n\n")
            return namespace
        lines = sorted(f"  import {name}" for name, _ in by_module.pop(None, []))
        lines += sorted(
            f"  from {module} import {', '.join(name for name, _ in items)}"
            for module, items in by_module.items()
            if items
        )
        msg = f"{msg}:\n\n" + "\n".join(lines) if lines else f"{msg}."
        self.stdout.write(msg, self.style.SUCCESS, ending="\n\n")
        return namespace

    def run_startup(self, namespace: dict[str, Any]) -> None:
        """Run $PYTHONSTARTUP and ~/.pythonrc.py, set up readline, as Django's ``shell`` does."""
        for pythonrc in dict.fromkeys(
            [os.environ.get("PYTHONSTARTUP"), os.path.expanduser("~/.pythonrc.py")]
        ):
            if not pythonrc or not os.path.isfile(pythonrc):
                continue
            with open(pythonrc) as handle:
                source = handle.read()
            try:
                exec(compile(source, pythonrc, "exec"), namespace)
            except Exception:
                traceback.print_exc()

    def interact(self, runner: Runner, namespace: dict[str, Any], options: dict[str, Any]) -> None:
        """Run the interactive console until EOF or ``exit()``."""
        if not options["no_startup"]:
            self.run_startup(namespace)
        # readline with history and tab completion, as the plain python REPL.
        hook = getattr(sys, "__interactivehook__", None)
        if hook is not None:
            try:
                hook()
            except Exception:
                print("Failed calling sys.__interactivehook__")
                traceback.print_exc()
        try:
            import readline
            import rlcompleter
        except ImportError:
            pass
        else:
            readline.set_completer(rlcompleter.Completer(namespace).complete)
        banner = (
            f"Python {sys.version} on {sys.platform}\n"
            'Async Django shell: use "await" directly instead of "asyncio.run()".\n'
            'Statements without "await" run synchronously, as in "manage.py shell".'
        )
        AsyncConsole(runner, namespace).interact(banner=banner, exitmsg="")

    def handle(self, **options: Any) -> None:
        """Run ``-c``, or standard input when it is not a terminal, or the interactive console."""
        namespace = new_namespace(self.get_namespace(**options))
        with Runner() as runner:
            if options["command"]:
                run_source(runner, options["command"], namespace, "<command>")
            elif not sys.stdin.isatty():
                run_source(runner, sys.stdin.read(), namespace, "<stdin>")
            else:
                self.interact(runner, namespace, options)
