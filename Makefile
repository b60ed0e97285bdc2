# The two commands of the quick start are `make up` and `make test`.
# Everything is installed from uv.lock into .venv; uv itself into .tools.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV_BIN := .venv/bin
export UV_PYTHON_DOWNLOADS := never

.PHONY: install up demo check test lint typecheck client pytest e2e-localstack infra terraform checkov image bench loadtest fuzz clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

DASHBOARD := services/metrics/dashboard

CLIENT := clients/typescript

install: $(UV) $(DASHBOARD)/node_modules/.package-lock.json $(CLIENT)/node_modules/.package-lock.json
	$(UV) sync --frozen --quiet

# The dashboard serves its chart library itself (no CDN), from the npm lock file.
$(DASHBOARD)/node_modules/.package-lock.json: $(DASHBOARD)/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix $(DASHBOARD) --no-audit --no-fund --loglevel=error; \
	else \
		echo "WARNING: npm not found: /dashboard will have no charts (install Node.js 18+)"; \
	fi

# The TypeScript client's generator and compiler, from its npm lock file.
$(CLIENT)/node_modules/.package-lock.json: $(CLIENT)/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix $(CLIENT) --no-audit --no-fund --loglevel=error; \
	else \
		echo "WARNING: npm not found: the TypeScript client cannot be checked (install Node.js 18+)"; \
	fi

## Run the whole platform on this machine: four APIs, their workers, moto, SQLite, Redis stand-in.
up: install
	$(VENV_BIN)/stories up

## Fill the platform `make up` runs (in another shell) with a demo library: 46 books in
## five languages, users of every role (credentials printed), a month of reading.
## Through the gateway's public API only; running it again adds nothing.
demo: install
	$(VENV_BIN)/stories demo

## The fast loop, while you work (about a minute here): lint, type checks, import
## rules and every test that needs no server (no PostgreSQL, Redis, AWS emulator or
## running service: tests/conftest.py marks the others `server`). `make test` before
## you push: everything.
check: install
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .
	$(VENV_BIN)/lint-imports
	$(VENV_BIN)/mypy
	$(VENV_BIN)/pytest -q -m "not server"

## Install everything, then lint, type-check, check import rules and run every test.
## Every stage runs even when one before it failed; a summary names each one's result.
## Two lanes side by side (scripts/test-stages): pytest, and every other stage in turn.
test: install
	scripts/ensure-services
	scripts/ensure-tools
	scripts/ensure-ralph
	scripts/ensure-validators
	scripts/ensure-localstack
	scripts/test-stages pytest -- lint typecheck client e2e-localstack terraform checkov image

lint:
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .
	$(VENV_BIN)/lint-imports

typecheck:
	$(VENV_BIN)/mypy

## The TypeScript client (clients/typescript): types generated from the gateway's merged
## OpenAPI document, then the typed example compiled with tsc --noEmit. A change to the
## API's shape that breaks a caller fails here.
client:
	npm run --prefix $(CLIENT) --silent check

## Every test but the cross-service scenarios (marker e2e), on moto: those run in the
## next stage against the stricter emulator, and here only where moto takes another
## path worth proving (marker both_emulators). `.venv/bin/pytest` alone runs them all.
pytest:
	$(VENV_BIN)/pytest -m "not e2e or both_emulators"

## A Redis database of its own: each session empties its database first, and `make
## test` runs this stage beside pytest's (15; the fuzz test's is 14, the benchmarks' 12, 13).
E2E_REDIS_URL ?= redis://127.0.0.1:6379/11

## The cross-service scenarios, against LocalStack (host mode, pinned 4.13.1;
## presigned signatures and POST policies enforced), started and stopped by pytest.
e2e-localstack:
	scripts/ensure-localstack
	TEST_AWS=localstack TEST_REDIS_URL=$(E2E_REDIS_URL) $(VENV_BIN)/pytest -m e2e

## infra/: terraform fmt, init (local provider mirror), validate, test (SKIPPED, saying why,
## without terraform); checkov over infra/ and the Dockerfile (accepted findings in .checkov.yaml).
infra: terraform checkov

terraform:
	scripts/terraform-checks

checkov:
	scripts/checkov-checks

## The image, really built without a Docker engine (debootstrap base, buildah), then one
## service started from it must answer /healthz (SKIPPED, saying why, without buildah).
image:
	scripts/build-image

## Authenticated schemathesis (ADMIN and LEARNER tokens, every check) over every service,
## on the embedded run and on PostgreSQL + Redis, with many random cases (`make test` runs
## a fixed seed with few). A failure prints its seed: FUZZ_SEED=<seed> make fuzz replays it.
fuzz: install
	scripts/ensure-services
	FUZZ_SEED=$${FUZZ_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')} \
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-60} FUZZ_TIMEOUT=3600 \
	$(VENV_BIN)/pytest -p no:cacheprovider tests/platform/test_fuzz.py

## Benchmarks: each figure beside its baseline from the same run (needs wrk).
bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	scripts/ensure-services
	$(VENV_BIN)/stories bench

## The whole platform under its real peak, then flat out, beside a floor of bare apps
## (about 15 minutes; needs wrk, PostgreSQL and Redis, which it installs or starts).
loadtest: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	scripts/ensure-services
	$(VENV_BIN)/stories loadtest

clean:
	rm -rf .venv .tools .stories .mypy_cache .ruff_cache .pytest_cache
