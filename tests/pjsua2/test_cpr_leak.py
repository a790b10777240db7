"""No CPR number in clear anywhere kald writes (issue 9, "Protecting the CPR number").

Citizens call `kald serve` (logging at TRACE through RUST_LOG) from pjsua2 and type test CPR
numbers by RFC 4733 DTMF: one consents, is recorded and talks to an agent who reads the number
on /api/me/call (screen pop); one refuses consent and talks to the agent; one consents and then
withdraws it (audit log); one types an invalid number first and then a valid one by SIP INFO,
and hangs up during the read-back; the last is talking to the agent, recorded, when kald is
killed with SIGABRT. kald is started again on the same data (it repairs the recording cut short)
and stopped. The flow reads each number back (prompts digit-0 … digit-9). The whole run is done
with SQLite and, when KALD_TEST_POSTGRES_URL names a server, with PostgreSQL (a database
created for the run and dropped after it).

Then everything is scanned for each number: kald's whole output (JSON log, stdout and stderr,
also what the killed process left), /metrics read as an administrator during and after the
calls, a dump of the database (SQLite: `iterdump()` plus the raw bytes of the database and its
WAL, taken right after the crash and at the end; PostgreSQL: `pg_dump` of a database made for
the run), every file under the data dir (recordings included) and a journal drop folder's
non-manifest files. Patterns: the ten digits, `DDMMYY-SSSS`, the digits spread over one line
with separators, the ten digits on consecutive lines one per line (also when interleaved with
other lines: lines are grouped by their shape), and in binary data also hex, UTF-16/32, BCD,
base64 and binary integers. The test first proves the numbers went through: the agent's API
answer shows them, and the call records and recordings hold their keyed hashes (HMAC-SHA256
under the key in keys/cpr.key)."""

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import resource
import secrets
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pjsua2 as pj
import pytest

from conftest import KALD_BIN, REPO, Kald
from test_agents import PASSWORD, Centre, answered
from test_pages import api, http_port, token
from test_recordings import press

FLOW = REPO / "tests" / "pjsua2" / "flows" / "cpr.toml"
ADMIN, ADMIN_PASSWORD = "ada", "secret-pass-9"
OFFICER, OFFICER_PASSWORD = "rita", "secret-pass-8"
CASE_NUMBER = "32.18.00-G01-17-26"  # KLE-style, as kald's default case-number pattern wants
# The records API (issue 9), used when kald's OpenAPI document lists all of it.
RECORDS_API = {"/api/search", "/api/calls/{id}/cpr", "/api/calls/{id}/links", "/api/recordings/{id}/journalise"}

# Test CPR numbers: the parser's rules (a real birth date, century from the 7th digit), some
# passing the old modulus-11 check, some not (numbers issued since 2007 need not).
CPR = {
    "recorded": "1503842137",  # modulus 11; consents, recorded, the agent answers (API)
    "refused": "2309712822",  # modulus 11; no consent, the agent answers (API)
    "withdrawn": "0612552274",  # modulus 11, a leading zero; consents, then withdraws (9)
    "abandoned": "2306084763",  # born 2008, not modulus 11; hangs up during the read-back
    "crashed": "0912117358",  # born 2011, not modulus 11; kald is killed mid-call
    # Entered by the agent over the API for the "refused" call (a correction after verifying
    # the caller), when kald has the records API.
    "corrected": "2911682411",  # modulus 11
}
# Typed before "abandoned" and refused by the validator (31 February): typed digits of any
# kind must not reach a log either.
INVALID_TYPED = "3102851234"

CONFIG = f"""
[registrar]
networks = ["127.0.0.0/8"]

[[queue]]
name = "sygedagpenge"
display = "Sygedagpenge"
wrap_up_seconds = 0
ring_seconds = 15

[[agent]]
login = "anna"
name = "Anna Jensen"
password = "{PASSWORD}"
extension = "101"
skills = {{ sygedagpenge = 1 }}

[[user]]
login = "{ADMIN}"
name = "Ada Administrator"
password = "{ADMIN_PASSWORD}"
role = "administrator"

[[user]]
login = "{OFFICER}"
name = "Rita Records"
password = "{OFFICER_PASSWORD}"
role = "records-officer"
"""


# ---------------------------------------------------------------------------------------------
# The scanner


