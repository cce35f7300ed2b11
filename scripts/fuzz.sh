#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ for a while; exit non-zero if any of them crashes.
#
#   scripts/fuzz.sh [seconds-per-target]      (default 60)
#
# Works on the stable toolchain: cargo-fuzz needs nightly-only flags (-Z sanitizer,
# -Cpasses=sancov), which RUSTC_BOOTSTRAP=1 unlocks. The sanitizer is AddressSanitizer unless
# FUZZ_SANITIZER says otherwise ("none" builds faster and runs about twice as fast; the targets
# are safe Rust plus SQLite and ring, so ASan mostly guards the C parts).
# New inputs that libFuzzer finds go to fuzz/work/corpus/<target> (ignored by git); the seeds
# checked in are in fuzz/corpus/<target>. A crash leaves its input in fuzz/artifacts/<target>/;
# replay it with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>` inside fuzz/.
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in
    '' | *[!0-9]*) echo "usage: $0 [seconds-per-target]" >&2; exit 2 ;;
esac
sanitizer="${FUZZ_SANITIZER:-address}"

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
# The server target makes a data dir per process; keep them where they are easy to clean up.
export TMPDIR="$root/fuzz/target/tmp"
rm -rf "$TMPDIR"
mkdir -p "$TMPDIR"

targets=$(cargo fuzz list)
failed=()
for target in $targets; do
    # Overlong lines are part of what the server must survive; the others need no more than 4 KiB.
    case "$target" in
        # The server (its runtime, tasks and data dir) lives until exit on purpose, which
        # LeakSanitizer's exit check would report as a leak.
        server_lines) extra=(-max_len=20000 -detect_leaks=0 -timeout=120) asan_options=detect_leaks=0 ;;
        *) extra=(-max_len=4096) asan_options="${ASAN_OPTIONS:-}" ;;
    esac
    mkdir -p "work/corpus/$target"
    echo "== fuzz $target for ${seconds}s (sanitizer: $sanitizer)"
    if ! ASAN_OPTIONS="$asan_options" cargo fuzz run --sanitizer "$sanitizer" "$target" "work/corpus/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 "${extra[@]}"; then
        failed+=("$target")
    fi
done
rm -rf "$TMPDIR"

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz.sh: no crashes in $(echo $targets | wc -w) targets, ${seconds}s each"
