#!/usr/bin/env bash
# VM-to-VM over vhost-user: this switch vs Open vSwitch with DPDK vs dpdk-testpmd (io-forward, the
# no-lookup upper bound), same topology and cores, interleaved: vswitchd, OVS, testpmd in odd runs,
# reversed in even runs (each run prints its order).
#
# Topology: one "VM" = one dpdk-testpmd with two virtio-user ports in flowgen mode on core 0;
# packets it sends on port 0 go through the switch to port 1 and back. The switch's forwarding
# thread runs alone on core 1 (OVS: pmd-cpu-mask=0x2, its other threads on core 0). Each switch
# forwards port 1 <-> port 2 with no lookup beyond the input port (vswitchd l2fwd without MAC
# rewrite; OVS in_port rules; testpmd io). Metric: packets the VM receives per second, summed over
# its two ports (median of 1-s samples); per switch the median and max over runs.
# (Two separate VM processes plus the switch would be three busy pollers on two cores.)
#
# usage: bench/vhost.sh [RUNS=3]   env: SIZES ("64 512 1518"), MEAS (s, 12), FLOWS (1)
# Last line: RESULT vhost_vs_ovs=<ratio> vhost_vs_testpmd=<ratio>   (64 B)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
RUNS=${1:-${RUNS:-3}}
SIZES=${SIZES:-"64 512 1518"}
MEAS=${MEAS:-12}
FLOWS=${FLOWS:-1}
SKIP=3
VSWITCHD=${VSWITCHD:-$root/out/vswitchd/vswitchd}
work=$(mktemp -d /tmp/vsw-vhost.XXXXXX)
run=$work/run
mkdir -p "$run"
. "$here/lib.sh"
ovs_env "$work/ovs" vswbenchovs
VSCTL="ovs-vsctl --timeout=20"
OFCTL="ovs-ofctl"
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  ovs_stop >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

"$here/setup-peers.sh"
"$root/hugepages/setup.sh" >/dev/null
[ -x "$VSWITCHD" ] || { echo "vhost.sh: $VSWITCHD missing; run scripts/setup first" >&2; exit 1; }


# vm SIZE SERVER(0|1) LOG -> starts the VM testpmd in the background, pid in $vm_pid
vm_start() {
  local srv=""
  [ "$2" = 1 ] && srv=",server=1"
  timeout -s INT -k 5 $((MEAS + 60)) dpdk-testpmd --lcores 0@0,1@0 --no-pci --in-memory --single-file-segments \
    -m 160 --log-level=error --vdev "net_virtio_user0,path=$run/p0.sock$srv" \
    --vdev "net_virtio_user1,path=$run/p1.sock$srv" -- --forward-mode=flowgen --flowgen-flows="$FLOWS" \
    --txpkts="$1" --total-num-mbufs=16384 --auto-start --stats-period 1 < <(sleep $((MEAS + 60))) > "$3" 2>&1 &
  vm_pid=$!
  pids+=("$vm_pid")
}

# VM rx Mpps from its log: per-sample sum of Rx-pps over both ports, warm-up samples dropped
vm_mpps() {
  awk '/Rx-pps:/ {s += $2; if (++k % 2 == 0) {print s / 1e6; s = 0}}' "$1" | tail -n +$((SKIP + 1)) | head -n -1 | median
}

measure() { # LOG: wait until forwarding, measure, stop the VM
  for _ in $(seq 1 120); do grep -q 'Port statistics' "$1" 2>/dev/null && break; sleep 0.5; done
  sleep "$MEAS"
  kill -INT "$vm_pid" 2>/dev/null || true
  wait "$vm_pid" 2>/dev/null || true
  vm_mpps "$1"
}

