#!/usr/bin/env bash
# Install the Debian packages the integration tests need (real SSH test hosts:
# x86 sshd on loopback, an armhf chroot run under qemu-user, Mesa lavapipe Vulkan, pocl
# OpenCL, and the compilers and tools of engine builds from source)
# and make binfmt_misc usable for qemu-arm.
#
# Idempotent and fast when everything is present: every package is checked with
# `dpkg -s` first, and `apt-get update` / `apt-get install` run only when
# something is missing.
#
# Usage:  bash scripts/install-test-deps.sh [--with-chromium] [--no-binfmt] [--quiet]
#
# Chromium (Debian package `chromium`, used by the HTML-report screenshot test) is
# OPT-IN because it is big (~115 MB download, ~415 MB installed with its
# dependencies): pass --with-chromium or set HARNESS_INSTALL_CHROMIUM=1.
#
# Must run as root (it calls apt-get and mounts binfmt_misc).
set -euo pipefail

WITH_CHROMIUM="${HARNESS_INSTALL_CHROMIUM:-0}"
DO_BINFMT=1
QUIET=0
for arg in "$@"; do
    case "$arg" in
        --with-chromium) WITH_CHROMIUM=1 ;;
        --no-chromium) WITH_CHROMIUM=0 ;;
        --no-binfmt) DO_BINFMT=0 ;;
        --quiet|-q) QUIET=1 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "install-test-deps: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

say() { [ "$QUIET" = 1 ] || echo "install-test-deps: $*"; }

if [ "$(id -u)" != 0 ]; then
    echo "install-test-deps: must run as root (apt-get, mount)" >&2
    exit 1
fi

PACKAGES=(
    openssh-server openssh-client
    qemu-user-static binfmt-support debootstrap
    mesa-vulkan-drivers libvulkan1
    time procps iproute2
    # engine builds from source (harness.builds): native and armhf compilers, CMake, Ninja,
    # ccache; Vulkan headers and glslang for ncnn; an OpenCL loader and pocl's CPU device
    cmake ninja-build ccache g++ crossbuild-essential-armhf
    libvulkan-dev glslang-dev glslang-tools ocl-icd-libopencl1 pocl-opencl-icd
)
if [ "$WITH_CHROMIUM" = 1 ]; then
    PACKAGES+=(chromium)
fi

installed() {
    # dpkg -s succeeds for removed-but-not-purged packages too: check the status line.
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# binfmt_misc must be mounted before qemu-user-static's postinst runs, so that its
# update-binfmts --import actually registers the interpreters.
mount_binfmt() {
    local dir=/proc/sys/fs/binfmt_misc
    if [ -e "$dir/register" ]; then
        return 0
    fi
    if ! grep -qw binfmt_misc /proc/filesystems; then
        echo "install-test-deps: WARNING: this kernel has no binfmt_misc support;" \
             "armv7l binaries cannot run transparently under qemu-arm (the armv7 test host will not work)" >&2
        return 1
    fi
    mkdir -p "$dir" 2>/dev/null || true
    if ! mount -t binfmt_misc binfmt_misc "$dir"; then
        echo "install-test-deps: WARNING: could not mount binfmt_misc on $dir" \
             "(container without privileges?); the armv7 test host will not work" >&2
        return 1
    fi
    say "mounted binfmt_misc on $dir"
}

BINFMT_OK=0
if [ "$DO_BINFMT" = 1 ] && mount_binfmt; then
    BINFMT_OK=1
fi

missing=()
for p in "${PACKAGES[@]}"; do
    installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    # Without an init system, openssh-server's postinst starts no system sshd
    # (invoke-rc.d skips it); the tests start their own sshd's on loopback ports.
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    say "installed: ${missing[*]}"
else
    say "all packages present (${PACKAGES[*]})"
fi

# /usr/bin/time comes from the `time` package; sanity-check the commands we rely on.
for c in /usr/sbin/sshd ssh-keygen /usr/bin/time debootstrap update-binfmts qemu-arm-static; do
    if ! command -v "$c" >/dev/null 2>&1; then
        echo "install-test-deps: ERROR: $c not found after install" >&2
        exit 1
    fi
done

if [ "$BINFMT_OK" = 1 ]; then
    entry=/proc/sys/fs/binfmt_misc/qemu-arm
    if [ ! -e "$entry" ]; then
        # Registered in binfmt-support's database by qemu-user-static; enable it now
        # (it may have been installed while binfmt_misc was not mounted).
        update-binfmts --enable qemu-arm >/dev/null 2>&1 || true
    fi
    if [ -e "$entry" ] && head -n1 "$entry" | grep -q enabled; then
        say "binfmt qemu-arm: $(head -n2 "$entry" | tr '\n' ' ')"
    else
        echo "install-test-deps: WARNING: $entry missing or disabled after" \
             "'update-binfmts --enable qemu-arm'; armv7l binaries will not run" >&2
        exit 1
    fi
fi
say "done"
