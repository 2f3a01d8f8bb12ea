# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The dashboard's front-end libraries and tools: `npm ci` in web/ (from the committed lock file); the hub serves
# the libraries from web/node_modules (git-ignored). Playwright (tests) drives Debian's chromium and never
# downloads one.
WEB_STAMP := web/node_modules/.built
ESLINT := web/node_modules/.bin/eslint --config web/eslint.config.js src/cityhub/web/static/js
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: run test test-duckdb test-postgresql install lint bench clean web

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

web: $(WEB_STAMP)

$(WEB_STAMP): web/package.json web/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd web && npm ci --no-audit --no-fund --loglevel=error && cd .. && touch $@; \
	else echo "npm not found: the dashboard's libraries are not installed (install Node.js 20 and run make web)"; fi

# `make run MQTT=mqtt://127.0.0.1:1883` also bridges a broker; without it the hub takes HTTP only.
# `make run PORT=8090 DATA=/srv/cityhub` serves on another port, from another data directory.
MQTT ?=
PORT ?= 8080
DATA ?= var
run: $(STAMP) $(WEB_STAMP)
	$(BIN)/cityhub serve --demo --port $(PORT) --data-dir $(DATA) $(if $(MQTT),--mqtt $(MQTT))

# eslint over the page's modules where npm is (as for make web). The suite runs on both stores: embedded DuckDB,
# then PostgreSQL/PostGIS (127.0.0.1:5432, a schema per test in database cityhub_test; skipped where absent).
test: $(STAMP) $(WEB_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	@if command -v npm >/dev/null 2>&1; then $(ESLINT); else echo "npm not found: eslint skipped"; fi
	$(BIN)/pytest --store duckdb
	$(BIN)/pytest --store postgresql

test-duckdb: $(STAMP) $(WEB_STAMP)
	$(BIN)/pytest --store duckdb

test-postgresql: $(STAMP) $(WEB_STAMP)
	$(BIN)/pytest --store postgresql

lint: $(STAMP) $(WEB_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	@if command -v npm >/dev/null 2>&1; then $(ESLINT); else echo "npm not found: eslint skipped"; fi

bench: $(STAMP)
	$(BIN)/python -m bench.ingest

clean:
	rm -rf $(VENV) var .pytest_cache web/node_modules
