#!/usr/bin/env bash
# Connection tracking: this switch vs Open vSwitch with DPDK (its userspace conntrack), the same
# OpenFlow rule files loaded unchanged by both (bench/ct/*.flows), the same traffic and cores,
# interleaved (PEERS in order in odd runs, reversed in even runs; each run prints its order). 64 B.
#
# Rules (port 1 = inside, port 2 = outside; ARP passes, anything else untracked is dropped):
#   firewall  table 0: ip,ct_state=-trk -> ct(table=1,zone=1); table 1: in_port=1 +trk+new ->
#             ct(commit,zone=1),output:2; in_port=1 +trk+est -> output:2; in_port=2 +trk+est ->
#             output:1; the rest (new from outside) dropped
#   snat      the same with ct(table=1,zone=1,nat) in table 0 and, on new from the inside,
#             ct(commit,zone=1,nat(src=203.0.113.254:1024-65535))
# Rows:
#   fw N, snat N (N in CONNS): N established UDP connections, both directions. Port 1 is a net_pcap
#     infinite replay of N flows (bench/pcapgen.py: 198.51.100.x:sport -> 203.0.113.y:dport, one
#     packet per flow); port 2 is a vhost-user port whose "VM" (dpdk-testpmd, one virtio-user port,
#     --forward-mode=5tswap --port-topology=loop, core 0) sends every packet back with addresses
#     and ports swapped: the reply that makes the connection established (and, with SNAT, the
#     reply to whatever address and port the switch chose). Metric: packets the switch forwards
#     per second, both directions summed (tx of ports 1 and 2; 1-s samples, median), after WARM s.
#     The replay never runs dry, so the switch's PMD is saturated (what the VM cannot take is
#     dropped at the vhost-user port and not counted).
#   setup: every packet a new connection, committed: one pass of a net_pcap file of SETUP_CONNS
#     flows (distinct source address/port, one packet each) into port 1, port 2 a net_null sink,
#     firewall rules. Metric: connections per second of PMD time = the connections the switch
#     tracks afterwards (should be SETUP_CONNS) / the PMD's busy cycles over the pass * TSC_MHZ (the
#     pass keeps the PMD busy from its first packet to its last; the ratio of two switches does not
#     depend on TSC_MHZ). The rate port 1's rx counter showed in 0.1-s samples is printed among the
#     notes as a wall-clock cross-check. Memory per tracked connection: vswitchd's
#     `vswitchctl --json ct-stats-show` fields connections / bytes_per_connection if it has them,
#     else (and for OVS) the switch process's RSS growth over the pass / connections (OVS counts
#     them with `ovs-appctl dpctl/ct-stats-show`; vswitchd without ct-stats-show: +new rule hits).
# Cycles per packet: the PMD's busy cycles per received packet over the window (recirculation
# included): OVS pmd-stats-show processing cycles / packets received of the PMD on the last core,
# vswitchd `--json pmd-stats-show` busy_cycles / rx_packets.
# Established, checked on every run: the switch's tracked connections (OVS ct-stats-show) and its
# rule counters (dump-flows: packets that hit +new, +est from the inside, +est from the outside) are
# printed; a row whose +est-from-outside count is 0 is not established (marked "NOT ESTABLISHED").
# The switch's PMD runs alone on the last core (OVS pmd-cpu-mask, vswitchd --pmd-cores), everything
# else on core 0 (the script re-runs itself there: pin_to_core0 in lib.sh). A switch that refuses
# the rules (vswitchd before ct() exists) gets "n/a (its reason)" for the row, and the ratios NA.
#
# usage: bench/conntrack.sh [RUNS=3]
# env: MEAS (s, 8), WARM (s, 4), CONNS ("1000 100000"), ROWS ("fw snat setup"),
#      SETUP_CONNS (1000000), PEERS ("vswitchd ovs"; PEERS=ovs runs Open vSwitch alone),
#      RULES_DIR (bench/ct: its firewall.flows and snat.flows), TSC_MHZ (/proc/cpuinfo's cpu MHz:
#      the TSC rate on a KVM guest; set it where the CPU frequency scales), VSWITCHD, VSWITCHCTL,
#      KEEP=1 keeps the work directory (logs, rule counters per run)
# Last line: RESULT ct_min_vs_ovs=<lowest vswitchd/OVS Mpps ratio over the fw and snat rows>
#            ct_setup_vs_ovs=<vswitchd/OVS connections per second>   (medians over runs; NA if not run)
set -euo pipefail
case ${1:-} in -h | --help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$here/lib.sh"
pin_to_core0 "$0" "$@"
RUNS=${1:-${RUNS:-3}}
MEAS=${MEAS:-8}
WARM=${WARM:-4}
CONNS=${CONNS:-"1000 100000"}
ROWS=${ROWS:-"fw snat setup"}
SETUP_CONNS=${SETUP_CONNS:-1000000}
PEERS=${PEERS:-"vswitchd ovs"}
RULES_DIR=${RULES_DIR:-$here/ct}
TSC_MHZ=${TSC_MHZ:-$(awk '/^cpu MHz/ {print $4; exit}' /proc/cpuinfo)}
VSWITCHD=${VSWITCHD:-$root/out/vswitchd/vswitchd}
VSWITCHCTL=${VSWITCHCTL:-$root/out/vswitchctl/vswitchctl}
LIMIT=$((WARM + MEAS + 120)) # hard bound on every process of one run
PMD_CORE=$((ALL_CPUS - 1))
work=$(mktemp -d /tmp/vsw-conntrack.XXXXXX)
run=$work/run
mkdir -p "$run" "$work/gen"
ovs_env "$work/ovs" vswctovs
VSCTL="timeout 60 ovs-vsctl --timeout=20"
OFCTL="timeout 60 ovs-ofctl -O OpenFlow13"
APPCTL="timeout 20 ovs-appctl"
CTL="timeout 20 $VSWITCHCTL --socket $run/vsw.sock"
# run_* execute in $(...) subshells: the PIDs of what they start go to a file the EXIT trap reads
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
if [[ " $PEERS " == *" vswitchd "* ]]; then
  [ -x "$VSWITCHD" ] && [ -x "$VSWITCHCTL" ] || { echo "conntrack.sh: $VSWITCHD or $VSWITCHCTL missing; run scripts/setup first (PEERS=ovs runs OVS alone)" >&2; exit 1; }
