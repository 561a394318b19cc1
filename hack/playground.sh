#!/usr/bin/env bash
# The local playground: a Temporal dev server, the real Kubernetes control plane
# (hack/cluster.sh, kwok as the kubelet) with the CRDs, the shipped RBAC and config/samples/
# applied, the operator and the built-in runner, each as its own ServiceAccount, and
# worker-pods (tests/support) playing the versioned worker pods kwok cannot run. Rolls a new
# image out to the sample worker (invoice-sync) once its first version serves. Shows
# `durablejob get -A` and the rollout every few seconds until Ctrl-C, then stops everything it
# started and exits 0.
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
helper=""
stopping=0
cleanup() {
  stopping=1
  trap - INT TERM EXIT
  echo
  echo "stopping the playground..."
  for pid in "${pids[@]}" $helper; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ./hack/cluster.sh stop "$DIR/cluster" || true
  echo "stopped."
  exit 0
}
trap cleanup INT TERM EXIT

echo "starting the Temporal dev server..."
# Worker versions' drainage is rechecked every few seconds instead of Temporal's minutes, so the
# rollout below plays out (Draining, Drained, scaled down, deleted) while you watch.
temporal server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
  --dynamic-config-value 'matching.wv.VersionDrainageStatusRefreshInterval="5s"' \
  --dynamic-config-value 'matching.wv.VersionDrainageStatusVisibilityGracePeriod="5s"' \
  --dynamic-config-value 'matching.PollerHistoryTTL="10s"' \
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

# kwok runs no containers: worker-pods plays each Ready replica of a versioned worker Deployment
# with a real Temporal worker told what the pod is told (its env)
"$BIN/worker-pods" >"$DIR/worker-pods.log" 2>&1 &
pids+=($!)

"$KUBECTL" apply -k config/samples >/dev/null

# A rollout to watch: once invoice-sync's first version serves, a new image goes out with
# playground-sized steps and sunset (the sample's are minutes and hours).
rollout() {
  local current=""
  for _ in $(seq 1 120); do
    current=$("$KUBECTL" get dj invoice-sync -o jsonpath='{.status.worker.currentBuildId}' 2>/dev/null || true)
    [ -n "$current" ] && break
    sleep 1
  done
  if [ -z "$current" ]; then
    echo "invoice-sync's first worker version did not become current; see $DIR/operator.log and $DIR/worker-pods.log" >&2
    return
  fi
  TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT" "$BIN/durablejob" trigger invoice-sync >/dev/null 2>&1 || true
  sleep 10
  "$KUBECTL" patch dj invoice-sync --type merge -p '{"spec": {"worker": {
      "image": "ghcr.io/example/invoice-worker:1.5.0",
      "rollout": {"steps": [{"rampPercentage": 10, "pauseDuration": "20s"}, {"rampPercentage": 50, "pauseDuration": "20s"}]},
      "sunset": {"scaledownDelay": "30s", "deleteDelay": "90s"}}}}' >/dev/null
}
rollout &
helper=$!

# The multi-step sample runs once now. kwok runs no containers, so what its pods would print is
# put on them: the accounts list-accounts finds, and two accounts whose migration fails.
"$KUBECTL" patch dj account-migration --type json -p '[
  {"op": "add", "path": "/spec/steps/0/jobTemplate/spec/template/metadata/annotations",
   "value": {"test.durablejob.dev/result": "[\"acct-1\", \"acct-2\", \"acct-3\", \"acct-4\", \"acct-5\", \"acct-6\", \"acct-7\", \"acct-8\", \"acct-9\", \"acct-10\", \"acct-11\", \"acct-12\"]"}},
  {"op": "add", "path": "/spec/steps/1/jobTemplate/spec/template/metadata/annotations",
   "value": {"test.durablejob.dev/fail-items": "3,8"}},
  {"op": "replace", "path": "/spec/steps/1/retry/initialInterval", "value": "2s"}]' >/dev/null
