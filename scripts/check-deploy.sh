#!/usr/bin/env bash
# Check deploy/parleyd.service with systemd-analyze: `verify` (syntax, directives, paths) and an
# offline `security` score that must stay at or below THRESHOLD. Without systemd-analyze (Debian:
# apt-get install systemd) it fails, so it cannot pass without checking anything; set
# PARLEY_SKIP_DEPLOY_CHECK=1 to skip it on purpose on a machine without systemd.
#
# `verify` insists that ExecStart's binary exists; the unit names /usr/local/bin/parleyd, which a
# build machine has not installed, so a copy of the unit pointing at a stand-in binary is checked.
set -euo pipefail
cd "$(dirname "$0")/.."

UNIT=deploy/parleyd.service
# In tenths, as systemd-analyze counts: 20 is an exposure of 2.0 (the unit scores about 1.4).
THRESHOLD=20

if ! command -v systemd-analyze >/dev/null 2>&1; then
    if [ "${PARLEY_SKIP_DEPLOY_CHECK:-}" = 1 ]; then
        echo "check-deploy: skipped (PARLEY_SKIP_DEPLOY_CHECK=1): systemd-analyze is not installed"
        exit 0
    fi
    echo "check-deploy: systemd-analyze is not installed; install it (Debian: apt-get install" \
        "systemd), or set PARLEY_SKIP_DEPLOY_CHECK=1 to skip this check" >&2
    exit 1
fi

grep -qx 'ExecStart=/usr/local/bin/parleyd --config /etc/parley/parley.toml' "$UNIT" || {
    echo "check-deploy: $UNIT: ExecStart is not the documented command (see docs/deploy.md)" >&2
    exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stand_in=$(command -v true)
sed "s#^ExecStart=/usr/local/bin/parleyd #ExecStart=$stand_in #" "$UNIT" >"$work/parleyd.service"

# verify exits 0 on warnings, so any output at all about the unit counts as a failure.
out=$(systemd-analyze verify "$work/parleyd.service" 2>&1) || {
    echo "$out" >&2
    echo "check-deploy: systemd-analyze verify failed" >&2
    exit 1
}
if [ -n "$out" ]; then
    echo "$out" >&2
    echo "check-deploy: systemd-analyze verify printed warnings" >&2
    exit 1
fi
echo "check-deploy: systemd-analyze verify: ok"

if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
    if ! score=$(systemd-analyze security --offline=true --threshold="$THRESHOLD" \
        "$work/parleyd.service" 2>&1); then
        echo "$score" >&2
        echo "check-deploy: exposure too high; keep the unit's hardening (limit $THRESHOLD tenths)" >&2
        exit 1
    fi
    echo "check-deploy: $(echo "$score" | grep 'Overall exposure level' | sed 's/^→ //')"
else
    echo "check-deploy: this systemd-analyze has no \`security --offline\` (systemd 250 or newer" \
        "has it), so the unit's exposure cannot be checked" >&2
    exit 1
fi
