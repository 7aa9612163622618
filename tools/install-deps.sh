#!/bin/sh
# Install the Debian packages shmq needs to build and test, if missing.
# Run as root (or with sudo available); otherwise print the command and fail.
set -e
PKGS="gcc make clang pkg-config perl libisal-dev libcmocka-dev libjansson-dev liblz4-dev zlib1g-dev libzstd-dev libuv1-dev libssl-dev openssl libsystemd-dev libmicrohttpd-dev prometheus valgrind systemtap-sdt-dev libbpf-dev bpftool libraft-dev"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
echo "shmq: installing missing packages:$missing"
if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo"
else
    echo "shmq: cannot install as $(id -un); run as root:" >&2
    echo "    apt-get update && apt-get install -y$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
if ! $SUDO apt-get install -y -qq $missing; then
    echo "shmq: package installation failed; run:" >&2
    echo "    apt-get update && apt-get install -y$missing" >&2
    exit 1
fi