fi

now() { echo "$EPOCHREALTIME"; }
fmt3() { awk '{ if ($1 + 0 == $1) printf "%.3f\n", $1; else print $1 }'; }
fmt0() { awk '{ if ($1 + 0 == $1) printf "%.0f\n", $1; else print $1 }'; }
rules_of() { case $1 in snat) echo "$RULES_DIR/snat.flows" ;; *) echo "$RULES_DIR/firewall.flows" ;; esac; } # ROW -> rule file
pcap_of() { # N -> a pcap of N flows, one packet each (generated once)
  local f=$work/gen/flows-$1.pcap
  [ -f "$f" ] || timeout 300 python3 "$here/pcapgen.py" "$f" --count "$1" --flows "$1"
  echo "$f"
}

# ---- port counters: "ofport rx_packets tx_packets" lines ----
ovs_ports() {
  $OFCTL dump-ports br0 2>/dev/null | awk '
    /port +[0-9]+:/ {p = $2; sub(":", "", p); sub(/.*rx pkts=/, ""); sub(",.*", ""); rx = $0; next}
    p != "" && /tx pkts=/ {sub(/.*tx pkts=/, ""); sub(",.*", ""); print p, rx, $0; p = ""}'
}
vsw_ports() {
  $CTL --json dump-ports 2>/dev/null | python3 -c '
import json, sys
try:
    for p in json.load(sys.stdin)["ports"]:
        print(p["ofport"], p["rx_packets"], p["tx_packets"])
except Exception:
    pass
'
}
# tx_sum PORTS-FN: packets sent on ports 1 and 2
tx_sum() { "$1" | awk '$1 == 1 || $1 == 2 {s += $3; n++} END {if (n) print s}'; }
rx1() { "$1" | awk '$1 == 1 {print $2}'; }

