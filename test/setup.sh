#!/usr/bin/env bash
# Installs what building and testing Causeway needs on a fresh Debian 12 machine, as root.
# Idempotent and quiet: it only speaks when it changes something.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*" >&2; }

# Debian packages: the eBPF toolchain, the loader's libraries, the fault injectors.
APT_PACKAGES=(clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev make gcc binutils pkg-config
  nftables bpftrace iproute2 util-linux)

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

npm_install() {
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    say "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
    touch node_modules
  fi
}

mount_tracefs() {
  if ! mountpoint -q /sys/kernel/tracing; then
    say "mounting tracefs at /sys/kernel/tracing"
    mount -t tracefs tracefs /sys/kernel/tracing
  fi
}

# NVIDIA's own CUDA runtime (PyPI wheel): proves the probes resolve the real library's symbols.
NVIDIA_RUNTIME=nvidia-cuda-runtime-cu12==12.9.79
NVIDIA_DIR=test/fixtures/build/nvidia
nvidia_runtime() {
  [ -f "$NVIDIA_DIR/libcudart.so.12" ] && return
  say "fetching $NVIDIA_RUNTIME"
  local tmp
  tmp=$(mktemp -d)
  pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$NVIDIA_RUNTIME"
  python3 -m zipfile -e "$tmp"/*.whl "$tmp/wheel"
  mkdir -p "$NVIDIA_DIR"
  cp "$tmp/wheel/nvidia/cuda_runtime/lib/libcudart.so.12" "$NVIDIA_DIR/"
  rm -rf "$tmp"
}

apt_install "${APT_PACKAGES[@]}"
npm_install
mount_tracefs
nvidia_runtime
