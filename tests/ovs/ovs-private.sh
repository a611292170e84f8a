#!/usr/bin/env bash
# A private Open vSwitch for the differential test (tests/VSwitch.Tests/Differential): ovsdb-server
# and ovs-vswitchd with every path (database, sockets, pid and log files) under DIR, no DPDK, one
# bridge of datapath_type=dummy with N ports of type dummy numbered 1..N, and an empty flow table.
# Nothing here touches a system-wide Open vSwitch: OVS_RUNDIR/OVS_DBDIR/OVS_LOGDIR point into DIR
# and every client is given the private socket.
#
# usage: tests/ovs/ovs-private.sh start DIR N   (prints the bridge name, "br0")
#        tests/ovs/ovs-private.sh stop DIR      (SIGTERM to the two daemons by their pid files)
# The same approach as bench/lib.sh's ovs_start, without DPDK; --enable-dummy registers the dummy
# datapath and netdev classes (ofproto, the classifier and translation are the real ones).
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?DIR}
mkdir -p "$dir"/{run,log,db}
dir=$(cd "$dir" && pwd)
export OVS_RUNDIR=$dir/run OVS_LOGDIR=$dir/log OVS_DBDIR=$dir/db OVS_SYSCONFDIR=$dir/etc
db=unix:$OVS_RUNDIR/db.sock
vsctl() { timeout 20 ovs-vsctl --db="$db" --timeout=15 "$@"; }

stop() {
  for d in ovs-vswitchd ovsdb-server; do
    local f=$OVS_RUNDIR/$d.pid
    [ -f "$f" ] || continue
    local p; p=$(cat "$f")
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
    rm -f "$f"
  done
}

case $cmd in
start)
  n=${3:?N}
  stop
  rm -f "$OVS_DBDIR/conf.db"
  timeout 20 ovsdb-tool create "$OVS_DBDIR/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  timeout 20 ovsdb-server "$OVS_DBDIR/conf.db" -vconsole:off --remote="punix:$OVS_RUNDIR/db.sock" \
    --unixctl="$OVS_RUNDIR/ovsdb-server.ctl" --pidfile="$OVS_RUNDIR/ovsdb-server.pid" --detach \
    --log-file="$OVS_LOGDIR/ovsdb-server.log"
  vsctl --no-wait init
  # vlan-limit=0: parse every VLAN tag the datapath sees (Open vSwitch's default is 1; this switch reads two).
  vsctl --no-wait set Open_vSwitch . other_config:vlan-limit=0
  timeout 20 ovs-vswitchd "$db" --enable-dummy -vconsole:off --unixctl="$OVS_RUNDIR/ovs-vswitchd.ctl" \
    --pidfile="$OVS_RUNDIR/ovs-vswitchd.pid" --detach --log-file="$OVS_LOGDIR/ovs-vswitchd.log"
  args=(add-br br0 -- set bridge br0 datapath_type=dummy fail-mode=secure)
  for i in $(seq 1 "$n"); do
    args+=(-- add-port br0 p$i -- set interface p$i type=dummy ofport_request=$i)
  done
  vsctl "${args[@]}"
  timeout 20 ovs-ofctl del-flows "unix:$OVS_RUNDIR/br0.mgmt"
  echo br0
  ;;
stop) stop ;;
*) echo "usage: $0 start DIR N | stop DIR" >&2; exit 2 ;;
esac
