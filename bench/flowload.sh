#!/usr/bin/env bash
# Rule loading: seconds from "load this file" to "the N rules are in force", this switch vs Open
# vSwitch with DPDK, the same ovs-ofctl-syntax file (bench/pipegen.py flowload: N distinct rules
# table=0,priority=100,ip,nw_dst=10.0.0.0+i,actions=output:2, except the LAST rule, which outputs
# to port 3), interleaved (SWITCHES in order in odd runs, reversed in even runs; each run prints its
# order), each switch started fresh (empty table) for every measurement.
#
# Both switches are timed the same way, from the start of the client command:
#   in use    until the first packet of a probe flow that only the last rule matches leaves port 3
#             (the headline figure). A sender on core 0 injects one probe packet (to 10.0.0.0+N-1)
#             every PROBE_US microseconds into a veth pair whose other end is port 4 (net_af_packet);
#             port 3 is a net_pcap whose tx_pcap is a FIFO read by a reader on core 0 that notes the
#             wall-clock time of the first packet record. The same detector for both switches, and
#             no polling of either (until then the probes miss the table and are dropped).
#   command   until the client command returns (OVS: then `ovs-ofctl dump-aggregate br0` polled
#             every 50 ms until flow_count == N, included): the earlier method, kept for comparison.
# The commands:
#   vswitchd  `vswitchctl add-flows FILE`, which returns when the new table version is active in
#             the datapath (--mode pipeline, no --flows: empty table).
#   OVS       `ovs-ofctl --bundle add-flows br0 FILE` (one atomic transaction, like vswitchd's
#             table swap); OVS_BUNDLE=0 uses plain `ovs-ofctl add-flows` (flow_mods, then a barrier,
#             each flow_mod making OVS revalidate its datapath flows, slow while packets arrive).
# Ports in both: p0 = OpenFlow 1, p1 = OpenFlow 2, net_null with no-rx=1 (idle: no traffic during
# the load but the probe, by default); p2 = OpenFlow 3 (probe out), p3 = OpenFlow 4 (probe in).
# TRAFFIC=1 makes port 1 a net_pcap infinite-rx replay of 1024 flows whose destinations are spread
# over the rule range below the last rule, so the PMD forwards (and takes table misses, then hits)
# while the rules load. PMD on core 1, everything else on core 0, as bench/pipeline.sh.
#
# usage: bench/flowload.sh [RUNS=3]   env: SIZES ("10000 100000 200000"), TRAFFIC (0), OVS_BUNDLE (1),
#        PROBE_US (1000), SWITCHES ("vswitchd ovs"), VSWITCHD, VSWITCHCTL, LOAD_LIMIT (s, 600), KEEP=1
# Last line: RESULT flowload_200k_seconds=<vswitchd median s, in use> flowload_vs_ovs=<OVS s /
#            vswitchd s, in use> flowload_cmd_200k_seconds=<vswitchd median s, command>
#            flowload_cmd_vs_ovs=<OVS / vswitchd, command>   (at 200000 rules, or the largest of SIZES)
set -euo pipefail
case ${1:-} in -h | --help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
RUNS=${1:-${RUNS:-3}}
SIZES=${SIZES:-"10000 100000 200000"}
TRAFFIC=${TRAFFIC:-0}
OVS_BUNDLE=${OVS_BUNDLE:-1}
PROBE_US=${PROBE_US:-1000}
SWITCHES=${SWITCHES:-"vswitchd ovs"}
VSWITCHD=${VSWITCHD:-$root/out/vswitchd/vswitchd}
VSWITCHCTL=${VSWITCHCTL:-$root/out/vswitchctl/vswitchctl}
LOAD_LIMIT=${LOAD_LIMIT:-600} # bound on one load (s)
work=$(mktemp -d /tmp/vsw-flowload.XXXXXX)
veth=vswfl$$ # the probe's veth pair: ${veth}a = port 4 (DPDK), ${veth}b = the sender's side
run=$work/run
mkdir -p "$run" "$work/gen"
. "$here/lib.sh"
ovs_env "$work/ovs" vswloadovs
# clients run on core 0 like every thread but the PMD
VSCTL="timeout 60 taskset -c 0 ovs-vsctl --timeout=20"
OFCTL="timeout $LOAD_LIMIT taskset -c 0 ovs-ofctl"
CTL="taskset -c 0 $VSWITCHCTL"
cleanup() {
  stop_tracked
  ovs_stop >/dev/null 2>&1 || true
  ip link del "${veth}a" 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

"$here/setup-peers.sh"
"$root/hugepages/setup.sh" >/dev/null
if [[ " $SWITCHES " == *" vswitchd "* ]]; then
  [ -x "$VSWITCHD" ] && [ -x "$VSWITCHCTL" ] || { echo "flowload.sh: $VSWITCHD or $VSWITCHCTL missing; run scripts/setup first" >&2; exit 1; }
  "$VSWITCHCTL" --help 2>&1 | grep -q 'add-flows' || { echo "flowload.sh: $VSWITCHCTL has no add-flows; SWITCHES=ovs runs OVS alone" >&2; exit 1; }
fi
ip link add "${veth}a" type veth peer name "${veth}b"
for e in a b; do
  sysctl -qw "net.ipv6.conf.${veth}$e.disable_ipv6=1" 2>/dev/null || true # no router solicitations
  ip link set "${veth}$e" up
done

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b - a}'; }

