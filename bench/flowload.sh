#!/usr/bin/env bash
# Rule loading: seconds from "load this file" to "the N rules are in force", this switch vs Open
# vSwitch with DPDK, the same ovs-ofctl-syntax file (bench/pipegen.py flowload: N distinct rules
# table=0,priority=100,ip,nw_dst=10.0.0.0+i,actions=output:2), interleaved (SWITCHES in order in
# odd runs, reversed in even runs; each run prints its order), each switch started fresh (empty
# table) for every measurement.
#
#   vswitchd  `vswitchctl add-flows FILE`, which returns when the new table version is active in
#             the datapath (--mode pipeline, no --flows: empty table).
#   OVS       `ovs-ofctl add-flows br0 FILE` (flow_mods, then a barrier: in the OpenFlow tables
#             that upcalls consult) followed by `ovs-ofctl dump-aggregate br0` polled until
#             flow_count == N; the time includes that confirmation. OVS_BUNDLE=1 uses
#             `ovs-ofctl --bundle add-flows` (one atomic transaction, like vswitchd's table swap).
# Ports in both: p0 = OpenFlow 1, p1 = OpenFlow 2, net_null with no-rx=1 (idle: no traffic during
# the load by default). TRAFFIC=1 makes port 1 a net_pcap infinite-rx replay of 1024 flows whose
# destinations are spread over the rule range, so the PMD forwards (and takes table misses, then
# hits) while the rules load. PMD on core 1, everything else on core 0, as bench/pipeline.sh.
#
# usage: bench/flowload.sh [RUNS=3]   env: SIZES ("10000 100000 200000"), TRAFFIC (0), OVS_BUNDLE (0),
#        SWITCHES ("vswitchd ovs"), VSWITCHD, VSWITCHCTL, KEEP=1
# Last line: RESULT flowload_200k_seconds=<vswitchd median s> flowload_vs_ovs=<OVS s / vswitchd s>
#            (at 200000 rules, or at the largest of SIZES)
set -euo pipefail
case ${1:-} in -h | --help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
RUNS=${1:-${RUNS:-3}}
SIZES=${SIZES:-"10000 100000 200000"}
TRAFFIC=${TRAFFIC:-0}
OVS_BUNDLE=${OVS_BUNDLE:-0}
SWITCHES=${SWITCHES:-"vswitchd ovs"}
VSWITCHD=${VSWITCHD:-$root/out/vswitchd/vswitchd}
VSWITCHCTL=${VSWITCHCTL:-$root/out/vswitchctl/vswitchctl}
LOAD_LIMIT=${LOAD_LIMIT:-600} # bound on one load (s)
work=$(mktemp -d /tmp/vsw-flowload.XXXXXX)
run=$work/run
mkdir -p "$run" "$work/gen"
. "$here/lib.sh"
ovs_env "$work/ovs" vswloadovs
# clients run on core 0 like every thread but the PMD
VSCTL="timeout 60 taskset -c 0 ovs-vsctl --timeout=20"
OFCTL="timeout $LOAD_LIMIT taskset -c 0 ovs-ofctl"
CTL="taskset -c 0 $VSWITCHCTL"
# start_* run in $(...) subshells: the PIDs of what they start go to a file the EXIT trap reads
track() { echo "$1" >> "$work/pids"; }
cleanup() {
  if [ -f "$work/pids" ]; then
    # only if still ours: a `timeout` we started (a PID reused since would be another process)
    while read -r p; do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = timeout ] && kill "$p" 2>/dev/null || true; done < "$work/pids"
  fi
  ovs_stop >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

"$here/setup-peers.sh"
"$root/hugepages/setup.sh" >/dev/null
if [[ " $SWITCHES " == *" vswitchd "* ]]; then
  [ -x "$VSWITCHD" ] && [ -x "$VSWITCHCTL" ] || { echo "flowload.sh: $VSWITCHD or $VSWITCHCTL missing; run scripts/setup first" >&2; exit 1; }
  "$VSWITCHCTL" --help 2>&1 | grep -q 'add-flows' || { echo "flowload.sh: $VSWITCHCTL has no add-flows; SWITCHES=ovs runs OVS alone" >&2; exit 1; }
