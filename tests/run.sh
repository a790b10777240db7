#!/usr/bin/env bash
# Runs every test of kald: unit and integration tests (cargo), the SIP end-to-end tests
# against `kald serve` with sipp, and the PJSIP (pjsua2) peer test.
#
# Installs what the tests need when it is missing: sipp (Debian sip-tester), sox, and a
# Python venv with pjsua2 under tests/.venv. Fuzzing runs a bounded number of iterations
# (see KALD_FUZZ_ITERS and KALD_FUZZ_ENDPOINT_SEQS below).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

log() { printf '\n== %s\n' "$*"; }

need_apt=()
command -v sipp >/dev/null 2>&1 || need_apt+=(sip-tester)
command -v sox >/dev/null 2>&1 || need_apt+=(sox)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The core crates must never depend on tokio, sqlx or axum (style rule 1).
log "dependency direction"
for core in kald-core kald-sip kald-media; do
  if cargo tree -p "$core" -e normal --prefix none 2>/dev/null | grep -E '^(tokio|sqlx|axum|mio) ' >/dev/null; then
    echo "$core depends on an I/O runtime:"; cargo tree -p "$core" -e normal -i tokio 2>/dev/null | head -20
    exit 1
  fi
done
echo "kald-core, kald-sip, kald-media: no tokio/sqlx/axum/mio"

log "formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

# Fuzzing is bounded: KALD_FUZZ_ITERS (parser, default 200k inputs) and
# KALD_FUZZ_ENDPOINT_SEQS (endpoint, default 3,000 sequences) raise it for longer runs.
log "cargo tests (unit, integration, corpus, fuzz for a bounded time, sipp end-to-end)"
cargo build --workspace --quiet
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

if [ -f tests/pjsua2/setup.sh ]; then
  log "PJSIP (pjsua2) peer test"
  bash tests/pjsua2/setup.sh
  KALD_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/kald" PYTHONDONTWRITEBYTECODE=1 \
    "$root/tests/.venv/bin/python" -m pytest -q -p no:cacheprovider tests/pjsua2
fi
