#!/usr/bin/env bash
# kald load benchmark, bridged calls with agents (tests/load/README.md, "Bridged calls with
# agents"). One command: ./tests/load/bridged.sh
#
# Builds kald and agentsim in release, writes a kald.toml with KALD_BRIDGE_AGENTS agents
# (tests/load/agents.sh), starts `kald serve` on 127.0.0.1:5070, then
#   1. for each N in KALD_BRIDGE_STEPS: N simulated agents (agentsim) log in and N citizens
#      (sipp, citizen_bridged.xml) call, wait in the queue, are bridged, send a 440 Hz tone
#      while the agent sends 1000 Hz, and hang up after KALD_BRIDGE_CALL_S s; calls keep
#      coming for KALD_BRIDGE_HOLD s;
#   2. the ACD: KALD_ACD_AGENTS agents and KALD_ACD_CITIZENS citizens at once (so about
#      CITIZENS − AGENTS wait), citizens hang up after KALD_ACD_CALL_S s; agentsim measures
#      the time from kald's BYE to a freed agent to kald's next INVITE to that agent.
# Samples kald's CPU/RSS (load.py), captures a sample of kald's RTP towards the citizens,
# prints a table and stops everything. Exits non-zero only for a harness error.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
here=$root/tests/load

steps=${KALD_BRIDGE_STEPS:-"200 400 600"}
hold=${KALD_BRIDGE_HOLD:-60}
call_s=${KALD_BRIDGE_CALL_S:-30}
acd_agents=${KALD_ACD_AGENTS:-200}
acd_citizens=${KALD_ACD_CITIZENS:-1200}
acd_call_s=${KALD_ACD_CALL_S:-20}
acd_hold=${KALD_ACD_HOLD:-90}
per_sipp=${KALD_LOAD_SIPP_CALLS:-800}
target=${CARGO_TARGET_DIR:-$root/target}
out=${KALD_LOAD_OUT:-$target/load/bridged-$(date +%Y%m%d-%H%M%S)}
sip_port=5070
media_ports=20000-59999

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bridged: %s\n' "$*" >&2; exit 2; }

command -v sipp >/dev/null || die "sipp is not installed (apt-get install sip-tester)"
case "$(sipp -v 2>&1 || true)" in *RTPSTREAM*) ;; *) die "this sipp has no rtp_stream (needs sip-tester >= 3.6)" ;; esac
have_capture=0
command -v dumpcap >/dev/null && command -v tshark >/dev/null && have_capture=1
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

max_agents=$acd_agents
for n in $steps; do [ "$n" -gt "$max_agents" ] && max_agents=$n; done

log "building kald and agentsim (release, $target)"
CARGO_TARGET_DIR=$target cargo build --release -p kald -p agentsim --quiet || die "cargo build failed"
kald_bin=$target/release/kald
agentsim=$target/release/agentsim

mkdir -p "$out"
log "results in $out"
ss -Hlun "sport = :$sip_port" | grep -q . && die "UDP port $sip_port is in use"
"$here/agents.sh" "$max_agents" "$out"
"$agentsim" tone --hz 440 --out "$out/citizen_tone.ulaw"

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

# step KIND LABEL AGENTS CITIZENS CALL_S HOLD_S
step() {
  local kind=$1 label=$2 agents=$3 citizens=$4 cs=$5 hs=$6
  local dir=$out/$kind-$label procs limit calls i p cap= pids=()
  mkdir -p "$dir"
  "$agentsim" run --kald 127.0.0.1:$sip_port --agents "$agents" --duration 100000 \
    --login-timeout 60 --out "$dir" >"$dir/agentsim.out" 2>"$dir/agentsim.err" &
  sim_pid=$!
  for _ in $(seq 600); do [ -e "$dir/ready" ] && break; kill -0 $sim_pid 2>/dev/null || break; sleep 0.1; done
  [ -e "$dir/ready" ] || { cat "$dir/agentsim.err" >&2; die "agents did not log in"; }
  procs=$(( (citizens + per_sipp - 1) / per_sipp ))
  limit=$(( citizens / procs ))
  calls=$(awk -v l=$limit -v c=$cs -v h=$hs 'BEGIN { printf "%d", l * (h / c + 1) }')
  log "$kind $label: $agents agents, $citizens citizens at once ($procs sipp x -l $limit -m $calls), calls of ${cs}s"
  for i in $(seq 0 $((procs - 1))); do
    (cd "$out" && exec sipp 127.0.0.1:$sip_port -sf "$here/citizen_bridged.xml" -i 127.0.0.1 -p $((5080 + i)) \
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
  for p in "${pids[@]}"; do wait "$p" || true; done
  wait "$sampler" || true
  [ -n "$cap" ] && { wait "$cap" || true; }
  kill -TERM $sim_pid 2>/dev/null || true
  wait $sim_pid || true
  sleep 2
  python3 "$here/bridged.py" step "$kind" "$label" "$dir" "$idle_kb" >>"$out/results.jsonl" || die "analysis of $label failed"
  tail -1 "$out/results.jsonl" | python3 "$here/bridged.py" brief >&2
}

: >"$out/results.jsonl"
for n in $steps; do
  step bridged "$n" "$n" "$n" "$call_s" "$hold"
  sleep 5
done
step acd "$acd_agents-$acd_citizens" "$acd_agents" "$acd_citizens" "$acd_call_s" "$acd_hold"
kill -0 "$kald_pid" 2>/dev/null || die "kald died during the run"
echo "after=$(awk '/^VmRSS:/ {print $2}' /proc/$kald_pid/status)" >>"$out/rss.txt"
echo
echo "kald bridged-call benchmark: $(nproc) cores shared by kald, sipp and agentsim; 127.0.0.1 only"
python3 "$here/bridged.py" table "$out/results.jsonl"
echo
echo "raw data: $out"
