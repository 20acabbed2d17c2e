#!/usr/bin/env bash
# See edgeagent work: a device key on a PKCS#11 token, TLS 1.3 to a stand-in
# Cumulocity, and a message crossing the bridge both ways.
#
#   bash scripts/demo.sh
#
# From nothing on Debian 12: runs scripts/setup.sh (apt packages through sudo
# if not root, and a virtual environment: .venv or $EDGEAGENT_VENV), then,
# in a fresh temporary directory that is removed at the end:
#
#   1. a SoftHSM2 token with an ECDSA P-256 key generated ON the token;
#   2. a local test CA: the stand-in cloud's server certificate, a client
#      certificate for the "cloud application", and the device certificate
#      for the token key's public half;
#   3. two mosquitto brokers on free loopback ports: the local broker
#      (plain) and a stand-in cloud (TLS 1.3, client certificates required);
#   4. `agent config set ...`, `agent connect c8y`;
#   5. a message device -> cloud (local c8y/s/us -> cloud s/us) and one
#      cloud -> device (cloud s/ds -> local c8y/s/ds);
#   6. `agent disconnect c8y` and a summary.
#
# Every command a user would type is printed before it runs ("$ ...").
# Exits 0 only if both messages arrived. Brokers and the bridge are stopped
# and the directory removed even when a step fails (EDGEAGENT_DEMO_KEEP=1
# keeps the directory for a look at the logs).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EDGEAGENT_VENV:-$repo/.venv}"

module=/usr/lib/softhsm/libsofthsm2.so
token_label=demo-token
user_pin=123456 # demo values: a real token gets its own PINs
so_pin=12345678
key_label=device-key
key_id=01
device_cn=demo-device
wait_seconds=10 # how long each message may take to cross the bridge

# --- printing ----------------------------------------------------------------

# Bold headings on a terminal only: CI logs and test output stay plain text.
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
section() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
note() { printf '   %s\n' "$*"; }
die() {
    printf '\ndemo.sh: %s\n' "$*" >&2
    exit 1
}

