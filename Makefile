# `make demo` and `make test` work on a fresh machine: each creates .venv if
# it is missing and installs what it needs before running.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo demo-supervision demo-services demo-collab collab-assets test bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The chat on 127.0.0.1:8000 with the embedded sqlite store (Ctrl-C stops it).
demo: $(STAMP)
	$(BIN)/python -m examples.chat --http 127.0.0.1:8000

# The collaborative editor's page (examples/collab/web): Yjs, y-websocket's
# client and CodeMirror 6 from npm, pinned in package-lock.json, bundled by a
# pinned esbuild into examples/collab/static/bundle.js (not committed). Built
# only when the bundle is missing or older than the sources or the lock file:
# the server itself never builds anything. Installs Debian's npm when missing.
COLLAB_WEB := examples/collab/web
COLLAB_BUNDLE := examples/collab/static/bundle.js
.PHONY: npm
npm:
	@if ! command -v npm >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "npm: installing nodejs and npm with apt-get"; \
	    log=$$(mktemp); \
	    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install \
	        -y -qq --no-install-recommends nodejs npm; } >"$$log" 2>&1; then \
	      cat "$$log" >&2; rm -f "$$log"; exit 1; \
	    fi; \
	    rm -f "$$log"; \
	  else \
	    echo "npm: npm is missing and apt-get is unusable (not root or absent)" >&2; \
	    exit 1; \
	  fi; \
	fi

$(COLLAB_WEB)/node_modules/.installed: $(COLLAB_WEB)/package.json $(COLLAB_WEB)/package-lock.json
	@$(MAKE) --no-print-directory npm
	cd $(COLLAB_WEB) && npm ci --quiet --no-audit --no-fund
	touch $@

$(COLLAB_BUNDLE): $(COLLAB_WEB)/node_modules/.installed $(wildcard $(COLLAB_WEB)/src/*.js)
	cd $(COLLAB_WEB) && npm run --silent build

collab-assets: $(COLLAB_BUNDLE)

# The collaborative editor on 127.0.0.1:8000 with the embedded sqlite store
# (.collab/collab.db); open it in two browsers (Ctrl-C stops it).
demo-collab: $(STAMP) collab-assets
	$(BIN)/python -m examples.collab --http 127.0.0.1:8000

demo-supervision: $(STAMP)
	$(BIN)/python -m examples.supervision_demo

# The services example: three Inventory instances on two node processes, a
# client calling them through a proxy, and one node killed mid-run.
demo-services: $(STAMP)
	$(BIN)/python -m examples.services

# The browser test (tests/test_chat_browser.py) needs Debian's chromium (the
# playwright package comes with the dev extra; never `playwright install`, whose
# browser download cannot work here). Without root or apt-get it only says so,
# and that test is skipped.
CHROMIUM := /usr/bin/chromium
.PHONY: browser
browser: $(STAMP)
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "browser: installing chromium with apt-get"; \
	    log=$$(mktemp); \
	    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install \
	        -y -qq --no-install-recommends chromium; } >"$$log" 2>&1; then \
	      cat "$$log" >&2; rm -f "$$log"; exit 1; \
	    fi; \
	    rm -f "$$log"; \
	  else \
	    echo "browser: $(CHROMIUM) is missing and apt-get is unusable (not root or absent);" \
	      "the browser test will be skipped"; \
	  fi; \
	fi

# The Redis tests (discovery, the redis pool and store) and the redis_store_append
# benchmark start their own redis-server on a free loopback port: install
# Debian's when it is missing.
.PHONY: redis
redis:
	@if ! command -v redis-server >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "redis: installing redis-server with apt-get"; \
	    log=$$(mktemp); \
	    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install \
	        -y -qq --no-install-recommends redis-server; } >"$$log" 2>&1; then \
	      cat "$$log" >&2; rm -f "$$log"; exit 1; \
	    fi; \
	    rm -f "$$log"; \
	  else \
	    echo "redis: redis-server is missing and apt-get is unusable (not root or absent)" >&2; \
	    exit 1; \
	  fi; \
	fi

# The real-Prometheus test (tests/test_prometheus.py) starts its own prometheus
# on a free loopback port, scraping a two-node cluster's admin endpoints:
# install Debian's when it is missing.
.PHONY: prometheus
prometheus:
	@if ! command -v prometheus >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "prometheus: installing prometheus with apt-get"; \
	    log=$$(mktemp); \
	    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install \
	        -y -qq --no-install-recommends prometheus; } >"$$log" 2>&1; then \
	      cat "$$log" >&2; rm -f "$$log"; exit 1; \
	    fi; \
	    rm -f "$$log"; \
	  else \
	    echo "prometheus: prometheus is missing and apt-get is unusable (not root or absent)" >&2; \
	    exit 1; \
	  fi; \
	fi

# The PostgreSQL tests (tests/servers.py) initdb and start their own server on a
# free loopback port, as the postgres user when run as root: install Debian's
# postgresql when no initdb is found under /usr/lib/postgresql/*/bin.
.PHONY: postgres
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "postgres: installing postgresql with apt-get"; \
	    log=$$(mktemp); \
	    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install \
	        -y -qq --no-install-recommends postgresql; } >"$$log" 2>&1; then \
	      cat "$$log" >&2; rm -f "$$log"; exit 1; \
	    fi; \
	    rm -f "$$log"; \
	  else \
	    echo "postgres: initdb is missing and apt-get is unusable (not root or absent)" >&2; \
	    exit 1; \
	  fi; \
	fi

