#!/usr/bin/env bash
# crypto-bound.sh [SIZES] - the crypto-only ceiling of one core for ESP's cipher: DPDK's
# dpdk-test-crypto-perf (Debian package dpdk-dev), AES-GCM-128 encrypt (aead, 16 B key, 12 B IV,
# 8 B AAD, 16 B digest), throughput test, burst 32, on the software PMDs crypto_aesni_gcm and
# crypto_aesni_mb (both from librte-crypto-ipsec-mb23, i.e. intel-ipsec-mb). EAL -l 0,1: the main
# lcore is 0, the one worker (the measured enqueue/dequeue loop) is lcore 1; --in-memory, its own
# --file-prefix, --no-pci (no NIC needed: both PMDs are vdevs).
# SIZES: comma-separated buffer sizes in bytes (default 64,1400).
# Env: TOTAL_OPS (default 30000000 per size), PMDS (default "crypto_aesni_gcm crypto_aesni_mb"),
#      TIMEOUT (seconds per PMD run, default 120).
# Output, one line per PMD and size (a PMD that fails prints crypto_bound pmd=<name> error=<why>):
#   crypto_bound pmd=<name> size=<B> mops=<Mops> gbps=<Gbps>
# gbps is crypto-perf's figure: Mops * size * 8 / 1000 (the buffer, i.e. plaintext, bits).
set -euo pipefail
SIZES=${1:-64,1400}
TOTAL_OPS=${TOTAL_OPS:-30000000}
PMDS=${PMDS:-"crypto_aesni_gcm crypto_aesni_mb"}
TIMEOUT=${TIMEOUT:-120}

. "$(dirname "$0")/need-pkgs.sh"
need_pkgs dpdk-dev librte-crypto-ipsec-mb23

work=$(mktemp -d /tmp/crypto-bound.XXXXXX)
prefix=cryptobound$$
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -f /dev/hugepages/"$prefix"* 2>/dev/null || true
  rm -rf "$work" /var/run/dpdk/"$prefix" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for pmd in $PMDS; do
  out=$work/$pmd.out
  # the main lcore (0) only waits; lcore 1 runs the throughput loop.
  timeout -k 5 "$TIMEOUT" dpdk-test-crypto-perf -l 0,1 --main-lcore 0 --in-memory --no-pci \
    --file-prefix "$prefix" --vdev "${pmd}0" --log-level=error -- \
    --ptest throughput --devtype "$pmd" --optype aead --aead-algo aes-gcm --aead-op encrypt \
    --aead-key-sz 16 --aead-iv-sz 12 --aead-aad-sz 8 --digest-sz 16 \
    --buffer-sz "$SIZES" --burst-sz 32 --total-ops "$TOTAL_OPS" --silent --csv-friendly \
    > "$out" 2>&1 &
  pid=$!
  rc=0; wait "$pid" || rc=$?
  pid=
  # CSV: lcore,size,burst,enq,deq,failed_enq,failed_deq,Mops,Gbps,cycles/buf
  lines=$(awk -F, -v pmd="$pmd" '$1 ~ /^[0-9]+$/ && NF >= 9 {
      if ($1 != 1) { printf "crypto_bound pmd=%s warning=worker_on_lcore_%s\n", pmd, $1 }
      if ($6 + $7 > 0) { printf "crypto_bound pmd=%s size=%s warning=failed_enq=%s,failed_deq=%s\n", pmd, $2, $6, $7 }
      printf "crypto_bound pmd=%s size=%s mops=%.3f gbps=%.3f\n", pmd, $2, $8, $9 }' "$out")
  if [ "$rc" != 0 ] || ! grep -q mops= <<<"$lines"; then
    why=$(grep -v -E '^(EAL|#|$)' "$out" | tail -1 | tr -s ' \t' '_' | cut -c1-120)
    echo "crypto_bound pmd=$pmd error=rc${rc}:${why:-no_output}"
    [ -n "$lines" ] && echo "$lines"
    continue
  fi
  echo "$lines"
done
