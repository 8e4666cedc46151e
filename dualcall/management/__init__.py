"""Management commands whose ``handle`` may be ``async def``.

::

    from dualcall.management import AsyncCommand

    class Command(AsyncCommand):
        help = "Close the polls of one year."

        def add_arguments(self, parser):
            parser.add_argument("year", type=int)

        async def handle(self, *args, year, **options):
            count = await Question.objects.filter(pub_date__year=year).update(closed=True)
            self.stdout.write(f"closed {count} polls")

How it runs: Django's ``BaseCommand.execute`` does its usual sync work
(options, colours, system checks, migration checks) in the calling thread; the
coroutine returned by ``handle`` is then run by ``asgiref.sync.async_to_sync``.
That starts an event loop in a new thread for the duration of the command
while the calling thread serves the loop's thread-sensitive calls: every
awaited dual call, Django ``a``-method and ``sync_to_async(thread_sensitive=True)``
call runs in the calling thread, on its database connection (the one the
system checks used, and inside ``call_command``'s caller's transaction).
The value ``handle`` returns is written to stdout as for any command, a
``CommandError`` becomes the message on stderr and its ``returncode`` as the
exit status under ``manage.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction
from django.core.management.base import BaseCommand

from ..awaitables import scoped

__all__ = ["AsyncCommand"]


class AsyncCommand(BaseCommand):  # type: ignore[misc]
    """A ``BaseCommand`` whose ``handle`` may be ``async def`` (a sync one works too).

    ``call_command`` and ``manage.py`` run it like any other command; the
    coroutine runs under ``async_to_sync``, so calling the command from a
    thread with a running event loop (directly in a coroutine) raises
    asgiref's ``RuntimeError``: use ``await sync_to_async(call_command)(...)``
    there.
    """

    def execute(self, *args: Any, **options: Any) -> Any:
        """Run the command; an ``async def handle`` is run to completion with ``async_to_sync``."""
        handle: Callable[..., Any] = self.handle
        if not iscoroutinefunction(handle):
            return super().execute(*args, **options)
        # A scope: in strict mode a never-awaited dual call fails the command.
        run_handle = async_to_sync(scoped(handle))

        def sync_handle(*args: Any, **options: Any) -> Any:
            __traceback_hide__ = True
            return run_handle(*args, **options)

        # BaseCommand.execute() calls self.handle(): for this run, an instance
        # attribute hands it the synchronous form.
        self.__dict__["handle"] = sync_handle
        try:
            return super().execute(*args, **options)
        finally:
            del self.__dict__["handle"]
