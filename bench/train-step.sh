#!/usr/bin/env bash
# Training-step throughput on CPU, ours against PyTorch, measured side by side in one run: the JEPA
# pretraining step (bench/peers/torch_jepa.py) and the supervised finetuning step
# (bench/peers/torch_finetune.py), at `small` (the default study's model) and `paper` (the lab's
# data shapes) sizes, same shapes, batch, optimizer and thread count. PyTorch comes from
# .venv-peers when it exists (python3 -m venv .venv-peers && .venv-peers/bin/pip install torch).
# usage: bench/train-step.sh [STEPS_SMALL] [STEPS_PAPER] [THREADS]
source "$(dirname "$0")/common.sh"
S_SMALL=${1:-300}; S_PAPER=${2:-20}; THREADS=${3:-2}
(cd "$ROOT" && cargo build --release --locked --example bench_step >/dev/null 2>&1) || {
  echo "cannot build the bench_step example" >&2; exit 1; }
BIN=$ROOT/target/release/examples/bench_step
PY=python3
[ -x "$ROOT/.venv-peers/bin/python" ] && PY=$ROOT/.venv-peers/bin/python
rate() { sed -n 's/.*samples\/s=\([0-9.]*\).*/\1/p'; }
# Each step's own lines go to stderr as they come (`>&2`, not `tee /dev/stderr`: reopening
# /dev/stderr truncates a log file that stdout and stderr share).
show() { while IFS= read -r l; do printf '%s\n' "$l" >&2; printf '%s\n' "$l"; done; }
echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $THREADS threads"
for step in pretrain finetune; do
  peer=$ROOT/bench/peers/torch_jepa.py
  [ "$step" = finetune ] && peer=$ROOT/bench/peers/torch_finetune.py
  for cfg in small paper; do
    steps=$S_SMALL; [ "$cfg" = paper ] && steps=$S_PAPER
    ours=$("$BIN" "$step" "$cfg" "$steps" "$THREADS" | show | rate)
    if "$PY" -c 'import torch' 2>/dev/null; then
      theirs=$(OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS "$PY" -W ignore "$peer" "$cfg" "$steps" | show | rate)
      echo "$step $cfg: orchestrate ${ours} samples/s, pytorch ${theirs} samples/s, ratio $(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')x"
    else
      echo "$step $cfg: orchestrate ${ours} samples/s (pytorch not installed: peer skipped)"
    fi
  done
done
