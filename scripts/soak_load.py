#!/usr/bin/env python3
"""Soak load for parleyd: a fixed mixed load on loopback, sampled into a CSV.

Stable clients stay connected the whole run: they sit in a few channels and send channel and
private messages at a fixed total rate, and every delivery to them is checked (each message
carries its id and send time, so latency is measured end to end). Churn clients come and go:
they connect, ask for history, join and part channels and quit, over and over, which is what
exposes leaks of per-connection state. Every few seconds the server's RSS and open file
descriptors are read from /proc and written with the interval's latency to the CSV. At the end
the first and last thirds of the run are compared.

Standard library only. Every loop is bounded by the run's end time; traffic goes to loopback.
"""

import argparse
import asyncio
import csv
import os
import random
import statistics
import sys
import time

TAG = "soak"


def proc_sample(pid):
    """(RSS in KiB, open fds) of the server process."""
    rss = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds


class Stats:
    def __init__(self):
        self.latencies_ms = []  # this interval's
        self.sent = 0
        self.expected = 0
        self.delivered = 0
        self.duplicates = 0
        self.churn_cycles = 0
        self.errors = []


class Conn:
    """One registered client over plain TCP."""

    def __init__(self, nick):
        self.nick = nick
        self.reader = None
        self.writer = None

    async def open(self, host, port, caps=()):
        self.reader, self.writer = await asyncio.open_connection(host, port, limit=1 << 16)
        if caps:
            self.send("CAP LS 302")
            self.send("CAP REQ :" + " ".join(caps))
        self.send(f"NICK {self.nick}")
        self.send(f"USER {self.nick} 0 * :soak")
        if caps:
            self.send("CAP END")
        await self.wait_for(lambda parts: len(parts) > 1 and parts[1] in ("376", "422"))

    def send(self, line):
        self.writer.write(line.encode() + b"\r\n")

    async def line(self):
        raw = await self.reader.readline()
        if not raw:
            raise ConnectionError(f"{self.nick}: server closed the connection")
        text = raw.decode(errors="replace").rstrip("\r\n")
        if text.startswith("PING "):
            self.send("PONG " + text[5:])
        return text

    async def wait_for(self, done, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.nick}: expected line did not come in {timeout}s")
            text = await asyncio.wait_for(self.line(), left)
            if text.startswith("@"):
                text = text.split(" ", 1)[1] if " " in text else ""
            if done(text.split(" ")):
                return text

    async def close(self, reason="bye"):
        try:
            self.send(f"QUIT :{reason}")
            await self.writer.drain()
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except (ConnectionError, asyncio.TimeoutError, OSError):
            pass


async def stable_reader(conn, stats, seen, stop):
    """Count deliveries of soak messages to this client and measure their latency."""
    while not stop.is_set():
        try:
            text = await conn.line()
        except (ConnectionError, OSError) as error:
            if not stop.is_set():
                stats.errors.append(str(error))
            return
        # :src PRIVMSG target :soak <id> <sent_ns>
        parts = text.split(" ", 4)
        if len(parts) == 5 and parts[1] == "PRIVMSG" and parts[3] == ":" + TAG:
            msg_id, sent_ns = parts[4].split(" ", 1)
            if msg_id in seen:
                stats.duplicates += 1
                continue
            seen.add(msg_id)
            stats.delivered += 1
            stats.latencies_ms.append((time.monotonic_ns() - int(sent_ns)) / 1e6)


async def sender(stable, channels, members, rate, stats, end):
    """Send `rate` messages a second from the stable clients, 1 in 10 of them private."""
    interval = 1.0 / rate
    next_at = time.monotonic()
    seq = 0
    while time.monotonic() < end:
        conn = stable[seq % len(stable)]
        if seq % 10 == 9:
            target = stable[(seq * 7 + 3) % len(stable)]
            if target is conn:
                target = stable[(seq + 1) % len(stable)]
            name, recipients = target.nick, 1
        else:
            name = random.choice(channels[conn.nick])
            recipients = len(members[name]) - 1
        conn.send(f"PRIVMSG {name} :{TAG} {seq} {time.monotonic_ns()}")
        stats.sent += 1
        stats.expected += recipients
        seq += 1
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def churner(index, args, all_channels, stats, end):
    """Connect, fetch history, join and part, quit; again until the end."""
    cycle = 0
    caps = ("draft/chathistory", "batch", "server-time", "message-tags")
    while time.monotonic() < end:
        conn = Conn(f"churn{index}x{cycle}")
        cycle += 1
        try:
            await conn.open(args.host, args.port, caps)
            channel = random.choice(all_channels)
            conn.send(f"JOIN {channel}")
            conn.send(f"CHATHISTORY LATEST {channel} * 50")
            conn.send(f"PRIVMSG {channel} :churn {cycle}")
            conn.send("WHO " + channel)
            conn.send("PING :churn-sync")
            await conn.wait_for(lambda parts: len(parts) > 1 and parts[1] == "PONG")
            conn.send(f"PART {channel} :later")
            await asyncio.sleep(random.uniform(0.2, 1.0))
            await conn.close()
            stats.churn_cycles += 1
        except (ConnectionError, OSError, TimeoutError, asyncio.TimeoutError) as error:
            stats.errors.append(f"churn: {error}")
            await asyncio.sleep(1)
        await asyncio.sleep(args.churn_pause)


