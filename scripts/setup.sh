#!/usr/bin/env bash
# Install everything edgeagent's tests and demo need, on Debian 12 (bookworm).
#
#   bash scripts/setup.sh
#
# - apt packages: mosquitto (local broker and stand-in cloud), SoftHSM2 and a
#   software TPM 2.0 behind tpm2-pkcs11 (real PKCS#11 tokens), opensc and
#   gnutls-bin (pkcs11-tool, p11tool: what users read key URIs with);
# - a virtual environment (.venv, or $EDGEAGENT_VENV) with edgeagent
#   installed editable, plus its test tools.
#
# Safe to run again: apt is skipped when every package is already installed,
# pip when pyproject.toml has not changed since the last install. Runs as
# root, or through sudo otherwise. Works without a terminal (CI).
#
# The mosquitto package may start a system broker on port 1883; it is left
# alone: tests and the demo start their own brokers on free ports.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EDGEAGENT_VENV:-$repo/.venv}"
python="${PYTHON:-python3}"

packages=(
    mosquitto mosquitto-clients
    softhsm2 opensc gnutls-bin
    swtpm swtpm-tools tpm2-abrmd libtss2-tcti-tabrmd0 libtpm2-pkcs11-1 libtpm2-pkcs11-tools tpm2-tools dbus
    openssl ca-certificates
    python3 python3-venv
)

say() { printf '==> %s\n' "$*"; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        # -n: never wait for a password nobody can type (CI has no stdin).
        if [ -t 0 ]; then sudo "$@"; else sudo -n "$@"; fi
    else
        die "need root for: $* (run as root or install sudo)"
    fi
}

missing_packages() {
    local p
    for p in "${packages[@]}"; do
        if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
            printf '%s\n' "$p"
        fi
    done
}

# --- system packages ---------------------------------------------------------
command -v dpkg-query >/dev/null 2>&1 || die "this script needs a Debian-based system (apt/dpkg)"
mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${packages[@]}"
    mapfile -t missing < <(missing_packages)
    [ "${#missing[@]}" -eq 0 ] || die "apt did not install: ${missing[*]}"
else
    say "system packages already installed"
fi

# --- Python virtual environment ----------------------------------------------
"$python" - <<'EOF' || die "$python is older than 3.11 (set PYTHON=python3.11 or newer)"
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
EOF

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    # Never delete what we cannot rebuild: a venv of another user's stays theirs.
    if [ -e "$venv" ] && [ ! -w "$venv" ]; then
        echo "setup.sh: $venv exists but is not writable by $(id -un); set EDGEAGENT_VENV to a path of your own" >&2
        exit 1
    fi
    say "creating virtual environment $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi

stamp="$venv/.edgeagent-installed"
want="$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
    || ! "$venv/bin/python" -c 'import edgeagent' >/dev/null 2>&1; then
    say "installing edgeagent (editable) with test tools into $venv"
    pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input)
    "${pip[@]}" install -q --upgrade pip
    "${pip[@]}" install -q --progress-bar off -e "$repo[test]"
    printf '%s\n' "$want" >"$stamp"
else
    say "virtual environment up to date ($venv)"
fi

say "setup done; activate with: source ${venv#"$repo/"}/bin/activate"
