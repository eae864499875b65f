#!/usr/bin/env bash
# Side-by-side timing of the stratified percentile bootstrap of the AUC: orchestrate's stats module
# (examples/bench_stats.rs) against the scikit-learn loop most Python studies use.
#
# usage: bench/stats.sh [PEER_SCRIPT]
#   PEER_SCRIPT  the scikit-learn peer (default: bench/peers/sklearn_bootstrap.py)
# env:  PYTHON (default: .venv-peers/bin/python if present, else python3; needs numpy and
#       scikit-learn), SIZES (default "10000 100000"), B (resamples, default 2000)
#
# Both run one after the other on the same machine; absolute times drift between runs and
# machines, so read the ratios. The load average is printed because a busy machine skews both.
set -euo pipefail
cd "$(dirname "$0")/.."

PEER=${1:-bench/peers/sklearn_bootstrap.py}
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv-peers/bin/python ]]; then PYTHON=.venv-peers/bin/python; else PYTHON=python3; fi
fi
SIZES=${SIZES:-"10000 100000"}
B=${B:-2000}

if [[ ! -f "$PEER" ]]; then
    echo "error: peer script \`$PEER\` not found (pass its path as the first argument)" >&2
    exit 2
fi

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown), cpus: $(nproc)"
cargo build --release --locked --quiet --example bench_stats
read -r n_small n_large <<<"$SIZES"
ours=$(cargo run --release --locked --quiet --example bench_stats -- "$n_small" "${n_large:-$n_small}" 1000000 "$B")
echo "$ours"

field() { sed -n "s/.*$1=\([0-9.e+-]*\).*/\1/p"; }

printf '\n%-10s %-8s %12s %12s %10s\n' "n" "B" "ours (s)" "sklearn (s)" "speed-up"
for n in $SIZES; do
    our_s=$(grep -m1 "^bootstrap_single n=$n " <<<"$ours" | field seconds)
    our_p=$(grep -m1 "^bootstrap_paired n=$n " <<<"$ours" | field seconds)
    peer_out=$("$PYTHON" "$PEER" "$n" "$B")
    peer_s=$(field seconds <<<"$peer_out")
    printf '%-10s %-8s %12s %12s %9.0fx   (%s)\n' "$n" "$B" "$our_s" "$peer_s" \
        "$(awk -v a="$peer_s" -v b="$our_s" 'BEGIN { print a / b }')" "$peer_out"
    printf '%-10s %-8s %12s %12s %9.0fx   (paired two-model bootstrap vs one sklearn model)\n' \
        "$n" "$B" "$our_p" "$peer_s" "$(awk -v a="$peer_s" -v b="$our_p" 'BEGIN { print a / b }')"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
