# Developer entry points; the work is done by the scripts in scripts/.
.DEFAULT_GOAL := help
.PHONY: help test lint demo run pins docs dist clean
MAIN_ENV := 52-py311

help:
	@echo "make test   lint, then tests in every environment of scripts/envs.sh x SQLite/PostgreSQL"
	@echo "            (ARGS='-k foo' is passed to pytest; ENVS=52-py311,"
	@echo "            DUALCALL_TEST_DBS=sqlite, SKIP_LINT=1 narrow it)"
	@echo "make lint   ruff + mypy (strict) in .venv/django$(MAIN_ENV)"
	@echo "make pins   re-resolve today's releases into constraints/ (ENVS=... narrows it)"
	@echo "make docs   the documentation (docs/_build/html), warnings as errors"
	@echo "make dist   sdist and wheel into dist/, checked (twine check --strict, a fresh install)"
	@echo "make demo   the example site under uvicorn: every view over HTTP, a report"
	@echo "make run    the example site on http://127.0.0.1:8000/ (PORT=...) until Ctrl-C"
	@echo "make bench  benchmarks, SQLite (+ PostgreSQL if PGHOST is set); make bench-pg starts"
	@echo "            a throwaway PostgreSQL (BENCH_ARGS='--only native,view --quick --profile')"
	@echo "make clean  stop the test PostgreSQL; remove .venv, .pg, caches, build output"

test:
	bash scripts/test.sh $(ARGS)

lint:
	bash scripts/lint.sh

demo:
	bash scripts/venv.sh $(MAIN_ENV) >/dev/null
	.venv/django$(MAIN_ENV)/bin/python examples/demo.py

run:
	bash scripts/venv.sh $(MAIN_ENV) >/dev/null
	.venv/django$(MAIN_ENV)/bin/python examples/demo.py --run

pins:
	bash scripts/pins.sh

docs:
	bash scripts/docs.sh

dist:
	bash scripts/package.sh

clean:
	-bash scripts/pgserver.sh stop
	rm -rf .venv .pg .cache .bench build dist docs/_build *.egg-info .mypy_cache .ruff_cache .pytest_cache
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

# Django's own test suite, plain and with dualcall in INSTALLED_APPS, compared
# (compat/run.sh; COMPAT_ARGS go to compat/run.py, e.g. COMPAT_ARGS='--sets core').
# `compat` (Django 6.1, SQLite) runs in CI; the others are separate targets
# (compat-pg is compat-61-pg).
# `compat-async` (Django 6.1; -60, -52, -42: those versions): Django's async ORM
# tests rewritten to the dual names, on PostgreSQL with the native path on and
# off, compared (compat/async.sh; COMPAT_ASYNC_ARGS go to compat/async_run.py).
# It runs in CI.
# `bench` benchmarks on SQLite (and PostgreSQL when PGHOST is set); `bench-pg`
# starts a throwaway PostgreSQL for it. Output: stdout and .bench/latest.json.
# The native and view rows (PostgreSQL) run in the 61-py313 environment, with
# django-async-backend installed beside it (bench/run.sh); BENCH_ARGS='--only
# native', '--only view', '--only native,view', '--quick', '--profile'.
.PHONY: compat compat-pg compat-61-pg compat-60 compat-60-pg compat-52 compat-52-pg
.PHONY: compat-42 compat-42-pg compat-async compat-async-60 compat-async-52 compat-async-42 bench bench-pg
compat:
	bash compat/run.sh 61 sqlite $(COMPAT_ARGS)

compat-pg compat-61-pg:
	bash compat/run.sh 61 postgres $(COMPAT_ARGS)

compat-60:
	bash compat/run.sh 60 sqlite $(COMPAT_ARGS)

compat-60-pg:
	bash compat/run.sh 60 postgres $(COMPAT_ARGS)

compat-52:
	bash compat/run.sh 52 sqlite $(COMPAT_ARGS)

compat-52-pg:
	bash compat/run.sh 52 postgres $(COMPAT_ARGS)

compat-42:
	bash compat/run.sh 42 sqlite $(COMPAT_ARGS)

compat-42-pg:
	bash compat/run.sh 42 postgres $(COMPAT_ARGS)

compat-async:
	bash compat/async.sh 61 $(COMPAT_ASYNC_ARGS)

compat-async-60:
	bash compat/async.sh 60 $(COMPAT_ASYNC_ARGS)

compat-async-52:
	bash compat/async.sh 52 $(COMPAT_ASYNC_ARGS)

compat-async-42:
	bash compat/async.sh 42 $(COMPAT_ASYNC_ARGS)

bench:
	bash bench/run.sh sqlite $(BENCH_ARGS)

bench-pg:
	bash bench/run.sh postgres $(BENCH_ARGS)
