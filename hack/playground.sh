#!/usr/bin/env bash
# The local playground: a Temporal dev server, the real Kubernetes control plane
# (hack/cluster.sh, kwok as the kubelet) with the CRDs, the shipped RBAC and config/samples/
# applied, the operator and the built-in runner, each as its own ServiceAccount. Shows
# `durablejob get -A` every few seconds until Ctrl-C, then stops everything it started and
# exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_PORT=${TEMPORAL_PORT:-7233}
TEMPORAL_UI_PORT=${TEMPORAL_UI_PORT:-8233}
DIR=${PLAYGROUND_DIR:-$PWD/.playground}
BIN=./target/debug
KUBECTL=./.tools/bin/kubectl

command -v temporal >/dev/null || { echo "temporal CLI not found: run 'make playground' (it installs it)"; exit 1; }
for port in "$TEMPORAL_PORT" "$TEMPORAL_UI_PORT" 8080 8081 8082; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port on 127.0.0.1 is in use; stop what uses it (or set TEMPORAL_PORT / TEMPORAL_UI_PORT)"
    exit 1
  fi
done

[ -f "$DIR/cluster/pids" ] && ./hack/cluster.sh stop "$DIR/cluster"
rm -rf "$DIR" && mkdir -p "$DIR"
pids=()
stopping=0
cleanup() {
  stopping=1
  trap - INT TERM EXIT
  echo
  echo "stopping the playground..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ./hack/cluster.sh stop "$DIR/cluster" || true
  echo "stopped."
  exit 0
}
trap cleanup INT TERM EXIT

echo "starting the Temporal dev server..."
temporal server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
  --log-level warn >"$DIR/temporal.log" 2>&1 &
pids+=($!)

echo "starting Kubernetes (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)..."
# the CRDs go in before the controller manager starts, so its garbage collector knows them
./hack/cluster.sh start "$DIR/cluster" --watch $$ --crds crds/
export KUBECONFIG="$DIR/cluster/kubeconfig"

for _ in $(seq 1 100); do
  temporal operator cluster health --address "127.0.0.1:$TEMPORAL_PORT" 2>/dev/null | grep -q SERVING && break
  sleep 0.3
done
temporal operator cluster health --address "127.0.0.1:$TEMPORAL_PORT" | grep -q SERVING \
  || { echo "Temporal did not start; see $DIR/temporal.log"; exit 1; }

"$KUBECTL" apply -f config/rbac/operator-clusterrole.yaml -f config/rbac/runner-clusterrole.yaml \
  -f config/rbac/user-clusterroles.yaml >/dev/null
# the kubectl plugin: `kubectl durablejob VERB` finds kubectl-durablejob on PATH
ln -sf "$PWD/$BIN/durablejob" .tools/bin/kubectl-durablejob

# The operator and the runner run as their own ServiceAccounts, as in a cluster.
"$KUBECTL" create namespace durablejob-system >/dev/null
identity() {
  local sa=$1
  "$KUBECTL" create serviceaccount "$sa" -n durablejob-system >/dev/null
  "$KUBECTL" create clusterrolebinding "$sa" --clusterrole "$sa" --serviceaccount "durablejob-system:$sa" >/dev/null
  local token
  token=$("$KUBECTL" create token "$sa" -n durablejob-system --duration 24h)
  local file=$DIR/$sa.kubeconfig server ca
  server=$("$KUBECTL" config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  ca=$("$KUBECTL" config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
  KUBECONFIG=$file "$KUBECTL" config set-cluster playground --server "$server" >/dev/null
  KUBECONFIG=$file "$KUBECTL" config set clusters.playground.certificate-authority-data "$ca" >/dev/null
  KUBECONFIG=$file "$KUBECTL" config set-credentials "$sa" --token "$token" >/dev/null
  KUBECONFIG=$file "$KUBECTL" config set-context playground --cluster playground --user "$sa" >/dev/null
  KUBECONFIG=$file "$KUBECTL" config use-context playground >/dev/null
}
identity durablejob-operator
identity durablejob-runner

TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT" TEMPORAL_NAMESPACE=default KUBECONFIG="$DIR/durablejob-operator.kubeconfig" \
  "$BIN/durablejob" operator --log-format text --metrics-addr 127.0.0.1:8080 --health-addr 127.0.0.1:8081 \
  >"$DIR/operator.log" 2>&1 &
pids+=($!)
TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT" TEMPORAL_NAMESPACE=default KUBECONFIG="$DIR/durablejob-runner.kubeconfig" \
  "$BIN/durablejob" runner --log-format text --health-addr 127.0.0.1:8082 --metrics-addr 127.0.0.1:8083 \
  --sdk-metrics-addr 127.0.0.1:9464 >"$DIR/runner.log" 2>&1 &
pids+=($!)

"$KUBECTL" apply -k config/samples >/dev/null
"$KUBECTL" wait --for=condition=Ready --timeout=60s dj/nightly-report >/dev/null 2>&1 || true
# one run of the nightly report now, through the operator, as a user would start it
PATH="$PWD/.tools/bin:$PATH" TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT" \
  "$KUBECTL" durablejob trigger nightly-report --wait || true

cat <<MSG

durablejob playground is running (logs in $DIR/). In another shell:

  export KUBECONFIG=$KUBECONFIG
  export PATH=$PWD/.tools/bin:\$PATH TEMPORAL_ADDRESS=127.0.0.1:$TEMPORAL_PORT
  kubectl get dj                          # or: $BIN/durablejob get -A
  kubectl get djcal                       # calendars of excluded days (nightly-report uses one)
  kubectl get jobs,pods -l durablejob.dev/name=heartbeat   # one Job per run, made by the runner
  kubectl durablejob trigger nightly-report --wait   # run one now (an annotation the operator acts on)
  kubectl durablejob runs nightly-report  # recent runs: result, attempts, Job, Temporal UI link
  kubectl durablejob status nightly-report
  kubectl durablejob rollout status invoice-sync   # a versioned worker: it waits for pollers, as
                                          # kwok runs no worker image (docs/workers.md)
  kubectl durablejob query nightly-report --run <WORKFLOW ID from runs> status   # a running run
  temporal schedule list                  # the schedules the operator made
  Temporal UI: http://127.0.0.1:$TEMPORAL_UI_PORT

Pods run on fake nodes (kwok plays the kubelet): each ends after 1s, successfully, unless its
pod template says otherwise (tests/cluster/README.md: annotate it with
test.durablejob.dev/outcomes: "fail,succeed" to see a retry). Press Ctrl-C to stop.
MSG

while [ $stopping = 0 ]; do
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "a playground process ($pid) exited; see $DIR/*.log"
      trap - EXIT
      for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
      ./hack/cluster.sh stop "$DIR/cluster" || true
      exit 1
    fi
  done
  echo "--- $(date +%H:%M:%S)  durablejob get -A"
  "$BIN/durablejob" get -A || true
  DURABLEJOB_TEMPORAL_UI_URL="http://127.0.0.1:$TEMPORAL_UI_PORT" "$BIN/durablejob" runs nightly-report 2>/dev/null | head -4 || true
  sleep 5 &
  wait $! 2>/dev/null || true
done
