"""ASGI lifespan for Django: close the native pools when the server shuts down.

Django's ``ASGIHandler`` serves ``http`` only: it refuses the ``lifespan``
scope, and uvicorn then logs that lifespan is unsupported and never tells the
application it is stopping.  :func:`lifespan` wraps the application: it
answers the lifespan startup and shutdown messages itself, and at shutdown
closes the native pools of the server's event loop
(:func:`dualcall.native.close_pools`), while the loop still runs; every other
scope goes to the wrapped application unchanged::

    # asgi.py
    from django.core.asgi import get_asgi_application
    from dualcall.native.asgi import lifespan

    application = lifespan(get_asgi_application())

Without it the pools are still closed, later: when the server's loop cancels
its remaining tasks on the way out (uvicorn does).  An
application that already handles lifespan (Starlette, Channels' router)
should instead ``await close_pools()`` in its own shutdown handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .pool import close_pools

__all__ = ["LifespanApplication", "lifespan"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApplication = Callable[[Scope, Receive, Send], Awaitable[None]]


class LifespanApplication:
    """An ASGI application: lifespan handled here, every other scope passed to *application*."""

    def __init__(self, application: ASGIApplication) -> None:
        self.application = application

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one scope: ``lifespan`` here, the rest by the wrapped application."""
        if scope["type"] != "lifespan":
            await self.application(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # The pools are made on first use, on the loop that uses them.
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await close_pools()
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return


def lifespan(application: ASGIApplication) -> LifespanApplication:
    """Wrap the ASGI *application* (Django's) so that server shutdown closes the native pools."""
    return LifespanApplication(application)
