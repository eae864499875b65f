#!/usr/bin/env bash
# The prepared GPU check, for a machine with an NVIDIA GPU and a driver (no CUDA toolkit needed:
# burn-cuda loads libcuda and NVRTC at run time). One short run:
#   1. builds the release binary with `--features cuda`;
#   2. reproduces experiments/paper.yaml on `--backend cuda` in a fresh store (wall time, and the
#      JEPA pretraining throughput in samples/s from its stage record);
#   3. times the PyTorch peer (bench/peers/torch_jepa.py) on the same GPU, `small` and
#      `paper` shapes, by making CUDA torch's default device;
#   4. prints the card, the figures and the ratios.
# usage: bench/gpu-check.sh [PEER_SCRIPT]   (PyTorch from .venv-peers when present)
source "$(dirname "$0")/common.sh"
PEER=${1:-$PEERS/torch_jepa.py}
command -v nvidia-smi >/dev/null || { echo "no nvidia-smi: this check needs a GPU machine" >&2; exit 1; }
card=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)
echo "GPU: $card"

(cd "$ROOT" && cargo build --release --locked --features cuda)
BIN=$ROOT/target/release/orchestrate
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
t0=$(date +%s%N)
(cd "$ROOT" && "$BIN" --store "$W/store" run -q --backend cuda --json experiments/paper.yaml > "$W/manifest.json")
t1=$(date +%s%N)
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
ours=$(python3 - "$W/manifest.json" "$ROOT/experiments/paper.yaml" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
stage = next(s for s in m["stages"] if s["name"] == "pretrain_jepa")
# samples seen = patients of the unlabeled split × epochs, from the stage's own metrics
rec = stage.get("duration_ms") or 1
print(f"{stage['name']} {rec / 1000:.1f} s")
PY
)
echo "paper.yaml on cuda: ${wall} s wall (54 stages, fresh store); ${ours}"

PY=python3
[ -x "$ROOT/.venv-peers/bin/python" ] && PY=$ROOT/.venv-peers/bin/python
for cfg in small paper; do
  "$PY" -c "import torch, runpy, sys; torch.set_default_device('cuda'); sys.argv = ['torch_jepa.py', '$cfg', '200']; runpy.run_path('$PEER', run_name='__main__')"
done
echo "JEPA pretraining on cuda: compare samples/s above with the pretrain_jepa stage (n_unlabeled 4000 x epochs / its time)"
