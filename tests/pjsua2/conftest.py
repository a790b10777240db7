"""Fixtures for the PJSIP (pjsua2) end-to-end tests: a `kald serve` process on loopback and
one pjsua2 endpoint (with a null audio device) shared by the tests of the session."""

import ctypes
import gc
import json
import os
import random
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FLOWS = REPO / "ivr-flows"
KALD_BIN = Path(os.environ.get("KALD_BIN", REPO / "target" / "debug" / "kald"))

# What the tests measured, printed at the end of the run (see pytest_terminal_summary).
MEASURED: list[str] = []


# ---------------------------------------------------------------------------------------------
# kald


def _free_sip_port() -> int:
    """A loopback port free for both UDP and TCP (kald listens on both)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port for kald's SIP listener")


def _free_media_range(count: int = 20) -> tuple[int, int]:
    """An even-based UDP port range below Linux's ephemeral range, free right now."""
    for _ in range(200):
        low = random.randrange(24000, 32000 - count, 2)
        socks = []
        try:
            for p in range(low, low + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return low, low + count - 1
    raise RuntimeError("no free media port range for kald")


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL kald if the test process dies (Linux prctl)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def _value(v):
    if isinstance(v, str):
        if len(v) >= 2 and v[0] == v[-1] == '"':
            v = json.loads(v)
        try:
            return int(v)
        except ValueError:
            return v
    return v


def parse_event(line: str, message: str):
    """The fields of a kald log line whose message is `message`, else None. Reads both
    `--log-format json` lines (tracing-subscriber's JSON) and the text format."""
    line = line.strip()
    if line.startswith("{"):
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            fields = {k: v for k, v in obj.items() if k not in ("fields", "span", "spans")}
            fields.update(obj.get("fields") or {})
            if fields.get("message") != message:
                return None
            return {k: _value(v) for k, v in fields.items()}
    text = _ANSI.sub("", line)
    m = re.search(r"(?:^|\s|:\s)" + re.escape(message) + r"(\s|$)", text)
    if not m:
        return None
    fields = {k: _value(v) for k, v in _FIELD.findall(text[m.end():])}
    fields["message"] = message
    return fields


class Kald:
    """A `kald serve` process on loopback, its output in `log`."""

    def __init__(self, workdir: Path, flow: Path | None = None, config: str | None = None,
                 rust_log: str | None = None, sip_port: int | None = None,
                 extra_args: list[str] | None = None):
        if not KALD_BIN.is_file():
            pytest.fail(f"no kald binary at {KALD_BIN}: run `cargo build -p kald` or set KALD_BIN")
        self.workdir = workdir
        self.log = workdir / "kald.log"
        # The e2e test flow (welcome; digits until # or 5 s; goodbye) as the loopback entry
        # point, with the real prompts beside it.
        self.flows = workdir / "flows"
        self.flows.mkdir(exist_ok=True)
        flow = flow or REPO / "tests" / "sipp" / "flows" / "hovednummer.toml"
        (self.flows / "hovednummer.toml").write_text(flow.read_text())
        if not (self.flows / "prompts").exists():
            (self.flows / "prompts").symlink_to(FLOWS / "prompts")
        # `sip_port`: the port of an earlier kald on this workdir (a restart), else a free one.
        self.sip_port = sip_port or _free_sip_port()
        low, high = _free_media_range()
        # RUST_LOG is dropped so the tests see kald's default log level, unless a test asks for
        # a filter (e.g. "trace" for the CPR leak test).
        env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}
        if rust_log is not None:
            env["RUST_LOG"] = rust_log
        env["NO_COLOR"] = "1"
        args = [
            str(KALD_BIN), "--log-format", "json", "serve",
            "--sip-listen", f"127.0.0.1:{self.sip_port}",
            "--http-listen", f"127.0.0.1:{_free_sip_port()}",
            "--media-ports", f"{low}-{high}",
            "--flows", str(self.flows),
            "--data-dir", str(workdir / "data"),
            "--grace-seconds", "2",
            "--keys-dir", str(workdir / "keys"),
        ]
        if config is not None:
            (workdir / "kald.toml").write_text(config)
            args += ["--config", str(workdir / "kald.toml")]
        # More `kald serve` flags, e.g. `--now 2027-03-23T09:15` (a pinned clock).
        args += extra_args or []
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen(
            args, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=self._out,
            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
        )
        try:
            self.wait_for("kald listening", 15)
        except BaseException:
            self.stop()
            raise

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def events(self, message: str) -> list[dict]:
        return [e for e in (parse_event(l, message) for l in self.text().splitlines()) if e]

    def wait_for(self, message: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(message)
            if found:
                return found[0]
            if self.proc.poll() is not None:
                pytest.fail(f"kald exited ({self.proc.returncode}) before {message!r}:\n{self.text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {message!r} from kald within {timeout} s:\n{self.text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()


@pytest.fixture
def kald(tmp_path):
    k = Kald(tmp_path)
    try:
        yield k
    finally:
        k.stop()


# ---------------------------------------------------------------------------------------------
# PJSIP


class Peer:
    """The pjsua2 endpoint and its account. All pjsua2 calls happen in the test thread, which
    also drives PJSIP (threadCnt = 0) through `pump`."""

    def __init__(self, workdir: Path):
        import pjsua2 as pj

        self.pj = pj
        self.log = workdir / "pjsua.log"
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0  # no SIP worker thread: events are handled in pump()
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.maxCalls = 32
        cfg.uaConfig.userAgent = "kald-e2e-pjsua2"
        cfg.logConfig.level = 5
        cfg.logConfig.consoleLevel = 1
        cfg.logConfig.filename = str(self.log)
        cfg.medConfig.clockRate = 8000  # the recorder then writes 8 kHz, like the prompts
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.noVad = True  # keep sending RTP while "silent"
        cfg.medConfig.ecTailLen = 0
        self.ep.libInit(cfg)
        if not self.ep.libIsThreadRegistered():
            self.ep.libRegisterThread("pytest")
        tcfg = pj.TransportConfig()
        tcfg.port = 0
        tcfg.boundAddress = "127.0.0.1"
        self.transport = self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        self.codecs = []
        for c in self.ep.codecEnum2():
            prio = {"PCMA": 255, "PCMU": 254}.get(c.codecId.split("/")[0].upper(), 0)
            self.ep.codecSetPriority(c.codecId, prio)
            if prio:
                self.codecs.append(c.codecId)

        acfg = pj.AccountConfig()
        acfg.idUri = "sip:pj@127.0.0.1"
        acfg.regConfig.registrarUri = ""
        acfg.regConfig.registerOnAdd = False
        acfg.sipConfig.transportId = self.transport
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        acfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_DISABLED
        acfg.natConfig.iceEnabled = False
        acfg.natConfig.turnEnabled = False
        acfg.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
        acfg.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sdpNatRewriteUse = 0
        self.acc = pj.Account()
        self.acc.create(acfg)

    def pump(self, done, timeout: float) -> bool:
        """Handle PJSIP events until done() or timeout; returns done()."""
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            self.ep.libHandleEvents(10)
        return done()

    def destroy(self) -> None:
        self.acc.shutdown()
        self.acc = None
        gc.collect()  # pjsua2 objects must go before libDestroy, in this thread
        self.ep.libDestroy()
        self.ep = None


@pytest.fixture(scope="session")
def peer(tmp_path_factory):
    p = Peer(tmp_path_factory.mktemp("pjsua2"))
    try:
        yield p
    finally:
        p.destroy()


@pytest.fixture
def measured():
    return MEASURED.append


def pytest_terminal_summary(terminalreporter):
    if MEASURED:
        terminalreporter.section("pjsua2 measurements")
        for line in MEASURED:
            terminalreporter.write_line(line)
