#!/usr/bin/env bash
# The local playground: a Temporal dev server, the project's test API server with the CRDs and
# config/samples/ applied, and the operator. Stays in the foreground until Ctrl-C and stops
# everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_PORT=${TEMPORAL_PORT:-7233}
TEMPORAL_UI_PORT=${TEMPORAL_UI_PORT:-8233}
CLUSTER_PORT=${CLUSTER_PORT:-6443}
DIR=${PLAYGROUND_DIR:-.playground}
BIN=./target/debug

command -v temporal >/dev/null || { echo "temporal CLI not found: run 'make playground' (it installs it)"; exit 1; }
for port in "$TEMPORAL_PORT" "$TEMPORAL_UI_PORT" "$CLUSTER_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port on 127.0.0.1 is in use; set TEMPORAL_PORT, TEMPORAL_UI_PORT or CLUSTER_PORT to free ports"
    exit 1
  fi
done

rm -rf "$DIR" && mkdir -p "$DIR"
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping the playground..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

temporal server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
  --log-level warn >"$DIR/temporal.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  temporal operator cluster health --address "127.0.0.1:$TEMPORAL_PORT" 2>/dev/null | grep -q SERVING && break
  sleep 0.3
done
temporal operator cluster health --address "127.0.0.1:$TEMPORAL_PORT" | grep -q SERVING \
  || { echo "Temporal did not start; see $DIR/temporal.log"; exit 1; }

"$BIN/testcluster" --port "$CLUSTER_PORT" --kubeconfig "$DIR/kubeconfig" --apply crds config/samples >"$DIR/testcluster.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do [ -s "$DIR/kubeconfig" ] && grep -q listening "$DIR/testcluster.log" && break; sleep 0.2; done
grep -q listening "$DIR/testcluster.log" || { cat "$DIR/testcluster.log"; exit 1; }

export KUBECONFIG="$PWD/$DIR/kubeconfig"
TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT" TEMPORAL_NAMESPACE=default \
  "$BIN/durablejob" operator --log-format text --metrics-addr 127.0.0.1:8080 --health-addr 127.0.0.1:8081 \
  >"$DIR/operator.log" 2>&1 &
pids+=($!)
TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT" TEMPORAL_NAMESPACE=default \
  "$BIN/durablejob" worker --log-format text --health-addr 127.0.0.1:8082 >"$DIR/runner.log" 2>&1 &
pids+=($!)

cat <<MSG

durablejob playground is running (logs in $DIR/). In another shell:

  export KUBECONFIG=$PWD/$DIR/kubeconfig
  export TEMPORAL_ADDRESS=127.0.0.1:$TEMPORAL_PORT
  kubectl get dj                          # or: $BIN/durablejob get -A
  kubectl get jobs                        # one Job per run, made by the runner
  temporal schedule list                  # the schedules the operator made
  temporal schedule trigger --schedule-id durablejob:default/nightly-report   # run one now
  Temporal UI: http://127.0.0.1:$TEMPORAL_UI_PORT

The test API server completes each Job after 200 ms (annotate a jobTemplate with
test.durablejob.dev/outcomes: "fail,succeed" to see retries). Press Ctrl-C to stop.
MSG

while true; do
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "a playground process exited; see $DIR/*.log"; exit 1; }
  done
  echo "--- $(date +%H:%M:%S)  durablejob get -A"
  "$BIN/durablejob" get -A || true
  sleep 5
done
