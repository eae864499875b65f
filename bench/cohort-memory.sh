#!/usr/bin/env bash
# Peak memory of the `cohort` stage on a large plain CSV (default 1,000,000 patients, ~31 MB):
# the dispatcher and its worker together, as /usr/bin/time reports the largest of them.
# Usage: bench/cohort-memory.sh [PATIENTS]
source "$(dirname "$0")/common.sh"
need_binary
n=${1:-1000000}
ws=$(mktemp -d)
trap 'rm -rf "$ws"' EXIT
mkdir -p "$ws/data"
awk -v n="$n" 'BEGIN {
  srand(1); print "id,label,i0,i1,c0,c1";
  for (i = 0; i < n; i++) printf "P%07d,%d,%.3f,%.3f,%.3f,%.3f\n", i, i % 2, rand(), rand(), rand(), rand()
}' > "$ws/data/table.csv"
cat > "$ws/cohort.yaml" <<'YAML'
experiment: cohort-memory
stages:
  load:
    kind: cohort
    deps: {table: data/table.csv}
    config:
      format: plain
      splits:
        internal: {table: table}
      plain:
        imaging: {prefix: i}
        clinical: {prefix: c}
YAML
size=$(du -m "$ws/data/table.csv" | cut -f1)
t0=$(date +%s%N)
kib=$(cd "$ws" && peak_rss_kib "$ORCH" run cohort.yaml)
t1=$(date +%s%N)
echo "cohort stage, $n patients ($size MB CSV): peak RSS $(( kib / 1024 )) MiB, $(( (t1 - t0) / 1000000 )) ms"
