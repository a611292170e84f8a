# need-pkgs.sh - sourced by the IPsec benchmark's parts: need_pkgs PKG... installs the Debian packages
# that are not installed yet (idempotent; the benchmarks' peers are not the switch's own dependencies).
need_pkgs() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} = 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  timeout 600 apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y --no-install-recommends "${missing[@]}" >&2
}