def summarize(rows, key):
    third = max(1, len(rows) // 3)
    first = [row[key] for row in rows[:third]]
    last = [row[key] for row in rows[-third:]]
    return statistics.mean(first), statistics.mean(last)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True, help="the server process to sample")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--csv", required=True)
    parser.add_argument("--stable", type=int, default=100, help="clients connected throughout")
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--per-client", type=int, default=3, help="channels each stable client joins")
    parser.add_argument("--rate", type=float, default=100, help="messages per second in total")
    parser.add_argument("--churners", type=int, default=10, help="clients that connect and quit in a loop")
    parser.add_argument("--churn-pause", type=float, default=0.5)
    parser.add_argument("--sample-secs", type=float, default=5)
    args = parser.parse_args()
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        sys.exit("soak_load.py: loopback only")

    random.seed(1)
    stats = Stats()
    all_channels = [f"#soak{i}" for i in range(args.channels)]
    members = {name: [] for name in all_channels}
    channels = {}

    stable = []
    for i in range(args.stable):
        conn = Conn(f"stable{i}")
        await conn.open(args.host, args.port)
        chosen = random.sample(all_channels, min(args.per_client, len(all_channels)))
        channels[conn.nick] = chosen
        for name in chosen:
            members[name].append(conn.nick)
        conn.send("JOIN " + ",".join(chosen))
        conn.send("PING :joined")
        await conn.wait_for(lambda parts: len(parts) > 1 and parts[1] == "PONG")
        stable.append(conn)
    print(f"soak: {len(stable)} stable clients in {args.channels} channels, "
          f"{args.rate:g} msg/s, {args.churners} churners, {args.minutes:g} min", flush=True)

    stop = asyncio.Event()
    seen = [set() for _ in stable]
    readers = [asyncio.create_task(stable_reader(c, stats, s, stop)) for c, s in zip(stable, seen)]
    start = time.monotonic()
    end = start + args.minutes * 60
    tasks = [asyncio.create_task(sender(stable, channels, members, args.rate, stats, end))]
    tasks += [asyncio.create_task(churner(i, args, all_channels, stats, end)) for i in range(args.churners)]

    rows = []
    with open(args.csv, "w", newline="") as out:
        fields = ["elapsed_s", "rss_kib", "fds", "sent", "expected", "delivered",
                  "lat_p50_ms", "lat_p99_ms", "lat_max_ms", "churn_cycles", "errors"]
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        while time.monotonic() < end:
            await asyncio.sleep(min(args.sample_secs, max(0.0, end - time.monotonic())))
            rss, fds = proc_sample(args.pid)
            lat = sorted(stats.latencies_ms)
            stats.latencies_ms = []
            pick = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 2)) if lat else (lambda q: "")
            row = {"elapsed_s": round(time.monotonic() - start, 1), "rss_kib": rss, "fds": fds,
                   "sent": stats.sent, "expected": stats.expected, "delivered": stats.delivered,
                   "lat_p50_ms": pick(0.5), "lat_p99_ms": pick(0.99), "lat_max_ms": pick(1.0),
                   "churn_cycles": stats.churn_cycles, "errors": len(stats.errors)}
            writer.writerow(row)
            out.flush()
            rows.append(row)
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)

    await asyncio.gather(*tasks)
    # Drain: a PING through every stable client; its PONG comes after everything sent before it.
    for conn in stable:
        conn.send("PING :drain")
    await asyncio.sleep(5)
    stop.set()
    for conn in stable:
        await conn.close("soak over")
    for reader in readers:
        reader.cancel()

    missing = stats.expected - stats.delivered
    print(f"soak: sent {stats.sent} messages, {stats.expected} deliveries expected, "
          f"{stats.delivered} delivered, {missing} missing, {stats.duplicates} duplicates, "
          f"{stats.churn_cycles} churn cycles, {len(stats.errors)} errors")
    for error in stats.errors[:10]:
        print("  error:", error)
    ok = missing == 0 and stats.duplicates == 0 and not stats.errors
    if len(rows) >= 3:
        rss_first, rss_last = summarize(rows, "rss_kib")
        fds_first, fds_last = summarize(rows, "fds")
        # Flat: within 10% (and 8 MiB) for memory, within 10 descriptors for fds (churners come and go).
        rss_flat = rss_last <= rss_first * 1.10 + 8192
        fds_flat = fds_last <= fds_first + 10
        print(f"soak: RSS first third {rss_first / 1024:.1f} MiB, last third {rss_last / 1024:.1f} MiB: "
              f"{'flat' if rss_flat else 'GROWING'}")
        print(f"soak: fds first third {fds_first:.1f}, last third {fds_last:.1f}: "
              f"{'flat' if fds_flat else 'GROWING'}")
        lat_rows = [row for row in rows if row["lat_p99_ms"] != ""]
        if lat_rows:
            print(f"soak: latency p50 median {statistics.median(r['lat_p50_ms'] for r in lat_rows):.2f} ms, "
                  f"p99 median {statistics.median(r['lat_p99_ms'] for r in lat_rows):.2f} ms, "
                  f"worst {max(r['lat_max_ms'] for r in lat_rows):.2f} ms")
        ok = ok and rss_flat and fds_flat
    print("soak: PASS" if ok else "soak: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
