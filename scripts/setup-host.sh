#!/usr/bin/env bash
# Installs and checks what Quire needs on a Debian host: hwloc and udev
# headers with pkg-config (for hwlocality), util-linux (taskset, for tests),
# io_uring and enough locked memory (for glommio). Safe to run again.
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
