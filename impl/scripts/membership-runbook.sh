#!/bin/bash
# The transcript of impl/RUNTIME.md, "Membership runbook": a three-node cluster on loopback
# (HTTP 127.0.0.1:7901-7906, peers 7801-7806) grown to five with a rolling restart by
# leadership transfer, shrunk to three, and a member whose disk is lost replaced. Prints each
# "$ command" and its output. Needs `cargo build --release -p raft-node` and curl.
#   bash impl/scripts/membership-runbook.sh [DATA_DIR]     (default: a new temporary directory)
set -u
BIN=${BIN:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/raft-node}
D=${1:-$(mktemp -d)}; rm -rf "$D"; mkdir -p "$D"
cd $D
NODES=127.0.0.1:7901,127.0.0.1:7902,127.0.0.1:7903
run() { echo "\$ $*" | sed "s#$BIN#raft-node#"; "$@" 2>&1 | sed "s#$BIN#raft-node#" | grep -v " ERROR raft_node: \| INFO raft_node"; }
cfg() { # id, list of peer ids
  local id=$1; shift
  {
    echo "id = $id"; echo 'cluster_id = "runbook"'; echo "data_dir = \"$D/node$id\""
    echo "peer_addr = \"127.0.0.1:78$(printf %02d $id)\""; echo "http_addr = \"127.0.0.1:79$(printf %02d $id)\""
    echo 'initial_voters = [1, 2, 3]'
    for p in "$@"; do [ "$p" = "$id" ] && continue
      echo; echo "[[peers]]"; echo "id = $p"; echo "peer_addr = \"127.0.0.1:78$(printf %02d $p)\""; echo "http_addr = \"127.0.0.1:79$(printf %02d $p)\""
    done
  } > node$id.toml
}
declare -A PID
start() { RUST_LOG=info $BIN serve --config node$1.toml "${@:2}" >> node$1.log 2>&1 & PID[$1]=$!; }
stop() { kill -TERM ${PID[$1]}; wait ${PID[$1]} 2>/dev/null; }
leader() { curl -s 127.0.0.1:790$1/status | sed -E 's/.*"leader":([0-9a-z]+).*/\1/'; }
wait_member() { for _ in $(seq 100); do curl -s 127.0.0.1:790$1/status | grep -q "\"commit_index\":$2" && return; sleep 0.1; done; }

echo "## a three-node cluster"
for i in 1 2 3; do cfg $i 1 2 3; run $BIN init --config node$i.toml; start $i; done
sleep 2
for k in 1 2 3 4 5 6 7 8 9 10; do $BIN kv --nodes $NODES put k$k v$k > /dev/null; done
run $BIN member --nodes $NODES list

echo "## grow 3 -> 5, step 1: list nodes 4, 5 (and a spare slot, 6) in every peers list; rolling restart"
for i in 1 2 3; do
  cfg $i 1 2 3 4 5 6
  L=$(leader 1)
  if [ "$L" = "$i" ]; then
    next=$([ $i = 1 ] && echo 2 || echo 1)
    run $BIN member --nodes $NODES transfer-leader $next
  fi
  echo "\$ kill -TERM <node $i>; raft-node serve --config node$i.toml   # the new peers list"
  stop $i; start $i; sleep 1
done
run $BIN member --nodes $NODES list

echo "## grow 3 -> 5, step 2: the new nodes start empty with --join, are added as learners, then promoted"
cfg 4 1 2 3 4 5 6; cfg 5 1 2 3 4 5 6
echo "\$ raft-node serve --config node4.toml --join &"; start 4 --join
echo "\$ raft-node serve --config node5.toml --join &"; start 5 --join
sleep 1
run $BIN member --nodes $NODES add-learner 4
run $BIN member --nodes $NODES add-learner 5
sleep 1
echo "\$ curl -s 127.0.0.1:7904/status   # (excerpt) node 4 caught up"
curl -s 127.0.0.1:7904/status | grep -oE '"role":"[A-Za-z]+"|"commit_index":[0-9]+|"voters":\[[0-9,]*\]|"learners":\[[0-9,]*\]' | tr '\n' ' '; echo
run $BIN member --nodes $NODES promote 4
run $BIN member --nodes $NODES promote 5
ALL=$NODES,127.0.0.1:7904,127.0.0.1:7905
sleep 0.3
run $BIN member --nodes $ALL list

echo "## shrink 5 -> 3: remove nodes 5 and 4, one at a time, and stop each once removed"
run $BIN member --nodes $ALL remove 5
stop 5
echo "\$ kill -TERM <node 5>"
run $BIN member --nodes $ALL remove 4
stop 4
echo "\$ kill -TERM <node 4>"

echo "## replace a failed machine: node 2's disk is lost"
kill -9 ${PID[2]}; wait ${PID[2]} 2>/dev/null
echo "\$ kill -9 <node 2>; rm -rf node2"
rm -rf node2
run $BIN serve --config node2.toml
run $BIN member --nodes $ALL remove 2
cfg 6 1 2 3 4 5 6
echo "\$ raft-node serve --config node6.toml --join &"; start 6 --join
sleep 1
run $BIN member --nodes $ALL,127.0.0.1:7906 add-learner 6
sleep 1
run $BIN member --nodes $ALL,127.0.0.1:7906 promote 6
sleep 0.3
run $BIN member --nodes 127.0.0.1:7901,127.0.0.1:7903,127.0.0.1:7906 list
echo "\$ raft-node kv --nodes ... get k1 ... k10   # every write is still there"
n=0; for k in 1 2 3 4 5 6 7 8 9 10; do v=$($BIN kv --nodes 127.0.0.1:7906,127.0.0.1:7901 get k$k); [ "$v" = "v$k" ] && n=$((n+1)); done
echo "$n of 10 read back"
for i in 1 3 6; do stop $i; done
