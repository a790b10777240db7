"""Consented recordings end to end (issue 8) with real softphones: a citizen who says yes is
recorded from the moment the agent answers, citizen left and agent right (told apart by the
tones each side plays), encrypted on disk; a citizen who says no, or withdraws during the call,
leaves no audio behind; what the catalogue holds is checked in the SQLite database."""

import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pjsua2 as pj

from conftest import KALD_BIN, REPO, Kald
from test_agents import PASSWORD, TONES, Centre, answered, read_pcm, tone_energy

FLOW = REPO / "tests" / "pjsua2" / "flows" / "consent.toml"


def press(call, digits: str):
    prm = pj.CallSendDtmfParam()
    prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
    prm.digits = digits
    prm.duration = 160
    call.sendDtmf(prm)


def recording_files(centre) -> list[Path]:
    root = centre.tmp / "data" / "recordings"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def db(centre):
    return sqlite3.connect(centre.tmp / "data" / "kald.db")


def call_through_consent(centre, citizen, anna, answer: str):
    """Call, answer the consent question with `answer`, wait until anna talks to the caller."""
    c = centre.dial(citizen, "70101010")
    assert centre.pump(lambda: answered(c), 10), centre.kald.text()
    centre.wait(2.6)  # the notice ("Velkommen til Jobcentret.") then the question
    press(c, answer)
    assert centre.pump(lambda: anna.incoming and answered(anna.incoming[-1]), 15), centre.kald.text()
    return c


def channel_energy(samples: np.ndarray, freq: float) -> float:
    spec = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / 8000)
    total = spec[(freqs > 100) & (freqs < 3800)].sum()
    return float(spec[np.abs(freqs - freq) <= 15].sum() / total) if total > 0 else 0.0


