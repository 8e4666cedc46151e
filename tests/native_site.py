"""A small ASGI site for the native path's server test (``tests/test_native_ops.py``).

``DJANGO_SETTINGS_MODULE=tests.native_site_settings uvicorn tests.native_site:application``:
Django's ASGI handler wrapped by :func:`dualcall.native.asgi.lifespan`, one
async view that makes native queries, and a probe that reports, when the
lifespan shutdown completes (the event loop still running), how many
connections of the loop's native pools are still open.
"""

import asyncio
import os
import sys

from django.core.asgi import get_asgi_application
from django.http import JsonResponse
from django.urls import path

from dualcall.native.asgi import lifespan

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.native_site_settings")


async def counts(request):
    """``{"counts": [...]}``: ``count()`` of the items numbered 0..n-1, gathered."""
    from tests.testapp.models import NativeItem

    n = int(request.GET.get("n", "6"))
    values = await asyncio.gather(*[NativeItem.objects.filter(number=i).count() for i in range(n)])
    return JsonResponse({"counts": values})


urlpatterns = [path("counts", counts)]


def _probe(application):
    """Print ``native-site: pools=P open=C`` to stderr when lifespan shutdown completes."""

    async def app(scope, receive, send):
        if scope["type"] != "lifespan":
            await application(scope, receive, send)
            return
        from dualcall.native.pool import loop_pools

        pools = {}

        async def receive_probed():
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                pools.update(loop_pools())  # the pools, before the wrapper closes them
            return message

        async def send_probed(message):
            if message["type"] == "lifespan.shutdown.complete":
                still_open = sum(
                    not conn.closed
                    for pool in pools.values()
                    for conn in pool.dualcall_made.connections
                )
                print(f"native-site: pools={len(pools)} open={still_open}", file=sys.stderr)
                sys.stderr.flush()
            await send(message)

        await application(scope, receive_probed, send_probed)

    return app


application = _probe(lifespan(get_asgi_application()))
