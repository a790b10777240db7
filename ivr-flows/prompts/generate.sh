#!/usr/bin/env bash
# Renders kald's Danish default prompts from prompts.tsv (name<TAB>text) to <name>.wav
# with espeak-ng, and makes hold-music.wav. With sox present every file is converted
# to 8 kHz mono 16-bit (small, and what kald plays); without sox the speech stays at
# espeak-ng's 22050 Hz (kald resamples at load) and hold music is skipped.
#
# Usage: generate.sh [OUTPUT_DIR]     (default: the directory of this script)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tsv="$here/prompts.tsv"
out_dir="${1:-$here}"
voice="da"
speed=150 # words per minute; espeak-ng's default of 175 is hurried on a phone line

die() {
    echo "generate.sh: $*" >&2
    exit 1
}

command -v espeak-ng >/dev/null 2>&1 ||
    die "espeak-ng is not installed. Install it (Debian/Ubuntu: apt-get install -y espeak-ng) and run again."
espeak-ng --voices="$voice" | awk 'NR > 1 { found = 1 } END { exit !found }' ||
    die "espeak-ng has no '$voice' (Danish) voice; install the full espeak-ng data package."
[[ -r "$tsv" ]] || die "cannot read $tsv"

have_sox=1
if ! command -v sox >/dev/null 2>&1; then
    have_sox=0
    echo "generate.sh: sox is not installed (apt-get install -y sox): speech is left at 22050 Hz" \
        "and hold-music.wav is not made." >&2
fi

mkdir -p "$out_dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# to_8k IN OUT: 8 kHz, mono, signed 16-bit. espeak-ng's leading and trailing silence
# (about 0.4 s) is trimmed to 50 ms before and 200 ms after the speech, so prompts
# played back to back (digits read back, "Du er nummer" + "to i køen.") flow naturally.
# -R makes dither repeatable, so unchanged prompts give byte-identical files.
to_8k() {
    sox -R "$1" -r 8000 -c 1 -b 16 "$2" \
        silence 1 0.01 0.3% reverse silence 1 0.01 0.3% reverse pad 0.05 0.2
}

declare -A seen=()
count=0
line_no=0
while IFS= read -r line || [[ -n "$line" ]]; do
    line_no=$((line_no + 1))
    line="${line%$'\r'}"
    [[ -z "${line//[[:space:]]/}" || "$line" == \#* ]] && continue
    [[ "$line" == *$'\t'* ]] || die "prompts.tsv line $line_no: expected name<TAB>text"
    name="${line%%$'\t'*}"
    text="${line#*$'\t'}"
    [[ "$name" =~ ^[a-z0-9][a-z0-9-]*$ ]] ||
        die "prompts.tsv line $line_no: bad name '$name' (use a-z, 0-9 and -)"
    [[ -n "${text//[[:space:]]/}" ]] || die "prompts.tsv line $line_no: '$name' has no text"
    [[ -z "${seen[$name]:-}" ]] || die "prompts.tsv line $line_no: '$name' is defined twice"
    [[ "$name" != "hold-music" ]] || die "prompts.tsv line $line_no: hold-music is made by this script"
    seen[$name]=1

    raw="$tmp/$name.wav"
    printf '%s\n' "$text" | espeak-ng -v "$voice" -s "$speed" -w "$raw" --stdin
    if ((have_sox)); then
        to_8k "$raw" "$out_dir/$name.wav"
    else
        mv "$raw" "$out_dir/$name.wav"
    fi
    count=$((count + 1))
done <"$tsv"
echo "generate.sh: rendered $count prompts to $out_dir"

# Hold music: 20 s of a soft arpeggio over C - Am - F - G (10 s, played twice so the
# file loops seamlessly). Plucked sine notes with a quiet sustained chord beneath,
# kept between 350 and 800 Hz, where a phone line carries sound well.
make_hold_music() {
    local note_len=0.625 bar_len=2.5 bar=0 parts=()
    local chords=(
        "523.25 659.26 783.99 659.26" # C major
        "440.00 523.25 659.26 523.25" # A minor
        "349.23 440.00 523.25 440.00" # F major
        "392.00 493.88 587.33 493.88" # G major
    )
    for chord in "${chords[@]}"; do
        local notes=() i=0
        read -r -a freqs <<<"$chord"
        for f in "${freqs[@]}"; do
            sox -R -n -r 8000 -c 1 -b 16 "$tmp/n$bar-$i.wav" \
                synth "$note_len" sine "$f" fade h 0.01 "$note_len" 0.55 vol 0.30
            notes+=("$tmp/n$bar-$i.wav")
            i=$((i + 1))
        done
        sox -R "${notes[@]}" "$tmp/arp$bar.wav"
        # The chord (first three notes) an octave lower, quietly sustained.
        local pad=()
        for f in "${freqs[@]:0:3}"; do
            local low
            low="$(awk -v f="$f" 'BEGIN { printf "%.2f", f / 2 }')"
            sox -R -n -r 8000 -c 1 -b 16 "$tmp/p$bar-$low.wav" \
                synth "$bar_len" sine "$low" fade h 0.4 "$bar_len" 0.6 vol 0.05
            pad+=("$tmp/p$bar-$low.wav")
        done
        sox -R -m -v 1 "$tmp/arp$bar.wav" -v 1 "${pad[0]}" -v 1 "${pad[1]}" -v 1 "${pad[2]}" \
            "$tmp/bar$bar.wav"
        parts+=("$tmp/bar$bar.wav")
        bar=$((bar + 1))
    done
    sox -R "${parts[@]}" "${parts[@]}" -r 8000 -c 1 -b 16 "$out_dir/hold-music.wav"
}

if ((have_sox)); then
    make_hold_music
    echo "generate.sh: made hold-music.wav (20 s)"
fi