# fwd_mpps PORTS-FN: MEAS 1-s samples of the packets forwarded on ports 1 and 2 -> median Mpps
fwd_mpps() {
  local t0 c0 t1 c1 rates=()
  t0=$(now); c0=$(tx_sum "$1")
  for _ in $(seq 1 "$MEAS"); do
    sleep 1
    t1=$(now); c1=$(tx_sum "$1")
    [ -n "$c0" ] && [ -n "$c1" ] && rates+=("$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" 'BEGIN{printf "%.4f", (b-a)/(e-s)/1e6}')")
    t0=$t1; c0=$c1
  done
  printf '%s\n' "${rates[@]:-}" | grep . | median | fmt3
}

# pass_wait PORTS-FN K: until port 1 has received K packets (or its count stalls 3 s); the rate
# its counter showed between the first and last 0.1-s samples strictly inside (0, K) goes to stderr,
# a wall-clock cross-check of the PMD-time rate (too few samples when the pass is short)
pass_wait() {
  local k=$2 c=0 t last=-1 still=0 lo_t="" lo_c="" hi_t="" hi_c=""
  for _ in $(seq 1 $((LIMIT * 10))); do
    t=$(now); c=$(rx1 "$1"); c=${c:-0}
    if [ "$c" -gt 0 ] && [ "$c" -lt "$k" ]; then
      [ -z "$lo_t" ] && { lo_t=$t; lo_c=$c; }
      hi_t=$t; hi_c=$c
    fi
    [ "$c" -ge "$k" ] && break
    if [ "$c" = "$last" ] && [ "$c" -gt 0 ]; then still=$((still + 1)); [ "$still" -ge 30 ] && break; else still=0; fi
    last=$c
    sleep 0.1
  done
  local wall=NA
  [ -n "$lo_t" ] && [ "$hi_c" -gt "$lo_c" ] && wall=$(awk -v a="$lo_c" -v b="$hi_c" -v s="$lo_t" -v e="$hi_t" 'BEGIN{printf "%.0f", (b-a)/(e-s)}')
  echo "setup: port 1 received $c of $k; wall-clock rate from its counter $wall/s" >&2
}

# ---- the PMD's busy cycles and received packets since CLEAR: "busy rx" ----
ovs_clear() { $APPCTL dpif-netdev/pmd-stats-clear >/dev/null; }
ovs_busy() { # the PMD on the last core: processing cycles, packets received
  $APPCTL dpif-netdev/pmd-stats-show | ovs_pmd_fields | awk -F'\t' '
    $1 == "processing cycles" {b = $2} $1 == "packets received" {r = $2}
    END {print (b == "" ? "NA" : b), (r == "" ? "NA" : r)}'
}
vsw_clear() { $CTL pmd-stats-clear >/dev/null; }
vsw_busy() { # summed over PMDs (one)
  $CTL --json pmd-stats-show | python3 -c '
import json, sys
try:
    pmds = json.load(sys.stdin)["pmds"]
    print(sum(p["busy_cycles"] for p in pmds), sum(p["rx_packets"] for p in pmds))
except Exception:
    print("NA NA")
'
}
per_pkt() { awk -v b="${1% *}" -v r="${1#* }" 'BEGIN{if (b == "NA" || r == "NA" || r <= 0) print "NA"; else printf "%.0f", b/r}'; }
# setup_cps "BUSY RX" CONNS: connections per second of PMD busy time (TSC_MHZ: the cycle counter's rate)
setup_cps() {
  awk -v b="${1% *}" -v c="$2" -v mhz="$TSC_MHZ" 'BEGIN{if (b == "NA" || b <= 0 || c == "NA" || c <= 0) print "NA"; else printf "%.0f", c/(b/(mhz*1e6))}'
}

