#!/usr/bin/env bash
# Reading a 1 GiB LUKS2 image in ccr vs OpenSSL's single-core AES-256-XTS, in one run on one
# machine (issue 15's benchmark; figures in BENCHMARKS.md).
#
# The image is made as DEPA's generatefs.sh makes one (aes-xts-plain64, 4096-byte sectors,
# pbkdf2 1000 iterations, a 32-byte key file, ext4 inside) by offline encryption (no root):
# one 1 GiB file of random bytes. ccr reads every file of it through the keyslot, XTS and
# ext4, unpinned and pinned (SHA-256 checked). Needs cryptsetup and mkfs.ext4 (Debian:
# cryptsetup-bin e2fsprogs) and openssl.
# Usage: benches/luks2_read.sh [MiB]   (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"
MIB=${1:-1024}
cargo build --locked --profile opt -p ccr-images --example luks2_read
W=$(mktemp -d "${TMPDIR:-/tmp}/ccr-luks2-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT
mkdir "$W/src"
head -c $((MIB << 20)) /dev/urandom > "$W/src/data.bin"
head -c 32 /dev/urandom > "$W/key"
truncate -s $(((MIB + 64 + 32) << 20)) "$W/data.img"
mkfs.ext4 -q -b 4096 -d "$W/src" "$W/data.img" $((MIB + 64))M
rm "$W/src/data.bin"
cryptsetup reencrypt --encrypt --type luks2 --force-offline-reencrypt --reduce-device-size 32M \
  --cipher aes-xts-plain64 --sector-size 4096 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
  -q --disable-locks --key-file "$W/key" "$W/data.img"
SHA=$(sha256sum "$W/data.img" | cut -d' ' -f1)
echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
# Warm the page cache so that both read from memory.
cat "$W/data.img" > /dev/null
echo "== openssl speed -evp aes-256-xts (one core)"
openssl speed -elapsed -seconds 3 -evp aes-256-xts 2>/dev/null | tail -1
echo "== openssl speed -evp sha256 (one core; a pinned read hashes every byte twice)"
openssl speed -elapsed -seconds 3 -evp sha256 2>/dev/null | tail -1
# Each unpinned run also times the XTS composition alone on one thread (memory to memory).
for i in 1 2 3; do target/opt/examples/luks2_read "$W/data.img" "$W/key"; done
for i in 1 2 3; do target/opt/examples/luks2_read "$W/data.img" "$W/key" "$SHA"; done
