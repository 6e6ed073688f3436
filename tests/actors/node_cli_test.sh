#!/usr/bin/env bash
# gwtf-node's refusals, end to end: each case must fail with its own exit code and a message that names the
# problem. With gwtf (its `swarm` commands), the same for TLS swarms: credentials checked before anything starts,
# plain text refused beyond loopback, strangers refused, and a TLS swarm of two processes that trains.
# Usage: node_cli_test.sh path/to/gwtf-node path/to/gwtf
set -uo pipefail
NODE=$1
GWTF=$2
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
failures=0

# check BINARY CODE REGEX -- ARGS...: runs BINARY ARGS, checks the exit code and that its output matches REGEX.
check() {
  local bin=$1 code=$2 regex=$3
  shift 4
  "$bin" "$@" >"$WORK/out" 2>&1
  local rc=$?
  if [[ $rc -ne $code ]] || ! grep -Eq -e "$regex" "$WORK/out"; then
    echo "FAIL: $(basename "$bin") $* -> exit $rc (want $code), output:"; cat "$WORK/out"; echo "(wanted /$regex/)"
    failures=$((failures + 1))
  else
    echo "ok: $(basename "$bin") $* -> exit $rc: $(grep -Eo -e "$regex.*" "$WORK/out" | head -1)"
  fi
}
expect() { check "$NODE" "$@"; }       # expect CODE REGEX -- ARGS...: gwtf-node ARGS
expect_gwtf() { check "$GWTF" "$@"; }  # the same for gwtf ARGS

cat >"$WORK/bad-key.toml" <<'TOML'
[train]
iterations = 3
microbatchez = 4
TOML
expect 2 "unknown key 'train.microbatchez'" -- --config "$WORK/bad-key.toml"
cat >"$WORK/bad-type.toml" <<'TOML'
[swarm]
replicas = [2, "two"]
TOML
expect 2 "key 'swarm.replicas' must be a non-empty list of integers in 1..1000" -- --config "$WORK/bad-type.toml"
cat >"$WORK/bad-node-key.toml" <<'TOML'
[node]
listen = "127.0.0.1:0"
peer_timout = 3
TOML
expect 2 "unknown key 'node.peer_timout' \\(known in \\[node\\]: .*peer_timeout" -- --config "$WORK/bad-node-key.toml"
cat >"$WORK/bad-role.toml" <<'TOML'
[node]
role = "leader"
TOML
expect 2 "key 'node.role' must be one of \"data, relay, auto\"" -- --config "$WORK/bad-role.toml"
cat >"$WORK/bad-section.toml" <<'TOML'
[nodes]
listen = "127.0.0.1:0"
TOML
expect 2 "unknown section \\[nodes\\] \\(known here: model, node, swarm, train\\)" -- --config "$WORK/bad-section.toml"
# The [node] section is read, and flags override it: the file's seed and timeout, the flag's timeout.
cat >"$WORK/node.toml" <<'TOML'
[node]
seeds = ["127.0.0.1:9"]
join_timeout = 60
TOML
expect 3 "no seed answered within 1 s \\(tried 127.0.0.1:9\\)" -- --config "$WORK/node.toml" --join-timeout 1
expect 2 "http 'localhost' is not HOST:PORT" -- --http localhost
# The documented example of each role loads (with --help, nothing starts).
DOCS=$(dirname "$0")/../../docs/examples
expect 0 "http TEXT" -- --config "$DOCS/data-holder.toml" --help
expect 0 "http TEXT" -- --config "$DOCS/relay.toml" --help
expect 2 "is not HOST:PORT" -- --seed localhost
expect 2 "must be auto or a relay stage 1..3" -- --stage 9
expect 2 "is not KIND:ITER:MB" -- --die-at sideways:1:1
expect 2 "--memory 'lots' is not a size" -- --memory lots
# Nobody listens on the seed's port: the node retries, then says so and exits non-zero.
expect 3 "no seed answered within 2 s \(tried 127.0.0.1:9\)" -- --seed 127.0.0.1:9 --join-timeout 2

# A node of another run (different learning rate) is refused by the seed at join.
"$NODE" --role data --listen 127.0.0.1:0 --events "$WORK/seed.jsonl" --holders 1 --replicas 1 >"$WORK/seed.log" 2>&1 &
for _ in $(seq 100); do
  port=$(grep -o '"port":[0-9]*' "$WORK/seed.jsonl" 2>/dev/null | head -1 | cut -d: -f2)
  [[ -n ${port:-} ]] && break
  sleep 0.1
done
if [[ -z ${port:-} ]]; then
  echo "FAIL: the seed did not start"; cat "$WORK/seed.log"; exit 1
fi
expect 2 "the swarm refused this node: configuration mismatch" -- --seed 127.0.0.1:$port --holders 1 --replicas 1 --lr 0.5
expect 2 "the swarm refused this node: every data-holder slot is taken" -- --seed 127.0.0.1:$port --holders 1 --replicas 1 --role data
# A relay given too little memory for its stage says what the stage needs once it knows its stage.
expect 2 "--memory: a memory of 0.0 MiB cannot hold this stage: it needs .* MiB for the weights" -- \
  --seed 127.0.0.1:$port --holders 1 --replicas 1 --role relay --memory 1KiB

