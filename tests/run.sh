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

# A clean build of every test binary needs several GB; incremental caches would double it and a
# from-scratch run gains nothing from them. Say how much room there is, for a failed run's log.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h "$root" 2>/dev/null | tail -n 1 | awk '{print "disk: " $4 " free on " $6}' || true

need_apt=()
command -v sipp >/dev/null 2>&1 || need_apt+=(sip-tester)
command -v sox >/dev/null 2>&1 || need_apt+=(sox)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# The web pages are tested in real headless Chromium (driven by Playwright from the venv).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# PostgreSQL for kald-store's tests. Unless KALD_TEST_POSTGRES_URL already names a server, this
# starts a throwaway cluster: installs Debian's postgresql when no server binary is present,
# runs initdb as the postgres user (initdb refuses root) in a temporary directory, starts it on
# a free loopback port with its socket in that directory, creates a role and a database with
# a random password, exports KALD_TEST_POSTGRES_URL and stops and deletes it when this script
# exits. KALD_TEST_POSTGRES_REQUIRED=1 makes the tests fail rather than skip without a URL.
# Any failure stops the script: the PostgreSQL tests must never be skipped silently in CI.
start_test_postgres() {
  export KALD_TEST_POSTGRES_REQUIRED=1
  if [ -n "${KALD_TEST_POSTGRES_URL:-}" ]; then
    echo "using the PostgreSQL server in KALD_TEST_POSTGRES_URL"
    return 0
  fi
  local sudo_cmd=() bin
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  pg_bin() { find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' -printf '%h\n' 2>/dev/null | sort -V | tail -n 1; }
  bin=$(pg_bin)
  if [ -z "$bin" ]; then
    echo "installing postgresql (no /usr/lib/postgresql/*/bin/postgres)"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq postgresql >/dev/null
    bin=$(pg_bin)
    [ -n "$bin" ] || { echo "PostgreSQL: no server binary after installing postgresql" >&2; return 1; }
  fi

  pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/kald-pg.XXXXXX")
  local as_pg=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$pg_dir"
    as_pg=(runuser -u postgres --)
  fi
  local password
  password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  printf '%s\n' "$password" >"$pg_dir/pwfile"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$pg_dir/pwfile"
  if ! "${as_pg[@]}" "$bin/initdb" -D "$pg_dir/data" -U kald --pwfile="$pg_dir/pwfile" \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-sync >"$pg_dir/initdb.log" 2>&1; then
    cat "$pg_dir/initdb.log" >&2
    echo "PostgreSQL: initdb failed (log above)" >&2
    return 1
  fi
  rm -f "$pg_dir/pwfile"

  local port attempt started=
  for attempt in 1 2 3; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # Durability is pointless for a throwaway test database: fsync off makes it much faster.
    if "${as_pg[@]}" "$bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/postgres.log" -w -t 30 -s \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $pg_dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start; then
      started=1
      break
    fi
    echo "PostgreSQL: start on port $port failed (attempt $attempt)" >&2
  done
  if [ -z "$started" ]; then
    cat "$pg_dir/postgres.log" >&2
    echo "PostgreSQL: could not start a test server (log above)" >&2
    return 1
  fi
  pg_stop_cmd=("${as_pg[@]}" "$bin/pg_ctl" -D "$pg_dir/data" -m immediate -s stop)
  trap 'stop_test_postgres' EXIT

  if ! "${as_pg[@]}" "$bin/createdb" -h "$pg_dir" -p "$port" -U kald kald_test; then
    echo "PostgreSQL: could not create the test database" >&2
    return 1
  fi
  export KALD_TEST_POSTGRES_URL="postgres://kald:$password@127.0.0.1:$port/kald_test"
  echo "PostgreSQL $("$bin/postgres" -V | awk '{print $3}') on 127.0.0.1:$port (data in $pg_dir)"
}

stop_test_postgres() {
  if [ -n "${pg_dir:-}" ]; then
    "${pg_stop_cmd[@]}" >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
    pg_dir=
  fi
}

# The core crates must never depend on tokio, sqlx or axum (style rule 1).
log "dependency direction"
for core in kald-core kald-sip kald-media kald-ivr kald-acd kald-recordings; do
  if cargo tree -p "$core" -e normal --prefix none 2>/dev/null | grep -E '^(tokio|sqlx|axum|mio) ' >/dev/null; then
    echo "$core depends on an I/O runtime:"; cargo tree -p "$core" -e normal -i tokio 2>/dev/null | head -20
    exit 1
  fi
done
echo "kald-core, kald-sip, kald-media, kald-ivr, kald-acd, kald-recordings: no tokio/sqlx/axum/mio"

log "formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

# Fuzzing is bounded: KALD_FUZZ_ITERS (parser, default 200k inputs) and
# KALD_FUZZ_ENDPOINT_SEQS (endpoint, default 3,000 sequences) raise it for longer runs.
log "PostgreSQL for the kald-store tests"
start_test_postgres # exits the script (set -e) with a message when it fails

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
