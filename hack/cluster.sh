#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, for durablejob's tests and playground.
#
#   hack/cluster.sh start DIR [--watch PID] [--no-watch-cache] [--controller-qps N] [--crds DIR]
#   hack/cluster.sh stop DIR
#
# start runs etcd, kube-apiserver (RBAC, audit log), kube-controller-manager,
# kube-scheduler and kwok (fake nodes; the simulated kubelet) from .tools/bin/
# (`make cluster-tools` builds them), on free loopback ports, and returns once the
# cluster is ready. It writes:
#   DIR/kubeconfig   the cluster CA and an admin user with a bearer token
#   DIR/audit.log    every request, at Metadata level
#   DIR/pids         one pid a line, for stop
#   DIR/logs/*.log   each component's output
# --watch PID stops the cluster when process PID ends (the test binary, however it ends)
# and removes DIR (DURABLEJOB_KEEP_CLUSTER=1 keeps it for a look at the logs).
# --no-watch-cache turns the API server's watch cache off and compacts etcd every 5 seconds,
# so that a watch resumed from an old resourceVersion gets a real 410 Gone.
# --controller-qps N gives kube-controller-manager's clients N requests a second (burst 2N)
# instead of Kubernetes' default 20: at 20 its Job controller completes about 3.6 short Jobs a
# second, which is what limits `cargo bench --bench fire` otherwise.
# --crds DIR applies the CRDs in DIR (server-side) once the API server is ready and before
# kube-controller-manager starts. Its garbage collector learns of new resource types only
# at its 30-second discovery sync: an object owned by a custom resource that is deleted
# before that sync is collected up to about 40 seconds late (the owner's lookup fails and
# is retried with growing backoff). CRDs installed first are known from the start.
# DURABLEJOB_APISERVER_PROFILING=true serves the API server's /debug/pprof (to the admin user),
# for a look at where its CPU goes in a benchmark.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${DURABLEJOB_CLUSTER_BIN:-$root/.tools/bin}
nodes=${DURABLEJOB_CLUSTER_NODES:-3}