# rule_hits: dump-flows text (ovs-ofctl style lines) on stdin -> "new=A est_in=B est_out=C": packets
# that hit the +new rule, +est from port 1 (inside) and +est from port 2 (outside, the replies)
rule_hits() {
  python3 -c '
import re, sys
h = {"new": 0, "est1": 0, "est2": 0}
for line in sys.stdin:
    st = re.search(r"ct_state=([-+a-z]+)", line); n = re.search(r"n_packets=(\d+)", line)
    port = re.search(r"in_port=(\d+)", line)
    if not (st and n and port) or "table=1" not in line:
        continue
    flags = st.group(1)
    if "+new" in flags:
        h["new"] += int(n.group(1))
    elif "+est" in flags:
        h["est" + port.group(1)] = h.get("est" + port.group(1), 0) + int(n.group(1))
print("new=%d est_in=%d est_out=%d" % (h["new"], h["est1"], h["est2"]))
'
}
# hits_delta BEFORE AFTER: two rule_hits lines -> their difference (the window's packets)
hits_delta() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    n = split(a, x, " "); split(b, y, " ")
    for (i = 1; i <= n; i++) { split(x[i], p, "="); split(y[i], q, "="); printf "%s%s=%d", (i > 1 ? " " : ""), p[1], q[2] - p[2] }
    print "" }'
}
ovs_hits() { $OFCTL dump-flows br0 | rule_hits; }
vsw_hits() { $CTL --json dump-flows 2>/dev/null | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)["flows"]))' 2>/dev/null | rule_hits; }
ovs_conns() { $APPCTL dpctl/ct-stats-show 2>/dev/null | awk 'tolower($1) == "total:" || tolower($1) == "connections:" {print $2; exit}'; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo NA; }

# ---- the VM: one virtio-user port, reflecting every packet with its 5-tuple swapped ----
vm_start() { # SOCKET SERVER(0|1) LOG -> $vm_pid
  local srv=""
  [ "$2" = 1 ] && srv=",server=1"
  timeout -s INT -k 5 "$LIMIT" dpdk-testpmd --lcores 0@0,1@0 --no-pci --in-memory --file-prefix vswctvm \
    --single-file-segments -m 160 --log-level=error --vdev "net_virtio_user0,path=$1$srv" -- \
    --forward-mode=5tswap --port-topology=loop --total-num-mbufs=16384 --auto-start --stats-period 1 \
    < <(sleep "$LIMIT") > "$3" 2>&1 &
  vm_pid=$!
  track "$vm_pid"
}
vm_stop() { [ -n "${vm_pid:-}" ] || return 0; kill -INT "$vm_pid" 2>/dev/null || true; wait "$vm_pid" 2>/dev/null || true; vm_pid=; }

# Each run_<peer> ROW N prints one line: "Mpps conns/s cycles/pkt mem-bytes/conn check" with NA for
# what does not apply, or "n/a REASON" when the switch refused to run the row.