fi

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b - a}'; }

rulefile() { # N -> path (generated once)
  local f=$work/gen/rules-$1.txt
  [ -f "$f" ] || python3 "$here/pipegen.py" flowload "$f" --rules "$1"
  echo "$f"
}
port0() { # N -> devargs of OpenFlow port 1
  if [ "$TRAFFIC" = 1 ]; then
    local f=$work/gen/traffic-$1.pcap
    [ -f "$f" ] || python3 "$here/pipegen.py" pcap "$f" --flows 1024 --base 10.0.0.0 --stride $(($1 / 1024 > 0 ? $1 / 1024 : 1)) >/dev/null
    echo "net_pcap0,rx_pcap=$f,infinite_rx=1"
  else
    echo "net_null0,no-rx=1"
  fi
}

# ---- vswitchd ----
load_vswitchd() { # N -> seconds
  local n=$1 rules t0 t1 rc=0
  rules=$(rulefile "$n")
  rm -f "$run/vsw.sock"
  timeout -s INT -k 5 $((LOAD_LIMIT + 60)) "$VSWITCHD" --pmd-cores 1 --stats-interval 0 --control "$run/vsw.sock" \
    --eal "--in-memory --file-prefix vswloadvsw" --mode pipeline \
    --port "p0=$(port0 "$n")" --port "p1=net_null1,no-rx=1" < <(sleep $((LOAD_LIMIT + 60))) > "$work/sw.log" 2>&1 &
  local sw=$!
  track "$sw"
  for _ in $(seq 1 150); do
    timeout 5 $CTL --socket "$run/vsw.sock" show >/dev/null 2>&1 && break
    kill -0 "$sw" 2>/dev/null || break
    sleep 0.2
  done
  t0=$EPOCHREALTIME
  timeout "$LOAD_LIMIT" $CTL --socket "$run/vsw.sock" add-flows "$rules" > "$work/ctl.log" 2>&1 || rc=$?
  t1=$EPOCHREALTIME
  # untimed check that the table holds the N rules (dump-flows: one "cookie=" line per rule)
  local have
  have=$(timeout 120 $CTL --socket "$run/vsw.sock" dump-flows 2>/dev/null | grep -c 'cookie=' || true)
  [ "$have" = "$n" ] || echo "vswitchd $n rules: dump-flows shows ${have:-?} rules after add-flows returned" >> "$work/errors.log"
  [ "$TRAFFIC" = 1 ] && echo "traffic check: vswitchd $n rules: $(timeout 5 $CTL --socket "$run/vsw.sock" --json dump-ports 2>&1 | head -c 400)" >> "$work/notes.log"
  kill -INT "$sw" 2>/dev/null || true
  wait "$sw" 2>/dev/null || true
  if [ "$rc" != 0 ]; then
    echo "vswitchd add-flows $n: exit $rc: $(head -c 300 "$work/ctl.log")" >> "$work/errors.log"
    grep 'vswitchd: error' "$work/sw.log" | head -3 >> "$work/errors.log" || true
    echo NA
    return
  fi
  elapsed "$t0" "$t1"
}

# ---- Open vSwitch ----

ovs_count() { $OFCTL dump-aggregate br0 2>/dev/null | sed -n 's/.*flow_count=\([0-9]*\).*/\1/p'; }

