#!/usr/bin/env bash
# Builds the local control plane, helm and crane from tests/cluster/ (its go.mod pins the releases) into
# .tools/bin/ with one `go build`, so shared packages compile once, and krew (the kubectl plugin
# manager) from tests/krew/, a module of its own (it pins older Kubernetes libraries). Does nothing when the
# binaries are up to date: the build is keyed on go.mod, go.sum and the wrapper sources.
# The Go module and build caches stay where Go keeps them, so a machine that built once
# rebuilds in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$PWD/.tools/bin
tools=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm crane krew)
key=$(cat tests/cluster/go.mod tests/cluster/go.sum tests/cluster/cmd/*/*.go tests/krew/go.mod tests/krew/go.sum | sha256sum | cut -c1-16)
stamp=$out/.built-$key

command -v go >/dev/null || { echo "cluster-tools: Go is needed to build the test control plane (see README: prerequisites)" >&2; exit 1; }
if [ -f "$stamp" ] && for t in "${tools[@]}"; do [ -x "$out/$t" ] || exit 1; done; then
  echo "cluster-tools: up to date in .tools/bin/ ($(go version | cut -d' ' -f3), key $key)"
  exit 0
fi
mkdir -p "$out"
rm -f "$out"/.built-*
began=$SECONDS
echo "cluster-tools: building ${tools[*]} into .tools/bin/ with $(go version | cut -d' ' -f3)"
echo "cluster-tools: the first build on a machine downloads the modules and compiles Kubernetes (about 5 minutes on 2 cores); later builds take seconds"
cd tests/cluster
echo "cluster-tools: downloading modules..."
go mod download
echo "cluster-tools: compiling..."
# The release go.mod pins, stamped into the binaries as its own release build would be.
version=$(awk '$1 == "k8s.io/kubernetes" {print $2}' go.mod)
minor=$(echo "$version" | cut -d. -f2)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
helm=$(awk '$1 == "helm.sh/helm/v4" {print $2}' go.mod)
ldflags+=" -X helm.sh/helm/v4/internal/version.version=$helm -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
go build -ldflags "$ldflags" -o "$out/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl \
  sigs.k8s.io/kwok/cmd/kwok \
  helm.sh/helm/v4/cmd/helm \
  github.com/google/go-containerregistry/cmd/crane \
  ./cmd/etcd
krew=$(cd ../krew && go list -m -f '{{.Version}}' sigs.k8s.io/krew)
(cd ../krew && go build -ldflags "-s -w -X sigs.k8s.io/krew/internal/version.gitTag=$krew" -o "$out/" sigs.k8s.io/krew/cmd/krew)
touch "$stamp"
echo "cluster-tools: built in $((SECONDS - began))s"
