"""dualcall's pytest plugin (registered through the ``pytest11`` entry point).

Each test is a scope of strict mode (see :mod:`dualcall.awaitables`): a dual
call made in the test, or in a task it started, that is never awaited fails
the test with :class:`~dualcall.awaitables.NotAwaitedError`, even when the
test makes no dual call after it.  Strict mode is on in tests unless the
``DUALCALL_STRICT`` setting is ``False``; outside a Django project the plugin
does nothing.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from .awaitables import _scope, check_scope, open_scope


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    """Run the test in a scope; fail it if a dual call in it was never awaited."""
    token = open_scope()
    try:
        result = yield
    except BaseException:
        _scope.reset(token)
        raise
    check_scope(token)
    return result
