# Shared by scripts/up and scripts/test: install what a fresh Debian machine lacks.
# Sourced, not run.

SVCNET_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SVCNET_VENV="$SVCNET_ROOT/.venv"

# System packages the project needs (the command each one provides, then the package).
SVCNET_PACKAGES=(
  "nft:nftables"
  "ip:iproute2"
  "conntrack:conntrack"
  "etcd:etcd-server"
  "protoc:protobuf-compiler"
  "dig:bind9-dnsutils"
  "curl:curl"
  "ping:iputils-ping"
  "setpriv:util-linux"
)

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: $1 needs root (it installs system packages and, later, builds network namespaces)" >&2
    exit 1
  fi
}

install_system_packages() {
  local missing=()
  for entry in "${SVCNET_PACKAGES[@]}"; do
    command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
  done
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing system packages: ${missing[*]}"
    need_root "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is missing; install the Rust toolchain (rustup) first" >&2
    exit 1
  fi
  if ! command -v kubectl >/dev/null 2>&1; then
    echo "error: kubectl is missing (the test suite drives the real kubectl 1.27-1.33)" >&2
    exit 1
  fi
}

# A venv with the official Kubernetes Python client, for the client compatibility tests.
ensure_venv() {
  if [ ! -x "$SVCNET_VENV/bin/python" ]; then
    python3 -m venv "$SVCNET_VENV"
  fi
  if ! "$SVCNET_VENV/bin/python" -c 'import kubernetes' >/dev/null 2>&1; then
    "$SVCNET_VENV/bin/pip" install -q --disable-pip-version-check -r "$SVCNET_ROOT/tests/python/requirements.txt"
  fi
}