# --- TLS swarms ----------------------------------------------------------------------------------------------
S=$WORK/swarm
expect_gwtf 0 "swarm 'lab': CA written" -- swarm create --name lab --out "$S/ca"
expect_gwtf 2 "exists already \\(nothing was overwritten\\)" -- swarm create --name lab --out "$S/ca"
expect_gwtf 2 "swarm name 'bad name'" -- swarm create --name "bad name" --out "$S/bad"
for n in seed relay; do expect_gwtf 0 "node '$n': credentials in" -- swarm issue --ca "$S/ca" --node $n --out "$S/$n"; done
echo "s3cret" >"$S/pass"
expect_gwtf 0 "node 'locked'" -- swarm issue --ca "$S/ca" --node locked --out "$S/locked" --passphrase-file "$S/pass"
expect_gwtf 0 "swarm 'lab'" -- swarm create --name lab --out "$S/rogue-ca"
expect_gwtf 0 "node 'rogue'" -- swarm issue --ca "$S/rogue-ca" --node rogue --out "$S/rogue"
[[ $(stat -c %a "$S/ca/ca.key") == 600 && $(stat -c %a "$S/seed/node.key") == 600 ]] ||
  { echo "FAIL: keys are not private (0600)"; failures=$((failures + 1)); }

# Credentials are checked before anything starts (a bad key or passphrase would make CAF's connect hang).
expect 2 "no swarm credentials \\(--tls DIR\\) and an address beyond loopback \\(--listen 0.0.0.0\\)" -- --listen 0.0.0.0:0
expect 2 "the node key is encrypted and does not open with no passphrase" -- --tls "$S/locked"
echo "guess" >"$WORK/wrong-pass"
expect 2 "does not open with the passphrase given" -- --tls "$S/locked" --key-passphrase-file "$WORK/wrong-pass"
mkdir -p "$S/mixed" && cp "$S/seed/ca.pem" "$S/seed/node.pem" "$S/mixed/" && cp "$S/relay/node.key" "$S/mixed/"
expect 2 "the node key does not belong to the node certificate" -- --tls "$S/mixed"
mkdir -p "$S/foreign" && cp "$S/ca/ca.pem" "$S/foreign/" && cp "$S/rogue/node.pem" "$S/rogue/node.key" "$S/foreign/"
expect 2 "does not verify against the swarm 'lab' CA" -- --tls "$S/foreign"
expect 2 "the swarm CA file '.*missing/ca.pem' cannot be read" -- --tls "$S/missing"
expect 2 "with --tls: in a TLS swarm the node id derives from the certificate" -- --tls "$S/seed" --id 5

# A TLS swarm of two processes trains; a stranger (another CA) and a plain-text node are refused at the handshake.
"$NODE" --tls "$S/seed" --role data --listen 127.0.0.1:0 --events "$WORK/tls-seed.jsonl" --holders 1 --replicas 1 \
  --iterations 3 >"$WORK/tls-seed.log" 2>&1 &
seed_pid=$!
port=
for _ in $(seq 100); do
  port=$(grep -o '"port":[0-9]*' "$WORK/tls-seed.jsonl" 2>/dev/null | head -1 | cut -d: -f2)
  [[ -n ${port:-} ]] && break
  sleep 0.1
done
[[ -n ${port:-} ]] || { echo "FAIL: the TLS seed did not start"; cat "$WORK/tls-seed.log"; exit 1; }
expect 3 "closed the connection during the handshake: a TLS swarm refuses plain-text nodes and certificates of another" \
  -- --tls "$S/rogue" --seed 127.0.0.1:$port --holders 1 --replicas 1 --iterations 3 --join-timeout 2
expect 3 "closed the connection during the handshake" -- --seed 127.0.0.1:$port --holders 1 --replicas 1 --iterations 3 \
  --join-timeout 2
expect 0 "training finished: 3 iterations" -- --tls "$S/relay" --seed 127.0.0.1:$port --holders 1 --replicas 1 --iterations 3
if wait $seed_pid && grep -q "TLS swarm 'lab': this node is 'seed'" "$WORK/tls-seed.log"; then
  echo "ok: the TLS seed trained and exited 0"
else
  echo "FAIL: the TLS seed:"; cat "$WORK/tls-seed.log"; failures=$((failures + 1))
fi
# The seed named the strangers it refused (CAF itself drops them without a word).
for why in "certificate verify failed|tlsv1 alert unknown ca" "wrong version number|packet length too long|http request"; do
  if grep -Eq "refused \(tls\): the TLS handshake with 127\.0\.0\.1:[0-9]+ failed: ($why)" "$WORK/tls-seed.log"; then
    echo "ok: the seed logged a refused handshake ($why)"
  else
    echo "FAIL: the seed did not log a refused handshake ($why):"; grep "refused" "$WORK/tls-seed.log"
    failures=$((failures + 1))
  fi
done

exit $((failures > 0))
