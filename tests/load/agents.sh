#!/usr/bin/env bash
# Writes the contact-centre configuration of the bridged-call benchmark (tests/load/bridged.sh):
#   agents.sh N DIR  →  DIR/kald.toml (loopback trunk into the "queue" flow, the registrar on
#   loopback, queue "sygedagpenge" with no wrap-up, agents a001…aN with password
#   load-pass-001…, skill sygedagpenge = 1) and DIR/flows/queue.toml (straight into the
#   queue with hold music; a caller waits up to 10 minutes).
set -euo pipefail
n=${1:?usage: agents.sh N DIR}
dir=${2:?usage: agents.sh N DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$dir/flows"
ln -sfn "$root/ivr-flows/prompts" "$dir/flows/prompts"
cat >"$dir/flows/queue.toml" <<'TOML'
# Every citizen goes straight into the sygedagpenge queue and hears hold music until an
# agent answers (the load benchmark's agents answer at once).
description = "load: straight into the sygedagpenge queue"
start = "queue"
transfer_allowlist = []

[nodes.queue]
kind = "queue"
queue = "sygedagpenge"
topic = "sygemelding"
hold_music = "hold-music"
max_wait = "600s"
fallback = "all-busy"

[nodes.all-busy]
kind = "hangup"
prompt = ["all-lines-busy", "goodbye"]
TOML
{
  cat <<'TOML'
[[trunk]]
name = "loopback"
networks = ["127.0.0.0/8"]
numbers = [{ pattern = "*", entry_point = "queue" }]

[registrar]
networks = ["127.0.0.0/8"]

[[queue]]
name = "sygedagpenge"
display = "Sygedagpenge"
wrap_up_seconds = 0      # no after-call work: the agent is available at once
ring_seconds = 15
TOML
  for i in $(seq 1 "$n"); do
    printf '\n[[agent]]\nlogin = "a%03d"\nname = "Agent %03d"\npassword = "load-pass-%03d"\nskills = { sygedagpenge = 1 }\n' "$i" "$i" "$i"
  done
} >"$dir/kald.toml"
