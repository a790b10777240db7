#!/usr/bin/env bash
# kald load benchmark. One command: ./tests/load/run.sh  (see tests/load/README.md)
#
# Builds kald in release, starts `kald serve` on 127.0.0.1, then
#   1. ramps concurrent prompt-and-DTMF calls (sipp, tests/load/prompt_dtmf.xml),
#   2. ramps the rate of short calls without media (tests/load/short_call.xml),
# samples kald's CPU, RSS and fds from /proc, captures a sample of kald's RTP on lo for
# jitter, prints the tables and stops kald. Exits non-zero only when the harness itself
# fails (build, kald not starting, a tool missing), never because a figure is bad.
#
# Knobs (environment): KALD_LOAD_STEPS (concurrent calls per step), KALD_LOAD_HOLD (s of
# steady load per step), KALD_LOAD_RATES (short calls/s per step), KALD_LOAD_SHORT_SECONDS,
# KALD_LOAD_SIPP_CALLS (concurrent calls per sipp process), KALD_LOAD_LINGER (idle wait
# before the "after" RSS), KALD_LOAD_BUDGET (no repeated step after this many s),
# KALD_LOAD_OUT (result dir). See README.md for what each printed figure means.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
here=$root/tests/load

steps=${KALD_LOAD_STEPS:-"100 200 400 800 1200 1600 2000"}
hold=${KALD_LOAD_HOLD:-20}
rates=${KALD_LOAD_RATES:-"200 400 600 800 1200 1600"}
short_s=${KALD_LOAD_SHORT_SECONDS:-12}
per_sipp=${KALD_LOAD_SIPP_CALLS:-800}
budget=${KALD_LOAD_BUDGET:-420} # s: no repeated step starts after this (the run ends ~1.5 min later)
out=${KALD_LOAD_OUT:-$root/target/load/$(date +%Y%m%d-%H%M%S)}
sip_port=5070
media_ports=20000-59999
call_len=4.5 # s: 2.0 pause + 0.3 + 0.14 digits + 2.07 goodbye
linger=${KALD_LOAD_LINGER:-35} # s: kald keeps completed transactions 64*T1 = 32 s (Timers J and L)

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'load: %s\n' "$*" >&2; exit 2; }

command -v sipp >/dev/null || die "sipp is not installed (apt-get install sip-tester)"
[ -r /usr/share/sip-tester/dtmf_2833_pound.pcap ] || die "sipp's DTMF pcaps are missing in /usr/share/sip-tester"
if ! command -v dumpcap >/dev/null || ! command -v tshark >/dev/null; then
  log "installing tshark (RTP jitter from a capture)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark >/dev/null 2>&1 ||
    log "tshark unavailable: jitter only from kald's own late_p50/p99"
fi
have_capture=0
command -v dumpcap >/dev/null && command -v tshark >/dev/null && have_capture=1

# kald holds two sockets per call; sipp one per pcap play. Raise the fd limit to the maximum.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge 8192 ] || log "warning: only $(ulimit -n) file descriptors"

log "building kald (release)"
cargo build --release -p kald --quiet || die "cargo build failed"
kald_bin=$root/target/release/kald

mkdir -p "$out"
log "results in $out"
for p in $sip_port; do
  if ss -Hlun "sport = :$p" | grep -q .; then die "UDP port $p is in use"; fi
done

