#!/usr/bin/env bash
# gwtf-sim run end to end: a short paper-geo run writes its report (summary.json with every policy's figures,
# CSV files, summary.md, plots), exits 0 (every policy finished with nothing lost or doubled), and the same seed
# gives the same summary.json byte for byte. Usage: sim_run_test.sh path/to/gwtf-sim OUTDIR
set -uo pipefail
SIM=$1
OUT=$2
rm -rf "$OUT"
fail() { echo "FAIL: $*"; exit 1; }
"$SIM" run --scenario paper-geo --iterations 4 --seed 3 --out "$OUT/a" || fail "gwtf-sim run exited $?"
"$SIM" run --scenario paper-geo --iterations 4 --seed 3 --out "$OUT/b" >/dev/null || fail "second run exited $?"
for f in summary.json summary.csv summary.md iterations-gwtf.csv routing-gwtf.csv; do
  [[ -s $OUT/a/$f ]] || fail "no $f"
done
for key in time_to_train_s throughput_microbatches_per_s wasted_compute_fraction crash_lost_fraction idle_fraction \
           lost_microbatches duplicated_microbatches mean_recovery_latency_s; do
  [[ $(grep -c "\"$key\"" "$OUT/a/summary.json") -eq 6 ]] || fail "summary.json lacks $key for the 6 policies"
done
# The deposit bound, for the 5 policies on the training protocol's engine (not swarm's own).
[[ $(grep -c '"wasted_if_durable_after_s"' "$OUT/a/summary.json") -eq 5 ]] ||
  fail "summary.json lacks the deposit bound"
cmp -s "$OUT/a/summary.json" "$OUT/b/summary.json" || fail "the same seed gave another summary.json"
if command -v gnuplot >/dev/null; then
  for f in progress.png throughput.png routing.png; do [[ -s $OUT/a/$f ]] || fail "no plot $f"; done
fi
"$SIM" run --scenario paper-geo --policies gwtf,telepathy --iterations 2 --out "$OUT/c" >"$OUT/err" 2>&1
[[ $? -eq 2 ]] && grep -q "policy 'telepathy' is not implemented (available: gwtf, oracle, round-robin, greedy, static, swarm)" "$OUT/err" ||
  fail "an unknown policy: $(cat "$OUT/err")"
# A scenario file: its keys are read, and a wrong one is named.
printf '[scenario]\nname = "tiny-swarm"\nrelays = 6\nstages = 2\nmicrobatches = 8\niterations = 2\nchurn = "medium"\n' >"$OUT/s.toml"
"$SIM" run --scenario "$OUT/s.toml" --policies gwtf --out "$OUT/d" >"$OUT/log" 2>&1 || fail "scenario file: $(cat "$OUT/log")"
grep -q '"name": "tiny-swarm"' "$OUT/d/summary.json" && grep -q '"relays": 6' "$OUT/d/summary.json" ||
  fail "the scenario file's keys were not used"
printf '[scenario]\nrelais = 6\n' >"$OUT/bad.toml"
"$SIM" run --scenario "$OUT/bad.toml" --out "$OUT/e" >"$OUT/err" 2>&1
[[ $? -eq 2 ]] && grep -q "unknown key 'scenario.relais'" "$OUT/err" || fail "a bad scenario key: $(cat "$OUT/err")"
# A protocol trace for one policy.
"$SIM" run --scenario "$OUT/s.toml" --policies gwtf --trace "$OUT/trace.txt" --out "$OUT/f" >/dev/null 2>&1 ||
  fail "--trace run failed"
grep -q " event stepped " "$OUT/trace.txt" || fail "the trace holds no step"
"$SIM" run --scenario "$OUT/s.toml" --trace "$OUT/t2.txt" --out "$OUT/g" >"$OUT/err" 2>&1
[[ $? -eq 2 ]] && grep -q "trace needs exactly one policy" "$OUT/err" || fail "--trace with several policies accepted"
echo "ok: report, determinism, unknown policy, scenario files, trace"
