#!/usr/bin/env bash
# FaceLens in today's Home Assistant, not only in CI's 2024.1.6: the same test
# (tests/test_home_assistant.py), with Home Assistant in a Debian 13 root, because current
# Home Assistant needs Python 3.13 and CI's is 3.11. The root is made once with debootstrap
# (about a minute and 200 MB of downloads), Home Assistant is installed into a venv in it and
# started once with its installer on, so that the test's runs (--skip-pip) find every
# requirement; the test then runs it with systemd-nspawn on the host's network.
#
# Not in CI: it needs root, debootstrap and systemd-nspawn, and downloads a few hundred MB.
# Usage: sudo bash scripts/ha-current.sh [HOME_ASSISTANT_VERSION]   (default below)
set -euo pipefail
cd "$(dirname "$0")/.."
HA_VERSION="${1:-2026.2.3}"
CACHE="${FL_TEST_CACHE:-$PWD/.cache}"
ROOT="$CACHE/debian13-ha"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

for tool in debootstrap systemd-nspawn; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
        echo "ha-current.sh: $tool is missing (apt-get install debootstrap systemd-container)" >&2
        exit 2
    }
done
[ "$(id -u)" = 0 ] || { echo "ha-current.sh: run as root (debootstrap, nspawn)" >&2; exit 2; }

if [ ! -f "$ROOT/.debootstrap-complete" ]; then
    rm -rf "$ROOT"
    # python3-dev and gcc: a few of Home Assistant's requirements build from source.
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-dev,gcc,libc6-dev,ca-certificates,ffmpeg \
        trixie "$ROOT" "$MIRROR"
    touch "$ROOT/.debootstrap-complete"
fi
# This machine's resolver and CA bundle (a proxy's CA, where there is one).
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"

if [ "$(cat "$ROOT/opt/ha/.complete" 2>/dev/null)" != "$HA_VERSION" ]; then
    rm -f "$ROOT/opt/ha/.complete"
    chroot "$ROOT" python3 -m venv /opt/ha
    chroot "$ROOT" env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
        /opt/ha/bin/pip install --quiet --disable-pip-version-check \
        "homeassistant==$HA_VERSION"
    warm="$(mktemp -d)"
    .venv/bin/python -m tests.home_assistant "$ROOT" "$HA_VERSION" "$warm"
    rm -rf "$warm"
    echo "$HA_VERSION" > "$ROOT/opt/ha/.complete"
fi
chroot "$ROOT" /opt/ha/bin/python --version
FL_HA_ROOT="$ROOT" .venv/bin/python -m pytest -q -s -p no:cacheprovider \
    tests/test_home_assistant.py
