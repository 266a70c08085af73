#!/usr/bin/env bash
# Installs Flight's Debian dependencies (when missing), configures and builds.
# Idempotent; needs root (or sudo) only for the install step.
# Usage: scripts/setup.sh            (build dir: ./build, or $FLIGHT_BUILD_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev python3-torch
  # OpenBLAS instead of the reference BLAS libtorch would otherwise use: several
  # times faster for linear and convolution layers. The pthread flavour is safe
  # to call from several threads at once (Flight pins it to one thread per call;
  # the serial flavour is not thread-safe).
  libopenblas0-pthread
  libboost-dev libcurl4-openssl-dev nlohmann-json3-dev libhiredis-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libcli11-dev libspdlog-dev
  libsodium-dev  # secure aggregation: X25519, BLAKE2b, secretbox; ChaCha20 for DP noise
  redis-server dataset-fashion-mnist
  # The Python package (python/, docs/python.md): Debian's python3 with its torch.
  python3-dev pybind11-dev python3-pytest python3-matplotlib
  # Deployment (flight/deploy): launchers on Slurm and OpenMPI, the single-node
  # Slurm its tests start, and the emulated hosts' namespaces, veths and tc caps.
  slurm-wlm munge openmpi-bin libopenmpi-dev iproute2
  # TLS for `flight serve` (Asio/Beast ssl_stream), the token hashes and the
  # AES-128-CTR secure-aggregation masks (AES-NI through EVP).
  libssl-dev openssl
  # libFuzzer targets (scripts/fuzz.sh): clang with its fuzzer runtime.
  clang libfuzzer-14-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Tests start their own redis-server on free loopback ports.
BUILD_DIR="${FLIGHT_BUILD_DIR:-build}"
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$BUILD_DIR" -j "${FLIGHT_JOBS:-2}"
echo "setup: built $BUILD_DIR/bin/flight"

# `import flight` for Debian's /usr/bin/python3: a path file pointing at the
# built package (build/python). Needs root; otherwise use PYTHONPATH.
if [ -d "$BUILD_DIR/python/flight" ]; then
  PY_PKG_DIR="$(cd "$BUILD_DIR/python" && pwd)"
  SITE="$(/usr/bin/python3 -c 'import site; print(site.getsitepackages()[0])')"
  if mkdir -p "$SITE" 2>/dev/null && echo "$PY_PKG_DIR" > "$SITE/flight.pth" 2>/dev/null; then
    echo "setup: /usr/bin/python3 imports flight from $PY_PKG_DIR ($SITE/flight.pth)"
  else
    echo "setup: for Python, export PYTHONPATH=$PY_PKG_DIR"
  fi
fi