# serve_and_measure SIZE CMD...: start a switch that serves the vhost-user sockets, attach the VM
# (virtio-user as client), measure, stop both -> Mpps
serve_and_measure() {
  local size=$1
  shift
  rm -f "$run"/*.sock
  timeout -s INT -k 5 $((MEAS + 60)) "$@" < <(sleep $((MEAS + 60))) > "$work/sw.log" 2>&1 &
  local sw=$!
  pids+=("$sw")
  for _ in $(seq 1 100); do [ -S "$run/p0.sock" ] && [ -S "$run/p1.sock" ] && break; sleep 0.2; done
  vm_start "$size" 0 "$work/vm.log"
  measure "$work/vm.log"
  kill -INT "$sw" 2>/dev/null || true
  wait "$sw" 2>/dev/null || true
}

run_vswitchd() { # SIZE -> Mpps
  serve_and_measure "$1" "$VSWITCHD" --pmd-cores 1 --no-mac-rewrite --stats-interval 0 --control none \
    --port "p0=net_vhost0,iface=$run/p0.sock" --port "p1=net_vhost1,iface=$run/p1.sock"
}

run_testpmd() { # SIZE -> Mpps
  serve_and_measure "$1" dpdk-testpmd --lcores 0@0,1@1 --no-pci --in-memory -m 256 --log-level=error \
    --vdev "net_vhost0,iface=$run/p0.sock,queues=1" --vdev "net_vhost1,iface=$run/p1.sock,queues=1" -- \
    --forward-mode=io --total-num-mbufs=16384 --auto-start --stats-period 1
}

run_ovs() { # SIZE -> Mpps. OVS is the vhost-user client (dpdkvhostuserclient); the VM owns the sockets.
  rm -f "$run"/*.sock
  ovs_start
  vm_start "$1" 1 "$work/vm.log" # waits in accept() for OVS to connect
  for i in 0 1; do
    $VSCTL add-port br0 "vhu$i" -- set Interface "vhu$i" type=dpdkvhostuserclient \
      options:vhost-server-path="$run/p$i.sock" ofport_request=$((i + 1))
  done
  $OFCTL add-flow br0 in_port=1,actions=output:2
  $OFCTL add-flow br0 in_port=2,actions=output:1
  measure "$work/vm.log"
  ovs_stop
}

echo "# vhost benchmark $(date -u +%FT%TZ) runs=$RUNS meas=${MEAS}s flows=$FLOWS; $(ovs-vswitchd --version | head -1); $(nproc) cpus"
declare -A res
for size in $SIZES; do
  for r in $(seq 1 "$RUNS"); do
    order=$(run_order $((r - 1)) vswitchd ovs testpmd)
    echo "$size B run $r order: $order"
    for sw in $order; do
      v=$("run_$sw" "$size" 2>>"$work/errors.log" | tail -1)
      res[$size.$sw]="${res[$size.$sw]:-} $v"
      printf '%5s B run %d %-9s %8s Mpps\n' "$size" "$r" "$sw" "$v"
    done
  done
done

echo
echo "| size | vswitchd Mpps (median / max) | OVS-DPDK Mpps (median / max) | testpmd io Mpps (median / max) | vswitchd/OVS | vswitchd/testpmd |"
echo "|---|---|---|---|---|---|"
declare -A med
for size in $SIZES; do
  row="| $size B "
  for sw in vswitchd ovs testpmd; do
    vals=$(tr ' ' '\n' <<<"${res[$size.$sw]}" | grep -v '^$' | grep -v NA || true)
    m=$(median <<<"$vals"); x=$(sort -g <<<"$vals" | tail -1)
    med[$size.$sw]=$m
    row+="| $m / ${x:-NA} "
  done
  ro=$(awk -v a="${med[$size.vswitchd]}" -v b="${med[$size.ovs]}" 'BEGIN{printf "%.3f", (b>0)?a/b:0}')
  rt=$(awk -v a="${med[$size.vswitchd]}" -v b="${med[$size.testpmd]}" 'BEGIN{printf "%.3f", (b>0)?a/b:0}')
  med[$size.ro]=$ro; med[$size.rt]=$rt
  echo "$row| $ro | $rt |"
done
first=${SIZES%% *}
echo "RESULT vhost_vs_ovs=${med[$first.ro]} vhost_vs_testpmd=${med[$first.rt]}"
