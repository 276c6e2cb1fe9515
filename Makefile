# The two commands: `make run` (the platform) and `make test` (the whole suite).
VENV    := .venv
BIN     := $(VENV)/bin
HOST    ?= 127.0.0.1
PORT    ?= 8080
PYTEST_ARGS ?=

.PHONY: setup run test check fmt bench bench-quick agents-image

setup:
	@scripts/setup.sh

run: setup
	$(BIN)/sandbay serve --host $(HOST) --port $(PORT)

# The agent tests run the real CLIs: their image is built (once per recipe) first.
test: setup agents-image
	@SANDBAY_BROWSER=1 scripts/setup.sh
	@scripts/test.sh $(PYTEST_ARGS)

agents-image: setup
	@scripts/build-agent-image.sh --if-stale

check:
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	cd envd && GOFLAGS=-mod=mod GOPROXY=off go vet ./... && test -z "$$(gofmt -l .)" \
		&& GOFLAGS=-mod=mod GOPROXY=off go test ./...

fmt:
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: setup
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: setup
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

# Schemathesis over the whole OpenAPI document (native and every dialect), every
# phase (examples, coverage, fuzzing, stateful), 50 examples per operation, on SQLite
# and PostgreSQL: no 5xx, every answer as declared. FUZZ_EXAMPLES=N to change.
.PHONY: fuzz
FUZZ_EXAMPLES ?= 50
fuzz: setup
	SANDBAY_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) SANDBAY_FUZZ_PHASES=examples,coverage,fuzzing,stateful \
		$(BIN)/pytest tests/api/test_fuzz.py -s $(PYTEST_ARGS)
