#!/usr/bin/env bash
# One store shared by several dispatchers at once (README "Sharing one store"):
#   latency   a 1-stage `sleep 1` run started from another workspace beside a 40-stage run
#   overlap   two workspaces, 40 `sleep 1` stages each, 20 of them identical: every stage
#             executed once, wall time against one dispatcher running the 60 distinct stages
#   no-op     8 concurrent no-op reruns of a 200-stage experiment on one store, and one alone
#   readers   `status` and `show` while a long run holds the store
# usage: bench/shared-store.sh
source "$(dirname "$0")/common.sh"
need_binary
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# sleep_exp FILE NAME FIRST LAST: stages s<FIRST>..s<LAST>, each `sleep 1`, logging itself.
sleep_exp() {
  { echo "experiment: $2"; echo "stages:"
    for i in $(seq "$3" "$4"); do
      echo "  s$i: {kind: command, cmd: \"echo s$i >> $W/executions.log; sleep 1; echo $i > {outs.o}\", outs: {o: o.txt}}"
    done; } > "$1"
}

# Latency beside a long run.
mkdir -p "$W/long/experiments" "$W/short/experiments"
sleep_exp "$W/long/experiments/x.yaml" long 1 40
sleep_exp "$W/short/experiments/x.yaml" short 1000 1000
(cd "$W/long" && "$ORCH" --store "$W/store1" run -q -j 2 experiments/x.yaml) &
LONG=$!
sleep 2
t0=$(now_ms); (cd "$W/short" && "$ORCH" --store "$W/store1" run -q experiments/x.yaml); t1=$(now_ms)
echo "latency: a 1-stage sleep-1 run beside a 40-stage run on the same store: $(( t1 - t0 )) ms (target <= 3000)"
st=$(cd "$W/short" && median_ms 11 "$ORCH" --store "$W/store1" status)
sh=$(cd "$W/short" && median_ms 11 "$ORCH" --store "$W/store1" show s1000)
echo "readers during the long run: status median ${st} ms, show median ${sh} ms (target <= 50)"
kill "$LONG" 2>/dev/null || true; wait "$LONG" 2>/dev/null || true

# Overlap: two dispatchers, 20 shared stages.
rm -f "$W/executions.log"
mkdir -p "$W/a/experiments" "$W/b/experiments" "$W/one/experiments"
sleep_exp "$W/a/experiments/x.yaml" a 1 40          # s1..s40
sleep_exp "$W/b/experiments/x.yaml" b 21 60         # s21..s60: s21..s40 shared
sleep_exp "$W/one/experiments/x.yaml" one 1 60      # the 60 distinct stages
t0=$(now_ms)
(cd "$W/a" && "$ORCH" --store "$W/store2" run -q -j 2 experiments/x.yaml) &
(cd "$W/b" && "$ORCH" --store "$W/store2" run -q -j 2 experiments/x.yaml) &
wait
t1=$(now_ms)
both=$(( t1 - t0 ))
execs=$(wc -l < "$W/executions.log"); distinct=$(sort -u "$W/executions.log" | wc -l)
t0=$(now_ms); (cd "$W/one" && "$ORCH" --store "$W/store3" run -q -j 4 experiments/x.yaml); t1=$(now_ms)
one=$(( t1 - t0 ))
echo "overlap: two dispatchers (-j 2 each) on 40+40 stages sharing 20: ${both} ms, ${execs} executions of ${distinct} distinct stages"
echo "         one dispatcher (-j 4) on the 60 distinct stages: ${one} ms; ratio $(ratio "$both" "$one")x (target <= 1.2x, 60 executions)"

# No-op reruns: 8 at once, and one alone.
N=200
mkdir -p "$W/noop/data" "$W/noop/experiments"
for i in $(seq 1 "$N"); do head -c 4096 /dev/urandom > "$W/noop/data/in_$i.bin"; done
{ echo "experiment: noop"; echo "stages:"
  for i in $(seq 1 "$N"); do
    echo "  s$i: {kind: command, cmd: \"cp {deps.x} {outs.y}\", deps: {x: data/in_$i.bin}, outs: {y: out.bin}}"
  done; } > "$W/noop/experiments/noop.yaml"
cd "$W/noop"
"$ORCH" run -q experiments/noop.yaml
alone=$(median_ms 11 "$ORCH" run -q experiments/noop.yaml)
echo "no-op rerun of $N stages, alone: median ${alone} ms (target <= 50)"
times=()
for round in 1 2 3; do
  for k in $(seq 1 8); do
    ( t0=$(date +%s%N); "$ORCH" run -q experiments/noop.yaml >/dev/null 2>&1; t1=$(date +%s%N)
      echo $(( (t1 - t0) / 1000000 )) > "$W/t.$round.$k" ) &
  done
  wait
done
med=$(cat "$W"/t.* | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
max=$(cat "$W"/t.* | sort -n | tail -n 1)
echo "no-op rerun of $N stages, 8 at once (3 rounds): median ${med} ms, slowest ${max} ms (target median <= 100)"

# gc in a loop beside two concurrent runs of different workspaces.
chain() {
  { echo "experiment: $2"; echo "stages:"
    echo "  c1: {kind: command, cmd: \"sleep 0.1; echo $2 > {outs.o}\", outs: {o: o.txt}}"
    for i in $(seq 2 20); do
      echo "  c$i: {kind: command, cmd: \"sleep 0.1; cat {deps.i} > {outs.o}; echo $i >> {outs.o}\", deps: {i: \"stage:c$((i - 1))/o\"}, outs: {o: o.txt}}"
    done; } > "$1"
}
mkdir -p "$W/ga/experiments" "$W/gb/experiments" "$W/gc"
chain "$W/ga/experiments/x.yaml" ga; chain "$W/gb/experiments/x.yaml" gb
(cd "$W/ga" && "$ORCH" --store "$W/store4" run -q experiments/x.yaml >/dev/null 2>&1; echo $? > "$W/ga.rc") &
PA=$!
(cd "$W/gb" && "$ORCH" --store "$W/store4" run -q experiments/x.yaml >/dev/null 2>&1; echo $? > "$W/gb.rc") &
PB=$!
sweeps=0
while kill -0 "$PA" 2>/dev/null || kill -0 "$PB" 2>/dev/null; do
  (cd "$W/gc" && "$ORCH" --store "$W/store4" gc >/dev/null 2>&1) && sweeps=$((sweeps + 1))
done
wait
fresh() { (cd "$1" && "$ORCH" --store "$W/store4" run -q --paranoid experiments/x.yaml --json) \
  | grep -c '"status": "fresh"'; }
(cd "$W/gc" && "$ORCH" --store "$W/store4" gc >/dev/null 2>&1)
echo "gc loop: $sweeps gc sweeps beside two runs (exit $(cat "$W/ga.rc") and $(cat "$W/gb.rc")); afterwards (and after one more gc from a third workspace) --paranoid finds $(fresh "$W/ga")/20 and $(fresh "$W/gb")/20 stages fresh (target 20/20 each: 0 objects missing)"