_LONE_DIGIT = re.compile(r"(?<![0-9A-Za-z])([0-9])(?![0-9A-Za-z])")
_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_LONE_WORD = re.compile(r"(?<![A-Za-z])(" + "|".join(_WORDS) + r")(?![A-Za-z])", re.IGNORECASE)


def line_digits(line: str) -> set[str]:
    """The digits a line could be logging on its own: each digit standing alone (not part of a
    number or a word: `{"digit":"7"}`, `digit=7`, `Digit(7)`, `digit-7.wav`) and digit names.
    SQL placeholders (`$1`) are not digits, and a line with more than three different lone
    digits (an SQL statement, a list) is not a one-digit line: it would match almost anything."""
    line = re.sub(r"\$\d+", " ", line)
    found = set(_LONE_DIGIT.findall(line))
    found.update(str(_WORDS.index(w.lower())) for w in _LONE_WORD.findall(line))
    return found if len(found) <= 3 else set()


def _shape(line: str) -> str:
    """A line with its numbers blanked: the lines of one log statement share a shape."""
    return re.sub(r"\d+", "#", re.sub(r"(?<![0-9A-Za-z])(" + "|".join(_WORDS) + r")(?![A-Za-z])",
                                      "#", line, flags=re.IGNORECASE))


def _runs(sets: list[set[str]], digits: str) -> int | None:
    """Index of the first window of len(digits) consecutive entries holding the digits in order."""
    n = len(digits)
    for i in range(len(sets) - n + 1):
        if all(digits[k] in sets[i + k] for k in range(n)):
            return i
    return None


def scan_spread(text: str, digits: str) -> list[str]:
    """The digits within one stretch of text with short separators (`['1', '5', …]`, `1 5 0 3`),
    and their ASCII codes as numbers (the `Debug` of a byte array: `[49, 53, 48, …]`)."""
    found = []
    m = re.search(r"(?<!\d)" + r"\D{0,6}".join(digits) + r"(?!\d)", text)
    if m and digits not in m.group(0):
        found.append(f"the digits spread with separators: {m.group(0)!r}")
    m = re.search(r"(?<!\d)" + r"\D{1,4}".join(str(ord(c)) for c in digits) + r"(?!\d)", text)
    if m:
        found.append(f"the digits' ASCII codes: {m.group(0)!r}")
    return found


def scan_text(text: str, digits: str) -> list[str]:
    """Where `digits` (a CPR number or typed digits) shows in a log or other text."""
    found = []
    if digits in text:
        found.append("the ten digits")
    dashed = f"{digits[:6]}-{digits[6:]}"
    if dashed in text:
        found.append("DDMMYY-SSSS")
    found += scan_spread(text, digits)
    lines = [l for l in text.splitlines() if l.strip()]
    sets = [line_digits(l) for l in lines]
    i = _runs(sets, digits)
    if i is not None:
        found.append("one digit per line on consecutive lines:\n  " + "\n  ".join(lines[i:i + len(digits)]))
    else:
        # The same log statement's lines, with other lines (threads, RTP) between them.
        groups: dict[str, list[int]] = {}
        for idx, (l, s) in enumerate(zip(lines, sets)):
            if s:
                groups.setdefault(_shape(l), []).append(idx)
        for idxs in groups.values():
            j = _runs([sets[k] for k in idxs], digits)
            if j is not None:
                found.append("one digit per line on consecutive lines of one log statement:\n  "
                             + "\n  ".join(lines[k] for k in idxs[j:j + len(digits)]))
                break
    return found


def binary_needles(digits: str) -> dict[str, bytes]:
    """Encodings of a digit string that a binary file (a database page, WAL, dump) might hold."""
    ascii_ = digits.encode()
    dashed = f"{digits[:6]}-{digits[6:]}".encode()
    value = int(digits)
    needles = {
        "ASCII": ascii_,
        "ASCII with the dash": dashed,
        "hex of the ASCII digits": binascii.hexlify(ascii_),
        "HEX of the ASCII digits": binascii.hexlify(ascii_).upper(),
        "UTF-16LE": digits.encode("utf-16-le"),
        "UTF-16BE": digits.encode("utf-16-be"),
        "UTF-32LE": digits.encode("utf-32-le"),
        "UTF-16LE with the dash": dashed.decode().encode("utf-16-le"),
        "packed BCD": bytes.fromhex(digits),
        "base64 of the ASCII digits": base64.b64encode(ascii_)[:12],
        "integer, 64-bit little-endian": value.to_bytes(8, "little"),
        "integer, 64-bit big-endian": value.to_bytes(8, "big"),
    }
    if value < 2**32:
        needles["integer, 32-bit little-endian"] = value.to_bytes(4, "little")
        needles["integer, 32-bit big-endian"] = value.to_bytes(4, "big")
    if digits.startswith("0"):
        needles["decimal integer (leading zero dropped)"] = str(value).encode()
    return needles


