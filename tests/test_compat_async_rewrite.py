"""compat/async_rewrite.py: Django's async tests rewritten to the dual names (make compat-async)."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

_path = Path(__file__).resolve().parent.parent / "compat" / "async_rewrite.py"
_spec = importlib.util.spec_from_file_location("dualcall_compat_async_rewrite", _path)
assert _spec is not None and _spec.loader is not None
async_rewrite = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = async_rewrite  # its dataclass looks its module up
_spec.loader.exec_module(async_rewrite)

SOURCE = '''\
from asgiref.sync import async_to_sync
from django.test import SimpleTestCase, TestCase


class AsyncTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.s1 = SimpleModel.objects.create(field=1)

    async def test_reads(self):
        n = await SimpleModel.objects.acount()
        s = await SimpleModel.objects.filter(field=1).aget()
        async for m in SimpleModel.objects.aiterator(chunk_size=2):
            pass
        await self.s1.asave(update_fields=["field"]); await self.s1.arefresh_from_db()
        await self.mtm.simples.aadd(self.s1)

    @async_to_sync
    async def test_not_orm(self):
        await self.client.alogin(username="u")
        await aauthenticate(username="u")
        await User.objects.acreate_user("u")
        helper = lambda: SimpleModel.objects.acount()

    def test_sync(self):
        async_to_sync(SimpleModel.objects.acount)()


class Plain(SimpleTestCase):
    def test_sync(self):
        pass


class Derived(AsyncTests):
    pass
'''


def test_rewrite():
    result = async_rewrite.rewrite_source(SOURCE, "t.py", async_rewrite.dual_names())
    new = result.source.splitlines()
    old = SOURCE.splitlines()
    changed = {
        i + 1: line for i, (line, before) in enumerate(zip(new, old, strict=True)) if line != before
    }
    base = async_rewrite.NATIVE_BASE
    assert changed == {
        5: f"class AsyncTests({base}):",
        11: "        n = await SimpleModel.objects.count()",
        12: "        s = await SimpleModel.objects.filter(field=1).get()",
        13: "        async for m in SimpleModel.objects.iterator(chunk_size=2):",
        15: '        await self.s1.save(update_fields=["field"]); await self.s1.refresh_from_db()',
        16: "        await self.mtm.simples.add(self.s1)",
        18: "",
    }
    assert [(line, old) for line, old, _ in result.calls] == [
        (11, "acount"), (12, "aget"), (13, "aiterator"), (15, "asave"),
        (15, "arefresh_from_db"), (16, "aadd"),
    ]
    assert result.classes == ["AsyncTests"]
    assert result.collected == ["AsyncTests", "Derived"]
    assert result.decorators == [18]
    assert result.sync_tests == 1


def test_async_to_sync_not_alone_on_its_line():
    source = (
        "class T(TestCase):\n"
        "    @async_to_sync  # why\n"
        "    async def test_x(self):\n"
        "        await M.objects.acount()\n"
    )
    with pytest.raises(SystemExit, match=re.escape("t.py:2: @async_to_sync not on its own line")):
        async_rewrite.rewrite_source(source, "t.py", async_rewrite.dual_names())
