"""A real SIP peer (PJSIP 2.15 through pjsua2) calls `kald serve` on loopback: kald must answer,
play its Danish welcome (checked by cross-correlation against the prompt file), count the DTMF
digits sent by RFC 4733 or SIP INFO, and hang up."""

import gc
import time
import wave
from pathlib import Path

import numpy as np
import pjsua2 as pj

from conftest import FLOWS

RATE = 8000
WELCOME = FLOWS / "prompts" / "welcome.wav"
CALL_TIMEOUT = 30.0  # from INVITE until kald's BYE
DTMF_AFTER = 3.0  # seconds of audio before the caller presses keys (the welcome is ~1.8 s)
MIN_NCC = 0.6  # the least normalised cross-correlation that counts as "heard the welcome"
SKIP = 0.2  # seconds of the welcome's start left out of the template
SLIP = 0.1  # seconds a jitter buffer may shift the audio mid-prompt


class RecordingCall(pj.Call):
    """An outgoing call that records what it hears into `path` once its audio is active."""

    def __init__(self, acc, path: Path):
        super().__init__(acc)
        self.path = path
        self.recorder = None
        self.media_at = None
        self.disconnected = False
        self.we_hung_up = False
        self.states = []
        self.last_status = None

    def onCallState(self, prm):
        ci = self.getInfo()
        self.states.append(ci.stateText)
        self.last_status = ci.lastStatusCode
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True

    def onCallMediaState(self, prm):
        ci = self.getInfo()
        for i, mi in enumerate(ci.media):
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                if self.recorder is None:
                    self.recorder = pj.AudioMediaRecorder()
                    self.recorder.createRecorder(str(self.path))
                    self.media_at = time.monotonic()
                self.getAudioMedia(i).startTransmit(self.recorder)

    def close_recorder(self):
        # Destroying the recorder writes the WAV header's final sizes.
        self.recorder = None
        gc.collect()


def call_kald(peer, kald, workdir: Path, method: int, digits: str) -> Path:
    """Call kald, press `digits` after DTMF_AFTER s of audio, wait for kald to hang up.
    Returns the recording of what the caller heard."""
    path = workdir / "heard.wav"
    call = RecordingCall(peer.acc, path)
    started = time.monotonic()
    try:
        call.makeCall(f"sip:70101010@127.0.0.1:{kald.sip_port}", pj.CallOpParam(True))
        peer.pump(lambda: call.media_at is not None or call.disconnected, 10)
        assert call.media_at is not None, (
            f"no active audio; call states {call.states}, last status {call.last_status}\n{kald.text()}"
        )
        peer.pump(lambda: call.disconnected, DTMF_AFTER)
        assert not call.disconnected, f"kald hung up before the digits\n{kald.text()}"
        prm = pj.CallSendDtmfParam()
        prm.method = method
        prm.digits = digits
        prm.duration = 160
        call.sendDtmf(prm)
        left = CALL_TIMEOUT - (time.monotonic() - started)
        assert peer.pump(lambda: call.disconnected, left), (
            f"kald did not hang up within {CALL_TIMEOUT} s; call states {call.states}\n{kald.text()}"
        )
        assert not call.we_hung_up
    finally:
        if not call.disconnected:
            call.we_hung_up = True
            try:
                call.hangup(pj.CallOpParam(True))
            except pj.Error:
                pass
            peer.pump(lambda: call.disconnected, 5)
        call.close_recorder()
        del call
        gc.collect()
    return path


