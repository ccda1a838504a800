# Developer entry points. `make demo` and `make test` are the README's two commands.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints/dev.txt -e '.[test]'
	touch $(STAMP)

## A demo search on the embedded SQLite default: the digits objective, 2 workers.
demo: $(STAMP)
	$(VENV)/bin/tui-hpo launch objectives.digits:objective --study digits-demo \
		--n-trials 24 --workers 2 --pruner median

lint: $(STAMP)
	$(VENV)/bin/ruff check tui_hpo objectives tests benchmarks
	$(VENV)/bin/ruff format --check tui_hpo objectives tests benchmarks

## The whole test suite (needs PostgreSQL on 127.0.0.1:5432, as on the dev and CI machines).
test: lint
	$(VENV)/bin/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(PY) benchmarks/launch_overhead.py

clean:
	rm -rf $(VENV) tui-hpo.db tui-hpo.db-* tui-hpo-logs .pytest_cache
