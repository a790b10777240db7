#!/usr/bin/env bash
# Creates tests/.venv (if missing) with what tests/pjsua2 needs. Idempotent; silent when already set up.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/../.venv"
req="$here/requirements.txt"
stamp="$venv/.pjsua2-requirements.txt"
if [[ -x "$venv/bin/python" ]] && cmp -s "$req" "$stamp" \
    && "$venv/bin/python" -c 'import pjsua2, numpy, pytest, playwright' 2>/dev/null; then
    exit 0
fi
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
cp "$req" "$stamp"
