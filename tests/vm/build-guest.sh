#!/usr/bin/env bash
# Builds a minimal Linux guest for the vhost-user VM test, from Debian packages, without installing
# them on the host: the cloud kernel (vmlinuz + the virtio modules) and busybox-static are fetched
# with `apt-get download` and unpacked with `dpkg -x`; the initramfs is made with cpio.
# usage: tests/vm/build-guest.sh OUTDIR      -> OUTDIR/vmlinuz, OUTDIR/initrd.img (cached)
set -euo pipefail
out=${1:?usage: build-guest.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ] && [ "$out/initrd.img" -nt "$here/guest-init.sh" ]; then
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # apt-get download drops privileges to _apt
cd "$work"
kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
if [ -z "$kpkg" ]; then
  apt-get update -q >/dev/null
  kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
fi
if ! apt-get download -q "$kpkg" busybox-static >/dev/null 2>&1; then
  apt-get update -q >/dev/null # stale package lists: the versions they name may be gone
  kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
  apt-get download -q "$kpkg" busybox-static >/dev/null 2>&1
fi
dpkg -x "$kpkg"_*.deb kernel
dpkg -x busybox-static_*.deb bb
kver=$(ls kernel/lib/modules | head -1)
cp kernel/boot/vmlinuz-"$kver" "$out/vmlinuz.tmp"

root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,etc,lib/modules}
cp bb/bin/busybox "$root/bin/busybox"
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
  f=$(find kernel/lib/modules/"$kver" -name "$m.ko*" | head -1)
  [ -n "$f" ] && cp "$f" "$root/lib/modules/"
done
cp "$here/guest-init.sh" "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 > "$out/initrd.img.tmp")
# Only a complete build replaces the cached one.
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
mv "$out/initrd.img.tmp" "$out/initrd.img"
echo "guest: kernel $kver, modules: $(ls "$root/lib/modules" | tr '\n' ' ')"