rulefile() { # N -> path (generated once): the last rule outputs to port 3
  local f=$work/gen/rules-$1.txt
  [ -f "$f" ] || python3 "$here/pipegen.py" flowload "$f" --rules "$1" --probe-port 3
  echo "$f"
}
port0() { # N -> devargs of OpenFlow port 1
  if [ "$TRAFFIC" = 1 ]; then
    # 1024 flows spread over the rules, none to the last rule (N-1) when N > 1024
    local f=$work/gen/traffic-$1.pcap flows=1024
    [ "$1" -gt 1024 ] || flows=$(($1 > 1 ? $1 - 1 : 1))
    [ -f "$f" ] || python3 "$here/pipegen.py" pcap "$f" --flows "$flows" --base 10.0.0.0 --stride $(($1 / 1024 > 0 ? $1 / 1024 : 1)) >/dev/null
    echo "net_pcap0,rx_pcap=$f,infinite_rx=1"
  else
    echo "net_null0,no-rx=1"
  fi
}
port2() { echo "net_pcap2,tx_pcap=$run/probe.fifo"; }        # OpenFlow 3: the probe's way out
port3() { echo "net_af_packet3,iface=${veth}a,qdisc_bypass=1"; } # OpenFlow 4: the probe's way in

# probe_start N: a FIFO for port 3's tx_pcap and its reader, which writes the wall-clock time of the
# first packet record to $run/probe.t (it opens the FIFO read-write, so the switch's open never
# blocks and a close/reopen of the device, with a new pcap header, does not end it; it parses the
# stream and drains it until stopped); and the sender of the probe packets (to 10.0.0.0+N-1, every
# PROBE_US us) into ${veth}b. Both on core 0.
probe_start() {
  rm -f "$run/probe.fifo" "$run/probe.t" "$run/probe.ready"
  mkfifo "$run/probe.fifo"
  timeout -s TERM $((LOAD_LIMIT + 300)) taskset -c 0 python3 -c '
import os, sys, time
fifo, out, ready = sys.argv[1:4]
fd = os.open(fifo, os.O_RDWR)
open(ready, "w").close()
buf, seen = b"", False
MAGIC = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
while True:
    b = os.read(fd, 1 << 16)
    if seen:
        continue
    buf += b
    while len(buf) >= 4:
        if buf[:4] in MAGIC:  # a pcap file header (the device was (re)opened)
            if len(buf) < 24:
                break
            buf = buf[24:]
        elif len(buf) >= 16:  # a record header: the first packet
            t = time.time()
            with open(out + ".tmp", "w") as f:
                f.write("%.6f\n" % t)
            os.rename(out + ".tmp", out)
            seen, buf = True, b""
        else:
            break
' "$run/probe.fifo" "$run/probe.t" "$run/probe.ready" > /dev/null 2>>"$work/errors.log" &
  probe_pid=$!
  track "$probe_pid"
  timeout -s TERM $((LOAD_LIMIT + 300)) taskset -c 0 python3 -c '
import socket, sys, time
sys.path.insert(0, sys.argv[1])
from pipegen import packet, parse_ip
frame = packet(0, 64, parse_ip("10.0.0.0") + int(sys.argv[3]) - 1, 1)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[2], 0))
gap = int(sys.argv[4]) / 1e6
nxt = time.monotonic()
while True:
    try:
        s.send(frame)
    except OSError:
        pass
    nxt += gap
    d = nxt - time.monotonic()
    if d > 0:
        time.sleep(d)
    else:
        nxt = time.monotonic()
