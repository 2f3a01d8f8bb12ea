# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The dashboard's front-end libraries: `npm ci` in web/ (from the committed lock file), copied into a
# git-ignored folder the hub serves. Playwright (tests) drives Debian's chromium and never downloads one.
VENDOR := src/cityhub/web/static/vendor
WEB_STAMP := $(VENDOR)/.built
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: run test install lint bench clean web

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

web: $(WEB_STAMP)

$(WEB_STAMP): web/package.json web/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd web && npm ci --no-audit --no-fund --loglevel=error && cd .. && \
	  rm -rf $(VENDOR) && mkdir -p $(VENDOR)/leaflet && \
	  cp -r web/node_modules/leaflet/dist/leaflet.js web/node_modules/leaflet/dist/leaflet.css \
	    web/node_modules/leaflet/dist/images web/node_modules/leaflet/LICENSE $(VENDOR)/leaflet/ && \
	  touch $@; \
	else echo "npm not found: the dashboard's map library is not built (install Node.js 20 and run make web)"; fi

# `make run MQTT=mqtt://127.0.0.1:1883` also bridges a broker; without it the hub takes HTTP only.
MQTT ?=
run: $(STAMP) $(WEB_STAMP)
	$(BIN)/cityhub serve --demo $(if $(MQTT),--mqtt $(MQTT))

test: $(STAMP) $(WEB_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

bench: $(STAMP)
	$(BIN)/python -m bench.ingest

clean:
	rm -rf $(VENV) var .pytest_cache web/node_modules $(VENDOR)
