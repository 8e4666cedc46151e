"""Run mypy with ``plugins = dualcall.mypy`` on the sample app and compare with expected.txt.

::

    python -m tests.typecheck.check            # exit 1 on any difference
    python -m tests.typecheck.check --update   # rewrite expected.txt (review the diff!)

``expected.txt`` is mypy's exact output, each message under the source line
it is about (rather than its number, so that adding a line to the sample
changes nothing else): the revealed types of ``sample/correct.py`` (which
must have no error) and the errors of ``sample/mistakes.py``.  Run from the
repository root (scripts/lint.sh does).
"""

from __future__ import annotations

import difflib
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
EXPECTED = HERE / "expected.txt"
SAMPLE = "tests/typecheck/sample"
CORRECT = f"{SAMPLE}/correct.py"


def run_mypy(cache_dir: str, *args: str) -> tuple[list[str], int]:
    """Return mypy's messages (without its summary line) and its exit status."""
    from mypy import api

    stdout, stderr, status = api.run(
        [
            "--config-file",
            str(HERE / "mypy.ini"),
            "--cache-dir",
            cache_dir,
            "--no-error-summary",
            "--hide-error-context",
            "--no-pretty",
            "--show-error-codes",
            *args,
        ]
    )
    if stderr.strip():
        print(stderr, file=sys.stderr)
    return sorted(stdout.splitlines(), key=_order), status


def run_both() -> tuple[list[str], int]:
    """Check the sample twice: cold, then with the models and dualcall from mypy's cache.

    The second run is what a user's edit of a view gets: everything it
    imports comes from the cache, where mypy keeps no decorator expressions.
    Both must give the same output; the cold one is returned.
    """
    with tempfile.TemporaryDirectory() as cold, tempfile.TemporaryDirectory() as warm:
        actual, status = run_mypy(cold, SAMPLE)
        run_mypy(warm, f"{SAMPLE}/models.py")
        cached, _ = run_mypy(warm, SAMPLE)
    if cached != actual:
        diff = difflib.unified_diff(actual, cached, "cold", "from cache", lineterm="")
        print("typecheck: a cached run differs from a cold one:", file=sys.stderr)
        print("\n".join(diff), file=sys.stderr)
        return actual, 2
    return actual, status


def _order(line: str) -> tuple[str, int, str]:
    path, _, rest = line.partition(":")
    number, _, message = rest.partition(":")
    return (path, int(number) if number.isdigit() else 0, message)


def by_source_line(messages: list[str]) -> list[str]:
    """Write mypy's ``path:line: severity: message`` lines under their source lines."""
    out: list[str] = []
    previous = None
    for message in messages:
        path, _, rest = message.partition(":")
        number, _, text = rest.partition(":")
        if not number.isdigit():
            out.append(message)
            continue
        where = (path, int(number))
        if where != previous:
            source = (ROOT / path).read_text().splitlines()[int(number) - 1].strip()
            out.append(f"{path}: {source}")
            previous = where
        out.append(f"    {text.strip()}")
    return out


def main(argv: list[str]) -> int:
    """Compare (or, with ``--update``, rewrite) and report; return the exit status."""
    if Path.cwd().resolve() != ROOT:
        print(f"check.py: run from {ROOT}", file=sys.stderr)
        return 2
    actual, status = run_both()
    if status not in (0, 1):  # mypy failed (a crash, a bad configuration), or runs differ
        print("\n".join(actual))
        print(f"typecheck: mypy exited with {status}", file=sys.stderr)
        return 1
    wrong = [line for line in actual if line.startswith(CORRECT) and ": error:" in line]
    if wrong:
        print("typecheck: errors on the correct sample:\n" + "\n".join(wrong), file=sys.stderr)
        return 1
    errors = sum(": error:" in line for line in actual)
    revealed = sum("Revealed type" in line for line in actual)
    actual = by_source_line(actual)
    if "--update" in argv:
        EXPECTED.write_text("\n".join(actual) + "\n")
        print(f"typecheck: wrote {EXPECTED.relative_to(ROOT)} ({len(actual)} lines)")
        return 0
    expected = EXPECTED.read_text().splitlines()
    if actual != expected:
        diff = difflib.unified_diff(expected, actual, "expected.txt", "mypy", lineterm="")
        print("typecheck: mypy's output differs from expected.txt:", file=sys.stderr)
        print("\n".join(diff), file=sys.stderr)
        return 1
    print(
        f"typecheck: as expected: 0 errors on {CORRECT} ({revealed} revealed types), "
        f"{errors} errors on the mistakes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
