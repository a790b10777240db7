#!/usr/bin/env bash
# kald load benchmark, recorded calls (tests/load/README.md, "Recorded calls"). One command:
#   ./tests/load/recorded.sh
#
# The bridged-call benchmark (bridged.sh) with consent: kald runs the consent flow
# (agents.sh N DIR consent: a 1.8 s notice, the consent question with barge-in, the queue),
# every citizen (sipp, citizen_recorded.xml) keys 1 as RFC 4733 events during the question,
# so every bridged call is recorded (citizen left, agent right, sealed 1 s chunks under
# DIR/data/recordings). For each N in KALD_REC_STEPS: N agents (agentsim) and N citizens at
# once, calls of KALD_REC_CALL_S s (IVR + queue + talk), new calls for KALD_REC_HOLD s. After
# each step every recording of the step is exported with `kald recording export` and checked
# (recordings.py: catalogue vs files, duration vs the agent's answer → kald's BYE, tones per
# channel with agentsim wavcheck). Prints the bridged table and the recordings table.
# Exits non-zero only for a harness error.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
here=$root/tests/load

steps=${KALD_REC_STEPS:-"600"}
hold=${KALD_REC_HOLD:-40}
call_s=${KALD_REC_CALL_S:-30}
per_sipp=${KALD_LOAD_SIPP_CALLS:-800}
target=${CARGO_TARGET_DIR:-$root/target}
out=${KALD_LOAD_OUT:-$target/load/recorded-$(date +%Y%m%d-%H%M%S)}
sip_port=5070
media_ports=20000-59999

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'recorded: %s\n' "$*" >&2; exit 2; }

command -v sipp >/dev/null || die "sipp is not installed (apt-get install sip-tester)"
case "$(sipp -v 2>&1 || true)" in *RTPSTREAM*) ;; *) die "this sipp has no rtp_stream (needs sip-tester >= 3.6)" ;; esac
[ -r /usr/share/sip-tester/dtmf_2833_1.pcap ] || die "no /usr/share/sip-tester/dtmf_2833_1.pcap (sip-tester)"
[ "$(id -u)" = 0 ] || die "sipp plays the DTMF pcap through a raw socket: run as root"
have_capture=0
command -v dumpcap >/dev/null && command -v tshark >/dev/null && have_capture=1
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

max_agents=0
for n in $steps; do [ "$n" -gt "$max_agents" ] && max_agents=$n; done

log "building kald and agentsim (release, $target)"
CARGO_TARGET_DIR=$target cargo build --release -p kald -p agentsim --quiet || die "cargo build failed"
kald_bin=$target/release/kald
agentsim=$target/release/agentsim

mkdir -p "$out"
log "results in $out"
ss -Hlun "sport = :$sip_port" | grep -q . && die "UDP port $sip_port is in use"
"$here/agents.sh" "$max_agents" "$out" consent
"$agentsim" tone --hz 440 --out "$out/citizen_tone.ulaw"
git rev-parse HEAD >"$out/commit" 2>/dev/null || true