"$KUBECTL" wait --for=jsonpath='{.status.observedGeneration}'=2 --timeout=60s dj/account-migration >/dev/null 2>&1 || true
TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT" "$BIN/durablejob" trigger account-migration >/dev/null 2>&1 || true
"$KUBECTL" wait --for=condition=Ready --timeout=60s dj/nightly-report >/dev/null 2>&1 || true
# one run of the nightly report now, through the operator, as a user would start it
PATH="$PWD/.tools/bin:$PATH" TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT" \
  "$KUBECTL" durablejob trigger nightly-report --wait || true

cat <<MSG | tee "$DIR/try.txt"

durablejob playground is running (logs in $DIR/). In another shell:

  export KUBECONFIG=$KUBECONFIG
  export PATH=$PWD/.tools/bin:\$PATH TEMPORAL_ADDRESS=127.0.0.1:$TEMPORAL_PORT
  kubectl get dj                          # or: $BIN/durablejob get -A
  kubectl get djcal                       # calendars of excluded days (nightly-report uses one)
  kubectl get jobs,pods -l durablejob.dev/name=heartbeat   # one Job per run, made by the runner
  kubectl durablejob trigger nightly-report --wait   # run one now (an annotation the operator acts on)
  kubectl durablejob runs nightly-report  # recent runs: result, attempts, Job, Temporal UI link
  kubectl durablejob status nightly-report
  kubectl durablejob preview nightly-report   # next runs, the days its calendar skips, a month grid
  kubectl durablejob logs nightly-report --last   # the pod log of its newest run
  kubectl durablejob rollout status invoice-sync   # a versioned worker rolling out a new image
  kubectl get deploy -L durablejob.dev/build-id   # one Deployment per worker version
  kubectl durablejob query nightly-report --run <WORKFLOW ID from runs> status   # a running run
  kubectl durablejob runs account-migration   # steps and a fan-out: 10 of 12 accounts migrate
  kubectl get jobs -l durablejob.dev/name=account-migration -L durablejob.dev/step,durablejob.dev/item
  kubectl durablejob retry account-migration --run <its WORKFLOW ID> --wait   # only the 2 failed
                                          # accounts run again (docs/steps.md)
  temporal schedule list                  # the schedules the operator made
  Temporal UI: http://127.0.0.1:$TEMPORAL_UI_PORT

Pods run on fake nodes (kwok plays the kubelet): each ends after 1s, successfully, unless its
pod template says otherwise (tests/cluster/README.md: annotate it with
test.durablejob.dev/outcomes: "fail,succeed" to see a retry). Press Ctrl-C to stop.
MSG

# One view of the playground: the DurableJobs, recent runs, a rollout.
frame() {
  echo "--- $(date +%H:%M:%S)  durablejob get -A"
  "$BIN/durablejob" get -A || true
  DURABLEJOB_TEMPORAL_UI_URL="http://127.0.0.1:$TEMPORAL_UI_PORT" "$BIN/durablejob" runs nightly-report 2>/dev/null | head -4 || true
  DURABLEJOB_TEMPORAL_UI_URL="http://127.0.0.1:$TEMPORAL_UI_PORT" "$BIN/durablejob" runs account-migration 2>/dev/null | head -3 | cut -c1-200 || true
  echo "--- durablejob rollout status invoice-sync"
  "$BIN/durablejob" rollout status invoice-sync 2>/dev/null || true
}

# On a terminal the view is redrawn in place (as `watch` does), under a header that says where
# the commands above went; piped or logged, each view is printed after the last.
on_terminal=0
if [ -t 1 ]; then
  on_terminal=1
  sleep 5
  printf '\033[2J'
fi
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
  if [ $on_terminal = 1 ]; then
    view=$(frame 2>&1)
    # home, the header and the view (each line cleared to its end), then clear what is below
    printf '\033[H\033[Kdurablejob playground (Ctrl-C stops). KUBECONFIG=%s; commands to try: %s\n\033[K\n' "$KUBECONFIG" "$DIR/try.txt"
    printf '%s\n' "$view" | sed 's/$/\x1b[K/'
    printf '\033[J'
  else
    frame
  fi
  sleep 5 &
  wait $! 2>/dev/null || true
done
