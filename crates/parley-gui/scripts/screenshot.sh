#!/usr/bin/env bash
# Takes a screenshot of parley-gui logged in to a real parleyd, under Xvfb with Mesa's software
# OpenGL (no GPU needed). It builds both binaries, starts parleyd on loopback ports with a temp
# data dir, adds the accounts alice and bob, has bob chat over raw IRC, starts the GUI logged in
# as alice over TLS (pinned to the server's fingerprint) and saves the picture.
#
#   crates/parley-gui/scripts/screenshot.sh [OUTPUT.png] [light|dark]
#
# Needs: apt-get install -y xvfb libgl1-mesa-dri libegl1 libxkbcommon-x11-0 imagemagick
# Not part of `cargo test`: it needs a display server.
set -euo pipefail
cd "$(dirname "$0")/../../.."

out="${1:-docs/parley-gui.png}"
theme="${2:-light}"
plain_port="${PARLEY_SHOT_PLAIN_PORT:-16667}"
tls_port="${PARLEY_SHOT_TLS_PORT:-16697}"
display="${PARLEY_SHOT_DISPLAY:-:99}"

for tool in Xvfb import; do
    command -v "$tool" >/dev/null || {
        echo "screenshot.sh: $tool is missing; apt-get install -y xvfb imagemagick libgl1-mesa-dri libegl1 libxkbcommon-x11-0" >&2
        exit 1
    }
done

cargo build --quiet --bin parleyd --bin parley-gui
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
parleyd="$target_dir/debug/parleyd"
gui="$target_dir/debug/parley-gui"

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/parley.toml" <<EOF
[server]
data_dir = "$work/data"
[listen]
plain = ["127.0.0.1:$plain_port"]
tls = ["127.0.0.1:$tls_port"]
[web]
listen = []
EOF
echo 'alice-password' | "$parleyd" -c "$work/parley.toml" users add alice --password-stdin
echo 'bob-password' | "$parleyd" -c "$work/parley.toml" users add bob --password-stdin
fingerprint="$("$parleyd" -c "$work/parley.toml" cert show 2>/dev/null | sed -n 's/^SHA-256 fingerprint: //p')"

"$parleyd" -c "$work/parley.toml" >"$work/parleyd.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$plain_port") 2>/dev/null && break
    sleep 0.2
done

# bob: a raw IRC session on the plain port (loopback logins are allowed in plain text).
exec 5<>"/dev/tcp/127.0.0.1/$plain_port"
cat <&5 >"$work/bob.log" &
pids+=($!)
say() { printf '%s\r\n' "$@" >&5; }
say "PASS bob:bob-password" "NICK bob" "USER bob 0 * :Bob"
sleep 1
say "JOIN #rust" "TOPIC #rust :Rust talk, be nice" "JOIN #design"
sleep 0.5
say "PRIVMSG #rust :morning all - the 0.3 release is tagged" "PRIVMSG #design :new icons are up for review"

printf 'alice-password\n' >"$work/password"
Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
pids+=($!)
sleep 1
DISPLAY="$display" LIBGL_ALWAYS_SOFTWARE=1 PARLEY_CONFIG_DIR="$work/config" \
    "$gui" --server 127.0.0.1 --port "$tls_port" --fingerprint "$fingerprint" \
    --user alice --password-file "$work/password" --join '#rust' --join '#design' \
    --theme "$theme" --size 1280x800 >"$work/gui.log" 2>&1 &
pids+=($!)
sleep 4
say "PRIVMSG #rust :alice: can you review the reconnect patch?" "PRIVMSG #rust :$(printf '\001ACTION waves\001')"
sleep 0.5
say "PRIVMSG alice :lunch at noon?"
sleep 3

mkdir -p "$(dirname "$out")"
DISPLAY="$display" import -window root "$out"
echo "screenshot: $out"
if ! grep -q . "$work/bob.log"; then
    echo "screenshot.sh: bob got no answer from parleyd; see the server log:" >&2
    cat "$work/parleyd.log" >&2
fi
