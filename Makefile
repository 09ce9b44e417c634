# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make run` is for a newcomer's laptop: a generated JWT secret under instance/.
RUN_ENV ?= APP_ENV=development

.PHONY: run test unit services clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/activate
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

## run: install, migrate, and serve on 127.0.0.1:8000 (SQLite, in-process broker)
run: $(VENV)/.runtime
	$(RUN_ENV) $(BIN)/flask --app wsgi db upgrade
	$(RUN_ENV) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

## test: install what tests need, start Redis and PostgreSQL if they are down, run every test
## (and list the 25 slowest, so that a run's log says where its time went)
test: $(VENV)/.dev services
	$(BIN)/pytest --require-services --durations=25 $(PYTEST_ARGS)

## unit: the fast tests that need no service (tests/unit, and the in-process half of the
## broker suite that Redis also passes)
unit: $(VENV)/.dev
	$(BIN)/pytest tests/unit tests/integration/test_broker.py -m "not redis" $(PYTEST_ARGS)

services:
	scripts/ensure-services.sh redis postgres chromium nginx nchan

clean:
	rm -rf $(VENV) instance .pytest_cache

# -- Benchmark (bench/) --------------------------------------------------------------------------
.PHONY: bench bench-smoke

$(VENV)/.bench: bench/requirements.txt $(VENV)/.runtime
	$(BIN)/pip install --disable-pip-version-check -q -r bench/requirements.txt
	touch $@

## bench: this project, Flask-SSE (gunicorn+gevent+Redis) and nchan (nginx+Redis), same scenarios,
## one run (~20 min); prints the table with ratios and writes bench/results/<date>.json.
## BENCH_ARGS=--smoke: small.
bench: $(VENV)/.bench
	scripts/ensure-services.sh redis nchan
	$(BIN)/python -m bench $(BENCH_ARGS)

## bench-smoke: every scenario, small N and a few seconds each (tests/e2e/test_bench_smoke.py)
bench-smoke: $(VENV)/.bench
	scripts/ensure-services.sh redis nchan
	$(BIN)/python -m bench --smoke $(BENCH_ARGS)

# -- Faults, fuzzing and security checks (tests/chaos) ------------------------------------------
.PHONY: chaos

## chaos: the full tier of tests/chaos (make test runs it at a fifth of the clients and time);
## writes the figures, date and machine to docs/reliability.md (~50 min on 2 cores).
chaos: $(VENV)/.dev
	scripts/ensure-services.sh redis postgres
	CHAOS_SCALE=1 CHAOS_REPORT=docs/reliability.md $(BIN)/pytest --require-services tests/chaos $(PYTEST_ARGS)
