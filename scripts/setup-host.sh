#!/usr/bin/env bash
# Installs and checks what Quire needs on a Debian host: hwloc and udev
# headers with pkg-config (for hwlocality), util-linux (taskset, for tests),
# io_uring and enough locked memory (for glommio), and python3's msgpack
# module (for the Python client's tests). Safe to run again.
set -euo pipefail

need=()
for pkg in libhwloc-dev libudev-dev pkg-config util-linux; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "setup-host: installing ${need[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup-host: need root (or sudo) to install ${need[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The Python client's tests (clients/python) need msgpack from PyPI.
if command -v python3 >/dev/null; then
  python3 -c 'import msgpack' 2>/dev/null || {
    echo "setup-host: installing the msgpack Python module (clients/python)"
    python3 -m pip install --quiet --disable-pip-version-check 'msgpack>=1.0' 2>&1 | grep -v "Running pip as the 'root' user" >&2 || true
    python3 -c 'import msgpack' || { echo "setup-host: could not install msgpack for python3" >&2; exit 1; }
  }
else
  echo "setup-host: python3 not found; the Python client's tests need it" >&2
  exit 1
fi

command -v cargo >/dev/null || { echo "setup-host: cargo not found; install the Rust toolchain (rustup) first" >&2; exit 1; }

if [ -r /proc/sys/kernel/io_uring_disabled ] && [ "$(cat /proc/sys/kernel/io_uring_disabled)" = "2" ]; then
  echo "setup-host: io_uring is disabled (kernel.io_uring_disabled=2); run: sysctl -w kernel.io_uring_disabled=0" >&2
  exit 1
fi

# glommio needs 512 KiB of locked memory per executor; callers source this
# script's advice by raising the soft limit in their own shell (see test.sh).
memlock=$(ulimit -l)
if [ "$memlock" != "unlimited" ] && [ "$memlock" -lt 4096 ]; then
  echo "setup-host: warning: ulimit -l is ${memlock} KiB; nodes with many shards need 512 KiB each (ulimit -l unlimited)" >&2
fi
