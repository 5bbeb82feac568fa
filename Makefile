# p2pcall: `make run` starts the hub, `make test` runs lint and every test,
# `make bench` runs the benchmarks. Each target installs what it needs.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8080
STAMP := $(VENV)/.installed

.PHONY: setup run cluster test lint sysdeps bench soak clean

FIREFOX_DRIVER := tests/browser/firefox_driver

# GStreamer's webrtcbin, driven by the system python3 (tests/peer/test_webrtcbin.py)
GST_PACKAGES := python3 python3-gi gir1.2-gst-plugins-bad-1.0 gstreamer1.0-plugins-bad \
	gstreamer1.0-plugins-good gstreamer1.0-nice
GST_PROBE := import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstWebRTC', '1.0'); \
	from gi.repository import Gst; Gst.init(None); \
	assert all(Gst.ElementFactory.find(e) for e in ('webrtcbin', 'vp8enc', 'nicesrc'))

setup: $(STAMP) static/node_modules/.package-lock.json $(FIREFOX_DRIVER)/node_modules/.package-lock.json

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

static/node_modules/.package-lock.json: static/package.json static/package-lock.json
	npm ci --prefix static --no-audit --no-fund --loglevel=error

# puppeteer-core drives the installed firefox-esr; it downloads no browser, and no install
# script runs at all
$(FIREFOX_DRIVER)/node_modules/.package-lock.json: $(FIREFOX_DRIVER)/package.json $(FIREFOX_DRIVER)/package-lock.json
	npm ci --prefix $(FIREFOX_DRIVER) --ignore-scripts --no-audit --no-fund --loglevel=error

run: setup
	$(PY) -m signaling --host $(HOST) --port $(PORT)

# Redis, two hubs on it and HAProxy in front on 127.0.0.1:$(CLUSTER_PORT), until Ctrl-C
# (deploy/cluster.py; docs/deploy.md, "Several hub processes")
CLUSTER_PORT ?= 8080
cluster: setup sysdeps
	$(PY) deploy/cluster.py --port $(CLUSTER_PORT)

# Installs the Debian packages the tests drive (browsers, X server, coturn, redis-server,
# haproxy, OpenCV's libGL, ip and iptables for the network-namespace tests, GStreamer's
# webrtcbin for the system python3) when they are missing and we are root; otherwise the
# tests say what to install.
sysdeps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v firefox-esr >/dev/null || missing="$$missing firefox-esr"; \
	command -v Xvfb >/dev/null || missing="$$missing xvfb xauth"; \
	command -v turnserver >/dev/null || missing="$$missing coturn"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v haproxy >/dev/null || missing="$$missing haproxy"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v iptables >/dev/null || missing="$$missing iptables"; \
	ldconfig -p | grep -q libGL.so.1 || missing="$$missing libgl1 libglib2.0-0"; \
	gst=""; /usr/bin/python3 -c "$(GST_PROBE)" 2>/dev/null || gst="$(GST_PACKAGES)"; \
	if [ -n "$$missing$$gst" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing $$gst"; \
	    apt-get -o DPkg::Lock::Timeout=600 update -qq; \
	    if [ -n "$$missing" ]; then DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq $$missing >/dev/null; fi; \
	    if [ -n "$$gst" ]; then DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $$gst >/dev/null; fi; \
	  else \
	    echo "missing system packages:$$missing $$gst (run: sudo apt-get install$$missing $$gst)"; \
	  fi; \
	fi

lint: setup
	$(VENV)/bin/ruff check signaling peer tests bench deploy
	$(VENV)/bin/ruff format --check signaling peer tests bench deploy
	$(VENV)/bin/mypy signaling peer bench deploy tests

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
	rm -rf $(VENV) static/node_modules $(FIREFOX_DRIVER)/node_modules bench/peerjs test-artifacts
