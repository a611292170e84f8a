# lib.sh - shared pieces of the macro benchmarks (sourced, not run).
#
# median: numbers on stdin -> their median ("NA" for none).
# A private Open vSwitch with DPDK under $OVS_WORK: ovs_env DIR PREFIX sets it up (the DPDK
# --file-prefix is PREFIX); ovs_start starts ovsdb-server and ovs-vswitchd (main thread on core 0,
# PMD on core 1) with bridge br0 and an empty flow table; ovs_stop stops both and removes the
# hugepage files. Callers set VSCTL and OFCTL (with their own timeouts) before ovs_start.
# run_order I PEER...: the peers in the given order when I is even, reversed when I is odd; the
# interleaved benchmarks pass the 0-based run index, so peers alternate going first (drift, warm
# caches or a previous peer's leftovers then favour none) and run 1 keeps the listed order.
# pin_to_core0 "$0" "$@": re-runs the calling script on core 0 (once), so the script, its shell
# helpers and every tool it starts stay off the PMD core; on a busy machine a task that wakes on the
# PMD's core preempts the PMD for a scheduler slice (a 4 ms gap here). Processes that own a PMD are
# started with an explicit affinity (`$PIN_PMD` = taskset -c 0,PMD_CORE, or DPDK --lcores).

pin_to_core0() { # "$0" "$@"
  [ -n "${VSW_BENCH_PINNED:-}" ] && return 0
  VSW_BENCH_PINNED=1 exec taskset -c 0 bash "$@"
}
ALL_CPUS=$(nproc --all)
PIN_PMD="taskset -c 0,$((ALL_CPUS - 1))"

run_order() { # I PEER...
  local i=$1 w out=()
  shift
  if [ $((i % 2)) = 0 ]; then echo "$*"; return; fi
  for w in "$@"; do out=("$w" "${out[@]}"); done
  echo "${out[*]}"
}

# ovs_pmd_fields: `ovs-appctl dpif-netdev/pmd-stats-show` text on stdin -> "name<TAB>number" for
# each counter of the PMD on core 1 (the benchmarks' PMD core).
ovs_pmd_fields() {
  python3 -c '
import re, sys
cur = False
for line in sys.stdin:
    if not line[:1].isspace():  # a section header: "pmd thread numa_id N core_id C:", "main thread:"
        m = re.match(r"pmd thread numa_id \S+ core_id (\d+):", line)
        cur = bool(m) and m.group(1) == "1"
        continue
    if cur and ":" in line:
        k, v = line.split(":", 1)
        m = re.match(r"\s*([0-9.]+)", v)
        if m:
            print("%s\t%s" % (k.strip(), m.group(1)))
'
}

# track PID: remember a `timeout` the benchmark started, in $work/pids (the run_* functions run in
# $(...) subshells, so a variable would not reach the EXIT trap); stop_tracked, from the trap:
# SIGTERM to each that is still ours (still a `timeout`: a PID reused since is another process's).
track() { echo "$1" >> "$work/pids"; }
stop_tracked() {
  [ -f "$work/pids" ] || return 0
  local p
  while read -r p; do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = timeout ] && kill "$p" 2>/dev/null || true; done < "$work/pids"
}

# bench_exit: the EXIT trap of a benchmark that starts OVS and tracked processes: stop_tracked,
# ovs_stop, then the work directory goes ($work; KEEP=1 keeps it and says where).
bench_exit() {
  stop_tracked
  ovs_stop >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "NA"; exit} print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

ovs_env() { # DIR PREFIX
  mkdir -p "$1"/{run,log,db}
  export OVS_RUNDIR=$1/run OVS_LOGDIR=$1/log OVS_DBDIR=$1/db
  OVS_PREFIX=$2
}

ovs_start() {
  rm -f "$OVS_DBDIR/conf.db"
  ovsdb-tool create "$OVS_DBDIR/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  taskset -c 0 ovsdb-server "$OVS_DBDIR/conf.db" -vconsole:off --remote="punix:$OVS_RUNDIR/db.sock" \
    --pidfile="$OVS_RUNDIR/ovsdb-server.pid" --detach --log-file="$OVS_LOGDIR/ovsdb-server.log"
  $VSCTL --no-wait init
  $VSCTL --no-wait set Open_vSwitch . other_config:dpdk-init=true other_config:dpdk-socket-mem=512 \
    other_config:dpdk-socket-limit=512 other_config:dpdk-lcore-mask=0x1 other_config:pmd-cpu-mask=0x2 \
    other_config:dpdk-extra="--no-pci --file-prefix=$OVS_PREFIX"
  taskset -c 0 ovs-vswitchd "unix:$OVS_RUNDIR/db.sock" -vconsole:off --pidfile="$OVS_RUNDIR/ovs-vswitchd.pid" \
    --detach --log-file="$OVS_LOGDIR/ovs-vswitchd.log"
  for _ in $(seq 1 60); do $VSCTL get Open_vSwitch . dpdk_initialized 2>/dev/null | grep -q true && break; sleep 0.5; done
  $VSCTL add-br br0 -- set bridge br0 datapath_type=netdev
  $OFCTL del-flows br0 # the new bridge's priority-0 NORMAL rule
}

ovs_stop() {
  for d in ovs-vswitchd ovsdb-server; do
    local f=$OVS_RUNDIR/$d.pid
    if [ -f "$f" ]; then
      local p; p=$(cat "$f")
      kill "$p" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$p" 2>/dev/null || true
      rm -f "$f"
    fi
  done
  rm -f /dev/hugepages/"$OVS_PREFIX"* 2>/dev/null || true
}
