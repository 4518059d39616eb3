# The two commands: `make run` and `make test`. Everything else is a helper of theirs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
WORKERS ?= 2
MANAGE := cd server && ../$(BIN)/python manage.py
# No permessage-deflate: it compresses every frame once per socket (each has its own
# compressor), which dominates a busy room's fan-out; chat frames are small (BENCHMARKS.md).
UVICORN_FLAGS := --ws-max-size 65536 --ws-per-message-deflate false --ws-ping-interval 20 \
	--ws-ping-timeout 20 --lifespan on

.PHONY: run serve test test-fast lint typecheck install migrate clean bench bench-quick soak
.DEFAULT_GOAL := run

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

# A first run gets a .env of its own (DEBUG on, a fresh SECRET_KEY); edit it to configure.
.env:
	@sed "s|^SECRET_KEY=.*|SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))')|" .env.example > .env
	@echo "Created .env from .env.example (DEBUG on). Edit it to set OPENAI_API_KEY and more."

migrate: install .env
	$(MANAGE) migrate --noinput

run: migrate
	@echo "Serving on http://$(HOST):$(PORT)/  (Ctrl+C stops)"
	cd server && exec ../$(BIN)/uvicorn config.asgi:application --host $(HOST) --port $(PORT) $(UVICORN_FLAGS)

# Production-style: several worker processes; needs DATABASE_URL and REDIS_URL. Started as the
# container starts (deploy/container.sh start: migrations, then uvicorn with its limits for slow
# clients and its trusted proxies, FORWARDED_ALLOW_IPS), so both serve alike.
serve: install
	$(MANAGE) collectstatic --noinput -v 0
	VENV="$(CURDIR)/$(VENV)" HOST=$(HOST) PORT=$(PORT) WEB_CONCURRENCY=$(WORKERS) \
		exec deploy/container.sh start

# The whole suite: once on SQLite + the in-memory layer, then, when TEST_DATABASE_URL or
# TEST_REDIS_URL is set, again on PostgreSQL + Redis (where REQUIRE_SERVICES=1 turns the
# skips of service tests into failures).
test: install
	DATABASE_URL= REDIS_URL= REQUIRE_SERVICES=$(if $(TEST_DATABASE_URL)$(TEST_REDIS_URL),0,$(REQUIRE_SERVICES)) \
		$(BIN)/pytest $(PYTEST_ARGS)
	@if [ -n "$(TEST_DATABASE_URL)$(TEST_REDIS_URL)" ]; then \
		echo "== again on $(if $(TEST_DATABASE_URL),PostgreSQL,SQLite) + $(if $(TEST_REDIS_URL),Redis,in-memory) =="; \
		DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" CHANNEL_PREFIX=test \
			$(BIN)/pytest $(PYTEST_ARGS); \
	fi

# Benchmarks against the peers (BENCHMARKS.md): real server processes on loopback ports over
# PostgreSQL and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL; the database is re-created).
# Results: bench/results/<run>/. BENCH_ARGS="--profile fanout" samples the servers with py-spy.
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

# 200 clients over two processes with reconnect churn and AI replies (bench/soak.py); every
# client's view must equal the database at the end. SOAK_SECONDS=60 is CI's run.
soak: install
	$(BIN)/python -m bench.soak $(if $(SOAK_SECONDS),--seconds $(SOAK_SECONDS),)

bench-quick: install
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

# ruff, then the floors of the code (import-linter contracts in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=server $(BIN)/lint-imports pyproject.toml

typecheck: install
	$(BIN)/mypy server testkit

clean:
	rm -rf $(VENV) server/staticfiles .pytest_cache .mypy_cache .ruff_cache

# --- Operations (README, "Deploying") --------------------------------------------------------
.PHONY: backup demo smoke
# A copy of the database in backups/: pg_dump's custom format, or SQLite's online backup.
backup: install
	$(MANAGE) backup_db
# Demo users (their password is printed), a room they share and a few messages.
demo: migrate
	$(MANAGE) demo_data
# The Docker image's own install and start (deploy/container.sh), run on this machine against
# the local PostgreSQL and Redis, as CI does.
smoke:
	bash deploy/smoke.sh