# A command line the way a user would type it: plain words stay bare,
# anything else is single-quoted (a PKCS#11 URI has ';').
quoted() {
    local word out=()
    for word in "$@"; do
        if [[ "$word" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
            out+=("$word")
        else
            out+=("'${word//\'/\'\\\'\'}'")
        fi
    done
    printf '%s' "${out[*]}"
}
show() { printf '$ %s\n' "$(quoted "$@")"; }
run() {
    show "$@"
    "$@"
}

# --- clean-up, on every exit -------------------------------------------------

work=""
broker_pids=()
helper_pids=()

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [ -n "$work" ] && [ -d "$work" ]; then
        # The bridge runs detached: stop it before its brokers, whatever failed.
        if [ -f "$work/run/bridge-c8y.pid" ]; then
            agent --config-dir "$work/etc-agent" disconnect c8y >/dev/null 2>&1
            [ -f "$work/run/bridge-c8y.pid" ] && kill "$(cat "$work/run/bridge-c8y.pid")" 2>/dev/null
        fi
        local pid
        for pid in "${helper_pids[@]}" "${broker_pids[@]}"; do
            kill "$pid" 2>/dev/null
        done
        for pid in "${helper_pids[@]}" "${broker_pids[@]}"; do
            wait "$pid" 2>/dev/null
        done
        if [ "$rc" -ne 0 ]; then
            show_logs
        fi
        if [ "${EDGEAGENT_DEMO_KEEP:-}" = 1 ]; then
            printf 'demo.sh: kept %s\n' "$work" >&2
        else
            rm -rf "$work"
        fi
    fi
    if [ "$rc" -ne 0 ]; then
        printf '\ndemo.sh: FAILED (exit %s)\n' "$rc" >&2
    fi
    exit "$rc"
}

# On failure the logs say why; print their ends before they are removed.
show_logs() {
    local log
    for log in "$work"/log/*.log "$work"/brokers/*/mosquitto.log "$work"/brokers/*/mosquitto.out; do
        [ -s "$log" ] || continue
        printf '\n--- %s (last 20 lines) ---\n' "${log#"$work"/}" >&2
        tail -n 20 "$log" >&2
    done
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers -----------------------------------------------------------------

free_port() {
    python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Wait (up to $2 seconds) until command "${@:3}" succeeds; $1 names what we wait for.
wait_until() {
    local what="$1" seconds="$2"
    shift 2
    local tries=$((seconds * 20))
    until "$@"; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || return 1
        sleep 0.05
    done
}

broker_running() { grep -q 'mosquitto version .* running' "$1/mosquitto.log" 2>/dev/null; }

# start_broker NAME LISTENER_LINES...: mosquitto on a free loopback port;
# prints the port. The port is free when picked but another process may take
# it before mosquitto binds: pick again then.
start_broker() {
    local name="$1" dir="$work/brokers/$1" attempt port pid
    shift
    mkdir -p "$dir"
    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        {
            echo "per_listener_settings false"
            echo "persistence false"
            echo "log_dest file $dir/mosquitto.log"
            # One type per line: mosquitto reads only the first word of each.
            printf 'log_type %s\n' error warning notice information subscribe
            echo "connection_messages true"
            # The default (1000) silently drops messages, QoS 1 included.
            echo "max_queued_messages 0"
            # As root mosquitto drops to user "mosquitto", which cannot read
            # our private work directory.
            [ "$(id -u)" -eq 0 ] && echo "user root"
            echo "listener $port 127.0.0.1"
            printf '%s\n' "$@"
        } >"$dir/mosquitto.conf"
        rm -f "$dir/mosquitto.log"
        mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.out" 2>&1 &
        pid=$!
        if wait_until "$name broker" 10 broker_running "$dir"; then
            broker_pids+=("$pid")
            BROKER_PORT="$port"
            return 0
        fi
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        grep -q 'Address already in use' "$dir/mosquitto.out" "$dir/mosquitto.log" 2>/dev/null \
            || die "the $name broker did not start: $(cat "$dir/mosquitto.out")"
    done
    die "no free port for the $name broker after 5 attempts"
}

# A subscriber is useful only once the broker has its SUBSCRIBE: with
# "log_type subscribe" mosquitto logs "<client id> <qos> <topic>".
subscribed() { grep -q " $2 [0-2] $3\$" "$work/brokers/$1/mosquitto.log" 2>/dev/null; }

# --- 0. set-up ----------------------------------------------------------------

# AGENT_* variables override agent.toml (e.g. AGENT_C8Y_URL): a user's own
# must not point the demo at their real cloud or token.
while read -r name; do
    unset "$name"
done < <(compgen -e | grep '^AGENT_' || true)

section "set-up: apt packages and the virtual environment (scripts/setup.sh)"
bash "$repo/scripts/setup.sh"
export PATH="$venv/bin:$PATH"
command -v agent >/dev/null || die "agent not found in $venv/bin after setup"

work="$(mktemp -d "${TMPDIR:-/tmp}/edgeagent-demo.XXXXXX")"
mkdir -p "$work/softhsm/tokens" "$work/pki" "$work/etc-agent"
started=$SECONDS
note "work directory: $work (removed at the end)"

# --- 1. a token and a key that never leaves it --------------------------------

section "1. a SoftHSM2 token, and an ECDSA P-256 key generated on it"
# A private SoftHSM2 configuration: the demo's token lives in the work
# directory and disappears with it; the machine's tokens are not touched.
export SOFTHSM2_CONF="$work/softhsm/softhsm2.conf"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$work/softhsm/tokens" >"$SOFTHSM2_CONF"
show export SOFTHSM2_CONF="$SOFTHSM2_CONF"
run softhsm2-util --init-token --free --label "$token_label" --pin "$user_pin" --so-pin "$so_pin"
run pkcs11-tool --module "$module" --token-label "$token_label" --login --pin "$user_pin" \
    --keypairgen --key-type EC:prime256v1 --label "$key_label" --id "$key_id"

section "the key's PKCS#11 URI, as p11tool prints it"
run p11tool --provider "$module" --list-privkeys --login --set-pin "$user_pin" \
    | tee "$work/p11tool.out"
# What a user copies from that output is what we configure: no retyping.
key_uri="$(sed -n 's/^[[:space:]]*URL: //p' "$work/p11tool.out" | head -n 1)"
[ -n "$key_uri" ] || die "p11tool printed no key URI"

# --- 2. a local CA ------------------------------------------------------------

section "2. a local test CA, and a device certificate for the token key"
# Only the public half can be read from the token.
run pkcs11-tool --module "$module" --token-label "$token_label" \
    --read-object --type pubkey --id "$key_id" --output-file "$work/pki/device-public.der"
run python "$repo/scripts/demo_pki.py" "$work/pki" \
    --device-public-key "$work/pki/device-public.der" --device-cn "$device_cn"

# --- 3. brokers ---------------------------------------------------------------

section "3. two mosquitto brokers on free loopback ports"
start_broker local "allow_anonymous true"
local_port="$BROKER_PORT"
note "local broker:      127.0.0.1:$local_port (plain MQTT, what device apps talk to)"
start_broker cloud \
    "cafile $work/pki/ca.pem" \
    "certfile $work/pki/server.pem" \
    "keyfile $work/pki/server.key" \
    "tls_version tlsv1.3" \
    "require_certificate true" \
    "use_identity_as_username true"
cloud_port="$BROKER_PORT"
note "stand-in cloud:    localhost:$cloud_port (TLS 1.3 only, client certificate required)"
# The cloud's side of `agent connect`'s check: like the platform, it answers
# an empty s/uat with 71,<token> on s/dat (integration/standin).
(cd "$repo" && exec python -m integration.standin c8y --host localhost --port "$cloud_port" \
    --cafile "$work/pki/ca.pem" --cert "$work/pki/cloud-app.pem" --key "$work/pki/cloud-app.key" \
    >"$work/brokers/cloud/responder.out" 2>&1) &
helper_pids+=($!)
wait_until "the stand-in Cumulocity's responder" 15 grep -q '^ready' "$work/brokers/cloud/responder.out" \
    || die "the stand-in responder did not start: $(cat "$work/brokers/cloud/responder.out")"
note "stand-in responder: answers s/uat with 71,<token> on s/dat"

# --- 4. configure and connect -------------------------------------------------

section "4. configure the agent and connect"
conf=(agent --config-dir "$work/etc-agent")
run "${conf[@]}" config set device.cryptoki.mode module
run "${conf[@]}" config set device.cryptoki.module_path "$module"
printf '%s\n' "$user_pin" | run "${conf[@]}" config set device.cryptoki.pin -
run "${conf[@]}" config set device.key_uri "$key_uri"
run "${conf[@]}" config set device.cert_path "$work/pki/device.pem"
run "${conf[@]}" config set c8y.url "localhost:$cloud_port"
run "${conf[@]}" config set c8y.root_cert_path "$work/pki/ca.pem"
run "${conf[@]}" config set mqtt.client.host 127.0.0.1
run "${conf[@]}" config set mqtt.client.port "$local_port"
run "${conf[@]}" config set run.path "$work/run"
run "${conf[@]}" config set logs.path "$work/log"
echo
run "${conf[@]}" connect c8y

# --- 5. messages both ways ----------------------------------------------------

cloud_tls=(--cafile "$work/pki/ca.pem" --cert "$work/pki/cloud-app.pem" --key "$work/pki/cloud-app.key")

# expect BROKER CLIENT_ID TOPIC OUTFILE MOSQUITTO_SUB_ARGS...: a subscriber
# waiting for one message, in the background; returns once it is subscribed.
expect() {
    local broker="$1" client="$2" topic="$3" out="$4"
    shift 4
    local sub=(mosquitto_sub "$@" -i "$client" -t "$topic" -q 1 -C 1 -W "$wait_seconds" -v)
    printf '$ %s &\n' "$(quoted "${sub[@]}")"
    "${sub[@]}" >"$out" &
    helper_pids+=("$!")
    EXPECT_PID=$!
    wait_until "$client's subscription" 10 subscribed "$broker" "$client" "$topic" \
        || die "$client did not subscribe to $topic on the $broker broker"
}

# received PID OUTFILE WHAT: wait for the subscriber; fail if nothing came.
received() {
    local pid="$1" out="$2" what="$3"
    if ! wait "$pid" || [ ! -s "$out" ]; then
        die "$what: nothing arrived within $wait_seconds s"
    fi
    note "received: $(cat "$out")"
}

section "5a. device -> cloud: local c8y/s/us crosses to the cloud as s/us"
expect cloud demo-cloud-app s/us "$work/up.txt" -h localhost -p "$cloud_port" "${cloud_tls[@]}"
up_pid=$EXPECT_PID
run mosquitto_pub -h 127.0.0.1 -p "$local_port" -t c8y/s/us -q 1 -m '200,c8y_Temperature,T,25'
received "$up_pid" "$work/up.txt" "device -> cloud"

section "5b. cloud -> device: cloud s/ds crosses to the local broker as c8y/s/ds"
expect local demo-device-app c8y/s/ds "$work/down.txt" -h 127.0.0.1 -p "$local_port"
down_pid=$EXPECT_PID
run mosquitto_pub -h localhost -p "$cloud_port" "${cloud_tls[@]}" -t s/ds -q 1 -m "510,$device_cn"
received "$down_pid" "$work/down.txt" "cloud -> device"

section "bridge health (retained on the local broker)"
run mosquitto_sub -h 127.0.0.1 -p "$local_port" -t agent/bridge/c8y/health -C 1 -W 5

section "what the bridge is doing: agent status (exit 0: every configured cloud is up)"
run "${conf[@]}" status c8y

# --- 6. disconnect and summary ------------------------------------------------

section "6. disconnect"
run "${conf[@]}" disconnect c8y
elapsed=$((SECONDS - started))

section "summary"
note "key URI used:   $key_uri"
note "device id:      $device_cn (the device certificate's CN)"
note "device->cloud:  c8y/s/us -> s/us      ok"
note "cloud->device:  s/ds -> c8y/s/ds      ok"
note "the stand-in cloud saw the device log in with its certificate:"
grep -m 1 "New client connected .* as $device_cn " "$work/brokers/cloud/mosquitto.log" \
    | sed 's/^[0-9]*: /     /'
note "the private key never left the token; its attributes, as pkcs11-tool lists them:"
pkcs11-tool --module "$module" --token-label "$token_label" --login --pin "$user_pin" \
    --list-objects --type privkey 2>/dev/null | sed 's/^/     /'
note "demo done in ${elapsed} s (after set-up); brokers stop and $work is removed now"