kald_pid=
sim_pid=
cleanup() {
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  if [ -n "$kald_pid" ] && kill -0 "$kald_pid" 2>/dev/null; then
    kill -TERM "$kald_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$kald_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$kald_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

"$kald_bin" --log info --log-format json serve --config "$out/kald.toml" \
  --sip-listen 127.0.0.1:$sip_port --http-listen 127.0.0.1:0 \
  --media-ports $media_ports --capacity 100000 --grace-seconds 1 \
  --data-dir "$out/data" --keys-dir "$out/keys" --flows "$out/flows" >"$out/kald.log" 2>&1 &
kald_pid=$!
for _ in $(seq 50); do grep -q '"kald listening"' "$out/kald.log" 2>/dev/null && break; sleep 0.1; done
kill -0 "$kald_pid" 2>/dev/null || { tail -20 "$out/kald.log" >&2; die "kald did not start"; }
sleep 1
idle_kb=$(awk '/^VmRSS:/ {print $2}' /proc/$kald_pid/status)
echo "idle=$idle_kb" >"$out/rss.txt"
log "kald pid $kald_pid, idle RSS ${idle_kb} kB"
io_written() { awk '/^write_bytes:/ {print $2}' /proc/$kald_pid/io; }

# step LABEL AGENTS CITIZENS CALL_S HOLD_S
step() {
  local label=$1 agents=$2 citizens=$3 cs=$4 hs=$5
  local dir=$out/recorded-$label procs limit calls i p cap= pids=()
  mkdir -p "$dir"
  "$agentsim" run --kald 127.0.0.1:$sip_port --agents "$agents" --duration 100000 \
    --login-timeout 60 --out "$dir" >"$dir/agentsim.out" 2>"$dir/agentsim.err" &
  sim_pid=$!
  for _ in $(seq 600); do [ -e "$dir/ready" ] && break; kill -0 $sim_pid 2>/dev/null || break; sleep 0.1; done
  [ -e "$dir/ready" ] || { cat "$dir/agentsim.err" >&2; die "agents did not log in"; }
  procs=$(( (citizens + per_sipp - 1) / per_sipp ))
  limit=$(( citizens / procs ))
  calls=$(awk -v l=$limit -v c=$cs -v h=$hs 'BEGIN { printf "%d", l * (h / c + 1) }')
  log "recorded $label: $agents agents, $citizens citizens at once ($procs sipp x -l $limit -m $calls), calls of ${cs}s"
  echo "t0=$(date +%s.%N) io0=$(io_written)" >"$dir/window"
  for i in $(seq 0 $((procs - 1))); do
    (cd "$out" && exec sipp 127.0.0.1:$sip_port -sf "$here/citizen_recorded.xml" -i 127.0.0.1 -p $((5080 + i)) \
      -mi 127.0.0.1 -mp $((16000 + 10 * i)) -l "$limit" -r 100 -m "$calls" -d $((cs * 1000)) \
      -buff_size 4194304 -nostdin -timeout "$((hs + cs + 120))s" -max_recv_loops 5000 \
      -trace_stat -stf "$dir/sipp$i.csv" -fd 1 -trace_err -error_file "$dir/sipp$i.err" \
      -max_log_size 2000000 >"$dir/sipp$i.out" 2>&1) &
    pids+=($!)
  done
  KALD_SIP_PORT=$sip_port python3 "$here/load.py" sample "$dir/samples.csv" "$kald_pid" "${pids[@]}" &
  local sampler=$!
  if [ $have_capture = 1 ]; then
    # kald's RTP to the citizens from ports = 0 mod 64, 10 s in the steady part of the step.
    (sleep $((cs + 5)); exec dumpcap -q -i lo -s 256 -a duration:10 -w "$dir/rtp.pcap" \
       -f "udp and src portrange $media_ports and dst portrange 16000-16099 and udp[0:2] & 0x3f = 0" \
       >"$dir/dumpcap.log" 2>&1) &
    cap=$!
  fi
  local acap=
  if [ $have_capture = 1 ] && [ "${KALD_REC_AGENT_CAPTURE:-1}" != 0 ]; then
    # RTP between the agents and kald on kald's ports = 0 mod 64 (≈ 1/64 of the agent legs,
    # both ways) for KALD_REC_AGENT_CAPTURE s (default: the whole step; 0: none): whether a hole in a
    # recording's right channel was on the wire (recordings.py holes).
    (exec dumpcap -q -i lo -s 128 -a duration:"${KALD_REC_AGENT_CAPTURE:-$((hs + cs + 30))}" -w "$dir/agents-rtp.pcap" \
       -f "udp and dst portrange $media_ports and not src portrange 16000-16099 and udp[2:2] & 0x3f = 0" \
       >"$dir/dumpcap-agents.log" 2>&1) &
    acap=$!
  fi
  for p in "${pids[@]}"; do wait "$p" || true; done
  [ -n "$acap" ] && { wait "$acap" || true; }
  wait "$sampler" || true
  [ -n "$cap" ] && { wait "$cap" || true; }
  kill -TERM $sim_pid 2>/dev/null || true
  wait $sim_pid || true
  sleep 3 # the last recordings close (the writer seals the last chunk)
  echo "t1=$(date +%s.%N) io1=$(io_written)" >>"$dir/window"
  python3 "$here/bridged.py" step recorded "$label" "$dir" "$idle_kb" >>"$out/results.jsonl" || die "analysis of $label failed"
  tail -1 "$out/results.jsonl" | python3 "$here/bridged.py" brief >&2
  log "exporting and checking the recordings of step $label"
  python3 "$here/recordings.py" step "$dir" "$out/data" "$out/keys/recordings.key" "$kald_bin" "$agentsim" \
    >>"$out/recordings.jsonl" || die "recordings check of $label failed"
  tail -1 "$out/recordings.jsonl" | python3 "$here/recordings.py" brief >&2
  if [ -s "$dir/agents-rtp.pcap" ]; then
    python3 "$here/recordings.py" holes "$dir" "$out/data" >"$dir/holes.json" || true
    log "right-channel holes vs the agents' RTP on the wire: $(cat "$dir/holes.json")"
  fi
}

: >"$out/results.jsonl"
: >"$out/recordings.jsonl"
for n in $steps; do
  step "$n" "$n" "$n" "$call_s" "$hold"
  sleep 5
done
kill -0 "$kald_pid" 2>/dev/null || die "kald died during the run"
echo "after=$(awk '/^VmRSS:/ {print $2}' /proc/$kald_pid/status)" >>"$out/rss.txt"
echo
echo "kald recorded-call benchmark: $(nproc) cores shared by kald, sipp and agentsim; 127.0.0.1 only"
python3 "$here/bridged.py" table "$out/results.jsonl"
echo
python3 "$here/recordings.py" table "$out/recordings.jsonl"
echo
echo "raw data: $out"
