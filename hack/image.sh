#!/usr/bin/env bash
# Builds the container image without a Docker engine: a statically linked release binary and
# the CA bundle as one layer on an empty base, assembled by go-containerregistry's `crane`
# (built into .tools/bin by `make cluster-tools`) through a registry it serves on loopback,
# then saved as an OCI image layout in target/image/oci. Checks what it built: the config
# runs the binary as its entrypoint as a non-root user, and the binary needs no libraries.
#
# A release pushes the layout as it is: crane push target/image/oci ghcr.io/durablejob/durablejob:<version>
set -euo pipefail
cd "$(dirname "$0")/.."
crane=$PWD/.tools/bin/crane
[ -x "$crane" ] || { echo "image: $crane is missing; run make cluster-tools" >&2; exit 1; }
version=$(awk -F'"' '/^version = / {print $2; exit}' Cargo.toml)
target=x86_64-unknown-linux-gnu
out=target/image
began=$SECONDS

echo "image: building a static release binary of durablejob $version ($target, crt-static)"
# Paths are remapped so the binary, and so the image digest, do not depend on where the
# checkout and the cargo home are.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$PWD=/src --remap-path-prefix=$cargo_home=/cargo" \
  cargo build --release --locked --target "$target" --bin durablejob
bin=target/$target/release/durablejob
# A binary with an ELF interpreter (PT_INTERP) needs a dynamic loader the empty base lacks.
python3 - "$bin" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read(1 << 16)
phoff, = struct.unpack_from("<Q", data, 0x20)
phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
kinds = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
if 3 in kinds:
    sys.exit(f"image: {sys.argv[1]} is dynamically linked; the empty base has no libraries for it")
PY

rm -rf "$out" && mkdir -p "$out/root/etc/ssl/certs"
cp "$bin" "$out/root/durablejob"
# The CA bundle TLS to Temporal Cloud verifies against: the system's, else Python's certifi.
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || ca=$(python3 -m certifi 2>/dev/null || true)
[ -n "$ca" ] && [ -f "$ca" ] || { echo "image: no CA bundle (apt-get install ca-certificates, or pip install certifi)" >&2; exit 1; }
cp "$ca" "$out/root/etc/ssl/certs/ca-certificates.crt"
# Reproducible layer: fixed order, owner and time.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$out/root" -cf "$out/layer.tar" durablejob etc

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$crane" registry serve --address "127.0.0.1:$port" >"$out/registry.log" 2>&1 &
registry=$!
trap 'kill $registry 2>/dev/null || true' EXIT
for _ in $(seq 50); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
ref=127.0.0.1:$port/durablejob
"$crane" append --insecure --oci-empty-base --platform linux/amd64 -f "$out/layer.tar" -t "$ref:base" >/dev/null
"$crane" mutate --insecure "$ref:base" -t "$ref:$version" \
  --entrypoint /durablejob --cmd operator --user 65532:65532 --workdir / \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --label org.opencontainers.image.title=durablejob \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.source=https://github.com/durablejob/durablejob \
  --label org.opencontainers.image.licenses=Apache-2.0 >/dev/null
"$crane" pull --insecure --format oci "$ref:$version" "$out/oci"
config=$("$crane" config --insecure "$ref:$version")
digest=$("$crane" digest --insecure "$ref:$version")

python3 - "$config" <<'PY'
import json, sys
c = json.loads(sys.argv[1])["config"]
problems = []
if c.get("User") != "65532:65532":
    problems.append(f"user is {c.get('User')!r}, not 65532:65532 (non-root)")
if c.get("Entrypoint") != ["/durablejob"]:
    problems.append(f"entrypoint is {c.get('Entrypoint')!r}, not ['/durablejob']")
if problems:
    sys.exit("image: " + "; ".join(problems))
PY
"$out/root/durablejob" --version >/dev/null
size=$(du -sh "$out/oci" | cut -f1)
echo "image: durablejob:$version ($digest, $size) in $out/oci: entrypoint /durablejob, user 65532:65532; built in $((SECONDS - began))s"