test: $(STAMP) browser redis prometheus postgres collab-assets
	$(BIN)/python -m pytest

bench: $(STAMP) postgres redis
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy --strict src/trouper

clean:
	rm -rf $(VENV) benchmarks/results.json

.PHONY: bench-chat
bench-chat: $(STAMP)
	$(BIN)/python -m benchmarks.chat

# The collaborative editor (issue 15): Yjs fan-out latency of 50 editors against
# pycrdt-websocket's own server, memory per open document, recovery of 100,000 updates
# (sqlite and PostgreSQL). JSON lines on stdout; BENCH_COLLAB_ARGS=--quick shrinks it.
.PHONY: bench-collab
bench-collab: $(STAMP) postgres
	$(BIN)/python -m benchmarks.collab $(BENCH_COLLAB_ARGS)

# Transports on an impaired link: two nodes in two network namespaces joined by a userspace
# packet forwarder (loss x RTT grid, tcp vs quic); rewrites docs/transport-impairment.md.
# Needs root: without it, it says why and exits 0. BENCH_NET_ARGS=--quick runs one cell.
.PHONY: bench-net
bench-net: $(STAMP)
	$(BIN)/python -m benchmarks.net $(BENCH_NET_ARGS)

# The soak test: three node processes for SOAK_DURATION seconds under a seeded chaos of
# kill -9 and restarts, slow actors, bursts of tells and steady asks. One JSON line of
# figures on stdout, a summary on stderr; exit 1 if a check failed. SOAK_ARGS passes
# flags (--seed N, --short for the 20 s run of make test, --help for the rest).
SOAK_DURATION ?= 180
.PHONY: soak
soak: $(STAMP)
	@$(BIN)/python -m benchmarks.soak --duration $(SOAK_DURATION) $(SOAK_ARGS)

# The gateway's HTTP path against hypercorn's trio worker and uvicorn+httptools,
# with wrk (one thread) as the load generator: install Debian's when it is missing.
.PHONY: wrk bench-http
wrk:
	@if ! command -v wrk >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "wrk: installing wrk with apt-get"; \
	    log=$$(mktemp); \
	    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install \
	        -y -qq --no-install-recommends wrk; } >"$$log" 2>&1; then \
	      cat "$$log" >&2; rm -f "$$log"; exit 1; \
	    fi; \
	    rm -f "$$log"; \
	  else \
	    echo "wrk: wrk is missing and apt-get is unusable (not root or absent)" >&2; \
	    exit 1; \
	  fi; \
	fi

bench-http: $(STAMP) wrk
	$(BIN)/python -m benchmarks.http $(BENCH_HTTP_ARGS)