' "$here" "${veth}b" "$1" "$PROBE_US" > /dev/null 2>>"$work/errors.log" &
  sender_pid=$!
  track "$sender_pid"
  for _ in $(seq 1 100); do [ -f "$run/probe.ready" ] && return 0; sleep 0.05; done
  echo "probe reader did not start" >> "$work/errors.log"
}
probe_stop() {
  kill "$sender_pid" "$probe_pid" 2>/dev/null || true
  wait "$sender_pid" "$probe_pid" 2>/dev/null || true
}
# probe_wait T0: wait (to T0 + LOAD_LIMIT) for the probe's first packet -> seconds since T0, or NA
probe_wait() {
  local deadline=$((${1%.*} + LOAD_LIMIT))
  while [ ! -s "$run/probe.t" ]; do
    [ "${EPOCHREALTIME%.*}" -lt "$deadline" ] || { echo NA; return; }
    sleep 0.01
  done
  elapsed "$1" "$(cat "$run/probe.t")"
}

# ---- vswitchd ----
load_vswitchd() { # N -> "in-use-seconds command-seconds"
  local n=$1 rules t0 t1 rc=0 inuse
  rules=$(rulefile "$n")
  rm -f "$run/vsw.sock"
  probe_start "$n"
  timeout -s INT -k 5 $((LOAD_LIMIT + 60)) "$VSWITCHD" --pmd-cores 1 --stats-interval 0 --control "$run/vsw.sock" \
    --eal "--in-memory --file-prefix vswloadvsw" --mode pipeline \
    --port "p0=$(port0 "$n")" --port "p1=net_null1,no-rx=1" --port "p2=$(port2)" --port "p3=$(port3)" \
    < <(sleep $((LOAD_LIMIT + 60))) > "$work/sw.log" 2>&1 &
  local sw=$!
  track "$sw"
  for _ in $(seq 1 150); do
    timeout 5 $CTL --socket "$run/vsw.sock" show >/dev/null 2>&1 && break
    kill -0 "$sw" 2>/dev/null || break
    sleep 0.2
  done
  [ -s "$run/probe.t" ] && echo "vswitchd $n rules: a probe packet left port 3 before the load" >> "$work/errors.log"
  t0=$EPOCHREALTIME
  timeout "$LOAD_LIMIT" $CTL --socket "$run/vsw.sock" add-flows "$rules" > "$work/ctl.log" 2>&1 || rc=$?
  t1=$EPOCHREALTIME
  inuse=NA
  [ "$rc" = 0 ] && inuse=$(probe_wait "$t0")
  # untimed check that the table holds the N rules (dump-flows: one "cookie=" line per rule)
  local have
  have=$(timeout 120 $CTL --socket "$run/vsw.sock" dump-flows 2>/dev/null | grep -c 'cookie=' || true)
  [ "$have" = "$n" ] || echo "vswitchd $n rules: dump-flows shows ${have:-?} rules after add-flows returned" >> "$work/errors.log"
  [ "$TRAFFIC" = 1 ] && echo "traffic check: vswitchd $n rules: $(timeout 5 $CTL --socket "$run/vsw.sock" --json dump-ports 2>&1 | tr -d ' \n' | head -c 400)" >> "$work/notes.log"
  kill -INT "$sw" 2>/dev/null || true
  wait "$sw" 2>/dev/null || true
  probe_stop
  if [ "$rc" != 0 ]; then
    echo "vswitchd add-flows $n: exit $rc: $(head -c 300 "$work/ctl.log")" >> "$work/errors.log"
    grep 'vswitchd: error' "$work/sw.log" | head -3 >> "$work/errors.log" || true
    echo NA NA
    return
  fi
  [ "$inuse" = NA ] && echo "vswitchd $n rules: no probe packet on port 3 within ${LOAD_LIMIT}s" >> "$work/errors.log"
  echo "$inuse $(elapsed "$t0" "$t1")"
}

# ---- Open vSwitch ----

ovs_count() { $OFCTL dump-aggregate br0 2>/dev/null | sed -n 's/.*flow_count=\([0-9]*\).*/\1/p'; }

