#!/bin/busybox sh
# /init of the test guest. Kernel command line: vsw_role=sender|receiver vsw_ip=A.B.C.D vsw_peer=A.B.C.D
# The receiver listens on TCP 5000 and prints the md5 of what it got; the sender pings the peer,
# sends 256 KiB of pseudo-random data and prints its md5. Results go to the serial console as
# "VSWTEST key=value" lines, then the guest powers off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for k in $(cat /proc/cmdline); do case "$k" in vsw_*=*) eval "$k" ;; esac; done
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
  for f in /lib/modules/$m.ko*; do [ -e "$f" ] && insmod "$f" 2>/dev/null; done
done
for i in $(seq 1 50); do [ -e /sys/class/net/eth0 ] && break; sleep 0.2; done
ip link set lo up
ip link set eth0 up
ip addr add "$vsw_ip/24" dev eth0
echo "VSWTEST up role=$vsw_role ip=$vsw_ip"
if [ "$vsw_role" = receiver ]; then
  # keep nc's stdin open: busybox nc half-closes when its stdin ends
  (sleep 600) | nc -l -p 5000 > /tmp/recv &
  for i in $(seq 1 600); do
    if [ -s /tmp/recv ] && ! kill -0 $! 2>/dev/null; then break; fi
    sleep 0.2
  done
  echo "VSWTEST received bytes=$(wc -c < /tmp/recv) md5=$(md5sum < /tmp/recv | cut -d' ' -f1)"
else
  ok=0
  for i in $(seq 1 30); do
    if ping -c 1 -W 1 "$vsw_peer" > /dev/null 2>&1; then ok=1; break; fi
  done
  echo "VSWTEST ping ok=$ok"
  ping -c 3 "$vsw_peer" | grep -E 'packets transmitted' | sed 's/^/VSWTEST ping /'
  dd if=/dev/urandom of=/tmp/data bs=1024 count=256 2>/dev/null
  echo "VSWTEST sent bytes=$(wc -c < /tmp/data) md5=$(md5sum < /tmp/data | cut -d' ' -f1)"
  for i in $(seq 1 20); do nc "$vsw_peer" 5000 < /tmp/data && break; sleep 0.5; done
  echo "VSWTEST nc done"
fi
sleep 1
poweroff -f