def scan_bytes(data: bytes, digits: str) -> list[str]:
    found = [name for name, needle in binary_needles(digits).items() if needle in data]
    return found


@dataclass
class Evidence:
    """Everything a run left that must not hold a CPR number: name → text or bytes."""
    texts: dict[str, str] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def add_tree(self, label: str, root: Path, skip=lambda p: False):
        if root.exists():
            for p in sorted(root.rglob("*")):
                if p.is_file() and not skip(p):
                    self.blobs[f"{label}/{p.relative_to(root)}"] = p.read_bytes()

    def leaks(self, numbers: list[str]) -> list[str]:
        out = []
        for digits in numbers:
            for name, text in self.texts.items():
                out += [f"{name}: {digits}: {w}" for w in scan_text(text, digits)]
            for name, data in self.blobs.items():
                out += [f"{name}: {digits}: {w}" for w in scan_bytes(data, digits)]
                # A text file is read as text; in a binary one (a database page, a WAL, sealed
                # audio) only the patterns within a short stretch are meaningful: random bytes
                # hold a digit on many of their "lines".
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    found = scan_spread(data.decode("latin-1"), digits)
                else:
                    found = [w for w in scan_text(text, digits)
                             if not w.startswith(("the ten digits", "DDMMYY-SSSS"))]
                out += [f"{name} (as text): {digits}: {w}" for w in found]
        return out


# ---------------------------------------------------------------------------------------------
# The scanner can fail: synthetic leaks are caught, a clean log passes.


def _noise(i: int) -> str:
    return (f'{{"timestamp":"2026-11-23T09:15:{i % 60:02}.{i * 7919 % 1000000:06}Z","level":"TRACE",'
            f'"message":"rtp packet","seq":{1000 + i},"ssrc":{(i * 2654435761) % 2**32},"len":172}}')


def test_the_scanner_catches_each_kind_of_leak():
    cpr = CPR["recorded"]
    # One JSON line per DTMF digit, as a DTMF trace would have it, between other lines.
    lines = []
    for i, d in enumerate(cpr):
        lines.append(_noise(3 * i))
        lines.append(f'{{"timestamp":"2026-11-23T09:15:{i:02}.123456Z","level":"TRACE","fields":'
                     f'{{"message":"dtmf","digit":"{d}"}},"target":"kald_media::dtmf"}}')
        lines.append(_noise(3 * i + 1))
    assert any("log statement" in w for w in scan_text("\n".join(lines), cpr))
    # The same on strictly consecutive lines, in several spellings.
    for fmt in ("digit={}", '{{"digit":"{}"}}', "Digit({})", "  {}  ", "playing prompt digit-{}.wav",
                "key {} pressed", '{{"attempt":1,"leg":2,"digit":"{}"}}'):
        text = "\n".join(fmt.format(d) for d in cpr)
        assert any("consecutive lines" in w for w in scan_text(text, cpr)), fmt
    words = "\n".join(f"pressed {['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'][int(d)]}"
                      for d in cpr)
    assert scan_text(words, cpr)
    # In one line: plain, dashed, spread out.
    assert "the ten digits" in scan_text(f'{{"cpr":"{cpr}"}}', cpr)
    assert "DDMMYY-SSSS" in scan_text(f"caller {cpr[:6]}-{cpr[6:]} queued", cpr)
    assert scan_text("digits: " + str(list(cpr)), cpr)
    assert scan_text(f"Cpr {{ digits: {list(cpr)} }}", cpr)
    assert scan_text(f"Cpr {{ digits: {list(cpr.encode())} }}", cpr)  # a Debug of [u8; 10]
    assert Evidence(blobs={"page": os.urandom(99) + f"x{list(cpr.encode())}".encode() + b"\xff"}).leaks([cpr])
    # Binary encodings.
    for name, needle in binary_needles(cpr).items():
        assert name in scan_bytes(b"\x00" * 100 + needle + b"\xff" * 100, cpr), name
    assert "UTF-16LE" in scan_bytes(os.urandom(64) + cpr.encode("utf-16-le"), cpr)
    # A clean log with other numbers, single digits and partial matches passes.
    clean = [_noise(i) for i in range(500)]
    clean += [f'{{"message":"digits collected","field_lengths":"cpr:10","attempt":{i % 3}}}' for i in range(50)]
    # Near misses: nine of the ten digits one per line, then another digit; nine of them spread.
    clean += [f"digit={d}" for d in cpr[:9]] + [f"digit={(int(cpr[9]) + 1) % 10}"]
    clean += [f"{cpr[:5]} {cpr[5:9]}............", "******-****", f"cpr_hash={hashlib.sha256(cpr.encode()).hexdigest()}"]
    # A burst of SQL statements whose placeholders and lists hold every digit.
    clean += ['{"db.statement":"INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"}'] * 12
    clean += ["pages [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]"] * 12
    for digits in CPR.values():
        assert scan_text("\n".join(clean), digits) == [], digits
    ev = Evidence(texts={"clean.log": "\n".join(clean)}, blobs={"noise.bin": os.urandom(1 << 16)})
    assert ev.leaks(list(CPR.values())) == []
    ev.texts["leaky.log"] = "\n".join(lines)
    assert ev.leaks([cpr]) and not ev.leaks([CPR["refused"]])


