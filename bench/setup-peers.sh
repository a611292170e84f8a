#!/usr/bin/env bash
# Installs the benchmark peers if missing: dpdk-testpmd (package dpdk) and Open vSwitch with DPDK
# (openvswitch-switch-dpdk, selected as the ovs-vswitchd alternative). The package's own service
# is not used: the benchmarks start private ovsdb-server/ovs-vswitchd instances.
set -euo pipefail
need=()
command -v dpdk-testpmd >/dev/null || need+=(dpdk)
[ -x /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk ] || need+=(openvswitch-switch-dpdk)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi
if [ "$(readlink -f "$(command -v ovs-vswitchd)")" != /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk ]; then
  update-alternatives --set ovs-vswitchd /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk >/dev/null
fi
# The package may start its own daemons through systemd on some systems; ours run privately.
