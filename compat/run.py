"""Run Django's own test suite plain and with dualcall installed, and compare.

    python compat/run.py [--python .venv/django61-py313/bin/python] [--db sqlite]
                         [--sets core,wider] [--parallel 2] [--label L ...]

For the Django version installed in ``--python``'s environment, this
downloads that version's source distribution from PyPI (once, into
``.cache/compat/``), extracts its ``tests/`` folder, and runs
``tests/runtests.py`` on each label set twice: plain, and with ``"dualcall"``
in ``INSTALLED_APPS`` (see ``dualcall_runtests.py``).  Each run writes the
outcome of every test to a JSON file (see ``dualcall_compat_runner.py``) and
its console output to a log next to it; one summary line per run is printed.

The exit status is 1 when a test fails or errors with dualcall and passes
without it (each one is printed with its traceback), or when a test runs in
one mode only; 2 when a run crashed.  Tests that fail only with dualcall are
first run again on their own, serially, in both modes (``--no-rerun`` skips
this); those that then pass with dualcall are reported as FLAKY, and do not
fail the run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "compat"
HERE = Path(__file__).resolve().parent

def _labels(names: str) -> list[str]:
    return names.split()


#: The label sets of issue 6: the ORM core, and the wider ORM set.
LABEL_SETS = {
    "core": _labels(
        "async basic many_to_one many_to_many one_to_one prefetch_related "
        "select_related get_or_create update delete custom_managers "
        "model_inheritance generic_relations transactions queries aggregation "
        "lookup expressions annotations bulk_create defer model_forms auth_tests"
    ),
    "wider": _labels(
        "aggregation_regress custom_columns custom_lookups custom_methods custom_pk "
        "dates datetimes db_functions defer_regress delete_regress expressions_case "
        "expressions_window extra_regress filtered_relation fixtures foreign_object "
        "generic_relations_regress get_earliest_or_latest get_object_or_404 "
        "known_related_objects m2m_regress m2m_signals m2m_through "
        "m2m_through_regress managers_regress many_to_one_null model_fields "
        "model_formsets model_inheritance_regress model_regress multiple_database "
        "null_fk null_queries ordering pagination proxy_models queryset_pickle "
        "raw_query save_delete_hooks select_for_update select_related_onetoone "
        "select_related_regress serializers signals timezones transaction_hooks "
        "update_only_fields contenttypes_tests shortcuts asgi handlers"
    ),
}

MODES = ("plain", "dualcall")


def log(msg: str) -> None:
    print(f"compat: {msg}", flush=True)


def django_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import django; print(django.get_version())"],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


def django_tests(python: str, version: str) -> Path:
    """Return the ``tests/`` dir of Django *version*'s sdist, fetching it once."""
    tests = CACHE / f"django-{version}" / "tests"
    if (tests / "runtests.py").exists():
        return tests
    CACHE.mkdir(parents=True, exist_ok=True)
    ignore = CACHE.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    sdist = CACHE / f"django-{version}.tar.gz"
    if not sdist.exists():
        log(f"downloading the Django {version} source distribution from PyPI")
        subprocess.run(
            [python, "-m", "pip", "download", "--disable-pip-version-check", "-q",
             "--no-binary", ":all:", "--no-deps", "-d", str(CACHE), f"django=={version}"],
            check=True,
        )
        if not sdist.exists():  # older sdists are named Django-X.tar.gz
            found = list(CACHE.glob(f"[Dd]jango-{version}.tar.gz"))
            if not found:
                raise SystemExit(f"compat: pip downloaded no django-{version}.tar.gz")
            sdist = found[0]
    prefix = f"{sdist.name[: -len('.tar.gz')]}/tests/"
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        tar.extractall(CACHE, members=members, filter="data")
    extracted = CACHE / sdist.name[: -len(".tar.gz")]
    if extracted.name != f"django-{version}":
        extracted.rename(CACHE / f"django-{version}")
    return tests