# ---------------------------------------------------------------------------------------------
# kald with TRACE logging, real calls, and what they leave behind


class TraceCentre(Centre):
    """test_agents' Centre with kald's log at TRACE (RUST_LOG=trace)."""

    def __init__(self, peer, tmp_path: Path, config: str):
        self.peer = peer
        self.kald = Kald(tmp_path, flow=FLOW, config=config, rust_log="trace")
        self.parties = []
        self.calls = []
        self.tmp = tmp_path


def lookup_hash(keys_dir: Path, digits: str) -> str:
    """The keyed look-up hash kald stores for a CPR number (kald_core::protect: HMAC-SHA256 of
    the ten ASCII digits under the `mac` key of keys/cpr.key), as hex."""
    for line in (keys_dir / "cpr.key").read_text().splitlines():
        parts = line.split("#", 1)[0].split()
        if parts and parts[0] == "mac":
            return hmac.new(bytes.fromhex(parts[1]), digits.encode(), hashlib.sha256).hexdigest()
    raise AssertionError("no mac key in cpr.key")


def metrics(port: int) -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    cred = base64.b64encode(f"{ADMIN}:{ADMIN_PASSWORD}".encode()).decode()
    req.add_header("Authorization", f"Basic {cred}")
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read().decode()


def http(port: int, method: str, path: str, bearer: str, body: dict | None = None,
         raw: bytes | None = None) -> tuple[int, object]:
    """A request whatever its status: (status, JSON answer or None)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    req.add_header("Authorization", f"Bearer {bearer}")
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, data, timeout=5) as r:
            status, answer = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, answer = e.code, e.read()
    try:
        return status, json.loads(answer) if answer else None
    except ValueError:
        return status, answer.decode(errors="replace")


def dashed(digits: str) -> str:
    return f"{digits[:6]}-{digits[6:]}"


class CaseSystem:
    """A case system's webhook on loopback: takes every document, answers with a receipt."""

    def __init__(self):
        import http.server
        import threading

        self.bodies: list[bytes] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                outer.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                answer = json.dumps({"document_id": f"DOC-{len(outer.bodies)}"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/documents"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def journal_drop_folder_supported(tmp: Path) -> bool:
    """Whether kald's config takes `[journal] drop_folder` and `webhook` (issue 9)."""
    probe = tmp / "probe"
    probe.mkdir()
    (probe / "kald.toml").write_text(
        f'[journal]\ndrop_folder = "{probe / "drop"}"\nwebhook = "http://127.0.0.1:9/documents"\n')
    out = subprocess.run(
        [str(KALD_BIN), "audit", "verify", "--config", str(probe / "kald.toml"),
         "--data-dir", str(probe / "data"), "--keys-dir", str(probe / "keys")],
        capture_output=True, text=True, timeout=30, env={**os.environ, "RUST_LOG": "error"})
    return not re.search(r"unknown field `(journal|drop_folder|webhook)`", out.stdout + out.stderr)


def press_info(call, digits: str):
    """Digits by SIP INFO (application/dtmf-relay), one request per digit."""
    prm = pj.CallSendDtmfParam()
    prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO
    prm.digits = digits
    prm.duration = 160
    call.sendDtmf(prm)


def call_with_cpr(centre, citizen, consent: str, typed: list[str], info: bool = False):
    """Call, answer the consent question, type each string in `typed` (an entry each; by RFC 4733,
    the last by SIP INFO with `info`)."""
    c = centre.dial(citizen, "70101010")
    assert centre.pump(lambda: answered(c), 10), centre.kald.text()
    centre.wait(2.4)  # the notice ("Velkommen til Jobcentret.") then the question (barge-in)
    press(c, consent)
    centre.wait(0.8)  # the consent answer moves on to the CPR prompt (barge-in)
    for i, digits in enumerate(typed):
        if i:
            centre.wait(4.5)  # sent, read back and refused: the read-back can be barged into
        (press_info if info and i == len(typed) - 1 else press)(c, digits)
    return c


@dataclass
class Run:
    evidence: Evidence
    drop_folder: Path | None
    seconds: float
    # What of the records API was driven (empty when kald has none yet).
    records_api: list[str] = field(default_factory=list)


def run_calls(peer, tmp: Path, database: str | None, drop_folder: Path | None,
              case_system: CaseSystem | None = None) -> Run:
    """The calls of the test against one kald (and its restart after the crash)."""
    started = time.monotonic()
    ev = Evidence()
    config = (f'database = "{database}"\n' if database else "") + CONFIG
    if drop_folder is not None:
        drop_folder.mkdir(mode=0o700, exist_ok=True)  # the case system's folder exists already
        config += f'\n[journal]\ndrop_folder = "{drop_folder}"\n'
        if case_system is not None:
            config += f'webhook = "{case_system.url}"\n'
    centre = TraceCentre(peer, tmp, config)
    try:
        anna = centre.party("anna")
        citizen = centre.party("citizen", register=False)
        centre.feature(anna, "*20", "Available")
        port = http_port(centre)
        anna_token = token(port, "anna", PASSWORD)
        paths = set(api(port, "/api/openapi.json", token(port, ADMIN, ADMIN_PASSWORD))["paths"])
        officer = token(port, OFFICER, OFFICER_PASSWORD) if RECORDS_API <= paths else None
        done: list[str] = []
        call_ids: dict[str, str] = {}

        def talk_to_anna(c, name: str, consent: str):
            n = len(anna.incoming)
            assert centre.pump(lambda: len(anna.incoming) > n and answered(anna.incoming[-1]), 25), (
                f"{name}: anna was not rung\n{centre.kald.text()[-20000:]}")
            shown = api(port, "/api/me/call", anna_token)["call"]
            assert shown and shown["cpr"] == f"{CPR[name][:6]}-{CPR[name][6:]}", (
                f"{name}: the screen pop does not show the typed CPR number: {shown and shown.get('cpr') is not None}")
            assert shown["consent"] is (consent == "1"), shown["consent"]
            call_ids[name] = shown["id"]
            return anna.incoming[-1]

        # Consents, is recorded, the agent reads the CPR number on the API; metrics meanwhile.
        c = call_with_cpr(centre, citizen, "1", [CPR["recorded"]])
        talk_to_anna(c, "recorded", "1")
        centre.kald.wait_for("recording started", 5)
        centre.wait(2.5)
        ev.texts["metrics during a call"] = metrics(port)
        if officer:
            # The agent links the call to the citizen's case.
            status, link = http(port, "POST", f"/api/calls/{call_ids['recorded']}/links", anna_token,
                                {"case_number": CASE_NUMBER, "note": "sygemelding"})
            assert status == 201, (status, link)
            done.append("link")
        centre.hang_up(c)
        centre.kald.wait_for("recording closed", 10)

        # Refuses consent, talks to the agent.
        c = call_with_cpr(centre, citizen, "2", [CPR["refused"]])
        talk_to_anna(c, "refused", "2")
        if officer:
            # The agent corrects the CPR number after verifying the caller: first a client's
            # mistake (the number as a JSON number, which a rejection could echo), then right.
            url = f"/api/calls/{call_ids['refused']}/cpr"
            raw = f'{{"cpr": {int(CPR["corrected"])}, "verified_by": "kontrolspørgsmål"}}'.encode()
            status, answer = http(port, "POST", url, anna_token, raw=raw)
            assert 400 <= status < 500, (status, answer)
            status, answer = http(port, "POST", url, anna_token,
                                  {"cpr": dashed(CPR["corrected"]), "verified_by": "kontrolspørgsmål"})
            assert 200 <= status < 300, (status, answer)
            done.append("CPR correction")
        centre.wait(1.0)
        centre.hang_up(c)

        # Consents, then withdraws it while talking (an audit entry).
        c = call_with_cpr(centre, citizen, "1", [CPR["withdrawn"]])
        talk_to_anna(c, "withdrawn", "1")
        centre.kald.wait_for("recording started", 5)
        centre.wait(1.5)
        press(c, "9")
        centre.kald.wait_for("consent withdrawn", 5)
        centre.wait(1.0)
        centre.hang_up(c)

        # An invalid number (RFC 4733), then a valid one by SIP INFO; hangs up during its read-back.
        c = call_with_cpr(centre, citizen, "2", [INVALID_TYPED, CPR["abandoned"]], info=True)
        centre.wait(4.5)
        centre.hang_up(c)
        centre.wait(1.0)
        ev.texts["metrics after the calls"] = metrics(port)
        if officer:
            # A records officer searches by CPR number (in the query string), plain and dashed,
            # and by an invalid one.
            status, found = http(port, "GET", f"/api/search?cpr={dashed(CPR['recorded'])}", officer)
            assert status == 200, (status, found)
            mine = [f for f in found if f["id"] == call_ids["recorded"]]
            assert mine and mine[0]["cpr"] == dashed(CPR["recorded"]) and mine[0]["recordings"], found
            status, found = http(port, "GET", f"/api/search?cpr={CPR['corrected']}", officer)
            assert status == 200 and [f["id"] for f in found] == [call_ids["refused"]], (status, found)
            status, _ = http(port, "GET", f"/api/search?cpr={INVALID_TYPED}", officer)
            assert status == 400, status
            done.append("search by CPR")
            if "/api/access-requests" in paths:
                status, answer = http(port, "POST", "/api/access-requests", officer, {
                    "law": "gdpr", "requester": "borgeren selv", "identity_verified_by": "MitID",
                    "cpr": CPR["withdrawn"]})
                assert status == 201, (status, answer)
                done.append("access request")
            if drop_folder is not None:
                rec = mine[0]["recordings"][0]["id"]
                link = mine[0]["links"][0]["id"]
                status, answer = http(port, "POST", f"/api/recordings/{rec}/journalise", officer, {"link_id": link})
                assert status == 202, (status, answer)
                assert centre.pump(lambda: any(p.suffix == ".json" for p in drop_folder.glob("*.json")), 20), (
                    f"nothing in the drop folder\n{centre.kald.text()[-5000:]}")
                if case_system is not None:
                    assert centre.pump(lambda: case_system.bodies, 20), (
                        f"nothing POSTed to the webhook\n{centre.kald.text()[-5000:]}")
                    assert centre.pump(lambda: [e for e in centre.kald.events("journalised: the case system has the recording")
                                                if e.get("target") == "webhook"], 10), centre.kald.text()[-5000:]
                    done.append("journalised to a webhook")
                done.append("journalised to the drop folder")

        # Recorded and talking to the agent when kald is killed.
        c = call_with_cpr(centre, citizen, "1", [CPR["crashed"]])
        talk_to_anna(c, "crashed", "1")
        assert centre.pump(lambda: len(centre.kald.events("recording started")) >= 3, 5)
        centre.wait(2.5)
        centre.kald.proc.send_signal(signal.SIGABRT)
        centre.kald.proc.wait(10)
        centre.wait(0.2)
        ev.texts["kald output up to SIGABRT"] = centre.kald.text()
        ev.add_tree("data dir after the crash", tmp / "data")
        assert centre.kald.proc.returncode == -signal.SIGABRT, centre.kald.proc.returncode
        shutil.copy(tmp / "kald.log", tmp / "kald-crashed.log")
        # Started again on the same data (it repairs the recording cut short) and the same SIP
        # port, which answers the phones' BYEs: a call whose BYE goes unanswered holds one of
        # pjsua's few call slots for 32 s.
        k = Kald(tmp, flow=FLOW, config=config, rust_log="trace", sip_port=centre.kald.sip_port)
    finally:
        centre.close()
    try:
        port = int(str(k.wait_for("web pages and API listening", 10)["http"]).rsplit(":", 1)[1])
        deadline = time.monotonic() + 5
        while not (text := metrics(port)) and time.monotonic() < deadline:
            time.sleep(0.2)  # the metrics are filled in by the first round of the SIP loop
        ev.texts["metrics after the restart"] = text
    finally:
        k.stop()
    ev.texts["kald output after the restart"] = k.text()
    assert k.proc.returncode == 0, k.text()[-5000:]
    ev.add_tree("data dir", tmp / "data")
    return Run(ev, drop_folder, time.monotonic() - started, done)


def assert_trace_and_no_leaks(ev: Evidence):
    logs = ev.texts["kald output up to SIGABRT"]
    assert '"level":"TRACE"' in logs, "kald did not log at TRACE: RUST_LOG=trace did not reach it"
    for name, text in ev.texts.items():
        if name.startswith("metrics"):
            assert "kald_" in text, f"{name}: no kald metrics:\n{text[:2000]}"
    leaks = ev.leaks(list(CPR.values()) + [INVALID_TYPED])
    assert not leaks, "CPR numbers or typed digits in clear:\n" + "\n".join(leaks)


@pytest.fixture(scope="module")
def sqlite_run(peer, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cpr-sqlite")
    drop = tmp / "drop" if journal_drop_folder_supported(tmp) else None
    case_system = CaseSystem() if drop else None
    old = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, old[1]))  # SIGABRT: no core file
    try:
        run = run_calls(peer, tmp, None, drop, case_system)
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, old)
        if case_system:
            case_system.close()
    return tmp, run, case_system


