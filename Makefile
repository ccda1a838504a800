# Developer entry points. `make demo` and `make test` are the README's two commands.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp

.PHONY: install demo test lint machine bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints/dev.txt -e '.[test]'
	touch $(STAMP)

## A demo search on the embedded SQLite default (./tui-hpo.db): the digits objective (torch),
## 2 workers started in the background, then the app on it. Quitting the app (q) leaves the
## workers running; `tui-hpo stop digits-demo` (or K in the app) stops them.
demo: $(STAMP)
	$(VENV)/bin/tui-hpo launch objectives.digits:objective --study digits-demo \
		--n-trials 60 --workers 2 --pruner median --detach
	$(VENV)/bin/tui-hpo ui --study digits-demo

lint: $(STAMP)
	$(VENV)/bin/ruff check tui_hpo objectives tests benchmarks
	$(VENV)/bin/ruff format --check tui_hpo objectives tests benchmarks
	$(VENV)/bin/lint-imports

## What the tests need from the machine (tmux, sshd, PostgreSQL on 127.0.0.1:5432, a one-node
## Slurm cluster): installed when missing (as root, with apt-get) and started when not running.
machine:
	bash tests/setup-machine.sh

## The whole test suite, on a machine `machine` has set up (first: it may install python3-venv).
test: machine lint
	$(VENV)/bin/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(PY) benchmarks/launch_overhead.py

clean:
	rm -rf $(VENV) tui-hpo.db tui-hpo.db-* tui-hpo-logs .pytest_cache
