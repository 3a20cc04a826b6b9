# Longhaul: one entry point for every habit. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
PINS := requirements.txt
RUNTIME_PINS := requirements-runtime.txt
# PyTorch's CPU build, for training's torch family: installed from a folder of wheels, never
# resolved (docs/training.md "PyTorch").
TORCH_VERSION := 2.13.0
TORCH_WHEELS ?= /opt/wheels
export UV_PYTHON_DOWNLOADS := never
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: help install dev test lint typecheck unit integration e2e fmt token demo demo-media demo-training demo-analytics reset provision schemas compose pins bench synth clean images test-images audit smoke

help: ## List every target with one line each
	@grep -hE '^[a-z][a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) $(PINS) pyproject.toml common/pyproject.toml deploy/pyproject.toml $(wildcard services/*/pyproject.toml)
	[ -x $(BIN)/python ] || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	@# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (these machines), nothing
	@# caches compiled modules, and every service, worker and trainer process the suite and
	@# `make dev` start would compile its libraries again (3.1 s -> 1.4 s a service process).
	$(UV) pip sync --quiet --compile-bytecode --python $(BIN)/python $(PINS)
	@# PyTorch, CPU build, beside the pins (sync removed it): uv would resolve a CUDA build of
	@# several GB, so it installs from the CPU wheel with its dependencies already pinned.
	@# Where the folder lacks the wheel and PYTORCH_CPU_INDEX names PyTorch's CPU index (CI's
	@# repository variable), the wheel is downloaded into the folder first.
	@if ! ls $(TORCH_WHEELS)/torch-$(TORCH_VERSION)+cpu-*.whl >/dev/null 2>&1 && [ -n "$$PYTORCH_CPU_INDEX" ]; then \
	  mkdir -p $(TORCH_WHEELS) && $(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: \
	    --dest $(TORCH_WHEELS) --index-url "$$PYTORCH_CPU_INDEX" torch==$(TORCH_VERSION); fi
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python --no-deps --no-index \
	  --find-links $(TORCH_WHEELS) torch==$(TORCH_VERSION) || { echo "make: the PyTorch $(TORCH_VERSION) CPU wheel is not in $(TORCH_WHEELS) (TORCH_WHEELS=<folder> names another; docs/training.md)"; exit 1; }
	touch $@

install: $(VENV)/.synced ## Install uv and the pinned workspace into .venv (run by every other target)

dev: install ## Start the local platform (moto + provisioned resources + every service) until Ctrl-C; ARGS=--reload
	$(BIN)/longhaul dev $(ARGS)

# The suite runs on every core: its tests wait on processes more than they compute. Tests
# that bind the platform's fixed ports share an xdist group, so they run one at a time.
TEST_WORKERS ?= auto

test: install lint typecheck ## Lint, type-check and run the whole suite (what CI runs; TEST_WORKERS=1 for one process)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

lint: install ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install ## mypy (strict) over the kit, the services, deploy and the tests
	$(BIN)/mypy common deploy tests $(wildcard services/*/) $(wildcard bench)

unit: install ## Only the unit tests
	$(BIN)/pytest tests/unit

integration: install ## Only the tests against a real moto server
	$(BIN)/pytest tests/integration

e2e: install ## Only the tests that start real processes
	$(BIN)/pytest tests/e2e

fmt: install ## Format and autofix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

token: install ## Print a real RS256 access token for the local dev user (needs `make dev` running)
	@$(BIN)/longhaul token

demo: demo-media demo-training demo-analytics ## Every service's demo on the running `make dev`

demo-media: install ## Transcode a generated clip on the running `make dev` and print where the outputs are
	$(BIN)/python -m longhaul_media.demo

demo-training: install ## Upload a generated dataset, train a model on the running `make dev`, print its card
	$(BIN)/python -m longhaul_training.demo

demo-analytics: install ## Send events to the running `make dev` and show its windows live
	$(BIN)/python -m longhaul_analytics.demo

reset: install ## Reset all local state on the running platform and provision again
	$(BIN)/longhaul reset

provision: install ## Create the declared resources on the running local AWS endpoint (idempotent)
	$(BIN)/longhaul provision

schemas: install ## Regenerate the JSON Schemas of every registered event into docs/events/
	$(BIN)/longhaul schemas

compose: install ## Regenerate docker-compose.yml from the service specs
	$(BIN)/longhaul compose > docker-compose.yml

pins: $(UV) ## Re-resolve and write the URL-free pins after a dependency change
	$(UV) lock
	$(UV) export --frozen --all-packages --all-groups --no-hashes --no-emit-project --quiet -o $(PINS)
	@# Images get the members' own dependencies only: dev tools and deploy/'s CDK live in groups.
	$(UV) export --frozen --all-packages --no-default-groups --no-emit-workspace --no-hashes --quiet -o $(RUNTIME_PINS)
	@# Each image installs only its own: the kit's pins in the base, each service's on top.
	$(UV) export --frozen --package longhaul --no-default-groups --no-emit-workspace --no-hashes --quiet -o common/$(RUNTIME_PINS)
	for member in services/*/; do \
	  $(UV) export --frozen --package "longhaul-$$(basename $$member)" --no-default-groups --no-emit-workspace --no-hashes --quiet -o "$${member}$(RUNTIME_PINS)" || exit 1; \
	done

audit: install ## Dependency scan: pip-audit on the images' pins, npm audit on the CDK CLI (needs PyPI and npm)
	$(BIN)/longhaul audit

smoke: install ## Smoke-test the running `make dev` (AWS: SMOKE_ARGS="--env dev --url https://... --outputs ...")
	$(BIN)/longhaul smoke $(SMOKE_ARGS)

bench: install ## Run the benchmarks (each beside a baseline measured in the same run)
	$(BIN)/python -m bench

images: install ## Build the base, the emulator, the platform tools and each service's image with buildah (here on a Debian stand-in base)
	$(BIN)/python -m longhaul.local.images

test-images: install ## Build the images, transcode through media's worker image, run docker-compose.yml with podman-compose (minutes; CI)
	LONGHAUL_IMAGE_TESTS=1 $(BIN)/pytest tests/images

synth: install ## Synthesize every CDK stack into cdk.out/ offline (ENV=dev|prod; no CLI, Docker or AWS)
	rm -rf cdk.out
	CDK_OUTDIR=cdk.out CDK_CONTEXT_JSON='{"env": "$(or $(ENV),dev)"}' $(BIN)/python -m longhaul_deploy.app

clean: ## Remove the virtualenvs and caches
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache cdk.out .longhaul