def sqlite_dump(path: Path) -> str:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return "\n".join(con.iterdump())
    finally:
        con.close()


def assert_hashes(rows: dict[str, set[str]], keys: Path, corrected: bool):
    """The CPR numbers went through: each is in the call records (the one killed mid-call at
    least in the recordings' catalogue) by its keyed hash."""
    h = {name: lookup_hash(keys, d) for name, d in CPR.items()}
    for name in ("recorded", "refused", "withdrawn", "abandoned"):
        if name == "refused" and corrected:
            name = "corrected"
        assert h[name] in rows["calls"], f"no call record with the keyed hash of the {name!r} CPR"
    assert h["recorded"] in rows["recordings"], "the recording is not catalogued with its CPR hash"
    assert h["crashed"] in rows["calls"] | rows["recordings"], "the call killed mid-way left no CPR hash"


def test_sqlite_run_leaks_no_cpr(sqlite_run, measured):
    tmp, run, _ = sqlite_run
    db = tmp / "data" / "kald.db"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = {t: {r[0].lower() for r in con.execute(
                    f"SELECT hex(cpr_hash) FROM {t} WHERE cpr_hash IS NOT NULL")}
                for t in ("calls", "recordings")}
        assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'consent-withdraw'").fetchone()[0] >= 1
        assert con.execute("SELECT count(*) FROM queue_events").fetchone()[0] > 0
    finally:
        con.close()
    assert_hashes(rows, tmp / "keys", "CPR correction" in run.records_api)
    ev = run.evidence
    ev.texts["SQLite dump (iterdump)"] = sqlite_dump(db)
    assert "INSERT INTO" in ev.texts["SQLite dump (iterdump)"]
    assert any(k.startswith("data dir/recordings/") for k in ev.blobs), "no recording on disk"
    measured(f"CPR leak scan (SQLite): {len(ev.texts)} texts ({sum(map(len, ev.texts.values())) // 1024} KiB), "
             f"{len(ev.blobs)} files ({sum(map(len, ev.blobs.values())) // 1024} KiB); calls took {run.seconds:.0f} s; "
             f"records API: {', '.join(run.records_api) or 'not in this kald'}")
    assert_trace_and_no_leaks(ev)