kald_pid=
sampler=
cleanup() {
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  if [ -n "$kald_pid" ] && kill -0 "$kald_pid" 2>/dev/null; then
    kill -TERM "$kald_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$kald_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$kald_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# The call the benchmark measures, as an IVR flow: the welcome, digits until '#' (or 5 s of
# silence after the prompt), goodbye, hang up. Every number on loopback goes to it.
mkdir -p "$out/flows"
ln -sfn "$root/ivr-flows/prompts" "$out/flows/prompts"
cat >"$out/flows/load.toml" <<'TOML'
start = "keys"
transfer_allowlist = []

[nodes.keys]
kind = "collect"
prompt = "welcome"
barge_in = true
min_digits = 1
max_digits = 30
timeout = "5s"
inter_digit_timeout = "5s"
retries = 0
field = "digits"
next = "bye"
fallback = "bye"

[nodes.bye]
kind = "hangup"
prompt = "goodbye"
TOML
cat >"$out/kald.toml" <<'TOML'
[[trunk]]
name = "loopback"
networks = ["127.0.0.0/8"]
numbers = [{ pattern = "*", entry_point = "load" }]
TOML

"$kald_bin" --log info --log-format json serve --config "$out/kald.toml" \
  --sip-listen 127.0.0.1:$sip_port --http-listen 127.0.0.1:0 \
  --media-ports $media_ports --capacity 100000 --grace-seconds 1 \
  --data-dir "$out/data" --flows "$out/flows" >"$out/kald.log" 2>&1 &
kald_pid=$!
for _ in $(seq 50); do grep -q '"kald listening"' "$out/kald.log" 2>/dev/null && break; sleep 0.1; done
kill -0 "$kald_pid" 2>/dev/null || { cat "$out/kald.log" >&2; die "kald did not start"; }
sleep 1
grep -q '"flow loaded".*"entry_point":"load"' "$out/kald.log" || { cat "$out/kald.log" >&2; die "kald did not load the benchmark flow"; }
idle_kb=$(awk '/^VmRSS:/ {print $2}' /proc/$kald_pid/status)
base_fds=$(ls /proc/$kald_pid/fd | wc -l)
log "kald pid $kald_pid, idle RSS ${idle_kb} kB, $base_fds fds"

# Wait until kald holds no call sockets any more (at most $1 s).
wait_idle() {
  local n
  for _ in $(seq $(( $1 * 4 ))); do
    n=$(ls /proc/$kald_pid/fd 2>/dev/null | wc -l)
    [ "$n" -le $((base_fds + 1)) ] && return 0
    sleep 0.25
  done
  log "kald still holds $(( (n - base_fds) / 2 )) calls' sockets"
}

# run_sipp DIR INDEX SCENARIO LIMIT RATE CALLS TIMEOUT — one sipp process (call it with &).
# sipp's -timeout bounds it; exec keeps $! the sipp process itself (its CPU is sampled).
run_sipp() {
  local dir=$1 i=$2 sf=$3 limit=$4 rate=$5 calls=$6 limit_s=$7
  exec sipp 127.0.0.1:$sip_port -sf "$sf" -i 127.0.0.1 -p $((5080 + i)) \
    -mi 127.0.0.1 -mp $((16000 + 10 * i)) -l "$limit" -r "$rate" -m "$calls" \
    -buff_size 4194304 -nostdin -timeout "${limit_s}s" -max_recv_loops 5000 \
    -trace_stat -stf "$dir/sipp$i.csv" -fd 1 \
    -trace_err -error_file "$dir/sipp$i.err" -max_log_size 2000000 \
    >"$dir/sipp$i.out" 2>&1
}

results=$out/results.jsonl
: >"$results"
rss() { echo "$1=$(awk '/^VmRSS:/ {print $2}' /proc/$kald_pid/status)" >>"$out/rss.txt"; }
echo "idle=$idle_kb" >"$out/rss.txt"

# A step is "noisy" when the machine was busy with other work (other% > 50) or did not run
# the sampler for over 1.5 s; such a step is repeated once while the time budget allows.
noisy() { tail -1 "$results" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(1 if r["other_cpu_pct"] > 50 or r["sampler_gap_s"] > 1.5 else 0)'; }
field() { tail -1 "$results" | python3 -c "import json,sys; print(int(json.load(sys.stdin)['$1']))"; }

# prompt_step N LABEL — hold N concurrent prompt-and-DTMF calls for about $hold s.
prompt_step() {
  local n=$1 label=$2 dir=$out/prompt-$2 procs limit rate calls cap i p
  mkdir -p "$dir"
  procs=$(( (n + per_sipp - 1) / per_sipp ))
  limit=$(( n / procs ))
  # A little faster than the limit lets calls end, so the limit (not the rate) holds
  # concurrency at n; enough calls for ~$hold s at that level.
  rate=$(awk -v l=$limit -v c=$call_len 'BEGIN { printf "%d", l / c * 1.3 + 1 }')
  calls=$(awk -v l=$limit -v c=$call_len -v h=$hold 'BEGIN { printf "%d", l * (h / c + 1) }')
  log "prompt+DTMF: $n concurrent ($procs sipp x -l $limit -r $rate -m $calls)"
  pids=()
  for i in $(seq 0 $((procs - 1))); do
    run_sipp "$dir" "$i" "$here/prompt_dtmf.xml" "$limit" "$rate" "$calls" $((hold + 60)) &
    pids+=($!)
  done
  KALD_SIP_PORT=$sip_port python3 "$here/load.py" sample "$dir/samples.csv" "$kald_pid" "${pids[@]}" &
  sampler=$!
  cap=
  if [ $have_capture = 1 ]; then
    # About 1/32 of kald's streams (RTP ports = 0 mod 64) during the steady part of the step.
    (sleep $(awk -v c=$call_len 'BEGIN { printf "%d", c + 3 }');
     exec dumpcap -q -i lo -s 64 -a duration:$((hold > 10 ? 10 : hold)) -w "$dir/rtp.pcap" \
       -f "udp and src portrange $media_ports and dst portrange 16000-16099 and udp[0:2] & 0x3f = 0" \
       >"$dir/dumpcap.log" 2>&1) &
    cap=$!
  fi
  for p in "${pids[@]}"; do wait "$p" || true; done
  wait "$sampler" || true
  sampler=
  [ -n "$cap" ] && { wait "$cap" || true; }
  wait_idle 20
  sleep 1
  python3 "$here/load.py" step prompt "$label" "$dir" >>"$results" || die "analysis of step $label failed"
  log "  failed $(field failed_pct)%, noisy $(noisy)"
}

# ---- 1. concurrent prompt-and-DTMF calls ----
for n in $steps; do
  prompt_step "$n" "$n"
  if [ "$(noisy)" = 1 ] && [ $((SECONDS + hold + 20)) -lt "$budget" ]; then
    log "  the machine was busy: repeating the step"
    prompt_step "$n" "${n}r"
  fi
  if [ "$(field failed_pct)" -ge 10 ] && [ "$(noisy)" = 0 ]; then log "  over 10% failed: no higher step"; break; fi
done

# Back to idle? Calls are gone now; completed transactions go after $linger s.
rss after_prompt_calls
log "waiting ${linger}s for kald's completed transactions to expire"
sleep $linger
rss after_prompt_${linger}s

# ---- 2. short calls without media ----
# short_step RATE LABEL — offer RATE calls/s for $short_s s.
short_step() {
  local r=$1 label=$2 dir=$out/short-$2 procs rate calls i p
  mkdir -p "$dir"
  procs=$(( (r + 799) / 800 ))
  rate=$(( r / procs ))
  calls=$(( rate * short_s ))
  log "short calls: $r/s for ${short_s}s ($procs sipp x -r $rate -m $calls)"
  pids=()
  for i in $(seq 0 $((procs - 1))); do
    run_sipp "$dir" "$i" "$here/short_call.xml" 2000 "$rate" "$calls" $((short_s * 3 + 20)) &
    pids+=($!)
  done
  KALD_SIP_PORT=$sip_port python3 "$here/load.py" sample "$dir/samples.csv" "$kald_pid" "${pids[@]}" &
  sampler=$!
  for p in "${pids[@]}"; do wait "$p" || true; done
  wait "$sampler" || true
  sampler=
  wait_idle 20
  python3 "$here/load.py" step short "$label" "$dir" >>"$results" || die "analysis of rate $label failed"
  log "  achieved $(field setups_per_s)/s, failed $(field failed_pct)%, noisy $(noisy)"
}

for r in $rates; do
  short_step "$r" "$r"
  if [ "$(noisy)" = 1 ] && [ $((SECONDS + short_s + 20)) -lt "$budget" ]; then
    log "  the machine was busy: repeating the step"
    short_step "$r" "${r}r"
  fi
  if [ "$(noisy)" = 0 ] && { [ "$(field failed_pct)" -ge 10 ] || [ "$(field setups_per_s)" -lt $((r * 7 / 10)) ]; }; then
    log "  kald is saturated: no higher rate"; break
  fi
done

# ---- back to idle? ----
wait_idle 30
rss after_short_calls
log "waiting ${linger}s for kald's completed transactions to expire"
sleep $linger
rss after_short_${linger}s
kill -0 "$kald_pid" 2>/dev/null || die "kald died during the run"
echo
echo "kald load benchmark: $(nproc) cores shared by kald, sipp and whatever else runs; 127.0.0.1 only"
python3 "$here/load.py" table "$results" "$out/rss.txt"
echo
echo "raw data: $out"
