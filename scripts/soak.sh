#!/usr/bin/env bash
# Soak test (not for CI): a release parleyd under a fixed mixed load for a while, with its memory,
# file descriptors and delivery latency sampled into a CSV, then a verdict on whether memory and
# descriptors stayed flat (first third of the run against the last).
#
#   scripts/soak.sh [minutes]          (default 30)
#
# The load (scripts/soak_load.py, Python standard library only): 100 clients that stay connected
# in 10 channels (3 each) sending 100 messages/s in total, 1 in 10 private, every delivery checked;
# plus 10 clients that connect, fetch history, join, talk, part and quit in a loop. Knobs go to
# the driver through SOAK_ARGS, e.g. SOAK_ARGS="--stable 300 --rate 300". Loopback only.
# PARLEYD=path soaks a given binary without building.
# Output: target/soak/<time>/{soak.csv,parleyd.log,parley.toml}.
set -euo pipefail

minutes="${1:-30}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# PARLEYD=/path/to/parleyd soaks an already built binary instead of building one.
parleyd="${PARLEYD:-$root/target/release/parleyd}"
if [ -z "${PARLEYD:-}" ]; then
    cargo build --release --bin parleyd
    if cargo metadata --format-version 1 --no-deps 2>/dev/null | grep -q '"name":"parley-bench"'; then
        # Built so it is ready for a comparison run; the soak itself uses the driver below.
        cargo build --release -p parley-bench || echo "soak.sh: parley-bench did not build; carrying on" >&2
    fi
fi

out="$root/target/soak/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out/data"
# A free loopback port: bind to 0 and give it back.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$out/parley.toml" <<TOML
[server]
data_dir = "$out/data"

[listen]
plain = ["127.0.0.1:$port"]
tls = []

[web]
listen = []

[accounts]
require_login = false

[log]
level = "warn"
TOML

"$parleyd" --config "$out/parley.toml" 2> "$out/parleyd.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

# Wait (bounded) until the port answers.
for _ in $(seq 1 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2).close()" 2>/dev/null; then
        break
    fi
    kill -0 "$server" 2>/dev/null || { echo "soak.sh: parleyd exited; see $out/parleyd.log" >&2; exit 1; }
    sleep 0.1
done

status=0
# shellcheck disable=SC2086
python3 "$root/scripts/soak_load.py" --port "$port" --pid "$server" --minutes "$minutes" \
    --csv "$out/soak.csv" ${SOAK_ARGS:-} || status=$?
kill -0 "$server" 2>/dev/null || { echo "soak.sh: parleyd died during the run" >&2; status=1; }
echo "soak.sh: samples in $out/soak.csv, server log in $out/parleyd.log"
exit "$status"
