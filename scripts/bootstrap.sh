#!/usr/bin/env bash
# Make this machine ready for lwtui: system packages, then .venv with lwtui in it.
#
# Idempotent and silent when there is nothing to do (a few checks, well under two
# seconds), so every make target can run it first. It installs only what is
# missing: apt packages (running `apt-get update` only then), kernel headers only
# when BCC has none to use (lwtui/kernel/headers.py decides, and merges an installed
# Debian pair into a private tree itself, so nothing is ever written to /lib/modules), the venv
# only when it is missing or cannot import BCC, and lwtui only when
# pyproject.toml changed since the last install. `--bench` also wants iperf3 and tcpdump.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
PY=/usr/bin/python3
VENV=.venv
WITH_BENCH=
[ "${1:-}" != --bench ] || WITH_BENCH=1
STAMP=$VENV/.lwtui-installed

say() { echo "bootstrap: $*" >&2; }
die() { say "$*"; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 && exec sudo -- "$0" "$@"
    die "lwtui needs root (BPF programs, routes, namespaces) and sudo is not installed: run this as root"
fi

# Usable kernel headers for BCC: asked of lwtui.kernel.headers itself (the search
# lwtui makes at run time), from this tree by the system Python, before any venv.
have_headers() {
    [ -x "$PY" ] && PYTHONPATH="$root" "$PY" -m lwtui.kernel.headers --check >/dev/null 2>&1
}

# The running kernel's own headers when the archive has them, else the newest.
headers_package() {
    if apt-cache show "linux-headers-$(uname -r)" >/dev/null 2>&1; then
        echo "linux-headers-$(uname -r)"
    else
        echo "linux-headers-$DEB_ARCH"
    fi
}

missing_packages() {
    command -v ip >/dev/null 2>&1 || echo iproute2
    command -v curl >/dev/null 2>&1 || echo curl
    command -v ping >/dev/null 2>&1 || echo iputils-ping
    command -v sysctl >/dev/null 2>&1 || echo procps
    # The tests check C struct layouts with a small program and drive the dashboard in tmux.
    command -v gcc >/dev/null 2>&1 || echo gcc
    command -v tmux >/dev/null 2>&1 || echo tmux
    [ -e /usr/include/stdio.h ] || echo libc6-dev
    [ -z "$WITH_BENCH" ] || command -v iperf3 >/dev/null 2>&1 || echo iperf3
    [ -z "$WITH_BENCH" ] || command -v tcpdump >/dev/null 2>&1 || echo tcpdump
    [ -x "$PY" ] || echo python3
    "$PY" -c 'import bcc' >/dev/null 2>&1 || echo python3-bpfcc
    "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1 || echo python3-venv
    # Without python3 yet, the headers are asked about once it is installed (below).
    [ ! -x "$PY" ] || have_headers || headers_package
}

install_packages() {
    command -v apt-get >/dev/null 2>&1 || die "missing $*; install them with your distribution's \
package manager (Fedora: python3-bcc kernel-devel iproute curl iputils procps-ng gcc tmux; \
Arch: python-bcc linux-headers iproute2 curl iputils procps-ng gcc tmux), see README.md"
    local log
    log=$(mktemp /tmp/lwtui-bootstrap.XXXXXX)
    say "installing $* (log: $log)"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "$@"; } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "apt-get failed (full log: $log)"
    fi
    rm -f "$log"
}

venv_ok() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import bcc' >/dev/null 2>&1
}

make_venv() {
    say "creating $VENV from $PY (with system site packages, for BCC)"
    rm -rf "$VENV"
    "$PY" -m venv --system-site-packages "$VENV" || die "cannot create $VENV"
}

install_lwtui() {
    local want=$1 log
    log=$(mktemp /tmp/lwtui-pip.XXXXXX)
    say "installing lwtui and its test dependencies into $VENV (log: $log)"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e '.[test]' >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "pip install failed (full log: $log)"
    fi
    rm -f "$log"
    echo "$want" >"$STAMP"
}

if command -v dpkg >/dev/null 2>&1; then
    DEB_ARCH=$(dpkg --print-architecture)
else
    case "$(uname -m)" in aarch64) DEB_ARCH=arm64 ;; *) DEB_ARCH=amd64 ;; esac
fi

mapfile -t missing < <(missing_packages)
[ ${#missing[@]} -eq 0 ] || install_packages "${missing[@]}"
"$PY" -c 'import bcc' >/dev/null 2>&1 || die "BCC still not importable by $PY after the install"
have_headers || install_packages "$(headers_package)"
have_headers || die "still no kernel headers for BCC after the install: see \`lwtui doctor\`"

venv_ok || make_venv
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x "$VENV/bin/lwtui" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    install_lwtui "$want"
fi
