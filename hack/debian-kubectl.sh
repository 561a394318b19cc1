#!/usr/bin/env bash
# Fetches Debian's kubectl (package kubernetes-client) into .tools/kubernetes-client for the
# kubectl tests, without installing it system-wide. Best effort: where apt cannot fetch it
# (no apt, no package lists and no root to update them) it says so and the tests use whatever
# kubectl is on PATH. Prints the TESTCLUSTER_KUBECTL list on stdout.
set -uo pipefail
cd "$(dirname "$0")/.."
dest=.tools/kubernetes-client
bin=$dest/usr/bin/kubectl

if [ ! -x "$bin" ] && command -v apt-get >/dev/null && command -v dpkg >/dev/null; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  fetch() { (cd "$work" && apt-get download kubernetes-client >/dev/null 2>&1); }
  if ! fetch; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq >/dev/null 2>&1 && fetch
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo -n apt-get update -qq >/dev/null 2>&1 && fetch
    fi
  fi
  if ls "$work"/kubernetes-client_*.deb >/dev/null 2>&1; then
    mkdir -p "$dest" && dpkg -x "$work"/kubernetes-client_*.deb "$dest"
  fi
fi

list=()
if [ -x "$bin" ]; then
  list+=("$PWD/$bin")
else
  echo "note: Debian's kubernetes-client could not be fetched; the kubectl tests use kubectl from PATH, if any" >&2
fi
if on_path=$(command -v kubectl); then
  list+=("$on_path")
fi
(IFS=:; echo "${list[*]}")
