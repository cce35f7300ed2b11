#!/usr/bin/env bash
# Tests of the web client: node unit tests of irc.js, then headless Chromium (Debian's package,
# driven by playwright-core) against a freshly built parleyd. Idempotent; installs what it needs.
# Screenshots and the server log go to target/web-test-artifacts/; DOCS_SCREENSHOT=docs/web-client.png
# also refreshes the README's screenshot.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tests="$root/crates/parley-server/web/tests"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
artifacts="$target_dir/web-test-artifacts"
chromium="${CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$chromium" ]; then
    echo "web-tests: installing chromium"
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    timeout 240 $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 300 $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
# Reactions are emoji: without a colour emoji font the screenshots show empty boxes.
if ! fc-list 2>/dev/null | grep -qi 'color emoji'; then
    echo "web-tests: installing fonts-noto-color-emoji"
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    DEBIAN_FRONTEND=noninteractive timeout 300 $sudo apt-get install -y -qq --no-install-recommends fonts-noto-color-emoji >/dev/null \
        || echo "web-tests: no emoji font; screenshots will show boxes for reactions"
fi
command -v node >/dev/null || { echo "web-tests: node is required (apt-get install nodejs npm)"; exit 1; }

cd "$tests"
# npm ci only when the lockfile changed since the last install (a copy of it is the stamp).
if ! cmp -s package-lock.json node_modules/.parley-installed-lock 2>/dev/null; then
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 180 npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.parley-installed-lock
fi

echo "web-tests: building parleyd (debug)"
# --workspace, not -p parley-server: the dependencies' features are then the workspace's, so
# this reuses what `cargo test --workspace` built instead of rebuilding them all.
(cd "$root" && cargo build --quiet --workspace --bin parleyd)

echo "web-tests: unit tests (node --test irc.test.mjs search.test.mjs push.test.mjs e2e.test.mjs)"
timeout 60 node --test irc.test.mjs search.test.mjs push.test.mjs e2e.test.mjs

echo "web-tests: browser tests (chromium headless against parleyd)"
rm -rf "$artifacts"
mkdir -p "$artifacts"
PARLEYD="$target_dir/debug/parleyd" ARTIFACTS="$artifacts" CHROMIUM="$chromium" \
    DOCS_SCREENSHOT="${DOCS_SCREENSHOT:+$(cd "$root" && realpath -m "$DOCS_SCREENSHOT")}" \
    timeout 240 node --test --test-timeout=120000 --test-concurrency=1 browser.test.mjs search.browser.test.mjs e2e.browser.test.mjs
echo "web-tests: screenshots in $artifacts"
