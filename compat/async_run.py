"""Django's async ORM tests, rewritten to dualcall's dual names, with the native path on and off.

    python compat/async_run.py [--python .venv/django61-py313/bin/python]

For the Django version installed in ``--python``'s environment (its sdist's
``tests/``, fetched once by ``compat/run.py``'s code), this rewrites the async
ORM tests to the dual names (``compat/async_rewrite.py``: ``aget`` -> ``get``,
``asave`` -> ``save``...; each class on ``NativeAsyncTestCase``, whose async
tests run on a fresh event loop in a plain thread), and runs them on
PostgreSQL (``PGHOST``...) twice with dualcall installed: ``DUALCALL_NATIVE =
["default"]`` and the native path off.  It compares the outcome of every test.

Exit status 1 when a test fails in either run (unless listed in
:data:`KNOWN_FAILURES` with its reason, and failing identically in both), when
a test's outcome differs between the runs, when no test ran, when the native
run ran no native statement, or when a required file had nothing to rewrite;
2 when a run crashed.  The last line is ``N passed, N failed, N skipped ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import async_rewrite  # noqa: E402
import run as compat  # noqa: E402

#: Tests that fail identically with the native path on and off, with why.
#: (Test id -> reason.)  Any other failure fails the run.
KNOWN_FAILURES: dict[str, str] = {}

MODES = {"native": "1", "thread": "0"}


def log(msg: str) -> None:
    print(f"compat-async: {msg}", flush=True)


def outcomes(result: dict) -> dict[str, str]:
    """Test id -> pass, fail, error, skip, xfail or unexpected-success (subtests folded in)."""
    out: dict[str, str] = {}
    for test_id in result["ids"]:
        out[test_id] = "pass"
    for kind, key in (("fail", "failures"), ("error", "errors")):
        for failed in result[key]:
            base = compat.rerun_label(failed) or failed
            target = base if base in out else failed
            if out.get(target) not in ("error",):
                out[target] = kind
    for test_id in result["skipped"]:
        out.setdefault(test_id, "skip")
        if out[test_id] == "pass":
            out[test_id] = "skip"
    for test_id in result["expected_failures"]:
        out[test_id] = "xfail"
    for test_id in result["unexpected_successes"]:
        out[test_id] = "unexpected-success"
    return out


def traceback_of(result: dict, test_id: str) -> str:
    texts = [
        f"--- {key}: {tb}"
        for kind in ("failures", "errors")
        for key, tb in result[kind].items()
        if key == test_id or (compat.rerun_label(key) or key) == test_id
    ]
    return "".join(texts) or "(no traceback recorded)\n"


def run_mode(args, tests: Path, version: str, labels: list[str], mode: str) -> tuple[dict, list]:
    out = compat.CACHE / "runs"
    out.mkdir(parents=True, exist_ok=True)
    stem = f"django-{version}-postgres-async-{mode}"
    result_file, stats_file, log_file = (
        out / f"{stem}{ext}" for ext in (".json", ".stats", ".log")
    )
    for f in (result_file, stats_file):
        f.unlink(missing_ok=True)
    cmd = [args.python, str(HERE / "dualcall_runtests.py"), str(tests), "--dualcall",
           "--settings=dualcall_compat_async_settings", "--parallel=1", "--noinput", *labels]
    env = {**os.environ, "DUALCALL_COMPAT_DB": "postgres", "DUALCALL_COMPAT_NATIVE": MODES[mode],
           "DUALCALL_COMPAT_RESULT": str(result_file),
           "DUALCALL_COMPAT_ASYNC_STATS": str(stats_file), "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"):
        env.pop(name, None)
    start = time.monotonic()
    with open(log_file, "w") as f:
        rc = subprocess.run(cmd, cwd=tests, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    elapsed = time.monotonic() - start
    if not result_file.exists():
        log(f"{mode}: CRASHED (exit {rc}) after {elapsed:.0f}s; last lines of {log_file}:")
        print("".join(log_file.read_text(errors="replace").splitlines(True)[-40:]))
        raise SystemExit(2)
    result = json.loads(result_file.read_text())
    if not (result["dualcall_installed"] and result["dualcall_patched"]):
        raise SystemExit(f"compat-async: dualcall was not installed and patched in {log_file}")
    stats = [json.loads(line) for line in stats_file.read_text().splitlines()] \
        if stats_file.exists() else []
    counts = _tally(outcomes(result).values())
    log(f"Django {version} postgres, native path {'ON ' if mode == 'native' else 'off'}:"
        f" {result['tests_run']} tests: {_fmt(counts)};"
        f" {sum(s['native_statements'] for s in stats)} native statements,"
        f" {sum(s['thread_statements'] for s in stats)} thread-path statements in the async tests;"
        f" {elapsed:.0f}s (log: {log_file.relative_to(compat.ROOT)})")
    return result, stats


def _tally(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts


def _fmt(counts: dict[str, int]) -> str:
    order = ("pass", "fail", "error", "skip", "xfail", "unexpected-success")
    return ", ".join(f"{counts.get(k, 0)} {k}" for k in order if counts.get(k) or k in order[:4])


def report_native(stats: list[dict]) -> None:
    """Per async test of the native run: statements on each path, thread-path calls, fallbacks."""
    log("per async test, native run: native statements / thread-path statements;"
        " dual calls on the thread path; last fallback")
    for s in sorted(stats, key=lambda s: s["id"]):
        thread_calls = ", ".join(
            f"{k.split(':', 1)[1]} x{v}" for k, v in s["calls"].items() if k.startswith("thread:")
        )
        line = f"  {s['id']}: {s['native_statements']} / {s['thread_statements']}"
        if thread_calls:
            line += f"; thread: {thread_calls}"
        if s["fallback"]:
            line += f"; FALLBACK {s['fallback']}"
        print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=str(compat.ROOT / ".venv/django61-py313/bin/python"),
                        help="interpreter of the venv with Django and dualcall installed")
    parser.add_argument("--quiet", action="store_true",
                        help="no per-test table of the native run")
    args = parser.parse_args()
    if not os.environ.get("PGHOST"):
        parser.error("PGHOST is not set: run through compat/async.sh, which starts a server")
    args.python = os.path.abspath(args.python)
    version = compat.django_version(args.python)
    source = compat.django_tests(args.python, version)
    tests = compat.CACHE / f"async-django-{version}" / "tests"
    labels, complete = async_rewrite.build(source, tests)
    if not labels:
        log("FAILED: nothing to run")
        return 1
    log(f"Django {version}: running {' '.join(labels)} on PostgreSQL, native path on, then off")

    results, stats = {}, {}
    for mode in MODES:
        results[mode], stats[mode] = run_mode(args, tests, version, labels, mode)
    native, thread = (outcomes(results[m]) for m in MODES)
    problems: list[str] = []

    for test_id in sorted(set(native) | set(thread)):
        a, b = native.get(test_id, "not run"), thread.get(test_id, "not run")
        if a != b:
            problems.append(test_id)
            log(f"DIFFERS: {test_id}: native path {a}, thread path {b}")
            for mode, outcome in (("native", a), ("thread", b)):
                if outcome in ("fail", "error"):
                    print(f"=== {mode} run:\n{traceback_of(results[mode], test_id)}", end="")
        elif a in ("fail", "error", "unexpected-success"):
            reason = KNOWN_FAILURES.get(test_id)
            if reason:
                log(f"known failure (identical on both paths): {test_id}: {reason}")
            else:
                problems.append(test_id)
                log(f"FAILS on both paths: {test_id}")
                print(traceback_of(results["native"], test_id), end="")

    if not args.quiet:
        report_native(stats["native"])
    fallbacks = [s for s in stats["native"] if s["fallback"]]
    for s in fallbacks:
        log(f"fell back to the thread path: {s['id']}: {s['fallback']}")
    native_total = sum(s["native_statements"] for s in stats["native"])
    thread_run_native = sum(s["native_statements"] for s in stats["thread"])
    async_tests = len(stats["native"])
    with_native = sum(1 for s in stats["native"] if s["native_statements"])
    log(f"native run: {native_total} native statements in {with_native} of {async_tests}"
        f" async tests; {len(fallbacks)} test(s) with a fallback")
    if not native_total:
        problems.append("(no native statement ran with DUALCALL_NATIVE on)")
        log("FAILED: the native path never ran")
    if thread_run_native:
        problems.append("(native statements with DUALCALL_NATIVE off)")
        log(f"FAILED: {thread_run_native} native statements with the native path off")
    if not complete:
        problems.append("(a required file was not rewritten)")

    counts = _tally(native.values())
    differing_or_failing = {p for p in problems if not p.startswith("(")}
    passed = sum(1 for t, o in native.items()
                 if o in ("pass", "xfail") and t not in differing_or_failing)
    skipped = sum(1 for t, o in native.items()
                  if o == "skip" and t not in differing_or_failing)
    failed = len(differing_or_failing)
    if not counts or passed == 0:
        problems.append("(no test ran)")
    verdict = "OK" if not problems else f"FAILED ({len(problems)} problem(s))"
    print(f"compat-async: {passed} passed, {failed} failed, {skipped} skipped"
          f" (Django {version}, PostgreSQL, native path on vs off;"
          f" {native_total} native statements): {verdict}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
