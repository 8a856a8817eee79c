# creditctl — `make run` sets everything up and starts the service; `make test` runs the whole suite.
# the first interpreter that really runs and is 3.11 or 3.12 (durable-rules does not import on 3.13)
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do $$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 13))' >/dev/null 2>&1 && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest-xdist processes: every test makes its own databases, servers and ports, so they run side by side
TEST_WORKERS ?= 2
# steadier, faster allocation for durable_rules' C core (docs/durable-rules.md)
export GLIBC_TUNABLES ?= glibc.malloc.trim_threshold=268435456:glibc.malloc.mmap_threshold=268435456

# Debian packages the tests need: chromium (the console's browser tests: Playwright drives Debian's
# chromium and never downloads one); for the documents: Pango and HarfBuzz's subsetter (WeasyPrint loads them at run time),
# a CJK font (Chinese PDFs without it render as empty boxes), poppler-utils (pdftotext, pdffonts, pdftoppm:
# the document tests read the PDFs back), openssl (the SMTP test makes a throw-away certificate)
SYSTEM_PACKAGES := chromium libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fontconfig fonts-noto-cjk poppler-utils openssl
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-packages browser run lint test soak bench bench-http bench-sweep bench-import bench-console bench-credit-check bench-simulate clean

$(STAMP): pyproject.toml
	$(MAKE) --no-print-directory system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.2
	# durable-rules ships as source and its build ignores CFLAGS: CC carries -O2 to its gcc lines (+19 % on
	# matching), and --no-cache-dir keeps pip from reusing a wheel built without it
	CC="gcc -O2" $(BIN)/pip install --quiet --no-cache-dir --no-binary durable-rules 'durable-rules==2.0.28'
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

browser: system-packages

setup: system-packages $(STAMP)

# installs only what is missing; the package lists are refreshed only when an install fails without them
system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing system packages:" $$missing; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    $(SUDO) apt-get install -y --no-install-recommends $$missing \
	    || { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends $$missing; }; \
	fi

run: $(STAMP)
	$(BIN)/creditctl policy check policies.yaml
	$(BIN)/creditctl serve --demo

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) browser lint
	$(BIN)/creditctl policy check policies.yaml
	$(BIN)/creditctl policy test policies.yaml
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS)

# the full-size variants of bounded tests (marker soak), e.g. 3,300 fuzzed policy texts instead of 297
soak: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) -m soak

bench: $(STAMP)
	$(BIN)/python bench/run.py

bench-http: $(STAMP)
	$(BIN)/python bench/http_bench.py

# N=100,000 customers (1M invoices) by default; e.g. make bench-sweep SWEEP_ARGS='--customers 10000,20000'
bench-sweep: $(STAMP)
	$(BIN)/python bench/sweep_bench.py $(SWEEP_ARGS)

# 25,000 customers by default, workers 1 and 2; e.g. make bench-simulate SIM_ARGS='--repo /tmp/base --rounds 2'
bench-simulate: $(STAMP)
	$(BIN)/python bench/simulate_bench.py $(SIM_ARGS)

# 100,000 customers / 1M invoices by default; e.g. make bench-import IMPORT_ARGS='--customers 10000'
bench-import: $(STAMP)
	$(BIN)/python bench/import_bench.py $(IMPORT_ARGS)

# credit checks in-process: SQL statements, CPU per check, cProfile; CC_ARGS='--repo /tmp/base' for a side-by-side run
bench-credit-check: $(STAMP)
	$(BIN)/python bench/credit_check_bench.py --profile $(CC_ARGS)

# console page render p95 on a generated book (bench/console_bench.py; CONSOLE_ARGS='--customers 100000')
bench-console: $(STAMP)
	$(BIN)/python bench/console_bench.py $(CONSOLE_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
