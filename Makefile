# p2pcall: `make run` starts the hub, `make test` runs lint and every test,
# `make bench` runs the benchmarks. Each target installs what it needs.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8080
STAMP := $(VENV)/.installed

.PHONY: setup run test lint sysdeps bench soak clean

setup: $(STAMP) static/node_modules/.package-lock.json

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

static/node_modules/.package-lock.json: static/package.json static/package-lock.json
	npm ci --prefix static --no-audit --no-fund --loglevel=error

run: setup
	$(PY) -m signaling --host $(HOST) --port $(PORT)

# Installs the Debian packages the tests drive (browser, X server, coturn, OpenCV's libGL)
# when they are missing and we are root; otherwise the tests say what to install.
sysdeps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v Xvfb >/dev/null || missing="$$missing xvfb xauth"; \
	command -v turnserver >/dev/null || missing="$$missing coturn"; \
	ldconfig -p | grep -q libGL.so.1 || missing="$$missing libgl1 libglib2.0-0"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing (run: sudo apt-get install$$missing)"; \
	  fi; \
	fi

lint: setup
	$(VENV)/bin/ruff check signaling peer tests bench
	$(VENV)/bin/ruff format --check signaling peer tests bench
	$(VENV)/bin/mypy signaling peer bench

test: setup sysdeps lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup sysdeps
	$(PY) -m bench $(BENCH_ARGS)

# Legitimate calls mixed with hostile clients for SOAK_SECONDS (default 600) on loopback;
# writes docs/soak.json and docs/soak-rss.png. Longer: make soak SOAK_SECONDS=3600
SOAK_SECONDS ?= 600
soak: setup
	$(PY) -m bench.soak --seconds $(SOAK_SECONDS) --out docs/soak.json --plot docs/soak-rss.png

clean:
	rm -rf $(VENV) static/node_modules bench/peerjs test-artifacts
