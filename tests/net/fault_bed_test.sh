#!/usr/bin/env bash
# Fault tests across hosts: a TLS swarm of gwtf-node processes, one per network namespace (tests/net/netbed), trains
# the tiny GPT while the network misbehaves. Each case fails unless the swarm finishes every iteration with no
# microbatch lost or counted twice (gwtf ledger over every node's events) and the case's own check holds:
#   kill-host   a relay's host vanishes without a FIN: its peers notice within the peer timeout, others redo its work
#   partition   a relay loses every link: declared dead, its work rerouted; it stops (cut off), and once healed a
#               restart joins as a new member that receives its stage's state
#   neighbours  a stage-1 relay loses its links to its stage neighbours (the holder, both stage-2 relays) but not to
#               its stage peer: the holder declares it gone, the peer passes that on, the relay stops; as partition
#   loss        5% of packets dropped on every link from the start: training goes on
#   geo         the hosts sit in five regions (data/regions.csv latencies, scaled): training goes on, and the holder
#               sends most microbatches to the near stage-1 replica, not the one in Australia
#   degrade     the link from a stage-1 relay to the stage-2 replica it sends to is throttled to 2 Mbit/s: nobody
#               is taken for dead, the link's measured cost rises, and the relay's flows move to the other replica
# Usage: fault_bed_test.sh path/to/gwtf-node path/to/gwtf path/to/delay_proxy [CASE...]. Exit 77 (skipped) where namespaces cannot be
# made. GWTF_BED_ITERATIONS sets the run's length (default 16).
set -uo pipefail
NODE=$1
GWTF=$2
export NETBED_PROXY=$3  # the delaying relay (tests/net/delay_proxy.cpp) that `netbed delay` starts
shift 3
CASES=("$@")
((${#CASES[@]})) || CASES=(kill-host partition neighbours degrade loss geo)
BED=$(cd "$(dirname "$0")" && pwd)/netbed
REGIONS=$(cd "$(dirname "$0")/../.." && pwd)/data/regions.csv
GEO_SCALE=${GWTF_BED_GEO_SCALE:-0.25}  # regions' latencies scaled down: the run stays short
if ! why=$("$BED" check 2>&1); then
  echo "SKIPPED: the fault bed needs network namespaces: $why"
  exit 77
fi
TAG="gf$(($$ % 10000))"
WORK=$(mktemp -d)
cleanup() {
  "$BED" down "$TAG"
  if [[ -n ${GWTF_BED_KEEP:-} ]]; then echo "kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
ITER=${GWTF_BED_ITERATIONS:-16}
MB=4
failures=0
fail() {
  echo "FAIL ($case): $*"
  failures=$((failures + 1))
}

# Credentials: one swarm CA, a certificate per host (a restarted node keeps its certificate, gets a new id).
"$GWTF" swarm create --name bed --out "$WORK/ca" >/dev/null || exit 1
for k in 1 2 3 4 5; do "$GWTF" swarm issue --ca "$WORK/ca" --node "host$k" --out "$WORK/host$k" >/dev/null || exit 1; done

# The run of a case: ITER iterations, PEER_TIMEOUT seconds of silence before a peer is taken for dead.
configure() {
  iterations=$1
  PEER_TIMEOUT=$2
  RUN=(--holders 1 --replicas 2,2 --iterations "$iterations" --microbatches $MB --microbatch-size 2 --seq 32
       --in-flight 2)
}
# start K [ARGS...]: gwtf-node of host K in its namespace (host 1 is the data holder and the seed).
declare -A PID
start() {
  local k=$1 run=${RUN_NO:-0}
  shift
  local seed=()
  ((k == 1)) || seed=(--seed 10.77.0.1:7000)
  "$BED" exec "$TAG" "$k" "$NODE" --tls "$WORK/host$k" --listen "10.77.0.$k:7000" "${seed[@]}" \
    --events "$WORK/$case/host$k.$run.jsonl" --peer-timeout $PEER_TIMEOUT --log-level info "${RUN[@]}" "$@" \
    >"$WORK/$case/host$k.$run.log" 2>&1 &
  PID[$k]=$!
}
# wait_for FILE REGEX SECONDS: until a line of FILE matches.
wait_for() {
  local deadline=$((SECONDS + $3))
  until grep -Eq "$2" "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}
node_id() { grep -o '"node":[0-9]*' "$1" | head -1 | cut -d: -f2; }
stepped() {
  local n
  n=$(grep -c '"kind":"stepped"' "$WORK/$case/host1.0.jsonl" 2>/dev/null)
  echo "${n:-0}"
}
wait_stepped() {  # wait_stepped N SECONDS: the holder stepped N iterations
  local deadline=$((SECONDS + $2))
  until (($(stepped) >= $1)); do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}
# detected_in_time VICTIM: the data holder declared VICTIM dead within the peer timeout (+3 s of slack: the
# script's polling, CAF's heartbeat period) of the fault injected at $fault_at.
detected_in_time() {
  wait_for "$WORK/$case/host1.0.jsonl" "\"event\":\"peer_down\".*\"peer\":$1" 30 ||
    { fail "the data holder never declared host 3 dead"; return; }
  local detected=$((SECONDS - fault_at))
  if ((detected <= PEER_TIMEOUT + 3)); then
    echo "ok ($case): declared dead within ${detected} s (peer timeout ${PEER_TIMEOUT} s)"
  else
    fail "declared dead after ${detected} s (peer timeout ${PEER_TIMEOUT} s)"
  fi
}
# Starts the founders (holder first: it is the seed).
start_swarm() {
  mkdir -p "$WORK/$case"
  start 1 --role data
  wait_for "$WORK/$case/host1.0.jsonl" '"event":"start"' 30 || { fail "the seed did not start"; return 1; }
  for k in 2 3; do start $k --role relay --stage 1; done
  for k in 4 5; do start $k --role relay --stage 2; done
  wait_stepped 3 120 || { fail "the swarm did not reach iteration 3"; return 1; }
}
# Waits for every process of the case; checks the holder's exit and the ledger.
finish() {
  local k rc
  for k in "${!PID[@]}"; do
    if ! timeout 120 tail --pid="${PID[$k]}" -f /dev/null; then
      fail "host $k did not finish: $(tail -2 "$WORK/$case/host$k.${RUNS[$k]:-0}.log")"
    fi
  done
  wait "${PID[1]}"
  rc=$?
  ((rc == 0)) || fail "the data holder exited with $rc: $(tail -3 "$WORK/$case/host1.0.log")"
  if ! ledger=$("$GWTF" ledger "$WORK/$case"/*.jsonl --microbatches $MB --iterations "$iterations"); then
    fail "ledger: $ledger"
  else
    echo "ok ($case): every iteration committed, nothing lost or duplicated: $ledger"
  fi
  PID=()
}

for case in "${CASES[@]}"; do
  echo "--- $case"
  "$BED" up "$TAG" 5 || { fail "cannot set up the bed"; continue; }
  case $case in
    kill-host)
      configure "$ITER" 2
      start_swarm || continue
      victim=$(node_id "$WORK/$case/host3.0.jsonl")
      fault_at=$SECONDS
      "$BED" kill-host "$TAG" 3
      detected_in_time "$victim"
      unset 'PID[3]'
      finish
      ;;
    partition | neighbours)
      configure $((ITER * 3)) 2  # long enough for the restarted node to join before the end
      start_swarm || continue
      victim=$(node_id "$WORK/$case/host3.0.jsonl")
      fault_at=$SECONDS
      if [[ $case == partition ]]; then
        "$BED" partition "$TAG" 3
        why="cut off from the swarm"
      else
        "$BED" cut "$TAG" 3 1 4 5
        why="the swarm took this node for dead"
      fi
      detected_in_time "$victim"
      timeout 30 tail --pid="${PID[3]}" -f /dev/null
      wait "${PID[3]}"
      rc=$?
      ((rc == 4)) || fail "the cut-off node exited with $rc, not 4 (cut off): $(tail -2 "$WORK/$case/host3.0.log")"
      grep -q "$why" "$WORK/$case/host3.0.log" || fail "the cut-off node did not say why it stopped: $(tail -1 "$WORK/$case/host3.0.log")"
      "$BED" heal "$TAG" 3
      RUN_NO=1 start 3 --role relay
      unset RUN_NO
      wait_for "$WORK/$case/host3.1.jsonl" '"kind":"joined"' 120 || fail "the restarted node never served its stage"
      finish
      ;;
    loss)
      # A lost segment's retransmissions back off (0.2, 0.4, 0.8, 1.6 s ...): a lossy network needs a peer timeout
      # that a few consecutive losses cannot reach, or healthy peers are taken for dead (docs/operations.md).
      configure "$ITER" 8
      "$BED" loss "$TAG" 5
      start_swarm || continue
      finish
      ;;
    degrade)
      configure $((ITER * 6)) 4  # long enough to see where the flows go (the annealing still tries worse moves)
      start_swarm || continue
      # Throttle the link from host 3 (stage 1) to the stage-2 replica it sends to now.
      h3="$WORK/$case/host3.0.jsonl"
      routed='"event":"next_hops","hops":\[[0-9]'
      wait_for "$h3" "$routed" 30 || { fail "host 3 never sent to stage 2"; "$BED" down "$TAG"; continue; }
      slow_id=$(grep "$routed" "$h3" | tail -1 | grep -o '"hops":\[[0-9]*' | grep -o '[0-9]*$')
      slow=$(grep -l "\"node\":$slow_id" "$WORK/$case"/host[45].0.jsonl | grep -o 'host[45]' | tr -dc 0-9)
      from_line=$(($(wc -l <"$h3") + 1))
      t0=$(tail -1 "$h3" | grep -o '"t":[0-9.e-]*' | cut -d: -f2)
      "$BED" rate "$TAG" 3 2mbit "$slow"
      finish
      # Nobody was taken for dead while training ran, and host 3 sent over the throttled link for less than 40% of the
      # remaining training time (a route chosen at random: half), from 2 s after the throttle (time to measure it; host 3's clock and next-hop
      # changes).
      early=$(awk '/"event":"finished"/{exit} /"event":"peer_down"/{print}' "$WORK/$case/host1.0.jsonl")
      [[ -z $early ]] || fail "a member was taken for dead: $early"
      share=$(tail -n +"$from_line" "$h3" | awk -v slow="$slow_id" -v t0="$t0" 'BEGIN { on = 1; t0 += 2; since = t0 }
        { if (match($0, /"t":[0-9.e-]+/)) t = substr($0, RSTART + 4, RLENGTH - 4) + 0 }
        /"event":"finished"/ { end = t; exit }
        /"event":"next_hops"/ {
          if (t > t0) { if (on) used += t - since; since = t }
          on = index($0, slow) > 0
        }
        END { if (!end) end = t; if (on) used += end - since; printf "%d", (end > t0 ? 100 * used / (end - t0) : 100) }')
      if [[ -n $share ]] && ((share < 40)); then
        echo "ok ($case): host 3 used its throttled link to host $slow for $share% of the rest of the run"
      else
        fail "host 3 kept using its throttled link to host $slow for $share% of the rest of the run"
      fi
      # The link's measured cost (host 3's link_cost events) rose at least threefold over its last value before.
      costs() { grep '"event":"link_cost"' | grep "\"peer\":$slow_id[,}]" | grep -o '"cost_s":[0-9.e-]*' | cut -d: -f2; }
      before=$(head -n $((from_line - 1)) "$h3" | costs | tail -1)
      after=$(tail -n +"$from_line" "$h3" | costs | sort -g | tail -1)
      if [[ -n $before && -n $after ]] && awk -v b="$before" -v a="$after" 'BEGIN { exit !(a >= 3 * b) }'; then
        echo "ok ($case): the throttled link's measured cost rose from $before s to $after s"
      else
        fail "the throttled link's measured cost did not rise threefold (before: ${before:-none}, after: ${after:-none})"
      fi
      ;;
    geo)
      # Every host in a region, every link through a delaying relay (tests/net/delay_proxy): the one-way latency of
      # the two regions in data/regions.csv (1 ms within one) times GEO_SCALE, plus up to 10% of it as jitter.
      configure $((ITER * 3)) 4  # the flow layer needs some rounds to settle the routes
      region=([1]=Belgium [2]=Germany [3]=Australia [4]=NL [5]=London)
      for a in 1 2 3 4 5; do
        for b in 1 2 3 4 5; do
          ((a != b)) || continue
          ms=$(awk -F, -v a="${region[$a]}" -v b="${region[$b]}" -v scale="$GEO_SCALE" '
            ($1 == a && $2 == b) || ($1 == b && $2 == a) { printf "%.1f", $3 * scale; found = 1; exit }
            END { if (!found) printf "%.1f", 1 * scale }' "$REGIONS")
          "$BED" delay "$TAG" $a $b "$ms" "$(awk -v m="$ms" 'BEGIN { printf "%.1f", m / 10 }')"
        done
      done
      start_swarm || continue
      finish
      # The holder (Belgium) sends most of its microbatches to the stage-1 replica next door (host 2, Germany), not
      # to the one in Australia (host 3): the time-weighted share of its next hops that are host 3, from its first
      # routes to the end of training.
      far=$(node_id "$WORK/$case/host3.0.jsonl")
      share=$(awk -v far="$far" '
        { if (match($0, /"t":[0-9.e-]+/)) t = substr($0, RSTART + 4, RLENGTH - 4) + 0 }
        /"event":"finished"/ { end = t; exit }
        /"event":"next_hops"/ {
          if (!started) { started = 1; t0 = t; since = t }
          used += frac * (t - since); since = t
          n = split(substr($0, index($0, "[") + 1, index($0, "]") - index($0, "[") - 1), hop, ",")
          k = 0; for (i = 1; i <= n; ++i) if (hop[i] == far) ++k
          frac = n ? k / n : 0
        }
        END { if (!end) end = t; used += frac * (end - since); printf "%d", (end > t0 ? 100 * used / (end - t0) : 100) }' \
        "$WORK/$case/host1.0.jsonl")
      if [[ -n $share ]] && ((share < 50)); then
        echo "ok ($case): $share% of the holder's routes went through the far replica (Australia)"
      else
        fail "$share% of the holder's routes went through the far replica (Australia)"
      fi
      ;;
    *) fail "unknown case" ;;
  esac
  "$BED" down "$TAG"
done
exit $((failures > 0))
