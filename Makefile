# Omni — two commands for a newcomer: `make run` and `make test`.
# Everything the project needs is installed here, into .tools/ and .venv/ (git-ignored).

SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
BUF := tools/buf/node_modules/.bin/buf
PROTOS := $(shell find protos -name '*.proto')
export PYTHONPATH := $(CURDIR):$(CURDIR)/gen
export UV_PYTHON_DOWNLOADS := never
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test proto lint bench bench-flash-sale clean deps system-deps

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

# The .pth puts the repo and gen/ on the venv's path, so `.venv/bin/python -m ...` works as
# the README and `make run` print it, without PYTHONPATH.
$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --python $(PYTHON) --quiet
	printf '%s\n%s\n' "$(CURDIR)" "$(CURDIR)/gen" > \
		"$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/omni-repo.pth"
	touch $@

$(BUF): tools/buf/package.json tools/buf/package-lock.json
	cd tools/buf && npm install --no-save --no-audit --no-fund --loglevel=error
	touch $@

deps: $(VENV)/.synced

# Generated into a fresh folder, then swapped in, so nothing ever sees a half-written gen/.
gen/.stamp: $(VENV)/.synced $(PROTOS)
	rm -rf gen.new && mkdir -p gen.new
	$(PY) -m grpc_tools.protoc -Iprotos \
		--plugin=protoc-gen-mypy=$(VENV)/bin/protoc-gen-mypy \
		--plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc \
		--python_out=gen.new --grpc_python_out=gen.new \
		--mypy_out=gen.new --mypy_grpc_out=gen.new $(PROTOS)
	touch gen.new/.stamp
	rm -rf gen.old && if [ -d gen ]; then mv gen gen.old; fi && mv gen.new gen && rm -rf gen.old

## proto: generate Python code and type stubs from protos/ (never edited by hand)
proto: gen/.stamp

## run: start embedded PostgreSQL + broker, migrate, start all six services, load demo data
run: proto
	$(PY) -m libs.runner

## system-deps: Debian packages the tests need (Prometheus, Chromium, Docker Compose), when missing
system-deps:
	@missing=""; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium fonts-dejavu-core"; \
	docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 \
		|| missing="$$missing docker-compose"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing (for the tests)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			$(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

## test: the whole suite (unit, integration, e2e) against real PostgreSQL and the real broker
test: proto lint system-deps
	$(PY) -m pytest

## lint: ruff, mypy and buf lint
lint: proto $(BUF)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy libs services tests
	cd protos && ../$(BUF) lint

## bench: benchmarks; figures go to bench-results.md
bench: proto
	$(PY) -m tests.bench

## bench-flash-sale: only the flash-sale benchmark (OMNI_BENCH_PROFILE=1 adds py-spy profiles)
bench-flash-sale: proto
	$(PY) -m tests.bench flash_sale

clean:
	rm -rf gen .pytest_cache .mypy_cache .ruff_cache test-output
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
