#!/usr/bin/env bash
# Fault trials on a shared store (README "Sharing one store"). Each trial starts two
# dispatchers from two workspaces on one experiment (12 stages, a chain of 3 per branch, each
# `sleep 0.2` and a deterministic output), kills one with SIGKILL at a random instant, and
# checks: the survivor exits 0; a rerun of the killed workspace exits 0 and recomputes nothing
# the survivor committed; `run --paranoid` finds every stored object intact (all fresh); the
# outputs equal an uninterrupted reference run's. Mode `ns` runs the killed dispatcher in its
# own pid and UTS namespace (`unshare --pid --uts --fork`, as root), a stand-in for another node.
# usage: bench/kill-trials.sh [TRIALS] [plain|ns]
source "$(dirname "$0")/common.sh"
TRIALS=${1:-20}; MODE=${2:-plain}
need_binary
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
exp() {
  { echo "experiment: k"; echo "stages:"
    for b in 1 2 3 4; do
      echo "  b${b}s1: {kind: command, cmd: \"sleep 0.2; echo $b > {outs.o}\", outs: {o: o.txt}}"
      echo "  b${b}s2: {kind: command, cmd: \"sleep 0.2; cat {deps.i} {deps.i} > {outs.o}\", deps: {i: \"stage:b${b}s1/o\"}, outs: {o: o.txt}}"
      echo "  b${b}s3: {kind: command, cmd: \"sleep 0.2; sort {deps.i} > {outs.o}\", deps: {i: \"stage:b${b}s2/o\"}, outs: {o: o.txt}}"
    done; } > "$1"
}
# objects FILE: "stage=object …" of a run manifest (sorted), or the count of stages with a status.
cat > "$W/m.py" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
if len(sys.argv) > 2:
    print(sum(s["status"] == sys.argv[2] for s in m["stages"]))
else:
    print(" ".join(sorted("%s=%s" % (s["name"], s.get("object")) for s in m["stages"])))
PY
mkdir -p "$W/ref/experiments"; exp "$W/ref/experiments/k.yaml"
(cd "$W/ref" && "$ORCH" --store "$W/ref-store" run -q -j 2 experiments/k.yaml --json) > "$W/ref.json"
python3 "$W/m.py" "$W/ref.json" > "$W/ref.txt"
ok=0; fail=0; hit=0
for t in $(seq 1 "$TRIALS"); do
  S="$W/store-$t"; A="$W/a-$t"; B="$W/b-$t"
  mkdir -p "$A/experiments" "$B/experiments"; exp "$A/experiments/k.yaml"; cp "$A/experiments/k.yaml" "$B/experiments/"
  if [ "$MODE" = ns ]; then
    (cd "$A" && exec unshare --pid --uts --fork sh -c "hostname node-$t; exec $ORCH --store $S run -q -j 2 experiments/k.yaml" >/dev/null 2>&1) &
  else
    (cd "$A" && exec "$ORCH" --store "$S" run -q -j 2 experiments/k.yaml >/dev/null 2>&1) &
  fi
  KA=$!
  (cd "$B" && "$ORCH" --store "$S" run -q -j 2 experiments/k.yaml --json > "$W/b-$t.json" 2>"$W/b-$t.err"; echo $? > "$W/b-$t.rc") &
  KB=$!
  sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.05 + rand() * 1.1 }')"
  if [ "$MODE" = ns ]; then
    victim=$(cat /proc/$KA/task/$KA/children 2>/dev/null | awk "{print \$1}" || true)
    if [ -n "$victim" ] && kill -9 "$victim" 2>/dev/null; then hit=$((hit + 1)); fi
  else
    if kill -9 "$KA" 2>/dev/null; then hit=$((hit + 1)); fi
  fi
  wait "$KA" 2>/dev/null || true; wait "$KB" || true
  rb=$(cat "$W/b-$t.rc")
  got=$(python3 "$W/m.py" "$W/b-$t.json" 2>/dev/null)
  (cd "$A" && "$ORCH" --store "$S" run -q experiments/k.yaml --json > "$W/again-$t.json" 2>/dev/null)
  again=$(python3 "$W/m.py" "$W/again-$t.json" ran 2>/dev/null)
  (cd "$A" && "$ORCH" --store "$S" run -q --paranoid experiments/k.yaml --json > "$W/para-$t.json" 2>/dev/null)
  para=$(python3 "$W/m.py" "$W/para-$t.json" fresh 2>/dev/null)
  if [ "$rb" = 0 ] && [ "$got" = "$(cat "$W/ref.txt")" ] && [ "$again" = 0 ] && [ "$para" = 12 ]; then
    ok=$((ok + 1))
  else
    fail=$((fail + 1)); echo "trial $t: survivor rc $rb, rerun recomputed $again, paranoid fresh $para/12, outputs $([ "$got" = "$(cat "$W/ref.txt")" ] && echo equal || echo DIFFER)"
  fi
done
echo "kill -9 trials ($MODE): $hit of $TRIALS kills hit a running dispatcher; $ok of $TRIALS passed, $fail failed (survivor completes, identical outputs, 0 recomputed after, 0 corrupt)"
