#!/usr/bin/env bash
# Puts Debian's pinned Prometheus release (prometheus and promtool) into .tools/bin/: the .deb
# is downloaded with apt (no install, no service started) and unpacked. Does nothing when the
# binaries of this version are there. The alert tests run `promtool test rules` with it.
set -euo pipefail
cd "$(dirname "$0")/.."
version=2.42.0+ds-5+deb12u1
out=$PWD/.tools/bin
stamp=$out/.prometheus-$version
if [ -f "$stamp" ] && [ -x "$out/promtool" ] && [ -x "$out/prometheus" ]; then
  echo "prometheus-tools: prometheus and promtool $version up to date in .tools/bin/"
  exit 0
fi
command -v apt-get >/dev/null || { echo "prometheus-tools: apt-get is needed to fetch Debian's prometheus $version (or put promtool and prometheus of that release in .tools/bin/)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fetch() { (cd "$work" && apt-get download "prometheus=$version" >/dev/null 2>&1); }
if ! fetch; then
  echo "prometheus-tools: the package lists do not have prometheus $version yet; running apt-get update once"
  apt-get update >/dev/null
  fetch || { echo "prometheus-tools: apt-get download prometheus=$version failed" >&2; exit 1; }
fi
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
mkdir -p "$out"
install -m 0755 "$work/root/usr/bin/promtool" "$work/root/usr/bin/prometheus" "$out/"
rm -f "$out"/.prometheus-*
touch "$stamp"
echo "prometheus-tools: prometheus and promtool $version in .tools/bin/ ($("$out/promtool" --version 2>&1 | head -1))"
