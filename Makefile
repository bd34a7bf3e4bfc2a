# The two quickstart commands are `make run` and `make test`; both set up everything they need.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NPM_STAMP := tests/npm/node_modules/.installed
# One pytest worker per core (pytest-xdist), each with embedded servers of its own; against a
# given DATABASE_URL every worker would share one database, so then the suite runs in one process.
PYTEST_ARGS ?= $(if $(DATABASE_URL),-n 0,-n auto)
# The npm clients (heroku, cloudmailin) are installed once tests/npm pins them.
NPM_DEPS := $(if $(wildcard tests/npm/package-lock.json),$(NPM_STAMP))
TOOLS_STAMP := .data/tools/.installed
# The dashboard's front-end libraries (Pico CSS, htmx, uPlot; axe-core for the tests), pinned by their lock.
ASSETS_STAMP := provider/static/node_modules/.installed

.PHONY: run test lint bench venv clean ruby-mail chromium

$(STAMP): pyproject.toml
	test -x $(PY) || "$$(bin/find-python)" -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

$(NPM_STAMP): tests/npm/package-lock.json
	npm ci --prefix tests/npm --no-audit --no-fund --loglevel=error
	touch $(NPM_STAMP)

$(ASSETS_STAMP): provider/static/package-lock.json
	npm ci --prefix provider/static --no-audit --no-fund --loglevel=error
	touch $(ASSETS_STAMP)

$(TOOLS_STAMP): bin/fetch-smtp-tools
	bin/fetch-smtp-tools .data/tools
	touch $(TOOLS_STAMP)

# Ruby's mail gem for the submission test (apt when missing; a quick check otherwise).
ruby-mail:
	bin/fetch-ruby-mail

# Debian's Chromium for the dashboard's browser tests (apt when missing; a quick check otherwise).
chromium:
	bin/fetch-chromium

venv: $(STAMP)

## Run the whole service (web, smtp, worker, delivery, demo target and MX) on embedded PostgreSQL, Redis and SeaweedFS unless DATABASE_URL/REDIS_URL are set.
run: $(STAMP) $(NPM_DEPS) $(ASSETS_STAMP)
	$(PY) -m dev.run

## Run the whole test suite against real PostgreSQL and Redis (embedded unless DATABASE_URL/REDIS_URL are set).
test: $(STAMP) $(NPM_DEPS) $(ASSETS_STAMP) $(TOOLS_STAMP) ruby-mail chromium
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench.provision
	$(PY) -m bench.inbound
	$(PY) -m bench.stores
	$(PY) -m bench.outbound
	$(PY) -m bench.dashboard

clean:
	rm -rf $(VENV) tests/npm/node_modules provider/static/node_modules .data
