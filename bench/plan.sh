#!/usr/bin/env bash
# Planning a sweep of N stages: wall time and peak RSS of `orchestrate plan` at 1k and 10k.
# usage: bench/plan.sh
source "$(dirname "$0")/common.sh"
need_binary
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
for n in 1000 10000; do
  d="$W/p$n"; mkdir -p "$d/experiments"
  {
    echo "experiment: sweep$n"
    echo "stages:"
    echo "  train: {kind: command, cmd: \"echo {params.i} > {outs.m}\", outs: {m: m.txt}, params: {i: 0}}"
    echo "sweep:"
    printf '  train.params.i: ['; seq -s, 0 $((n - 1)) | tr -d '\n'; echo ']'
  } > "$d/experiments/s.yaml"
  t=$(cd "$d" && median_ms 5 "$ORCH" plan experiments/s.yaml)
  rss=$(cd "$d" && peak_rss_kib "$ORCH" plan experiments/s.yaml)
  echo "plan, $n-stage sweep: median ${t} ms, peak RSS $((rss / 1024)) MiB"
done