def test_a_consenting_call_is_recorded_encrypted_citizen_left_agent_right(peer, tmp_path, measured):
    centre = Centre(peer, tmp_path, flow=FLOW)
    try:
        anna = centre.party("anna")
        citizen = centre.party("citizen", register=False)
        centre.feature(anna, "*20", "Available")
        c1 = call_through_consent(centre, citizen, anna, "1")
        talk_started = time.monotonic()
        centre.wait(4.0)
        centre.hang_up(c1)
        talked = time.monotonic() - talk_started
        closed = centre.kald.wait_for("recording closed", 10)
        files = recording_files(centre)
        assert len(files) == 1, files
        raw = files[0].read_bytes()
        # Not playable without the key: no RIFF header, no PCM that carries the tones.
        assert raw[:8] == b"KALDREC1" and b"RIFF" not in raw[:64]
        pcm = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.float64)
        for f in (TONES["citizen"], TONES["anna"]):
            assert channel_energy(pcm[: 8000 * 2], f) < 0.05, f"the file's bytes carry {f} Hz"
        # Exported with the key: a standard stereo WAV, citizen left, agent right.
        wav = tmp_path / "export.wav"
        out = subprocess.run(
            [str(KALD_BIN), "recording", "export", str(files[0]), "--out", str(wav),
             "--keys", str(tmp_path / "keys" / "recordings.key")],
            capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        import wave
        with wave.open(str(wav), "rb") as w:
            assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
            x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64).reshape(-1, 2)
        seconds = len(x) / 8000
        mid = x[len(x) // 4: 3 * len(x) // 4]
        left = (channel_energy(mid[:, 0], TONES["citizen"]), channel_energy(mid[:, 0], TONES["anna"]))
        right = (channel_energy(mid[:, 1], TONES["anna"]), channel_energy(mid[:, 1], TONES["citizen"]))
        measured(f"recording: {seconds:.2f} s for {talked:.2f} s of talk; left 440 Hz {left[0]:.2f} "
                 f"(1000 Hz {left[1]:.3f}), right 1000 Hz {right[0]:.2f} (440 Hz {right[1]:.3f})")
        assert left[0] > 0.8 and left[1] < 0.05, f"left is not the citizen: {left}"
        assert right[0] > 0.8 and right[1] < 0.05, f"right is not the agent: {right}"
        assert abs(seconds - talked) < 1.0, (seconds, talked)
        assert closed.get("duration_ms", 0) > 3000
        centre.kald.stop()
        with db(centre) as con:
            rows = con.execute(
                "SELECT state, sha256, agent_id, consent, duration_ms, retention_until_us - ended_us FROM recordings"
            ).fetchall()
        assert len(rows) == 1, rows
        state, sha, agent, consent, duration_ms, keep_us = rows[0]
        assert (state, agent, bool(consent)) == ("closed", "anna", True)
        assert sha and len(sha) == 64
        days = keep_us / 86_400e6
        assert 89 <= days <= 92, f"kept {days:.1f} days, not three calendar months"
    finally:
        centre.close()


def test_no_consent_leaves_no_audio(peer, tmp_path):
    centre = Centre(peer, tmp_path, flow=FLOW)
    try:
        anna = centre.party("anna")
        citizen = centre.party("citizen", register=False)
        centre.feature(anna, "*20", "Available")
        c1 = call_through_consent(centre, citizen, anna, "2")
        centre.wait(2.0)
        centre.hang_up(c1)
        centre.kald.wait_for("call ended", 10)
        centre.wait(1.5)
        assert recording_files(centre) == [], "audio of a caller who said no is on disk"
        assert not centre.kald.events("recording started")
        centre.kald.stop()
        with db(centre) as con:
            assert con.execute("SELECT count(*) FROM recordings").fetchone()[0] == 0
            consent = con.execute("SELECT consent FROM calls WHERE entry_point = 'hovednummer'").fetchone()[0]
        assert consent == 0, consent
    finally:
        centre.close()


def test_withdrawal_during_the_call_deletes_the_recording(peer, tmp_path, measured):
    centre = Centre(peer, tmp_path, flow=FLOW)
    try:
        anna = centre.party("anna")
        citizen = centre.party("citizen", register=False)
        centre.feature(anna, "*20", "Available")
        c1 = call_through_consent(centre, citizen, anna, "1")
        centre.kald.wait_for("recording started", 5)
        centre.wait(2.5)  # more than a second: a sealed chunk is on disk by now
        assert recording_files(centre), "no recording file while recording"
        press(c1, "9")
        centre.kald.wait_for("consent withdrawn", 5)
        centre.wait(5.0)  # the confirmation (3.1 s), then the agent again
        files = recording_files(centre)
        assert files == [], f"a withdrawn recording is still on disk: {files}"
        heard_again = tone_energy(c1.path, TONES["anna"], last=1.0)
        measured(f"withdrawal: file gone; the citizen hears anna again at {heard_again:.2f}")
        assert heard_again > 0.5, "the citizen is not bridged back to the agent after the confirmation"
        centre.hang_up(c1)
        centre.kald.wait_for("call ended", 10)
        centre.kald.stop()
        with db(centre) as con:
            assert con.execute("SELECT count(*) FROM recordings").fetchone()[0] == 0
            assert con.execute("SELECT count(*) FROM tombstones").fetchone()[0] == 0
            consent, withdrawn = con.execute(
                "SELECT consent, consent_withdrawn_us FROM calls WHERE entry_point = 'hovednummer'").fetchone()
            audit = con.execute("SELECT actor, action FROM audit_log").fetchall()
        assert audit == [("citizen", "consent-withdraw")], audit
        assert consent == 1 and withdrawn, (consent, withdrawn)
        _, heard = read_pcm(c1.path)
        assert len(heard) > 8000
    finally:
        centre.close()


def many_agents_config(n: int) -> str:
    agents = "".join(
        f'\n[[agent]]\nlogin = "a{i:02}"\nname = "Agent {i}"\npassword = "{PASSWORD}"\nskills = {{ sygedagpenge = 1 }}\n'
        for i in range(1, n + 1))
    return '\n[registrar]\nnetworks = ["127.0.0.0/8"]\n\n[[queue]]\nname = "sygedagpenge"\nwrap_up_seconds = 0\n' + agents


def test_a_full_disk_stops_recording_with_an_alarm_and_the_call_goes_on(peer, tmp_path, measured):
    import os
    if os.geteuid() != 0:
        import pytest
        pytest.skip("needs root to mount a small tmpfs as the recordings directory")
    rec = tmp_path / "data" / "recordings"
    rec.mkdir(parents=True)
    # 96 KiB: the header and two seconds of sealed audio, then the disk is full.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(rec)], check=True)
    centre = None
    try:
        centre = Centre(peer, tmp_path, flow=FLOW)
        anna = centre.party("anna")
        citizen = centre.party("citizen", register=False)
        centre.feature(anna, "*20", "Available")
        c1 = call_through_consent(centre, citizen, anna, "1")
        failed = centre.kald.wait_for("recording failed", 15)
        centre.wait(2.0)
        still = tone_energy(c1.path, TONES["anna"], last=1.0)
        measured(f"disk full: {failed.get('error')}; the citizen still hears the agent at {still:.2f}")
        assert still > 0.5, "the call's audio stopped with the recording"
        assert centre.kald.events("ALARM: a recording stopped (is the disk full?); the call goes on unrecorded")
        centre.hang_up(c1)
        centre.kald.wait_for("call ended", 10)
        centre.kald.stop()
        with db(centre) as con:
            state, duration_ms = con.execute("SELECT state, duration_ms FROM recordings").fetchone()
        assert state == "truncated" and duration_ms >= 1000, (state, duration_ms)
    finally:
        if centre is not None:
            centre.close()
        subprocess.run(["umount", str(rec)], check=False)


def test_a_message_left_by_the_caller_is_recorded_on_the_left(peer, tmp_path, measured):
    import wave

    flow = tmp_path / "message.toml"
    flow.write_text("""
description = "e2e: leave a message"
start = "notice"
transfer_allowlist = []

[nodes.notice]
kind = "play"
prompt = "welcome"
notice = "message"
next = "message"

[nodes.message]
kind = "message"
team = "sygedagpenge"
max_length = "4s"
next = "bye"

[nodes.bye]
kind = "hangup"
prompt = "goodbye"
""")
    centre = Centre(peer, tmp_path, flow=flow)
    try:
        citizen = centre.party("citizen", register=False)
        c1 = centre.dial(citizen, "70101010")
        assert centre.pump(lambda: c1.disconnected, 20), "kald did not end the call after the message"
        closed = centre.kald.wait_for("recording closed", 10)
        files = recording_files(centre)
        assert len(files) == 1, files
        wav = tmp_path / "message.wav"
        out = subprocess.run(
            [str(KALD_BIN), "recording", "export", str(files[0]), "--out", str(wav),
             "--keys", str(tmp_path / "keys" / "recordings.key")], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        with wave.open(str(wav), "rb") as w:
            x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64).reshape(-1, 2)
        left = channel_energy(x[:, 0], TONES["citizen"])
        right_rms = float(np.sqrt(np.mean(x[:, 1] ** 2)))
        measured(f"message: {len(x) / 8000:.2f} s recorded, left 440 Hz {left:.2f}, right rms {right_rms:.1f}")
        assert 3.5 <= len(x) / 8000 <= 4.6, len(x) / 8000
        assert left > 0.8 and right_rms < 1.0, (left, right_rms)
        centre.kald.stop()
        with db(centre) as con:
            kind, consent, queue, state = con.execute("SELECT kind, consent, queue, state FROM recordings").fetchone()
        assert (kind, bool(consent), queue, state) == ("message", False, "sygedagpenge", "closed")
        assert closed.get("duration_ms", 0) >= 3500
    finally:
        centre.close()


def test_after_kill_9_every_recording_is_intact_and_catalogued(peer, tmp_path, measured):
    # Last in the session: the killed kald never answers the BYEs of its calls, so their
    # PJSIP call slots stay taken until PJSIP gives up (32 s).
    # This PJSIP build takes 4 calls at once (2 citizens + 2 agents).
    n = 2
    centre = Centre(peer, tmp_path, flow=FLOW, config=many_agents_config(n))
    try:
        agents = []
        for i in range(1, n + 1):
            a = centre.party(f"a{i:02}", answer_after=0.2)
            TONES.setdefault(a.name, 1000)
            centre.feature(a, "*20", "Available")
            agents.append(a)
        TONES.setdefault("citizen", 440)
        citizen = centre.party("citizen", register=False)
        calls = [centre.dial(citizen, "70101010") for _ in range(n)]
        assert centre.pump(lambda: all(answered(c) for c in calls), 15), centre.kald.text()
        centre.wait(2.6)
        for c in calls:
            press(c, "1")
        assert centre.pump(lambda: len(centre.kald.events("recording started")) == n, 20), centre.kald.text()
        centre.wait(3.5)
        centre.kald.proc.kill()  # SIGKILL: no chance to close anything
        centre.kald.proc.wait(10)
        for c in calls:
            centre.hang_up(c)
        files_before = recording_files(centre)
        assert len(files_before) == n, files_before

        centre.kald = Kald(tmp_path, flow=FLOW, config=many_agents_config(n))
        repaired = centre.kald.wait_for("recordings repaired at start (after an unclean stop)", 15)
        measured(f"after kill -9 during {n} recordings: {repaired}")
        assert repaired.get("completed", 0) + repaired.get("truncated", 0) == n, repaired
        assert repaired.get("orphans", 0) == 0 and repaired.get("missing", 0) == 0, repaired
        centre.kald.stop()
        with db(centre) as con:
            rows = con.execute("SELECT id, file, state, duration_ms FROM recordings").fetchall()
        assert len(rows) == n and all(state in ("truncated", "closed") for _, _, state, _ in rows), rows
        assert sorted(str(tmp_path / "data" / "recordings" / f) for _, f, _, _ in rows) == sorted(map(str, recording_files(centre)))
        for rid, f, _, duration_ms in rows:
            assert duration_ms >= 2000, f"{rid}: only {duration_ms} ms survived"
            wav = tmp_path / f"{rid}.wav"
            out = subprocess.run(
                [str(KALD_BIN), "recording", "export", str(tmp_path / "data" / "recordings" / f), "--out", str(wav),
                 "--keys", str(tmp_path / "keys" / "recordings.key")], capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            import wave
            with wave.open(str(wav), "rb") as w:
                assert abs(w.getnframes() / 8000 - duration_ms / 1000) < 0.05
    finally:
        centre.close()