load_ovs() { # N -> seconds
  local n=$1 rules t0 t1 rc=0 c="" bundle=()
  rules=$(rulefile "$n")
  [ "$OVS_BUNDLE" = 1 ] && bundle=(--bundle)
  ovs_start
  $VSCTL add-port br0 p0 -- set Interface p0 type=dpdk options:dpdk-devargs="$(port0 "$n")" ofport_request=1
  $VSCTL add-port br0 p1 -- set Interface p1 type=dpdk options:dpdk-devargs="net_null1,no-rx=1" ofport_request=2
  [ "$(ovs_count)" = 0 ] || echo "ovs: table not empty before the load" >> "$work/errors.log"
  t0=$EPOCHREALTIME
  $OFCTL "${bundle[@]}" add-flows br0 "$rules" > "$work/ctl.log" 2>&1 || rc=$?
  local ta=$EPOCHREALTIME
  if [ "$rc" = 0 ]; then
    local deadline=$((${t0%.*} + LOAD_LIMIT))
    while :; do
      c=$(ovs_count)
      [ "$c" = "$n" ] && break
      [ "${EPOCHREALTIME%.*}" -lt "$deadline" ] || { rc=timeout; break; }
      sleep 0.05
    done
  fi
  t1=$EPOCHREALTIME
  echo "ovs $n rules: ovs-ofctl returned after $(elapsed "$t0" "$ta") s, flow_count confirmed after $(elapsed "$t0" "$t1") s" >> "$work/ovs-split.log"
  [ "$TRAFFIC" = 1 ] && echo "traffic check: ovs $n rules: port 2 $($OFCTL dump-ports br0 2 | grep -o 'tx pkts=[0-9]*')" >> "$work/notes.log"
  ovs_stop
  if [ "$rc" != 0 ]; then
    echo "ovs add-flows $n: $rc, flow_count=${c:-?}: $(head -c 300 "$work/ctl.log")" >> "$work/errors.log"
    echo NA
    return
  fi
  elapsed "$t0" "$t1"
}

echo "# flowload benchmark $(date -u +%FT%TZ) runs=$RUNS traffic=$TRAFFIC ovs_bundle=$OVS_BUNDLE; $(ovs-vswitchd --version | head -1); $(nproc) cpus"
declare -A res
for n in $SIZES; do
  for r in $(seq 1 "$RUNS"); do
    order=$(run_order $((r - 1)) $SWITCHES)
    echo "$n rules run $r order: $order"
    for sw in $order; do
      v=$("load_$sw" "$n" 2>>"$work/errors.log" | tail -1)
      res[$n.$sw]="${res[$n.$sw]:-} ${v:-NA}"
      printf '%7s rules run %d %-8s %8s s\n' "$n" "$r" "$sw" "${v:-NA}"
    done
  done
done

vals() { tr ' ' '\n' <<<"${res[$1]:-}" | grep -v '^$' | grep -v NA || true; }
echo
echo "| rules | vswitchd s (median / max) | OVS-DPDK s (median / max) | OVS/vswitchd | vswitchd rules/s | OVS rules/s |"
echo "|---|---|---|---|---|---|"
declare -A med
for n in $SIZES; do
  row="| $n "
  for sw in vswitchd ovs; do
    m=$(vals "$n.$sw" | median); x=$(vals "$n.$sw" | sort -g | tail -1)
    med[$n.$sw]=$m
    row+="| $m / ${x:-NA} "
  done
  ratio=$(awk -v a="${med[$n.ovs]}" -v b="${med[$n.vswitchd]}" 'BEGIN{if (a == "NA" || b == "NA" || b <= 0) print "NA"; else printf "%.2f", a/b}')
  rate() { awk -v n="$n" -v s="$1" 'BEGIN{if (s == "NA" || s <= 0) print "NA"; else printf "%.0f", n/s}'; }
  med[$n.ratio]=$ratio
  echo "$row| $ratio | $(rate "${med[$n.vswitchd]}") | $(rate "${med[$n.ovs]}") |"
done
if [ -s "$work/ovs-split.log" ]; then sed 's/^/# /' "$work/ovs-split.log"; fi
if [ -s "$work/notes.log" ]; then head -4 "$work/notes.log" | sed 's/^/# /'; fi
if [ -s "$work/errors.log" ]; then echo "# notes/errors (first lines):"; head -5 "$work/errors.log" | sed 's/^/#   /'; fi
big=200000
[[ " $SIZES " == *" 200000 "* ]] || big=$(tr ' ' '\n' <<<"$SIZES" | grep . | sort -g | tail -1)
echo "RESULT flowload_200k_seconds=${med[$big.vswitchd]} flowload_vs_ovs=${med[$big.ratio]}"