load_ovs() { # N -> "in-use-seconds command-seconds"
  local n=$1 rules t0 t1 rc=0 c="" bundle=() inuse
  rules=$(rulefile "$n")
  [ "$OVS_BUNDLE" = 1 ] && bundle=(--bundle)
  probe_start "$n"
  ovs_start
  $VSCTL add-port br0 p0 -- set Interface p0 type=dpdk options:dpdk-devargs="$(port0 "$n")" ofport_request=1
  $VSCTL add-port br0 p1 -- set Interface p1 type=dpdk options:dpdk-devargs="net_null1,no-rx=1" ofport_request=2
  $VSCTL add-port br0 p2 -- set Interface p2 type=dpdk options:dpdk-devargs="$(port2)" ofport_request=3
  $VSCTL add-port br0 p3 -- set Interface p3 type=dpdk options:dpdk-devargs="$(port3)" ofport_request=4
  [ "$(ovs_count)" = 0 ] || echo "ovs: table not empty before the load" >> "$work/errors.log"
  [ -s "$run/probe.t" ] && echo "ovs $n rules: a probe packet left port 3 before the load" >> "$work/errors.log"
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
  inuse=NA
  [ "$rc" = 0 ] && inuse=$(probe_wait "$t0")
  echo "ovs $n rules: ovs-ofctl returned after $(elapsed "$t0" "$ta") s, flow_count confirmed after $(elapsed "$t0" "$t1") s, last rule in use after $inuse s" >> "$work/ovs-split.log"
  [ "$TRAFFIC" = 1 ] && echo "traffic check: ovs $n rules: port 2 $($OFCTL dump-ports br0 2 | grep -o 'tx pkts=[0-9]*')" >> "$work/notes.log"
  ovs_stop
  probe_stop
  if [ "$rc" != 0 ]; then
    echo "ovs add-flows $n: $rc, flow_count=${c:-?}: $(head -c 300 "$work/ctl.log")" >> "$work/errors.log"
    echo NA NA
    return
  fi
  [ "$inuse" = NA ] && echo "ovs $n rules: no probe packet on port 3 within ${LOAD_LIMIT}s" >> "$work/errors.log"
  echo "$inuse $(elapsed "$t0" "$t1")"
}

echo "# flowload benchmark $(date -u +%FT%TZ) runs=$RUNS traffic=$TRAFFIC ovs_bundle=$OVS_BUNDLE; $(ovs-vswitchd --version | head -1); $(nproc) cpus"
echo "# per run: seconds until the last rule is in use (probe on port 3), and until the command returned (OVS: + flow_count)"
declare -A res
for n in $SIZES; do
  for r in $(seq 1 "$RUNS"); do
    order=$(run_order $((r - 1)) $SWITCHES)
    echo "$n rules run $r order: $order"
    for sw in $order; do
      line=$("load_$sw" "$n" 2>>"$work/errors.log" | tail -1)
      read -r v vc <<<"$line"
      res[$n.$sw]="${res[$n.$sw]:-} ${v:-NA}"
      res[$n.$sw.cmd]="${res[$n.$sw.cmd]:-} ${vc:-NA}"
      printf '%7s rules run %d %-8s in use %8s s   command %8s s\n' "$n" "$r" "$sw" "${v:-NA}" "${vc:-NA}"
    done
  done
done

vals() { tr ' ' '\n' <<<"${res[$1]:-}" | grep -v '^$' | grep -v NA || true; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if (a == "NA" || b == "NA" || b <= 0) print "NA"; else printf "%.2f", a/b}'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN{if (s == "NA" || s <= 0) print "NA"; else printf "%.0f", n/s}'; }
echo
echo "| rules | vswitchd in use s (median / max) | OVS-DPDK in use s (median / max) | OVS/vswitchd | vswitchd rules/s | OVS rules/s | vswitchd command s | OVS command s | OVS/vswitchd (command) |"
echo "|---|---|---|---|---|---|---|---|---|"
declare -A med
for n in $SIZES; do
  row="| $n "
  for sw in vswitchd ovs; do
    m=$(vals "$n.$sw" | median); x=$(vals "$n.$sw" | sort -g | tail -1)
    med[$n.$sw]=$m
    med[$n.$sw.cmd]=$(vals "$n.$sw.cmd" | median)
    row+="| $m / ${x:-NA} "
  done
  med[$n.ratio]=$(ratio "${med[$n.ovs]}" "${med[$n.vswitchd]}")
  med[$n.cratio]=$(ratio "${med[$n.ovs.cmd]}" "${med[$n.vswitchd.cmd]}")
  echo "$row| ${med[$n.ratio]} | $(rate "$n" "${med[$n.vswitchd]}") | $(rate "$n" "${med[$n.ovs]}") | ${med[$n.vswitchd.cmd]} | ${med[$n.ovs.cmd]} | ${med[$n.cratio]} |"
done
if [ -s "$work/ovs-split.log" ]; then sed 's/^/# /' "$work/ovs-split.log"; fi
if [ -s "$work/notes.log" ]; then head -4 "$work/notes.log" | sed 's/^/# /'; fi
if [ -s "$work/errors.log" ]; then echo "# notes/errors (first lines):"; head -5 "$work/errors.log" | sed 's/^/#   /'; fi
big=200000
[[ " $SIZES " == *" 200000 "* ]] || big=$(tr ' ' '\n' <<<"$SIZES" | grep . | sort -g | tail -1)
echo "RESULT flowload_200k_seconds=${med[$big.vswitchd]} flowload_vs_ovs=${med[$big.ratio]} flowload_cmd_200k_seconds=${med[$big.vswitchd.cmd]} flowload_cmd_vs_ovs=${med[$big.cratio]}"
