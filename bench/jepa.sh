#!/usr/bin/env bash
# JEPA pretraining throughput on CPU: our burn step vs the PyTorch peer, same shapes, batch and
# thread count, run one after the other. PyTorch comes from .venv-peers when it exists
# (python3 -m venv .venv-peers && .venv-peers/bin/pip install torch).
# usage: bench/jepa.sh [PEER_SCRIPT] [STEPS_SMALL] [STEPS_PAPER]
source "$(dirname "$0")/common.sh"
PEER=${1:-$PEERS/torch_jepa.py}
S_SMALL=${2:-300}; S_PAPER=${3:-20}
THREADS=2
(cd "$ROOT" && cargo build --release --example bench_jepa >/dev/null 2>&1) || {
  echo "cannot build the bench_jepa example" >&2; exit 1; }
BIN=$ROOT/target/release/examples/bench_jepa
PY=python3
[ -x "$ROOT/.venv-peers/bin/python" ] && PY=$ROOT/.venv-peers/bin/python
rate() { sed -n 's/.*samples\/s=\([0-9.]*\).*/\1/p'; }
for cfg in small paper; do
  steps=$S_SMALL; [ "$cfg" = paper ] && steps=$S_PAPER
  ours=$("$BIN" "$cfg" "$steps" "$THREADS" | tee /dev/stderr | rate)
  if "$PY" -c 'import torch' 2>/dev/null; then
    theirs=$(OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS "$PY" "$PEER" "$cfg" "$steps" | tee /dev/stderr | rate)
    echo "$cfg: orchestrate ${ours} samples/s, pytorch ${theirs} samples/s, ratio $(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')x"
  else
    echo "$cfg: orchestrate ${ours} samples/s (pytorch not installed: skipped)"
  fi
done
