# The one entry point for humans and CI. Every target does its own set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTO := proto/suppression/v1/suppression.proto
DEMO_DIR := demo-data

.PHONY: run test soak lint proto proto-check tables bench demo redis promtool clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml setup.py suppression/_membership.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## redis: install redis-server and redis-sentinel (the failover tests run three sentinels)
## from the system package manager where they are missing.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "redis-server missing: installing it with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }
	@command -v redis-sentinel >/dev/null 2>&1 || { \
		echo "redis-sentinel missing: installing it with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-sentinel; }

## promtool: install Prometheus's promtool (Debian package prometheus) where it is missing;
## the tests check deploy/prometheus/ with it.
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
		echo "promtool missing: installing the prometheus package with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends prometheus; }

## proto: regenerate the committed gRPC code from $(PROTO).
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iproto \
		--python_out=. --pyi_out=. --grpc_python_out=. $(PROTO)

## tables: regenerate suppression/e164_tables.py from phonenumbers' metadata.
tables: $(STAMP)
	$(BIN)/python -m suppression.e164_tables_gen

## demo: generate the demo data set that `make run` serves.
demo: $(STAMP)
	@test -f $(DEMO_DIR)/.complete || $(BIN)/python -m suppression.demo $(DEMO_DIR)

## run: start the server on the demo data (gRPC :50051, metrics :9464).
## The hint names the console script by its absolute path, so it runs from any directory.
run: $(STAMP) demo
	@echo "serving the demo data on :50051; in another terminal try (exit code 1: some are suppressed):"
	@echo "  $(CURDIR)/$(BIN)/suppression check --target localhost:50051 +8613800138000 +12125550123 +12025550147"
	$(BIN)/suppression serve --data-dir $(DEMO_DIR)

## test: the whole suite, as CI runs it (the one-minute chaos soak included).
test: $(STAMP) redis promtool
	$(BIN)/python -m pytest

## soak: only the one-minute chaos soak (three replicas, Redis primary and replica, three
## sentinels, kill -9), for running it again and again on its own.
soak: $(STAMP) redis
	$(BIN)/python -m pytest -m soak tests/integration/test_soak.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check suppression loader tests benchmarks
	$(BIN)/mypy suppression loader

## bench: every benchmark, appending figures to benchmarks/RESULTS.md (not part of CI).
bench: $(STAMP) redis
	$(BIN)/python benchmarks/bench_check.py --record
	$(BIN)/python benchmarks/bench_changes.py --record
	$(BIN)/python benchmarks/bench_metrics_overhead.py
	$(BIN)/python benchmarks/bench_scrub.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