# ---- Open vSwitch ----
run_ovs() {
  local row=$1 n=$2 rules mpps=NA cps=NA cyc mem=NA rss0 rss1 conns hits h0 pid busy
  rm -f "$run"/*.sock
  ovs_start
  pid=$(cat "$OVS_RUNDIR/ovs-vswitchd.pid")
  rules=$(rules_of "$row")
  $OFCTL add-flows br0 "$rules"
  if [ "$row" = setup ]; then
    $VSCTL add-port br0 p1 -- set Interface p1 type=dpdk options:dpdk-devargs="net_null0,no-rx=1" ofport_request=2
    sleep 1
    rss0=$(rss_kb "$pid")
    ovs_clear
    $VSCTL add-port br0 p0 -- set Interface p0 type=dpdk \
      options:dpdk-devargs="net_pcap0,rx_pcap=$(pcap_of "$n")" ofport_request=1
    pass_wait ovs_ports "$n"
    sleep 0.5
    busy=$(ovs_busy)
    cyc=$(per_pkt "$busy")
    rss1=$(rss_kb "$pid")
    conns=$(ovs_conns)
    cps=$(setup_cps "$busy" "${conns:-NA}")
    mem=$(awk -v a="$rss0" -v b="$rss1" -v c="${conns:-0}" 'BEGIN{if (c > 0 && a != "NA" && b != "NA") printf "%.0f", (b-a)*1024/c; else print "NA"}')
    echo "ovs setup: conns=${conns:-NA} of $n, RSS ${rss0} -> ${rss1} kB" >&2
  else
    vm_start "$run/vm.sock" 1 "$work/vm.log" # OVS is the vhost-user client; the VM waits in accept()
    $VSCTL add-port br0 vhu0 -- set Interface vhu0 type=dpdkvhostuserclient \
      options:vhost-server-path="$run/vm.sock" ofport_request=2
    $VSCTL add-port br0 p0 -- set Interface p0 type=dpdk \
      options:dpdk-devargs="net_pcap0,rx_pcap=$(pcap_of "$n"),infinite_rx=1" ofport_request=1
    sleep "$WARM"
    ovs_clear
    h0=$(ovs_hits)
    mpps=$(fwd_mpps ovs_ports)
    cyc=$(per_pkt "$(ovs_busy)")
    hits=$(hits_delta "$h0" "$(ovs_hits)")
    conns=$(ovs_conns)
    vm_stop
  fi
  [ "$row" = setup ] && hits=$(ovs_hits)
  [ -n "${KEEP:-}" ] && { $OFCTL dump-flows br0 > "$work/ovs-$row-$n.flows" 2>&1; $APPCTL dpif-netdev/pmd-stats-show > "$work/ovs-$row-$n.pmd" 2>&1; } || true
  grep -iE '\|(ERR|EMER)\|' "$OVS_LOGDIR/ovs-vswitchd.log" >> "$work/errors.log" 2>/dev/null || true
  ovs_stop
  echo "$mpps $cps ${cyc:-NA} $mem conns=${conns:-NA},$(tr ' ' , <<<"$hits")"
}

# ---- vswitchd ----
run_vswitchd() {
  local row=$1 n=$2 rules mpps=NA cps=NA cyc mem=NA rss0 rss1 conns=NA hits h0 pcap port2 sw ct busy
  rm -f "$run"/*.sock
  rules=$(rules_of "$row")
  pcap=$(pcap_of "$n")
  # the infinite replay holds its N packets in mbufs from the switch's pool for the whole run
  local mbufs=()
  if [ "$row" = setup ]; then port2="p1=net_null0,no-rx=1"; else port2="p1=net_vhost0,iface=$run/vm.sock" mbufs=(--mbufs $((n + 65536))); fi
  # the pcap port comes later (add-port), as in OVS: after the rules, the sink and the VM
  timeout -s INT -k 5 "$LIMIT" $PIN_PMD "$VSWITCHD" --mode pipeline --pmd-cores "$PMD_CORE" --stats-interval 0 \
    --control "$run/vsw.sock" --eal "--in-memory --file-prefix vswctvsw" --flows "$rules" \
    "${mbufs[@]}" --port "$port2" --ofport p1=2 < <(sleep "$LIMIT") > "$work/sw.log" 2>&1 &
  sw=$!
  track "$sw"
  for _ in $(seq 1 150); do
    [ -S "$run/vsw.sock" ] && { [ "$row" = setup ] || [ -S "$run/vm.sock" ]; } && break
    kill -0 "$sw" 2>/dev/null || break
    sleep 0.2
  done
  if ! kill -0 "$sw" 2>/dev/null || ! [ -S "$run/vsw.sock" ]; then
    wait "$sw" 2>/dev/null || true
    local why; why=$(grep -m1 'vswitchd: error' "$work/sw.log" || tail -1 "$work/sw.log")
    echo "n/a ${why:-vswitchd did not start}"
    return
  fi
  local vpid; vpid=$(pgrep -P "$sw" -n || echo "$sw") # timeout's child (taskset execs vswitchd)
  if [ "$row" = setup ]; then
    sleep 1
    rss0=$(rss_kb "$vpid")
    vsw_clear
    $CTL add-port p0 "net_pcap0,rx_pcap=$pcap" --ofport 1 >/dev/null
    pass_wait vsw_ports "$n"
    sleep 0.5
    busy=$(vsw_busy)
    cyc=$(per_pkt "$busy")
    rss1=$(rss_kb "$vpid")
    ct=$($CTL --json ct-stats-show 2>/dev/null || true)
    conns=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("connections", "NA"))' "$ct" 2>/dev/null || echo NA)
    [ "$conns" = NA ] && conns=$(vsw_hits | sed -n 's/.*new=\([0-9]*\).*/\1/p')
    cps=$(setup_cps "$busy" "${conns:-NA}")
    mem=$(python3 -c 'import json,sys; print("%.0f" % json.loads(sys.argv[1])["bytes_per_connection"])' "$ct" 2>/dev/null \
      || awk -v a="$rss0" -v b="$rss1" -v c="$n" 'BEGIN{if (a != "NA" && b != "NA") printf "%.0f", (b-a)*1024/c; else print "NA"}')
    echo "vswitchd setup: conns=$conns of $n, RSS $rss0 -> $rss1 kB" >&2
  else
    vm_start "$run/vm.sock" 0 "$work/vm.log"
    for _ in $(seq 1 60); do grep -q 'Port statistics' "$work/vm.log" 2>/dev/null && break; sleep 0.5; done
    $CTL add-port p0 "net_pcap0,rx_pcap=$pcap,infinite_rx=1" --ofport 1 >/dev/null
    sleep "$WARM"
    vsw_clear
    h0=$(vsw_hits)
    mpps=$(fwd_mpps vsw_ports)
    cyc=$(per_pkt "$(vsw_busy)")
    hits=$(hits_delta "$h0" "$(vsw_hits)")
    ct=$($CTL --json ct-stats-show 2>/dev/null || true)
    conns=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("connections", "NA"))' "$ct" 2>/dev/null || echo NA)
    vm_stop
  fi
  [ "$row" = setup ] && hits=$(vsw_hits)
  [ -n "${KEEP:-}" ] && { $CTL dump-flows > "$work/vswitchd-$row-$n.flows" 2>&1; $CTL pmd-stats-show > "$work/vswitchd-$row-$n.pmd" 2>&1; } || true
  kill -INT "$sw" 2>/dev/null || true
  wait "$sw" 2>/dev/null || true
  grep 'vswitchd: error' "$work/sw.log" >> "$work/errors.log" || true
  echo "$mpps $cps ${cyc:-NA} $mem conns=$conns,$(tr ' ' , <<<"$hits")"
}

