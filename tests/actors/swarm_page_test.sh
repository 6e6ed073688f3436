#!/usr/bin/env bash
# The live swarm page and /metrics of a running swarm: four gwtf-node processes (a data holder, two replicas of
# stage 1, one of stage 2) train the tiny GPT; one replica is killed. The page, loaded from the seed node in
# headless Chromium, must show every node, the flows between them, the loss curve and the crash; /metrics of the
# seed must report the iteration and the peers per stage. A screenshot of the page is left in OUTDIR.
# Usage: swarm_page_test.sh path/to/gwtf-node OUTDIR
set -uo pipefail
NODE=$1
OUT=$2
mkdir -p "$OUT"
WORK=$(mktemp -d)
pids=()
cleanup() { kill -9 "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$WORK"/*.log; do echo "--- $f"; tail -5 "$f"; done; exit 1; }

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[[ -n $CHROMIUM ]] || fail "no chromium: scripts/setup installs it (Debian package chromium)"

RUN=(--holders 1 --replicas 2,1 --iterations 100000 --microbatches 4 --microbatch-size 2 --seq 32 --log-level warn
     --http 127.0.0.1:0 --peer-timeout 4)
"$NODE" "${RUN[@]}" --id 1 --role data --listen 127.0.0.1:0 --events "$WORK/1.jsonl" >"$WORK/1.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do
  port=$(grep -o '"port":[0-9]*' "$WORK/1.jsonl" 2>/dev/null | head -1 | cut -d: -f2)
  status=$(grep -o '"status_port":[0-9]*' "$WORK/1.jsonl" 2>/dev/null | head -1 | cut -d: -f2)
  [[ -n ${port:-} && -n ${status:-} ]] && break
  sleep 0.1
done
[[ -n ${port:-} && ${status:-0} -gt 0 ]] || fail "the seed did not start its status server"
for spec in "2 1" "3 1" "4 2"; do
  set -- $spec
  "$NODE" "${RUN[@]}" --id "$1" --role relay --stage "$2" --seed "127.0.0.1:$port" --events "$WORK/$1.jsonl" \
    >"$WORK/$1.log" 2>&1 &
  pids+=($!)
done

steps() { local n; n=$(grep -c '"kind":"stepped"' "$WORK/1.jsonl" 2>/dev/null); echo "${n:-0}"; }
for _ in $(seq 600); do (( $(steps) >= 3 )) && break; sleep 0.1; done
(( $(steps) >= 3 )) || fail "the swarm did not train 3 iterations within 60 s"
kill -9 "${pids[2]}"  # node 3, a replica of stage 1
for _ in $(seq 100); do grep -q '"event":"peer_down"' "$WORK/1.jsonl" && break; sleep 0.1; done
grep -q '"event":"peer_down"' "$WORK/1.jsonl" || fail "the seed did not see node 3 go down"
for _ in $(seq 100); do (( $(steps) >= 6 )) && break; sleep 0.1; done

# /metrics, by hand over bash's /dev/tcp (no HTTP client needed).
exec 3<>"/dev/tcp/127.0.0.1/$status"
printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
metrics=$(cat <&3)
exec 3<&-
failures=0
check() {  # check WHAT REGEX TEXT
  if grep -Eq "$2" <<<"$3"; then echo "ok: $1"; else echo "FAIL: $1 (no /$2/)"; failures=$((failures + 1)); fi
}
check "/metrics is Prometheus text" 'Content-Type: text/plain; version=0.0.4' "$metrics"
check "/metrics reports the iteration" '^gwtf_iteration [1-9][0-9]*' "$metrics"
check "/metrics reports the loss" '^gwtf_loss [0-9.]+' "$metrics"
check "/metrics counts peers per stage" '^gwtf_peers\{stage="1"\} 1' "$metrics"
check "/metrics counts the crash" '^gwtf_peer_failures_total 1' "$metrics"
check "/metrics reports throughput" '^gwtf_tokens_per_second [1-9]' "$metrics"

url="http://127.0.0.1:$status/"
chrome=("$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run
        --user-data-dir="$WORK/chromium" --virtual-time-budget=8000)
timeout 60 "${chrome[@]}" --dump-dom "$url" >"$WORK/dom.html" 2>"$WORK/chromium.log" ||
  fail "chromium could not load $url: $(tail -3 "$WORK/chromium.log")"
dom=$(cat "$WORK/dom.html")
check "the page names the serving node" 'served by node 1 ' "$dom"
for id in 1 2 4; do check "the page shows node $id serving" "class=\"node ready\" data-id=\"$id\"" "$dom"; done
check "the page shows the flows between the nodes" 'class="edge"' "$dom"
check "the page draws the loss curve" '<polyline class="line" stroke="#d92d20"' "$dom"
check "the page lists the crash" 'node 3 went down' "$dom"
check "the page shows stage 1 short of replicas after the crash" \
  '<td>1</td><td>relay stage</td><td>1</td><td class="short">1 \(short of replicas\)' "$dom"
timeout 60 "${chrome[@]}" --window-size=1280,1100 --screenshot="$OUT/swarm-page.png" "$url" >/dev/null 2>&1
[[ -s $OUT/swarm-page.png ]] && echo "ok: screenshot $OUT/swarm-page.png" || { echo "FAIL: no screenshot"; failures=$((failures + 1)); }
exit $((failures > 0))