def _psql(url: str, sql: str) -> str:
    out = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-d", url, "-c", sql],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"psql: {out.stderr}"
    return out.stdout


def test_postgres_run_leaks_no_cpr(peer, tmp_path, measured):
    base = os.environ.get("KALD_TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("KALD_TEST_POSTGRES_REQUIRED") == "1":
            pytest.fail("KALD_TEST_POSTGRES_REQUIRED=1 but KALD_TEST_POSTGRES_URL is not set")
        pytest.skip("KALD_TEST_POSTGRES_URL is not set (tests/run.sh starts a PostgreSQL)")
    for tool in ("psql", "pg_dump"):
        if not shutil.which(tool):
            pytest.fail(f"no {tool} (Debian's postgresql-client) for the PostgreSQL CPR scan")
    # A database of its own, so nothing of earlier runs is in the dump.
    name = f"kald_cpr_{secrets.token_hex(6)}"
    _psql(base, f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(base)
    url = urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
    old = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, old[1]))
    try:
        run = run_calls(peer, tmp_path, url, None)
        rows = {t: set(_psql(url, f"SELECT encode(cpr_hash, 'hex') FROM {t} WHERE cpr_hash IS NOT NULL").split())
                for t in ("calls", "recordings")}
        assert int(_psql(url, "SELECT count(*) FROM audit_log WHERE action = 'consent-withdraw'")) >= 1
        assert int(_psql(url, "SELECT count(*) FROM queue_events")) > 0
        assert_hashes(rows, tmp_path / "keys", "CPR correction" in run.records_api)
        dump = subprocess.run(["pg_dump", "--no-owner", "-d", url], capture_output=True, timeout=120)
        assert dump.returncode == 0, dump.stderr.decode(errors="replace")
        text = dump.stdout.decode(errors="replace")
        assert "COPY public.calls" in text, text[:2000]
        ev = run.evidence
        ev.texts["pg_dump"] = text
        ev.blobs["pg_dump (bytes)"] = dump.stdout
        assert not (tmp_path / "data" / "kald.db").exists(), "kald used SQLite, not the database given"
        measured(f"CPR leak scan (PostgreSQL): {len(ev.texts)} texts ({sum(map(len, ev.texts.values())) // 1024} KiB), "
                 f"{len(ev.blobs)} files; calls took {run.seconds:.0f} s; "
                 f"records API: {', '.join(run.records_api) or 'not in this kald'}")
        assert_trace_and_no_leaks(ev)
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, old)
        subprocess.run(["psql", "-X", "-q", "-d", base, "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                       capture_output=True, timeout=60)


def test_journal_drop_folder_leaks_no_cpr(sqlite_run):
    tmp, run, case_system = sqlite_run
    if run.drop_folder is None:
        pytest.skip("kald's config has no [journal] drop_folder yet (journalising, issue 9): no drop folder to scan")
    files = [p for p in run.drop_folder.rglob("*") if p.is_file()] if run.drop_folder.exists() else []
    others = [p for p in files if p.suffix != ".json"]
    if not others:
        pytest.skip("kald has no records API (links, journalising) yet: nothing was written to the drop folder")
    assert "journalised to the drop folder" in run.records_api
    assert any(p.suffix == ".wav" for p in others), others
    # The manifest is the one place the CPR number leaves kald in clear: the scanner finds it
    # there, so it is looking for the right numbers in the right form.
    manifests = [p.read_text() for p in files if p.suffix == ".json"]
    assert any(scan_text(m, CPR["recorded"]) for m in manifests), "the manifest does not carry the CPR number"
    if case_system is not None:
        assert "journalised to a webhook" in run.records_api
        assert any(scan_text(b.decode(errors="replace"), CPR["recorded"]) for b in case_system.bodies), (
            "the document POSTed to the webhook does not carry the CPR number")
    ev = Evidence()
    for p in others:
        ev.blobs[f"drop folder/{p.relative_to(run.drop_folder)}"] = p.read_bytes()
    leaks = ev.leaks(list(CPR.values()))
    assert not leaks, "CPR numbers in the drop folder's non-manifest files:\n" + "\n".join(leaks)
