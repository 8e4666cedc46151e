"""dualcall: one ORM method name that runs sync in sync code and is awaitable in async code.

Add ``"dualcall"`` to ``INSTALLED_APPS``; then, in a coroutine::

    question = await Question.objects.get(pk=1)
    await question.save()

while ``Question.objects.get(pk=1)`` in sync code behaves exactly as plain
Django.
"""

from .awaitables import NotAwaitedAttributeError, NotAwaitedError, NotAwaitedTypeError
from .descriptors import BoundDualMethod, DualMethod, dualmethod
from .exceptions import UnprefetchedRelatedModelAccessError
from .patching import is_patched, patch, unpatch
from .peers import AWAIT_PEERS
from .shortcuts import prefetch_related_objects
from .transaction import atomic

__version__ = "0.2.0.dev0"

__all__ = [
    "AWAIT_PEERS",
    "BoundDualMethod",
    "DualMethod",
    "NotAwaitedAttributeError",
    "NotAwaitedError",
    "NotAwaitedTypeError",
    "UnprefetchedRelatedModelAccessError",
    "__version__",
    "atomic",
    "dualmethod",
    "is_patched",
    "patch",
    "prefetch_related_objects",
    "unpatch",
]
