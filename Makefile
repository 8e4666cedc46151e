# Developer entry points; the work is done by the scripts in scripts/.
.DEFAULT_GOAL := help
.PHONY: help test lint demo clean

help:
	@echo "make test   lint, then tests on Django 4.2/5.2 x SQLite/PostgreSQL"
	@echo "            (ARGS='-k foo' is passed to pytest; DJANGO_SERIES=52,"
	@echo "            DUALCALL_TEST_DBS=sqlite, SKIP_LINT=1 narrow it)"
	@echo "make lint   ruff + mypy (strict) in .venv/django52"
	@echo "make demo   run examples/demo.py in .venv/django52"
	@echo "make clean  stop the test PostgreSQL; remove .venv, .pg, caches, build output"

test:
	bash scripts/test.sh $(ARGS)

lint:
	bash scripts/lint.sh

demo:
	bash scripts/venv.sh 52
	.venv/django52/bin/python examples/demo.py

clean:
	-bash scripts/pgserver.sh stop
	rm -rf .venv .pg build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
