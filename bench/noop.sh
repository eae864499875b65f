#!/usr/bin/env bash
# No-op rerun of a fully cached N-stage experiment of `command` stages (cp of a 4 KiB input each),
# side by side with Snakemake and DVC on the equivalent workflow when they are installed
# (python3 -m venv .venv-peers && .venv-peers/bin/pip install dvc snakemake).
# usage: bench/noop.sh [N] [REPEATS]
source "$(dirname "$0")/common.sh"
N=${1:-200}; R=${2:-11}
need_binary
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
mkdir -p "$W/orch/data" "$W/orch/experiments"
for i in $(seq 1 "$N"); do head -c 4096 /dev/urandom > "$W/orch/data/in_$i.bin"; done
{
  echo "experiment: noop"
  echo "stages:"
  for i in $(seq 1 "$N"); do
    echo "  s$i: {kind: command, cmd: \"cp {deps.x} {outs.y}\", deps: {x: data/in_$i.bin}, outs: {y: out.bin}, params: {lr: 0.1}}"
  done
} > "$W/orch/experiments/noop.yaml"
(cd "$W/orch" && "$ORCH" run -q experiments/noop.yaml)
ours=$(cd "$W/orch" && median_ms "$R" "$ORCH" run -q experiments/noop.yaml)
echo "orchestrate run (no-op, $N stages): median ${ours} ms over $R runs"
[ -d "$ROOT/.venv-peers" ] && PATH="$ROOT/.venv-peers/bin:$PATH"
if command -v snakemake >/dev/null; then
  bash "$PEERS/smk_noop.sh" "$N" "$W/smk" >/dev/null 2>&1
  smk=$(cd "$W/smk" && median_ms 5 snakemake --cores 2 -q)
  echo "snakemake --cores 2 (no-op, $N jobs): median ${smk} ms; ratio $(ratio "$smk" "$ours")x"
else
  echo "snakemake not installed: skipped"
fi
if command -v dvc >/dev/null; then
  bash "$PEERS/dvc_noop.sh" "$N" "$W/dvc" >/dev/null 2>&1
  dvc=$(cd "$W/dvc" && median_ms 3 dvc repro -q)
  echo "dvc repro (no-op, $N stages): median ${dvc} ms; ratio $(ratio "$dvc" "$ours")x"
else
  echo "dvc not installed: skipped"
fi