usage() {
  echo "usage: $0 start DIR [--watch PID] [--no-watch-cache] [--controller-qps N] [--crds DIR] | stop DIR" >&2
  exit 2
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Stops every process listed in DIR/pids: TERM, then KILL after a grace period.
stop() {
  local dir=$1 pid
  [ -f "$dir/pids" ] || return 0
  local pids
  pids=$(cat "$dir/pids")
  for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$dir/pids"
}

fail() {
  echo "cluster: $*" >&2
  for f in "$dir"/logs/*.log; do
    [ -f "$f" ] || continue
    echo "--- last lines of $f ---" >&2
    tail -n 15 "$f" >&2
  done
  stop "$dir"
  exit 1
}

# Starts a component in the background, with its output in DIR/logs/NAME.log.
run() {
  local name=$1
  shift
  "$@" >"$dir/logs/$name.log" 2>&1 &
  echo $! >>"$dir/pids"
}

# Polls CMD every 200 ms for at most SECONDS seconds.
wait_until() {
  local what=$1 seconds=$2
  shift 2
  local tries=$((seconds * 5))
  for _ in $(seq 1 "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  fail "$what not ready within ${seconds}s"
}

certs() {
  local pki=$dir/pki
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=durablejob-test-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >"$pki/apiserver.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

# A kubeconfig for one identity (a bearer token from the static token file).
kubeconfig() {
  local file=$1 user=$2 token=$3
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: durablejob-test
  cluster:
    server: https://127.0.0.1:$apiserver_port
    certificate-authority-data: $(base64 -w0 <"$dir/pki/ca.crt")
users:
- name: $user
  user:
    token: $token
contexts:
- name: $user@durablejob-test
  context: {cluster: durablejob-test, user: $user, namespace: default}
current-context: $user@durablejob-test
EOF
}

start() {
  local watch_pid="" watch_cache=true compaction=5m controller_qps="" crds=""
  while [ $# -gt 0 ]; do
    case $1 in
      --watch) watch_pid=${2:?--watch needs a pid}; shift 2 ;;
      --controller-qps)
        controller_qps=${2:?--controller-qps needs a number}
        [[ $controller_qps =~ ^[1-9][0-9]*$ ]] || { echo "cluster: --controller-qps wants a whole number of requests a second above 0, not '$controller_qps'" >&2; exit 2; }
        shift 2 ;;
      --no-watch-cache) watch_cache=false; compaction=5s; shift ;;
      --crds)
        crds=${2:?--crds needs a folder of CRD manifests}
        [ -d "$crds" ] || { echo "cluster: --crds wants a folder of CRD manifests; '$crds' is not a folder" >&2; exit 2; }
        shift 2 ;;
      *) usage ;;
    esac
  done
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubectl; do
    [ -x "$bin/$b" ] || { echo "cluster: $bin/$b is missing; run \`make cluster-tools\` first" >&2; exit 1; }
  done
  if [ -f "$dir/pids" ]; then
    echo "cluster: $dir/pids exists; a cluster may be running there (\`$0 stop $dir\` first)" >&2
    exit 1
  fi
  local began=$SECONDS
  rm -rf "$dir/etcd" "$dir/logs" "$dir/audit.log"
  mkdir -p "$dir/logs"
  certs

  local etcd_port etcd_peer_port kcm_port sched_port kwok_port
  etcd_port=$(free_port)
  etcd_peer_port=$(free_port)
  apiserver_port=$(free_port)
  kcm_port=$(free_port)
  sched_port=$(free_port)
  kwok_port=$(free_port)

  local admin_token kcm_token sched_token kwok_token
  admin_token=$(openssl rand -hex 24)
  kcm_token=$(openssl rand -hex 24)
  sched_token=$(openssl rand -hex 24)
  kwok_token=$(openssl rand -hex 24)
  cat >"$dir/pki/tokens.csv" <<EOF
$admin_token,admin,admin,system:masters
$kcm_token,system:kube-controller-manager,kcm
$sched_token,system:kube-scheduler,scheduler
$kwok_token,kwok,kwok,system:masters
EOF
  chmod 600 "$dir/pki/tokens.csv"
  cat >"$dir/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
EOF

  run etcd "$bin/etcd" --name test --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "test=http://127.0.0.1:$etcd_peer_port" \
    --listen-metrics-urls "" --log-level warn --quota-backend-bytes 4294967296
  wait_until etcd 30 curl -sf "http://127.0.0.1:$etcd_port/health"

  run kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$apiserver_port" \
    --endpoint-reconciler-type none \
    --tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
    --client-ca-file "$dir/pki/ca.crt" --token-auth-file "$dir/pki/tokens.csv" \
    --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$dir/pki/sa.pub" --service-account-signing-key-file "$dir/pki/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --audit-policy-file "$dir/audit-policy.yaml" --audit-log-path "$dir/audit.log" \
    --audit-log-maxsize 0 --audit-log-mode blocking \
    --watch-cache="$watch_cache" --etcd-compaction-interval "$compaction" \
    --kubelet-preferred-address-types InternalIP \
    --profiling="${DURABLEJOB_APISERVER_PROFILING:-false}"
  kubeconfig "$dir/kubeconfig" admin "$admin_token"
  kubeconfig "$dir/pki/kcm.kubeconfig" system:kube-controller-manager "$kcm_token"
  kubeconfig "$dir/pki/scheduler.kubeconfig" system:kube-scheduler "$sched_token"
  kubeconfig "$dir/pki/kwok.kubeconfig" kwok "$kwok_token"
  wait_until kube-apiserver 90 curl -sf --cacert "$dir/pki/ca.crt" -H "Authorization: Bearer $admin_token" \
    "https://127.0.0.1:$apiserver_port/readyz"
  if [ -n "$crds" ]; then
    "$bin/kubectl" --kubeconfig "$dir/kubeconfig" apply --server-side -f "$crds" >"$dir/logs/crds.log" 2>&1 \
      || fail "applying the CRDs in $crds failed (see $dir/logs/crds.log)"
    "$bin/kubectl" --kubeconfig "$dir/kubeconfig" wait --for=condition=Established --timeout=60s crd --all \
      >>"$dir/logs/crds.log" 2>&1 || fail "the CRDs in $crds did not become Established (see $dir/logs/crds.log)"
  fi

  run kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$dir/pki/kcm.kubeconfig" \
    --authentication-kubeconfig "$dir/pki/kcm.kubeconfig" --authorization-kubeconfig "$dir/pki/kcm.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" \
    --leader-elect=false --use-service-account-credentials \
    --service-account-private-key-file "$dir/pki/sa.key" --root-ca-file "$dir/pki/ca.crt" \
    --controllers '*' --concurrent-job-syncs 10 --concurrent-cron-job-syncs 10 \
    ${controller_qps:+--kube-api-qps "$controller_qps" --kube-api-burst "$((controller_qps * 2))"}
  run kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig "$dir/pki/scheduler.kubeconfig" \
    --authentication-kubeconfig "$dir/pki/scheduler.kubeconfig" --authorization-kubeconfig "$dir/pki/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$sched_port" --leader-elect=false
  # kwok serves the kubelet API on its port (the nodes name it as their kubelet endpoint, at
  # 127.0.0.1), so `kubectl logs` works: every container's log is tests/cluster/pod.log
  cat >"$dir/kwok-logs.yaml" <<EOF
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: every-pod
spec:
  logs:
  - logsFile: $root/tests/cluster/pod.log
EOF
  run kwok "$bin/kwok" --kubeconfig "$dir/pki/kwok.kubeconfig" \
    --config "$root/tests/cluster/kwok-stages.yaml" --config "$dir/kwok-logs.yaml" \
    --manage-nodes-with-label-selector type=kwok \
    --node-ip 127.0.0.1 --node-port "$kwok_port" \
    --server-address "127.0.0.1:$kwok_port" --node-lease-duration-seconds 40

  if [ -n "$watch_pid" ]; then
    # Stops the cluster when the watched process ends; its own pid goes last so stop
    # ends it after the components.
    (
      trap '' HUP
      while kill -0 "$watch_pid" 2>/dev/null && [ -f "$dir/pids" ]; do sleep 1; done
      if [ -f "$dir/pids" ]; then
        grep -v "^$BASHPID\$" "$dir/pids" >"$dir/pids.watch" && mv "$dir/pids.watch" "$dir/pids"
        stop "$dir"
        [ -n "${DURABLEJOB_KEEP_CLUSTER:-}" ] || rm -rf "$dir"
      fi
    ) >/dev/null 2>&1 </dev/null &
    echo $! >>"$dir/pids"
  fi

  local kc=(--kubeconfig "$dir/kubeconfig")
  for i in $(seq 1 "$nodes"); do
    cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64}
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
---
EOF
  done | "$bin/kubectl" "${kc[@]}" apply -f - >/dev/null || fail "cannot create the fake nodes"
  wait_until "fake nodes" 60 sh -c "[ \"\$('$bin/kubectl' --kubeconfig '$dir/kubeconfig' get nodes -l type=kwok --no-headers 2>/dev/null | grep -c ' Ready ')\" = $nodes ]"
  # The controller manager is working once the default ServiceAccount exists.
  wait_until "kube-controller-manager (the default ServiceAccount)" 60 "$bin/kubectl" "${kc[@]}" get serviceaccount default
  local version
  version=$("$bin/kubectl" "${kc[@]}" version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])' || echo unknown)
  echo "cluster: Kubernetes $version ready in $((SECONDS - began))s at https://127.0.0.1:$apiserver_port (KUBECONFIG=$dir/kubeconfig)"
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
shift 2
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
case $cmd in
  start) start "$@" ;;
  stop) stop "$dir" ;;
  *) usage ;;
esac
