#!/usr/bin/env bash
# Recreates the fixtures of the SIPp end-to-end tests (crates/kald/tests/e2e_sipp.rs):
#
#   dtmf_inband_78pound.wav   8 kHz µ-law WAV: 0.5 s silence, the DTMF tones 7, 8 and #
#                             (100 ms each, 100 ms apart, each of the two frequencies at
#                             about -10 dBm0), 0.5 s silence. SIPp streams it with
#                             <exec rtp_stream="dtmf_inband_78pound.wav,1,0"/> (inband_dtmf.xml).
#
# Needs sox (apt-get install -y sox). Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")"
command -v sox >/dev/null || { echo "sox not found: apt-get install -y sox" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A µ-law 0 dBm0 sine peaks at 5664 of 8159 (-3.17 dBFS); -10 dBm0 is 0.2195 of full scale.
level=0.2195

# tone NAME LOW HIGH: 100 ms of two sines, each at $level, summed to one channel.
tone() {
    sox -D -n -r 8000 -b 16 -e signed -c 2 "$tmp/$1-2ch.wav" synth 0.1 sine "$2" sine "$3"
    sox -D "$tmp/$1-2ch.wav" -c 1 "$tmp/$1.wav" remix "1v$level,2v$level"
}
tone 7 852 1209
tone 8 852 1336
tone pound 941 1477
sox -D -n -r 8000 -b 16 -e signed -c 1 "$tmp/gap.wav" trim 0 0.1
sox -D -n -r 8000 -b 16 -e signed -c 1 "$tmp/lead.wav" trim 0 0.5

sox -D "$tmp/lead.wav" "$tmp/7.wav" "$tmp/gap.wav" "$tmp/8.wav" "$tmp/gap.wav" "$tmp/pound.wav" \
    "$tmp/lead.wav" -r 8000 -c 1 -e mu-law -b 8 dtmf_inband_78pound.wav

ls -l dtmf_inband_78pound.wav
