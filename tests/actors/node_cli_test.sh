#!/usr/bin/env bash
# gwtf-node's refusals, end to end: each case must fail with its own exit code and a message that names the
# problem. Usage: node_cli_test.sh path/to/gwtf-node
set -uo pipefail
NODE=$1
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
failures=0

# expect CODE REGEX -- ARGS...: runs gwtf-node ARGS, checks the exit code and that stderr matches REGEX.
expect() {
  local code=$1 regex=$2
  shift 3
  "$NODE" "$@" >"$WORK/out" 2>&1
  local rc=$?
  if [[ $rc -ne $code ]] || ! grep -Eq "$regex" "$WORK/out"; then
    echo "FAIL: gwtf-node $* -> exit $rc (want $code), output:"; cat "$WORK/out"; echo "(wanted /$regex/)"
    failures=$((failures + 1))
  else
    echo "ok: gwtf-node $* -> exit $rc: $(grep -Eo "$regex.*" "$WORK/out" | head -1)"
  fi
}

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

exit $((failures > 0))
