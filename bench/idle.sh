#!/usr/bin/env bash
# PMD sleep: idle CPU of the PMD core and the latency of the first packet after 1 s of idle.
#
# Topology: two network namespaces (198.51.100.1/24 and 198.51.100.2/24; this host's own eth0 sits in 192.0.2.0/24), each behind a veth pair whose
# outer end is a DPDK net_af_packet port of vswitchd (pipeline mode, one NORMAL rule, PMD on core
# 1). For each pmd-sleep-max value: the PMD thread's CPU use over IDLE seconds without traffic
# (utime+stime of the thread from /proc), then PINGS pings one second apart: each request reaches a
# PMD that has been idle for a second, so with sleep on it waits up to the maximum sleep in the rx
# ring; the reply follows at once. The RTT over sleep 0 (busy polling) is the wake-up cost.
#
# usage: bench/idle.sh   env: SLEEPS ("0 300 1000"), IDLE (10), PINGS (10)
# Last line: RESULT idle_cpu_pct_at_1000us=<%> first_packet_extra_rtt_us_at_1000us=<us>
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
SLEEPS=${SLEEPS:-"0 300 1000"}
IDLE=${IDLE:-10}
PINGS=${PINGS:-10}
VSWITCHD=${VSWITCHD:-$root/out/vswitchd/vswitchd}
work=$(mktemp -d /tmp/vsw-idle.XXXXXX)
sw=""
cleanup() {
  [ -n "$sw" ] && kill "$sw" 2>/dev/null && wait "$sw" 2>/dev/null || true
  ip netns del vswidle1 2>/dev/null || true
  ip netns del vswidle2 2>/dev/null || true
  ip link del vswi1 2>/dev/null || true
  ip link del vswi2 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
command -v ping >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q iputils-ping >/dev/null
"$root/hugepages/setup.sh" >/dev/null
[ -x "$VSWITCHD" ] || { echo "idle.sh: $VSWITCHD missing; run scripts/setup first" >&2; exit 1; }

for i in 1 2; do
  ip netns add "vswidle$i"
  ip link add "vswi$i" type veth peer name "vswi${i}p"
  ip link set "vswi${i}p" netns "vswidle$i"
  ip -n "vswidle$i" addr add "198.51.100.$i/24" dev "vswi${i}p"
  ip -n "vswidle$i" link set "vswi${i}p" up
  sysctl -qw "net.ipv6.conf.vswi$i.disable_ipv6=1" # the outer ends send nothing of their own
  ip link set "vswi$i" up
done
echo "priority=0,actions=normal" > "$work/flows.txt"

pmd_ticks() { # PID -> utime+stime clock ticks of the thread named pmd-c1
  local t
  for t in /proc/"$1"/task/*; do
    if [ "$(cat "$t/comm")" = pmd-c1 ]; then awk '{print $14 + $15}' "$t/stat"; return; fi
  done
  echo 0
}

declare -A cpu rtt
hz=$(getconf CLK_TCK)
echo "# PMD sleep benchmark $(date -u +%FT%TZ) idle=${IDLE}s pings=$PINGS; $(nproc) cpus"
for s in $SLEEPS; do
  "$VSWITCHD" --mode pipeline --flows "$work/flows.txt" --pmd-cores 1 --pmd-sleep-max "$s" \
    --stats-interval 0 --control none --eal "--file-prefix=vswidle" \
    --port "a=net_af_packet0,iface=vswi1,qdisc_bypass=1" --port "b=net_af_packet1,iface=vswi2,qdisc_bypass=1" > "$work/sw.log" 2>&1 &
  sw=$!
  for _ in $(seq 1 100); do grep -q "port b link up" "$work/sw.log" 2>/dev/null && break; sleep 0.1; done
  ip netns exec vswidle1 ping -c 2 -i 0.2 -W 1 198.51.100.2 >/dev/null || true # learn both MACs
  sleep 1
  t0=$(pmd_ticks "$sw")
  sleep "$IDLE"
  t1=$(pmd_ticks "$sw")
  cpu[$s]=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v d="$IDLE" 'BEGIN{printf "%.1f", 100 * (b - a) / hz / d}')
  rtt[$s]=$(ip netns exec vswidle1 ping -c "$PINGS" -i 1 -W 1 198.51.100.2 | awk -F'/' '/^rtt/ {print $5 * 1000}')
  kill -TERM "$sw"
  wait "$sw" || true
  sw=""
  echo "sleep_max=${s}us pmd_cpu=${cpu[$s]}% avg_rtt=${rtt[$s]}us"
done

echo
echo "| pmd-sleep-max | PMD core busy while idle | ping RTT after 1 s idle (avg) | extra vs busy polling |"
echo "|---|---|---|---|"
first=$(echo "$SLEEPS" | awk '{print $1}')
for s in $SLEEPS; do
  extra=$(awk -v a="${rtt[$s]}" -v b="${rtt[$first]}" 'BEGIN{printf "%.0f", a - b}')
  echo "| ${s} us | ${cpu[$s]}% | ${rtt[$s]} us | ${extra} us |"
done
last=$(echo "$SLEEPS" | awk '{print $NF}')
echo "RESULT idle_cpu_pct_at_${last}us=${cpu[$last]} first_packet_extra_rtt_us_at_${last}us=$(awk -v a="${rtt[$last]}" -v b="${rtt[$first]}" 'BEGIN{printf "%.0f", a - b}')"