def load_wav(path: Path) -> np.ndarray:
    """Mono float samples at RATE (16-bit PCM; other rates resampled linearly)."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2, f"{path}: not 16-bit PCM"
        channels, rate = w.getnchannels(), w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    x = x.reshape(-1, channels).mean(axis=1)
    if rate != RATE and len(x):
        n = int(round(len(x) * RATE / rate))
        x = np.interp(np.arange(n) * rate / RATE, np.arange(len(x)), x)
    return x


def ncc_peak(signal: np.ndarray, template: np.ndarray) -> tuple[float, int]:
    """Peak of the normalised cross-correlation (Pearson, per window) of `template` sliding
    over `signal`, and the offset in samples where it occurs."""
    n = len(template)
    assert len(signal) >= n, "the recording is shorter than the template"
    t = template - template.mean()
    t /= np.linalg.norm(t)
    size = 1 << (len(signal) + n - 1).bit_length()
    dots = np.fft.irfft(np.fft.rfft(signal, size) * np.conj(np.fft.rfft(t, size)), size)
    dots = dots[: len(signal) - n + 1]
    c1 = np.concatenate(([0.0], np.cumsum(signal)))
    c2 = np.concatenate(([0.0], np.cumsum(signal * signal)))
    s1 = c1[n:] - c1[:-n]
    s2 = c2[n:] - c2[:-n]
    energy = np.maximum(s2 - s1 * s1 / n, 0.0)
    norm = np.sqrt(energy)
    # Windows quieter than an RMS of 10 (of 32768) count as no match, not as noise that fits.
    ncc = np.where(norm > 10 * np.sqrt(n), dots / np.maximum(norm, 1e-12), 0.0)
    i = int(np.argmax(ncc))
    return float(ncc[i]), i


def check_heard_welcome(path: Path, measured, label: str) -> None:
    """The recording must hold kald's welcome near its start.

    The template is 1.5 s of the welcome from SKIP on: kald starts sending with its 200 OK,
    so the first milliseconds can reach PJSIP before the recorder is connected. The measure
    is the normalised cross-correlation of that whole template (>= MIN_NCC). Under CPU load
    PJSIP's adaptive jitter buffer may drop or conceal a 10-20 ms frame mid-prompt, which
    splits the match; then at least 3 of the template's 5 pieces of 0.3 s must still match
    (>= MIN_NCC each) at offsets within SLIP of one another."""
    assert path.is_file(), f"no recording at {path}"
    heard = load_wav(path)
    welcome = load_wav(WELCOME)
    assert len(heard) > RATE, f"recording only {len(heard) / RATE:.2f} s long"
    rms = float(np.sqrt(np.mean(heard * heard)))
    peak_abs = float(np.max(np.abs(heard)))
    assert peak_abs > 1000 and rms > 50, f"the recording is silent (rms {rms:.1f}, peak {peak_abs:.0f})"
    skip, length = int(SKIP * RATE), int(1.5 * RATE)
    template = welcome[skip : skip + length]
    corr, at = ncc_peak(heard, template)
    piece = length // 5
    parts = [ncc_peak(heard, template[k * piece : (k + 1) * piece]) for k in range(5)]
    matched = [p_at - k * piece for k, (c, p_at) in enumerate(parts) if c >= MIN_NCC]
    # For information only: the goodbye that follows the `#` (not asserted).
    bye, bye_at = ncc_peak(heard, load_wav(FLOWS / "prompts" / "goodbye.wav")[:length])
    measured(
        f"{label}: welcome correlation {corr:.4f} at {(at - skip) / RATE:+.3f} s "
        f"(pieces {' '.join(f'{c:.2f}' for c, _ in parts)}); goodbye {bye:.4f} at "
        f"{bye_at / RATE:.2f} s; recording {len(heard) / RATE:.2f} s, rms {rms:.0f}"
    )
    if corr < MIN_NCC:
        together = bool(matched) and max(matched) - min(matched) <= SLIP * RATE
        assert len(matched) >= 3 and together, (
            f"what the caller heard is not the welcome: correlation {corr:.3f}, pieces "
            f"{[(round(c, 3), round((a - k * piece - skip) / RATE, 3)) for k, (c, a) in enumerate(parts)]}"
        )
        at = min(matched)
    assert at <= 2 * RATE, f"the welcome came {at / RATE:.2f} s into the call, not within 2 s"


def test_rfc4733_dtmf_counts_digits_and_caller_hears_welcome(peer, kald, tmp_path, measured):
    heard = call_kald(peer, kald, tmp_path, pj.PJSUA_DTMF_METHOD_RFC2833, "12#")
    got = kald.wait_for("call ended", 10)
    assert (got.get("path"), got.get("field_lengths")) == ("digits>got-digits", "digits:2"), got
    check_heard_welcome(heard, measured, "RFC 4733 call")


def test_sip_info_dtmf_counts_digits(peer, kald, tmp_path, measured):
    heard = call_kald(peer, kald, tmp_path, pj.PJSUA_DTMF_METHOD_SIP_INFO, "5#")
    got = kald.wait_for("call ended", 10)
    assert (got.get("path"), got.get("field_lengths")) == ("digits>got-digits", "digits:1"), got
    check_heard_welcome(heard, measured, "SIP INFO call")
