#!/usr/bin/env bash
# The krew release pieces of `kubectl durablejob`:
#   hack/krew.sh archive BINARY OUT.tar.gz
#       packs a built durablejob binary as kubectl-durablejob, with LICENSE and README.md
#   hack/krew.sh manifest VERSION os/arch=ARCHIVE [os/arch=ARCHIVE...]
#       prints plugins/durablejob.yaml for VERSION (vX.Y.Z): every platform's URL names the
#       version, and each platform given gets its archive's sha256 (the others keep theirs)
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,7p' "$0" >&2; exit 2; }

case "${1:-}" in
archive)
  [ $# = 3 ] || usage
  bin=$2 out=$3
  [ -x "$bin" ] || { echo "krew.sh: $bin is not an executable (build it first: cargo build --release)" >&2; exit 1; }
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  cp "$bin" "$stage/kubectl-durablejob"
  cp README.md "$stage/"
  [ -f LICENSE ] && cp LICENSE "$stage/"
  tar -C "$stage" -czf "$out" .
  ;;
manifest)
  [ $# -ge 3 ] || usage
  version=$2
  shift 2
  [[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "krew.sh: version $version is not vX.Y.Z" >&2; exit 1; }
  manifest=$(sed -E "s#^  version: .*#  version: $version#; s#/download/v[^/]+/kubectl-durablejob_v[^_]+_#/download/$version/kubectl-durablejob_${version}_#" plugins/durablejob.yaml)
  for pair in "$@"; do
    platform=${pair%%=*} archive=${pair#*=}
    [[ $platform =~ ^(linux|darwin)/(amd64|arm64)$ ]] || { echo "krew.sh: platform $platform is not one of linux|darwin / amd64|arm64" >&2; exit 1; }
    [ -f "$archive" ] || { echo "krew.sh: archive $archive does not exist" >&2; exit 1; }
    sum=$(sha256sum "$archive" | cut -d' ' -f1)
    os=${platform%/*} arch=${platform#*/}
    # the sha256 line after this platform's URL
    manifest=$(printf '%s\n' "$manifest" | awk -v want="_${os}_${arch}.tar.gz" -v sum="$sum" '
      index($0, "uri: ") && index($0, want) { hit = 1 }
      hit && $1 == "sha256:" { sub(/sha256: .*/, "sha256: \"" sum "\""); hit = 0 }
      { print }')
  done
  printf '%s\n' "$manifest"
  ;;
*) usage ;;
esac
