#!/usr/bin/env bash
# Run the one-machine cluster demo of docs/cluster.md exactly as the page writes it (its first
# two ```sh blocks: start, then stop and clean up), with a built parleyd instead of the apt-get
# and cargo lines, and check what the page promises: three nodes join, every listener is on
# 127.0.0.1 only, a channel line and a private message cross nodes (one over TLS), and /healthz
# answers. Then the page's cleanup runs, whatever happened.
#
# Needs root, Debian's postgresql (the demo makes and drops role and database `parley` in the
# running cluster; it never restarts it), nats-server, openssl, curl and python3; and ports 4222,
# 6661-6663, 6691-6693, 8441-8443, 9101-9103 free.
#
#   bash scripts/check-cluster-demo.sh [path/to/parleyd]     (default: target/release/parleyd)
set -euo pipefail
cd "$(dirname "$0")/.."
binary="${1:-target/release/parleyd}"
[ -x "$binary" ] || { echo "no parleyd at $binary; build it or name it" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The page's blocks: the demo's apt-get and cargo build lines left out, its binary path ours.
python3 - "$binary" "$work" <<'PY'
import re, sys
binary, work = sys.argv[1], sys.argv[2]
page = open("docs/cluster.md").read()
section = page[page.index("## A three-node cluster on one machine"):page.index("## A cluster on several machines")]
demo, cleanup = re.findall(r"^```sh\n(.*?)^```$", section, re.S | re.M)[:2]
kept = [l for l in demo.splitlines() if not l.startswith(("apt-get ", "cargo build "))]
open(f"{work}/demo.sh", "w").write("\n".join(kept).replace("./target/release/parleyd", binary) + "\n")
open(f"{work}/cleanup.sh", "w").write(cleanup)
PY

for port in 4222 6661 6662 6663 6691 6692 6693 8441 8442 8443 9101 9102 9103; do
  if ss -ltn "sport = :$port" | grep -q LISTEN; then echo "port $port is taken" >&2; exit 2; fi
done

status=0
bash -e "$work/demo.sh" || status=$?
if [ "$status" = 0 ]; then
  for n in 1 2 3; do
    grep -q "joined the cluster node=n$n" "/var/tmp/parley-n$n.log" || { echo "n$n did not join" >&2; status=1; }
    [ "$(curl -s "http://127.0.0.1:910$n/healthz")" = ok ] || { echo "n$n /healthz is not ok" >&2; status=1; }
  done
  if ss -ltnp | grep -E '"(parleyd|nats-server)"' | grep -v ' 127\.0\.0\.1:' >&2; then
    echo "a listener of the demo is not on 127.0.0.1 (above)" >&2; status=1
  fi
  python3 - <<'PY' || status=1
import socket, ssl, time
def connect(port, nick, tls=False):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    if tls:
        ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    s.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode())
    return [s, b""]
def wait_for(c, text, within=15):
    end = time.time() + within
    while time.time() < end:
        while b"\r\n" in c[1]:
            line, c[1] = c[1].split(b"\r\n", 1)
            line = line.decode(errors="replace")
            if line.startswith("PING"): c[0].sendall(("PONG" + line[4:] + "\r\n").encode())
            if text in line: return line
        try:
            data = c[0].recv(4096)
        except socket.timeout:
            continue
        if not data: break
        c[1] += data
    raise SystemExit(f"never saw {text!r}")
alice, bob, carol = connect(6661, "alice"), connect(6662, "bob"), connect(6693, "carol", tls=True)
for c in (alice, bob, carol): wait_for(c, " 366 ")  # each in #lobby
alice[0].sendall(b"PRIVMSG #lobby :hello from n1\r\n")
wait_for(bob, "PRIVMSG #lobby :hello from n1"); wait_for(carol, "PRIVMSG #lobby :hello from n1")
# carol's node has seen alice's line, so it knows alice now.
carol[0].sendall(b"PRIVMSG alice :from n3 over TLS\r\n")
wait_for(alice, "PRIVMSG alice :from n3 over TLS")
for c in (alice, bob, carol): c[0].sendall(b"QUIT :checked\r\n")
print("the demo's nodes carried a channel line and a private message across nodes")
PY
fi
if [ "$status" != 0 ]; then
  for log in /var/tmp/parley-nats.log /var/tmp/parley-n1.log; do
    [ -f "$log" ] && { echo "== the end of $log" >&2; grep -v '^ ' "$log" | tail -15 >&2; }
  done
fi
bash "$work/cleanup.sh" || { echo "the page's cleanup failed" >&2; status=1; }
[ "$status" = 0 ] && echo "docs/cluster.md demo: ok"
exit "$status"
