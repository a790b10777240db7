#!/usr/bin/env bash
# kald crash test with recordings (tests/load/README.md, "Crash during recordings"). One command:
#   ./tests/load/crash.sh
#
# KALD_CRASH_CALLS (50) agents (agentsim) and as many citizens (sipp, citizen_recorded.xml:
# consent 1, then a 440 Hz tone) in the consent flow (agents.sh N DIR consent), so every call
# is recorded. Once all of them log "recording started", KALD_CRASH_AFTER s (10.5) later kald
# gets SIGKILL in the middle of the calls. sipp and agentsim are stopped, kald is started
# again on the same data and keys dirs, and recordings.py checks: every recording catalogued
# (rows = files, no orphans, no row without its file), every file exports, and each one's
# length is within one second of (kill time − the agent's 200) ("intact up to its last
# second"), with the same tone checks as the benchmark. Exits non-zero only for a harness error.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
here=$root/tests/load

n=${KALD_CRASH_CALLS:-50}
after=${KALD_CRASH_AFTER:-10.5}
target=${CARGO_TARGET_DIR:-$root/target}
out=${KALD_LOAD_OUT:-$target/load/crash-$(date +%Y%m%d-%H%M%S)}
sip_port=5070
media_ports=20000-59999

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'crash: %s\n' "$*" >&2; exit 2; }

command -v sipp >/dev/null || die "sipp is not installed (apt-get install sip-tester)"
[ "$(id -u)" = 0 ] || die "sipp plays the DTMF pcap through a raw socket: run as root"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log "building kald and agentsim (release, $target)"
CARGO_TARGET_DIR=$target cargo build --release -p kald -p agentsim --quiet || die "cargo build failed"
kald_bin=$target/release/kald
agentsim=$target/release/agentsim

mkdir -p "$out"
log "results in $out"
ss -Hlun "sport = :$sip_port" | grep -q . && die "UDP port $sip_port is in use"
"$here/agents.sh" "$n" "$out" consent
"$agentsim" tone --hz 440 --out "$out/citizen_tone.ulaw"

kald_pid=
sim_pid=
sipp_pid=
cleanup() {
  for p in $sipp_pid $sim_pid; do kill "$p" 2>/dev/null || true; done
  if [ -n "$kald_pid" ] && kill -0 "$kald_pid" 2>/dev/null; then
    kill -TERM "$kald_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$kald_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$kald_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

start_kald() {
  "$kald_bin" --log info --log-format json serve --config "$out/kald.toml" \
    --sip-listen 127.0.0.1:$sip_port --http-listen 127.0.0.1:0 \
    --media-ports $media_ports --capacity 100000 --grace-seconds 1 \
    --data-dir "$out/data" --keys-dir "$out/keys" --flows "$out/flows" >"$out/$1" 2>&1 &
  kald_pid=$!
  for _ in $(seq 100); do grep -q '"kald listening"' "$out/$1" 2>/dev/null && break; sleep 0.1; done
  kill -0 "$kald_pid" 2>/dev/null || { tail -20 "$out/$1" >&2; die "kald did not start"; }
}

start_kald kald.log
log "kald pid $kald_pid"
"$agentsim" run --kald 127.0.0.1:$sip_port --agents "$n" --duration 100000 \
  --login-timeout 60 --out "$out" >"$out/agentsim.out" 2>"$out/agentsim.err" &
sim_pid=$!
for _ in $(seq 600); do [ -e "$out/ready" ] && break; kill -0 $sim_pid 2>/dev/null || break; sleep 0.1; done
[ -e "$out/ready" ] || { cat "$out/agentsim.err" >&2; die "agents did not log in"; }

log "$n citizens call, consent and are bridged (calls of 120 s)"
(cd "$out" && exec sipp 127.0.0.1:$sip_port -sf "$here/citizen_recorded.xml" -i 127.0.0.1 -p 5080 \
  -mi 127.0.0.1 -mp 16000 -l "$n" -r 50 -m "$n" -d 120000 -nostdin -timeout 200s \
  -trace_err -error_file "$out/sipp.err" >"$out/sipp.out" 2>&1) &
sipp_pid=$!
started=0
for _ in $(seq 600); do
  started=$(grep -c '"recording started"' "$out/kald.log" || true)
  [ "$started" -ge "$n" ] && break
  sleep 0.1
done
[ "$started" -ge "$n" ] || die "only $started of $n recordings started"
log "all $n recording; kill -9 in ${after} s"
sleep "$after"
date +%s%N >"$out/kill_ns"
kill -KILL "$kald_pid"
wait "$kald_pid" 2>/dev/null || true
kald_pid=
log "killed; stopping sipp and the agents"
kill "$sipp_pid" 2>/dev/null || true
wait "$sipp_pid" 2>/dev/null || true
sipp_pid=
kill -TERM "$sim_pid" 2>/dev/null || true
wait "$sim_pid" 2>/dev/null || true
sim_pid=
find "$out/data/recordings" -type f | sort >"$out/files_before_restart"
log "$(wc -l <"$out/files_before_restart") recording files on disk; starting kald again"
start_kald kald-restart.log
# kald says "kald listening" before it reconciles the recordings: wait for the verdict (a
# stop during the reconciliation leaves it half done, for the next start to finish).
for _ in $(seq 600); do
  grep -qE '"recordings (repaired at start|catalogue and files agree)' "$out/kald-restart.log" && break
  sleep 0.1
done
grep -E '"recordings (repaired at start|catalogue and files agree)' "$out/kald-restart.log" >"$out/repair.log" \
  || die "no reconciliation report from the restarted kald within 60 s"
cat "$out/repair.log" >&2
kill -TERM "$kald_pid"
wait "$kald_pid" 2>/dev/null || true
kald_pid=
log "checking every recording"
python3 "$here/recordings.py" crash "$out" "$out/data" "$out/keys/recordings.key" "$kald_bin" "$agentsim" \
  >"$out/crash.json" || die "the check failed"
python3 - "$out/crash.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
l = r["lost_s"] or {}
print(f"after kill -9 during {r['matched_to_calls']} recorded calls and a restart:")
print(f"  catalogue: {r['recordings']} rows {r['states']}, {r['files']} files, "
      f"{r['rows_without_file']} rows without a file, {r['files_without_row']} files without a row, "
      f"{r['tombstones']} tombstones")
print(f"  exported {r['exported']} of {r['recordings']}; intact to the last second {r['intact_to_last_second']} "
      f"(within 1.06 s: {r['intact_within_1_06s']}); tones aligned {r['aligned']}")
if l:
    print(f"  audio lost at the end (kill − 200 − WAV length), s: min {l['min']:.3f} p50 {l['p50']:.3f} "
          f"p99 {l['p99']:.3f} max {l['max']:.3f}")
if r["not_intact_examples"]:
    print(f"  not intact, e.g. {r['not_intact_examples'][:2]}")
PY
echo "raw data: $out"