echo "# conntrack benchmark $(date -u +%FT%TZ) runs=$RUNS warm=${WARM}s meas=${MEAS}s 64 B; conns: $CONNS; setup: $SETUP_CONNS; $(ovs-vswitchd --version | head -1); $ALL_CPUS cpus, PMD on core $PMD_CORE"
echo "# per run: Mpps (forwarded, both directions)  conns/s (setup)  PMD cycles/pkt  bytes/conn (setup)  check"
declare -A res
rowkeys=()
for row in $ROWS; do
  if [ "$row" = setup ]; then ns=$SETUP_CONNS; else ns=$CONNS; fi
  for n in $ns; do
    key=$row.$n
    rowkeys+=("$key")
    for r in $(seq 1 "$RUNS"); do
      order=$(run_order $((r - 1)) $PEERS)
      echo "$row N=$n run $r order: $order"
      for sw in $order; do
        line=$("run_$sw" "$row" "$n" 2>>"$work/errors.log" | tail -1)
        if [[ "$line" == n/a* ]]; then
          why=${line#n/a }; why=${why#vswitchd: error: }; why=${why#"$RULES_DIR/"}
          res[$key.$sw.na]=$why
          printf '%-5s N=%-7s run %d %s: n/a (%s)\n' "$row" "$n" "$r" "$sw" "$why"
          continue
        fi
        read -r mpps cps cyc mem check <<<"$line"
        for f in mpps cps cyc mem; do res[$key.$sw.$f]="${res[$key.$sw.$f]:-} ${!f:-NA}"; done
        note=""
        if [ "$row" != setup ] && [[ "${check:-}" == *est_out=0* ]]; then note="  NOT ESTABLISHED"; fi
        printf '%-5s N=%-7s run %d %-8s %8s Mpps  %9s conns/s  %6s cyc/pkt  %5s B/conn  %s%s\n' \
          "$row" "$n" "$r" "$sw" "${mpps:-NA}" "${cps:-NA}" "${cyc:-NA}" "${mem:-NA}" "${check:-}" "$note"
      done
    done
  done
done

vals() { tr ' ' '\n' <<<"${res[$1]:-}" | grep -v '^$' | grep -v NA || true; }
med() { local m; m=$(vals "$1" | median); echo "${m:-NA}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if (a == "NA" || b == "NA" || a == "" || b == "" || b <= 0) print "NA"; else printf "%.3f", a/b}'; }
cell() { # KEY PEER FIELD -> median, or "n/a" (the reasons follow the table)
  if [ -n "${res[$1.$2.na]:-}" ] && [ -z "${res[$1.$2.$3]:-}" ]; then echo "n/a"; else med "$1.$2.$3" | fmt3; fi
}
echo
echo "| row | connections | vswitchd Mpps | OVS Mpps | vswitchd/OVS | vswitchd conns/s | OVS conns/s | vswitchd/OVS | vswitchd cyc/pkt | OVS cyc/pkt | OVS/vswitchd cycles | vswitchd B/conn | OVS B/conn |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
minratio="" setupratio=NA
for key in "${rowkeys[@]}"; do
  row=${key%%.*} n=${key#*.}
  mv=$(med "$key.vswitchd.mpps") mo=$(med "$key.ovs.mpps")
  cv=$(med "$key.vswitchd.cps") co=$(med "$key.ovs.cps")
  yv=$(med "$key.vswitchd.cyc") yo=$(med "$key.ovs.cyc")
  rm_=$(ratio "$mv" "$mo") rc=$(ratio "$cv" "$co") ry=$(ratio "$yo" "$yv")
  if [ "$row" = setup ]; then
    setupratio=$rc
  elif [ "$rm_" != NA ] && { [ -z "$minratio" ] || awk -v a="$rm_" -v b="$minratio" 'BEGIN{exit !(a < b)}'; }; then
    minratio=$rm_
  fi
  if [ "$row" = setup ]; then mvc="-" moc="-"; rm_="-"; else mvc=$(cell "$key" vswitchd mpps) moc=$(cell "$key" ovs mpps); rc="-" cv="-" co="-"; fi
  [ "$row" = setup ] && { cv=$(cell "$key" vswitchd cps); co=$(cell "$key" ovs cps); }
  echo "| $row | $n | $mvc | $moc | $rm_ | $cv | $co | $rc | $yv | $yo | $ry | $(med "$key.vswitchd.mem") | $(med "$key.ovs.mem") |"
done
echo "(Mpps: packets forwarded per second, both directions; conns/s: new connections committed per second; cyc/pkt: PMD busy cycles per received packet; medians over runs)"
for sw in $PEERS; do # one line per reason a switch refused rows for
  declare -A why_rows=()
  for key in "${rowkeys[@]}"; do [ -n "${res[$key.$sw.na]:-}" ] && why_rows[${res[$key.$sw.na]}]+=" $key"; done
  for w in "${!why_rows[@]}"; do echo "$sw: n/a on${why_rows[$w]} ($w)"; done
  unset why_rows
done
if [ -s "$work/errors.log" ]; then echo "# notes/errors (first lines):"; head -12 "$work/errors.log" | sed 's/^/#   /'; fi
echo "RESULT ct_min_vs_ovs=${minratio:-NA} ct_setup_vs_ovs=$setupratio"
