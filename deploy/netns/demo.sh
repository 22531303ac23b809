#!/usr/bin/env bash
# Multi-host sustainml on one machine, for a human to watch (tests/netns/test_multihost.py is the
# automated version). Needs root, iproute2, util-linux `unshare`, RabbitMQ on 127.0.0.1:5672.
#
#   sudo deploy/netns/demo.sh            # from the repository root, after tools/setup
#
# It creates hosts h1..h3 as network namespaces joined to this one by veth links, runs
#   h1: ml_model_metadata app_requirements hw_constraints
#   h2: ml_model hw_resources carbon_footprint
#   h3: ml_model hw_resources
# with the orchestrator here, submits tasks, cuts h3's link, submits again (tasks still complete:
# h2 has replicas of h3's stages), restores the link, and removes everything on exit (Ctrl-C too).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-.venv/bin/python}"
[ "$(id -u)" = 0 ] || { echo "run as root (network namespaces)"; exit 1; }
TAG="d$$"
NS="t-netns-demo-$$"
PORT=35672
NET="10.231.$(( $$ % 200 + 20 ))"   # a /24 we check is unused
if ip -4 route show table all | grep -q "^${NET}\.\|via ${NET}\."; then echo "${NET}.0/24 in use; rerun"; exit 1; fi
LOG="$(mktemp -d /tmp/sustainml-netns-demo.XXXX)"
export SUSTAINML_NAMESPACE="$NS" SUSTAINML_DATA_DIR="$LOG/data" SUSTAINML_HTTP=off \
       SUSTAINML_AMQP_HEARTBEAT=2 SUSTAINML_HEARTBEAT_INTERVAL=0.5
declare -A STAGES=([h1]="ml_model_metadata app_requirements hw_constraints" \
                   [h2]="ml_model hw_resources carbon_footprint" [h3]="ml_model hw_resources")
PIDS=()      # forwarder and orchestrator
WORKERS=()

stop_all() {  # $@ pids: SIGTERM, then up to 40 s for a graceful stop, then SIGKILL
  for p in "$@"; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 1 40); do
    alive=0; for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return; sleep 1
  done
  for p in "$@"; do kill -KILL "$p" 2>/dev/null; done
}

cleanup() {
  set +e
  echo "== cleaning up"
  # workers first, while the broker is still reachable through the forwarder
  [ "${#WORKERS[@]}" -gt 0 ] && stop_all "${WORKERS[@]}"
  [ "${#PIDS[@]}" -gt 0 ] && stop_all "${PIDS[@]}"
  wait 2>/dev/null
  for i in 1 2 3; do ip netns del "sml${TAG}h$i" 2>/dev/null; ip link del "sv${TAG}${i}r" 2>/dev/null; done
  "$PY" -c "from sustainml.transport.amqp import AmqpTransport as T; from sustainml.topology import Topology, delete_all
with T('amqp://guest:guest@127.0.0.1:5672/%2F', name='cleanup') as t: delete_all(t, Topology('$NS'))"
  echo "logs in $LOG"
}
trap cleanup EXIT

LISTEN=()
for i in 1 2 3; do
  h="h$i"; netns="sml${TAG}$h"; r="sv${TAG}${i}r"; n="sv${TAG}${i}n"
  a=$(( 4 * (i - 1) + 1 ))
  ip netns add "$netns"
  ip link add "$r" type veth peer name "$n"
  ip link set "$n" netns "$netns"
  ip addr add "$NET.$a/30" dev "$r"; ip link set "$r" up
  ip -n "$netns" addr add "$NET.$((a + 1))/30" dev "$n"; ip -n "$netns" link set "$n" up
  ip -n "$netns" link set lo up
  LISTEN+=(--listen "$NET.$a:$PORT")
done
echo "== hosts: $(ip netns list | grep -c "sml${TAG}") namespaces on $NET.0/24"
"$PY" deploy/netns/tcp_forward.py --to 127.0.0.1:5672 "${LISTEN[@]}" > "$LOG/forward.log" 2>&1 &
PIDS+=($!)
"$PY" -m sustainml.cli orchestrator > "$LOG/orchestrator.log" 2>&1 &
PIDS+=($!)
sleep 1
for i in 1 2 3; do
  h="h$i"; a=$(( 4 * (i - 1) + 1 ))
  for k in ${STAGES[$h]}; do
    SUSTAINML_BROKER_URL="amqp://guest:guest@$NET.$a:$PORT/%2F" \
      ip netns exec "sml${TAG}$h" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$h" \
      "$PY" -m sustainml.cli worker "$k" > "$LOG/$h-$k.log" 2>&1 &
    WORKERS+=($!)
  done
done

status() { "$PY" -m sustainml.cli status; }
submit() {  # $1 tasks at once; prints each task's final line ("task P.I: succeeded")
  local pids=()
  for i in $(seq 1 "$1"); do
    "$PY" -m sustainml.cli submit --description "detect defects in photos of welded seams, part $i" \
      --wait | grep "^task " &
    pids+=($!)
  done
  wait "${pids[@]}"
}

echo "== waiting for the 8 worker replicas (replica ids start with their host name)"
for _ in $(seq 1 120); do
  n=$(status 2>/dev/null | grep -cE "h[123]-[0-9]+-" || true)
  [ "$n" -ge 8 ] && break; sleep 1
done
status
echo "== 6 tasks with every host connected"; submit 6
echo "== cutting h3's link (ip link set sv${TAG}3r down)"
ip link set "sv${TAG}3r" down
echo "== 6 tasks while h3 is unreachable (its unacked deliveries return after ~2 x 2 s heartbeats)"
time submit 6
status
echo "== restoring h3's link"; ip link set "sv${TAG}3r" up
sleep 8; status
echo "== 6 tasks with h3 back"; submit 6
