"""How a call site is classified: coroutine callers get awaitables, nothing else does."""

import asyncio
import sys
import types

from dualcall import dualmethod
from dualcall.context import called_from_coroutine, is_coroutine_frame, loop_running


@dualmethod
def double(x):
    return 2 * x


def test_no_loop_is_sync():
    assert not loop_running()
    assert double(2) == 4
    assert not called_from_coroutine(sys._getframe())


async def test_coroutine_gets_awaitable():
    awaitable = double(2)
    assert asyncio.iscoroutine(awaitable)
    assert await awaitable == 4


def _sync_helper():
    return double(3)


async def test_sync_helper_called_from_coroutine_runs_sync():
    # A sync helper must never receive an awaitable it would drop.
    assert _sync_helper() == 6


async def test_list_comprehension_is_looked_through():
    assert await asyncio.gather(*[double(i) for i in range(3)]) == [0, 2, 4]


async def test_generator_expression_is_looked_through():
    assert await asyncio.gather(*(double(i) for i in range(3))) == [0, 2, 4]


async def test_set_and_dict_comprehensions_are_looked_through():
    awaitables = {i: double(i) for i in range(2)}
    assert [await a for a in awaitables.values()] == [0, 2]


async def test_async_comprehension_is_a_coroutine():
    assert [await double(i) for i in range(3)] == [0, 2, 4]


async def test_async_generator_gets_awaitable():
    async def agen():
        yield await double(5)

    assert [x async for x in agen()] == [10]


async def test_generator_consumed_by_sync_function_is_sync():
    # The generator's frame is looked through to whoever resumes it: here a
    # sync function, so the calls run synchronously.
    def consume(gen):
        return list(gen)

    assert consume(double(i) for i in range(3)) == [0, 2, 4]


def test_coroutine_driven_by_hand_without_loop_is_sync():
    async def body():
        return double(4)

    coroutine = body()
    try:
        coroutine.send(None)
    except StopIteration as stop:
        assert stop.value == 8
    else:  # pragma: no cover - the coroutine must finish at once
        raise AssertionError("the coroutine suspended")


def test_types_coroutine_frame_is_async():
    @types.coroutine
    def legacy():
        return is_coroutine_frame(sys._getframe())
        yield  # pragma: no cover - makes this a generator

    gen = legacy()
    try:
        gen.send(None)
    except StopIteration as stop:
        assert stop.value is True


async def test_called_from_sync_thread_while_loop_runs_elsewhere():
    # A worker thread has no loop of its own: sync, whatever its caller is.
    from asgiref.sync import sync_to_async

    assert await sync_to_async(lambda: double(7))() == 14


def test_pure_python_wrapt_frames_are_looked_through():
    # Without wrapt's C extension, its Python __call__ frames sit between the
    # caller and dualcall: they must be looked through.
    import os
    import subprocess

    script = (
        "import asyncio, wrapt\n"
        "from dualcall import dualmethod\n"
        "assert type(vars(wrapt.BoundFunctionWrapper)['__call__']).__name__ == 'function'\n"
        "class C:\n"
        "    @dualmethod\n"
        "    def m(self):\n"
        "        return 1\n"
        "async def main():\n"
        "    awaitable = C().m()\n"
        "    assert asyncio.iscoroutine(awaitable), awaitable\n"
        "    return await awaitable\n"
        "assert asyncio.run(main()) == 1\n"
        "assert C().m() == 1\n"
    )
    env = {**os.environ, "WRAPT_DISABLE_EXTENSIONS": "1"}
    subprocess.run([sys.executable, "-c", script], env=env, check=True)
