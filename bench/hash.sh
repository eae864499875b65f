#!/usr/bin/env bash
# Hashing throughput: cold hashing of SIZE_MIB x FILES (page cache warm) through orchestrate's
# input hashing (`plan --verify-data`), side by side with `openssl dgst -sha256` and `sha256sum`;
# then re-checking 10,000 unchanged small files through the stat cache.
# usage: bench/hash.sh [FILES] [SIZE_MIB]
source "$(dirname "$0")/common.sh"
FILES=${1:-16}; SIZE=${2:-128}
need_binary
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
mkdir -p "$W/big/data" "$W/big/experiments"
for i in $(seq 1 "$FILES"); do head -c $((SIZE * 1024 * 1024)) /dev/urandom > "$W/big/data/f$i.bin"; done
cat "$W"/big/data/* > /dev/null   # warm the page cache
cat > "$W/big/experiments/h.yaml" <<YAML
experiment: hash
stages:
  s: {kind: command, cmd: "true > {outs.o}", deps: {d: data}, outs: {o: o}}
YAML
bytes=$((FILES * SIZE * 1024 * 1024))
gbps() { awk -v b="$bytes" -v ms="$1" 'BEGIN { printf "%.2f", b / (ms / 1000) / 1e9 }'; }
ours=$(cd "$W/big" && median_ms 5 "$ORCH" plan --verify-data experiments/h.yaml)
ossl=$(cd "$W/big" && median_ms 3 sh -c 'openssl dgst -sha256 data/* ')
s256=$(cd "$W/big" && median_ms 1 sh -c 'sha256sum data/*')
echo "orchestrate  $FILES x $SIZE MiB: ${ours} ms = $(gbps "$ours") GB/s"
echo "openssl dgst (1 process): ${ossl} ms = $(gbps "$ossl") GB/s; orchestrate is $(ratio "$ossl" "$ours")x faster"
echo "sha256sum    (1 process): ${s256} ms = $(gbps "$s256") GB/s; orchestrate is $(ratio "$s256" "$ours")x faster"

mkdir -p "$W/many/data" "$W/many/experiments"
(cd "$W/many/data" && for d in $(seq 1 100); do mkdir "d$d"; for f in $(seq 1 100); do echo "$d $f" > "d$d/f$f"; done; done)
sed 's/experiment: hash/experiment: many/' "$W/big/experiments/h.yaml" > "$W/many/experiments/h.yaml"
(cd "$W/many" && "$ORCH" plan experiments/h.yaml >/dev/null)
first=$(cd "$W/many" && median_ms 1 "$ORCH" plan --verify-data experiments/h.yaml)
again=$(cd "$W/many" && median_ms 11 "$ORCH" plan experiments/h.yaml)
echo "10,000 files: full hash ${first} ms, re-check through the stat cache ${again} ms (whole command)"