def run_once(
    args, tests: Path, version: str, name: str, labels: list[str], mode: str
) -> dict | None:
    """Run runtests.py once; return its recorded result (None if it crashed)."""
    out = CACHE / "runs"
    out.mkdir(parents=True, exist_ok=True)
    stem = f"django-{version}-{args.db}-{name}-{mode}"
    result_file = out / f"{stem}.json"
    log_file = out / f"{stem}.log"
    result_file.unlink(missing_ok=True)
    cmd = [args.python, str(HERE / "dualcall_runtests.py"), str(tests)]
    if mode == "dualcall":
        cmd.append("--dualcall")
    cmd += ["--settings=dualcall_compat_settings", f"--parallel={args.parallel}",
            "--noinput", *args.runtests_arg, *labels]
    env = {**os.environ, "DUALCALL_COMPAT_DB": args.db,
           "DUALCALL_COMPAT_RESULT": str(result_file), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    start = time.monotonic()
    with open(log_file, "w") as f:
        rc = subprocess.run(cmd, cwd=tests, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    elapsed = time.monotonic() - start
    if not result_file.exists():
        log(f"{version} {args.db} {name} {mode:8}: CRASHED (exit {rc}) after {elapsed:.0f}s;"
            f" last lines of {log_file.relative_to(ROOT)}:")
        print("".join(log_file.read_text(errors="replace").splitlines(True)[-30:]))
        return None
    result = json.loads(result_file.read_text())
    result["seconds"] = round(elapsed, 1)
    result["log"] = str(log_file.relative_to(ROOT))
    result_file.write_text(json.dumps(result, indent=1, sort_keys=True))
    if mode == "dualcall" and not (result["dualcall_installed"] and result["dualcall_patched"]):
        raise SystemExit(f"compat: dualcall was not installed and patched in {log_file}")
    if mode == "plain" and result["dualcall_installed"]:
        raise SystemExit(f"compat: dualcall was installed in the plain run {log_file}")
    log(f"{version} {args.db} {name} {mode:8}: {summary(result)} in {elapsed:.0f}s")
    return result


def summary(r: dict) -> str:
    s = (f"{r['tests_run']} tests, {len(r['failures'])} failures, {len(r['errors'])} errors, "
         f"{len(r['skipped'])} skipped")
    if r["expected_failures"]:
        s += f", {len(r['expected_failures'])} expected failures"
    if r["unexpected_successes"]:
        s += f", {len(r['unexpected_successes'])} unexpected successes"
    return s


def bad(r: dict) -> set[str]:
    return set(r["failures"]) | set(r["errors"]) | set(r["unexpected_successes"])


def rerun_label(test_id: str) -> str | None:
    """The runtests label that reruns *test_id* (a subtest: its test), or None."""
    original = test_id
    test_id = re.sub(r" [\[(].*$", "", test_id)  # a subtest: "mod.Class.test [msg] (x=1)"
    m = re.fullmatch(r"\w+ \(([\w.]+)\)", original)  # "setUpClass (mod.Class)"
    if m:
        return m.group(1)
    return test_id if re.fullmatch(r"[\w.]+", test_id) else None


def compare(args, tests: Path, version: str, name: str, plain: dict, dual: dict) -> int:
    """Print what differs; return the number of dualcall-only problems."""
    problems = 0
    only_dual = sorted(bad(dual) - bad(plain))
    if args.rerun and only_dual:
        labels = sorted({label for t in only_dual if (label := rerun_label(t))})
        log(f"rerunning {len(labels)} label(s) that failed only with dualcall, serially")
        saved = args.parallel
        args.parallel = 1
        try:
            again = {m: run_once(args, tests, version, f"{name}-rerun", labels, m) for m in MODES}
        finally:
            args.parallel = saved
        if all(again.values()):
            confirmed = bad(again["dualcall"]) - bad(again["plain"])
            flaky = [t for t in only_dual if rerun_label(t) and t not in confirmed
                     and rerun_label(t) not in {rerun_label(c) for c in confirmed}]
            for t in flaky:
                log(f"FLAKY (failed with dualcall in the full run only): {t}")
            only_dual = [t for t in only_dual if t not in flaky]
    for t in only_dual:
        problems += 1
        tb = dual["failures"].get(t) or dual["errors"].get(t) or "(unexpected success)\n"
        print(f"\n=== FAILS ONLY WITH DUALCALL: {t}\n{tb}", end="")
    missing = sorted(set(plain["ids"]) - set(dual["ids"]))
    extra = sorted(set(dual["ids"]) - set(plain["ids"]))
    for t in missing:
        problems += 1
        print(f"=== RUN PLAIN ONLY: {t}")
    for t in extra:
        problems += 1
        print(f"=== RUN WITH DUALCALL ONLY: {t}")
    only_plain = sorted(bad(plain) - bad(dual))
    for t in only_plain:
        log(f"note: fails plain, passes with dualcall: {t}")
    verdict = "OK" if not problems else f"{problems} PROBLEM(S)"
    log(f"{version} {args.db} {name} compare : {len(only_dual)} failing only with dualcall,"
        f" {len(missing) + len(extra)} run in one mode only: {verdict}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=str(ROOT / ".venv/django61-py313/bin/python"),
                        help="interpreter of the venv with Django and dualcall installed")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite",
                        help="postgres reads PGHOST/PGPORT/PGUSER/PGPASSWORD")
    parser.add_argument("--sets", default="core,wider",
                        help=f"comma-separated label sets: {', '.join(LABEL_SETS)}")
    parser.add_argument("--label", action="append", default=[],
                        help="run these labels (as one set named 'labels') instead of --sets")
    parser.add_argument("--modes", default="plain,dualcall",
                        help="plain,dualcall (both, compared) or just one of them")
    parser.add_argument("--parallel", default="2", help="runtests.py --parallel (default 2)")
    parser.add_argument("--no-rerun", dest="rerun", action="store_false",
                        help="do not rerun dualcall-only failures serially (to tell flaky"
                        " tests, such as timing-based ones, apart)")
    parser.add_argument("runtests_arg", nargs="*",
                        help="extra runtests.py arguments, after --")
    args = parser.parse_args()

    if args.label:
        sets = {"labels": args.label}
    else:
        unknown = [s for s in args.sets.split(",") if s not in LABEL_SETS]
        if unknown:
            parser.error(f"unknown label set(s) {unknown}; known: {list(LABEL_SETS)}")
        sets = {s: LABEL_SETS[s] for s in args.sets.split(",")}
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - set(MODES):
        parser.error("--modes: plain, dualcall or plain,dualcall")

    args.python = os.path.abspath(args.python)  # the runs' cwd is the tests dir
    version = django_version(args.python)
    tests = django_tests(args.python, version)
    log(f"Django {version} on {args.db}, --parallel={args.parallel}, tests in "
        f"{tests.relative_to(ROOT)}")

    problems = crashed = 0
    for name, labels in sets.items():
        results = {m: run_once(args, tests, version, name, labels, m) for m in modes}
        if not all(results.values()):
            crashed += 1
            continue
        if len(results) == 2:
            problems += compare(args, tests, version, name, results["plain"], results["dualcall"])
    if crashed:
        log(f"FAILED: {crashed} run(s) crashed")
        return 2
    if problems:
        log(f"FAILED: {problems} test(s) behave differently with dualcall")
        return 1
    log("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
