# Shared helpers for the benchmark scripts (sourced, not run).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ORCH=${ORCH:-$ROOT/target/release/orchestrate}
PEERS=${PEERS:-$ROOT/bench/peers}

need_binary() {
  if [ ! -x "$ORCH" ]; then
    echo "building the release binary first" >&2
    (cd "$ROOT" && cargo build --release --locked)
  fi
}

# median_ms N CMD...: runs CMD N times, prints the median wall time in milliseconds.
median_ms() {
  local n=$1; shift
  local times=()
  for _ in $(seq 1 "$n"); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f\n", m / 1000}'
}

# peak_rss_kib CMD...: peak resident memory of CMD in KiB.
peak_rss_kib() {
  /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -n 1
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
