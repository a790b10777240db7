#!/usr/bin/env bash
# Writes the contact-centre configuration of the bridged-call benchmark (tests/load/bridged.sh):
#   agents.sh N DIR [consent]  →  DIR/kald.toml (loopback trunk into the "queue" flow, the
#   registrar on loopback, queue "sygedagpenge" with no wrap-up, agents a001…aN with password
#   load-pass-001…, skill sygedagpenge = 1) and DIR/flows/queue.toml (straight into the
#   queue with hold music; a caller waits up to 10 minutes).
#   With "consent" (the recorded-calls benchmark, recorded.sh and crash.sh) the trunk goes to
#   DIR/flows/consent.toml instead: a short recording notice (the 1.8 s welcome), the consent
#   question with barge-in (1 = yes), then the same queue.
set -euo pipefail
n=${1:?usage: agents.sh N DIR [consent]}
dir=${2:?usage: agents.sh N DIR [consent]}
entry=queue
[ "${3:-}" = consent ] && entry=consent
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
if [ "$entry" = consent ]; then
  rm -f "$dir/flows/queue.toml"
  cat >"$dir/flows/consent.toml" <<'TOML'
# The recorded-calls benchmark: a short notice (the checker wants one before consent), the
# consent question (barge-in: the caller keys 1 during it), then the sygedagpenge queue.
description = "load: notice, consent, then the sygedagpenge queue"
start = "notice"
transfer_allowlist = []

[nodes.notice]
kind = "play"
prompt = "welcome"
notice = "recording"
next = "consent"

[nodes.consent]
kind = "consent"
prompt = "consent-question"
barge_in = true
yes = "1"
no = "2"
timeout = "8s"
next = "queue"

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
fi
{
  cat <<TOML
[[trunk]]
name = "loopback"
networks = ["127.0.0.0/8"]
numbers = [{ pattern = "*", entry_point = "$entry" }]

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
