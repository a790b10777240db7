"""The contact centre end to end with real softphones (PJSIP 2.15 through pjsua2) on loopback:
agents register with kald (digest), log in and pause with feature codes dialled from the
phone, citizens call into the sygedagpenge queue, kald rings the right agent (B2BUA) and
bridges the audio, and transfers and listening in work.

Every party plays its own tone into its call (citizen 440 Hz, anna 1000 Hz, bo 1500 Hz,
carl 2000 Hz) and records what it hears; the assertions are on those recordings and on what
kald logged (which agent rang, agent states)."""

import gc
import time
from pathlib import Path

import numpy as np
import pjsua2 as pj
import pytest

from conftest import REPO, Kald

RATE = 8000
FLOW = REPO / "tests" / "pjsua2" / "flows" / "queue.toml"
PASSWORD = "secret-pass-1"
TONES = {"citizen": 440, "anna": 1000, "bo": 1500, "carl": 2000, "carrier": 1700, "dora": 2500}

CONFIG = f"""
[registrar]
networks = ["127.0.0.0/8"]

[[queue]]
name = "sygedagpenge"
display = "Sygedagpenge"
wrap_up_seconds = 4
ring_seconds = 8
secondary_after_seconds = 30

[[agent]]
login = "anna"
name = "Anna Jensen"
password = "{PASSWORD}"
extension = "101"
skills = {{ sygedagpenge = 1 }}

[[agent]]
login = "bo"
name = "Bo Hansen"
password = "{PASSWORD}"
extension = "102"
skills = {{ sygedagpenge = 1 }}

[[agent]]
login = "carl"
name = "Carl Holm"
password = "{PASSWORD}"
extension = "103"
role = "team-leader"
"""


def read_pcm(path: Path) -> tuple[int, np.ndarray]:
    """Rate and mono samples of a 16-bit PCM WAV that may still be being written (PJSIP's
    recorder fills in the header's sizes only when it is closed)."""
    raw = path.read_bytes()
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE", f"{path}: not a WAV file"
    pos, rate, ch = 12, RATE, 1
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], int.from_bytes(raw[pos + 4:pos + 8], "little")
        if cid == b"fmt ":
            ch = int.from_bytes(raw[pos + 10:pos + 12], "little")
            rate = int.from_bytes(raw[pos + 12:pos + 16], "little")
        if cid == b"data":
            data = raw[pos + 8:]
            data = data[: len(data) - len(data) % (2 * ch)]
            x = np.frombuffer(data, dtype="<i2").astype(np.float64)
            return rate, x.reshape(-1, ch).mean(axis=1)
        pos += 8 + size + (size & 1)
    raise AssertionError(f"{path}: no data chunk")


def tone_energy(path: Path, freq: float, last: float = 1.5) -> float:
    """Share of the signal's energy within ±15 Hz of `freq` over the last `last` seconds."""
    rate, x = read_pcm(path)
    x = x[-int(last * rate):]
    if len(x) < rate // 4:
        return 0.0
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    total = spec[(freqs > 100) & (freqs < 3800)].sum()
    band = spec[np.abs(freqs - freq) <= 15].sum()
    return float(band / total) if total > 0 else 0.0


class PartyCall(pj.Call):
    """A call of one party: plays the party's tone into the call, records what it hears."""

    def __init__(self, party, call_id=pj.PJSUA_INVALID_ID):
        super().__init__(party, call_id)
        self.party = party
        self.recorder = None
        self.tone = None
        self.path = None
        self.media_at = None
        self.disconnected = False
        self.confirmed = False
        self.remote = ""
        self.states = []

    def onCallState(self, prm):
        ci = self.getInfo()
        self.remote = ci.remoteUri
        self.states.append(ci.stateText)
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.confirmed = True
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True

    def onCallMediaState(self, prm):
        ci = self.getInfo()
        for i, mi in enumerate(ci.media):
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                am = self.getAudioMedia(i)
                if self.recorder is None:
                    self.party.calls_made += 1
                    self.path = self.party.workdir / f"{self.party.name}-{self.party.calls_made}.wav"
                    self.recorder = pj.AudioMediaRecorder()
                    self.recorder.createRecorder(str(self.path))
                    self.tone = pj.ToneGenerator()
                    self.tone.createToneGenerator(RATE, 1)
                    td = pj.ToneDesc()
                    td.freq1 = TONES[self.party.name]
                    td.freq2 = 0
                    td.on_msec = 1000
                    td.off_msec = 0
                    td.volume = 0
                    tv = pj.ToneDescVector()
                    tv.append(td)
                    self.tone.play(tv, True)
                    self.media_at = time.monotonic()
                am.startTransmit(self.recorder)
                self.tone.startTransmit(am)

    def finish(self):
        self.recorder = None
        self.tone = None
        gc.collect()


class Party(pj.Account):
    """A softphone on its own UDP port: an agent (registers) or a citizen (does not)."""

    def __init__(self, peer, kald: Kald, name: str, workdir: Path, register: bool,
                 answer_after: float | None = 0.3, port: int = 0, user: str | None = None):
        super().__init__()
        self.peer, self.kald, self.name, self.workdir = peer, kald, name, workdir
        self.answer_after = answer_after
        self.calls_made = 0
        self.incoming: list[PartyCall] = []
        self.reg_code = None
        tcfg = pj.TransportConfig()
        tcfg.port = port
        tcfg.boundAddress = "127.0.0.1"
        self.transport = peer.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        acfg = pj.AccountConfig()
        # PJSIP hands an incoming call to the account whose user the Request-URI names.
        acfg.idUri = f"sip:{user or name}@127.0.0.1"
        acfg.sipConfig.transportId = self.transport
        if register:
            acfg.regConfig.registrarUri = f"sip:127.0.0.1:{kald.sip_port}"
            acfg.regConfig.timeoutSec = 300
            acfg.regConfig.registerOnAdd = True
        else:
            acfg.regConfig.registrarUri = ""
            acfg.regConfig.registerOnAdd = False
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", name, 0, PASSWORD))
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        acfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_DISABLED
        acfg.natConfig.iceEnabled = False
        acfg.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
        acfg.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sdpNatRewriteUse = 0
        self.create(acfg)
        self.pending: list[tuple[float, PartyCall]] = []

    def onRegState(self, prm):
        self.reg_code = prm.code

    def onIncomingCall(self, prm):
        c = PartyCall(self, prm.callId)
        self.incoming.append(c)
        op = pj.CallOpParam()
        op.statusCode = 180
        c.answer(op)
        if self.answer_after is not None:
            self.pending.append((time.monotonic() + self.answer_after, c))

    def tick(self):
        now = time.monotonic()
        due = [c for at, c in self.pending if at <= now]
        self.pending = [(at, c) for at, c in self.pending if at > now]
        for c in due:
            if not c.disconnected:
                op = pj.CallOpParam()
                op.statusCode = 200
                c.answer(op)

    def call(self, target: str) -> PartyCall:
        c = PartyCall(self)
        c.makeCall(f"sip:{target}@127.0.0.1:{self.kald.sip_port}", pj.CallOpParam(True))
        return c

    def close(self):
        for c in self.incoming:
            c.finish()
        self.incoming = []
        self.shutdown()


class Centre:
    """kald with the test flow and agents, and the parties' phones; pumps PJSIP."""

    def __init__(self, peer, tmp_path: Path, flow: Path = FLOW, config: str = CONFIG):
        self.peer = peer
        self.kald = Kald(tmp_path, flow=flow, config=config)
        self.parties: list[Party] = []
        self.calls: list[PartyCall] = []
        self.tmp = tmp_path

    def party(self, name: str, register: bool = True, answer_after: float | None = 0.3, port: int = 0,
              user: str | None = None) -> Party:
        p = Party(self.peer, self.kald, name, self.tmp, register, answer_after, port, user)
        self.parties.append(p)
        if register:
            assert self.pump(lambda: p.reg_code is not None, 10), f"{name}: no REGISTER answer\n{self.kald.text()}"
            assert p.reg_code == 200, f"{name}: REGISTER got {p.reg_code}\n{self.kald.text()}"
        return p

    def pump(self, done, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            self.peer.ep.libHandleEvents(10)
            for p in self.parties:
                p.tick()
        return done()

    def wait(self, seconds: float):
        self.pump(lambda: False, seconds)

    def dial(self, party: Party, target: str) -> PartyCall:
        c = party.call(target)
        self.calls.append(c)
        return c

    def feature(self, agent: Party, code: str, state: str):
        """Dial a feature code; kald plays its confirmation and hangs up; wait for the state."""
        before = len(self.agent_states(agent.name))
        c = self.dial(agent, code)
        assert self.pump(lambda: c.disconnected, 15), f"{code}: kald did not end the feature call\n{self.kald.text()}"
        assert self.pump(lambda: len(self.agent_states(agent.name)) > before, 5), (
            f"{code}: no agent state change for {agent.name}\n{self.kald.text()}")
        got = self.agent_states(agent.name)[-1]
        assert got == state, f"{code}: {agent.name} is {got}, expected {state}"

    def agent_states(self, agent: str) -> list[str]:
        return [e.get("state") for e in self.kald.events("agent state") if e.get("agent") == agent]

    def rang(self) -> list[str]:
        return [e.get("agent") for e in self.kald.events("ringing agent")]

    def hang_up(self, c: PartyCall):
        if not c.disconnected:
            try:
                c.hangup(pj.CallOpParam(True))
            except pj.Error:
                pass
        self.pump(lambda: c.disconnected, 5)

    def close(self):
        for c in self.calls:
            self.hang_up(c)
        for p in self.parties:
            for c in p.incoming:
                self.hang_up(c)
        self.wait(0.3)
        for c in self.calls:
            c.finish()
        self.calls = []
        for p in self.parties:
            p.close()
        self.wait(0.5)
        for p in self.parties:
            try:
                self.peer.ep.transportClose(p.transport)
            except pj.Error:
                pass
        self.parties = []
        gc.collect()
        self.kald.stop()


@pytest.fixture
def centre(peer, tmp_path):
    c = Centre(peer, tmp_path)
    try:
        yield c
    finally:
        c.close()


def answered(c: PartyCall) -> bool:
    return c.media_at is not None and c.confirmed


def test_queue_rings_agent_bridges_audio_and_wrap_up_blocks(centre, measured):
    anna = centre.party("anna")
    bo = centre.party("bo")
    citizen = centre.party("citizen", register=False)
    centre.feature(anna, "*20", "Available")
    centre.wait(0.2)
    centre.feature(bo, "*20", "Available")

    # Anna has been idle longest: she rings, with the topic and wait on her display.
    c1 = centre.dial(citizen, "70101010")
    assert centre.pump(lambda: len(anna.incoming) == 1, 10), f"anna did not ring\n{centre.kald.text()}"
    assert not bo.incoming, "bo rang although anna was idle longer"
    assert "Sygemelding 0:0" in anna.incoming[0].remote, anna.incoming[0].remote
    a1 = anna.incoming[0]
    assert centre.pump(lambda: answered(a1) and answered(c1), 10), f"no bridged call\n{centre.kald.text()}"
    centre.wait(3.0)
    heard_by_citizen = tone_energy(c1.path, TONES["anna"])
    heard_by_anna = tone_energy(a1.path, TONES["citizen"])
    measured(f"bridge: citizen hears anna's 1000 Hz at {heard_by_citizen:.2f} of its energy; "
             f"anna hears the citizen's 440 Hz at {heard_by_anna:.2f}")
    assert heard_by_citizen > 0.5, f"the citizen does not hear anna ({heard_by_citizen:.2f})"
    assert heard_by_anna > 0.5, f"anna does not hear the citizen ({heard_by_anna:.2f})"

    # The citizen hangs up: anna's leg ends too and she is in wrap-up.
    centre.hang_up(c1)
    assert centre.pump(lambda: a1.disconnected, 5), "anna's leg did not end with the citizen's"
    assert centre.pump(lambda: "WrapUp" in centre.agent_states("anna"), 5), centre.agent_states("anna")

    # A second citizen during anna's wrap-up rings bo.
    c2 = centre.dial(citizen, "70101010")
    assert centre.pump(lambda: len(bo.incoming) == 1, 10), f"bo did not ring\n{centre.kald.text()}"
    assert len(anna.incoming) == 1, "anna rang during her wrap-up"
    assert centre.pump(lambda: answered(bo.incoming[0]), 10)
    centre.hang_up(c2)
    # Wrap-up (4 s) ends by itself.
    assert centre.pump(lambda: centre.agent_states("anna")[-1:] == ["Available"], 8), centre.agent_states("anna")


def test_paused_agent_is_skipped_and_comes_back(centre):
    anna = centre.party("anna")
    bo = centre.party("bo")
    citizen = centre.party("citizen", register=False)
    centre.feature(anna, "*20", "Available")
    centre.wait(0.2)
    centre.feature(bo, "*20", "Available")
    centre.feature(anna, "*21", "Paused")
    c1 = centre.dial(citizen, "70101010")
    assert centre.pump(lambda: len(bo.incoming) == 1, 10), f"bo did not ring\n{centre.kald.text()}"
    assert not anna.incoming, "a paused agent rang"
    assert centre.pump(lambda: answered(bo.incoming[0]), 10)
    centre.hang_up(c1)
    centre.feature(anna, "*21", "Available")
    c2 = centre.dial(citizen, "70101010")
    assert centre.pump(lambda: len(anna.incoming) == 1, 10), f"anna did not ring after unpausing\n{centre.kald.text()}"
    centre.hang_up(c2)


def test_citizen_hanging_up_stops_the_ringing(centre):
    anna = centre.party("anna", answer_after=None)  # lets it ring
    citizen = centre.party("citizen", register=False)
    centre.feature(anna, "*20", "Available")
    c1 = centre.dial(citizen, "70101010")
    assert centre.pump(lambda: len(anna.incoming) == 1, 10), f"anna did not ring\n{centre.kald.text()}"
    centre.wait(0.5)
    assert not anna.incoming[0].disconnected
    centre.hang_up(c1)
    assert centre.pump(lambda: anna.incoming[0].disconnected, 5), "anna's phone still rings after the citizen hung up"
    assert centre.agent_states("anna")[-1] == "Available", centre.agent_states("anna")


def test_blind_transfer_to_a_colleague(centre, measured):
    anna = centre.party("anna")
    bo = centre.party("bo")
    citizen = centre.party("citizen", register=False)
    centre.feature(anna, "*20", "Available")
    c1 = centre.dial(citizen, "70101010")
    assert centre.pump(lambda: anna.incoming and answered(anna.incoming[0]) and answered(c1), 10), centre.kald.text()
    centre.wait(0.5)
    anna.incoming[0].xfer(f"sip:bo@127.0.0.1:{centre.kald.sip_port}", pj.CallOpParam(True))
    assert centre.pump(lambda: len(bo.incoming) == 1, 10), f"bo did not ring for the transfer\n{centre.kald.text()}"
    assert centre.pump(lambda: answered(bo.incoming[0]), 10)
    assert centre.pump(lambda: anna.incoming[0].disconnected, 10), "anna's leg stayed up after the transfer"
    centre.wait(2.5)
    heard = tone_energy(c1.path, TONES["bo"])
    measured(f"blind transfer: the citizen hears bo's 1500 Hz at {heard:.2f} of its energy")
    assert heard > 0.5, f"the citizen does not hear bo after the transfer ({heard:.2f})"
    assert tone_energy(bo.incoming[0].path, TONES["citizen"]) > 0.5
    assert [e for e in centre.kald.events("transferred") if e.get("to") == "bo"], centre.kald.text()


def test_attended_transfer_with_replaces(centre, measured):
    anna = centre.party("anna")
    bo = centre.party("bo")
    citizen = centre.party("citizen", register=False)
    centre.feature(anna, "*20", "Available")
    c1 = centre.dial(citizen, "70101010")
    assert centre.pump(lambda: anna.incoming and answered(anna.incoming[0]) and answered(c1), 10), centre.kald.text()
    # Anna consults bo first (she dials his extension through kald) ...
    consult = centre.dial(anna, "102")
    assert centre.pump(lambda: len(bo.incoming) == 1, 10), f"bo did not ring for the consult call\n{centre.kald.text()}"
    assert centre.pump(lambda: answered(bo.incoming[0]) and answered(consult), 10), centre.kald.text()
    centre.wait(1.5)
    assert tone_energy(consult.path, TONES["bo"]) > 0.5, "anna does not hear bo on the consult call"
    # ... then transfers the citizen to him.
    anna.incoming[0].xferReplaces(consult, pj.CallOpParam(True))
    assert centre.pump(lambda: anna.incoming[0].disconnected and consult.disconnected, 10), (
        f"anna's legs stayed up after the attended transfer\n{centre.kald.text()}")
    assert not bo.incoming[0].disconnected, "bo's leg ended with the transfer"
    centre.wait(2.5)
    heard = tone_energy(c1.path, TONES["bo"])
    heard_bo = tone_energy(bo.incoming[0].path, TONES["citizen"])
    measured(f"attended transfer: citizen hears bo at {heard:.2f}, bo hears the citizen at {heard_bo:.2f}")
    assert heard > 0.5 and heard_bo > 0.5, (heard, heard_bo)


def test_team_leader_listens_in_unheard(centre, measured):
    anna = centre.party("anna")
    carl = centre.party("carl")
    citizen = centre.party("citizen", register=False)
    centre.feature(anna, "*20", "Available")
    c1 = centre.dial(citizen, "70101010")
    assert centre.pump(lambda: anna.incoming and answered(anna.incoming[0]) and answered(c1), 10), centre.kald.text()
    listen = centre.dial(carl, "*30101")
    assert centre.pump(lambda: answered(listen), 10), centre.kald.text()
    centre.wait(4.5)  # the confirmation prompt, then the call
    both = (tone_energy(listen.path, TONES["citizen"]), tone_energy(listen.path, TONES["anna"]))
    leaks = (tone_energy(c1.path, TONES["carl"]), tone_energy(anna.incoming[0].path, TONES["carl"]))
    measured(f"listening in: carl hears citizen {both[0]:.2f} + anna {both[1]:.2f}; "
             f"carl's tone reaches citizen {leaks[0]:.3f}, anna {leaks[1]:.3f}")
    assert both[0] > 0.15 and both[1] > 0.15, f"carl does not hear both sides {both}"
    assert leaks[0] < 0.02 and leaks[1] < 0.02, f"carl is heard {leaks}"
    assert centre.kald.events("listening in started"), centre.kald.text()
    # An agent may not listen in.
    anna_listen = centre.dial(anna, "*30103")
    assert centre.pump(lambda: anna_listen.disconnected, 15)


def test_every_step_is_in_the_store_after_a_restart(centre):
    import sqlite3

    anna = centre.party("anna")
    bo = centre.party("bo")
    citizen = centre.party("citizen", register=False)
    centre.feature(anna, "*20", "Available")
    centre.wait(0.2)
    centre.feature(bo, "*20", "Available")
    c1 = centre.dial(citizen, "70101010")
    assert centre.pump(lambda: anna.incoming and answered(anna.incoming[0]) and answered(c1), 10), centre.kald.text()
    anna.incoming[0].xfer(f"sip:bo@127.0.0.1:{centre.kald.sip_port}", pj.CallOpParam(True))
    assert centre.pump(lambda: bo.incoming and answered(bo.incoming[0]), 10), centre.kald.text()
    centre.wait(0.5)
    centre.hang_up(c1)
    assert centre.pump(lambda: bo.incoming[0].disconnected, 5)
    centre.feature(anna, "*21", "Paused")
    centre.kald.stop()

    db = sqlite3.connect(centre.tmp / "data" / "kald.db")
    events = [(e, a) for e, a in db.execute("SELECT event, agent_id FROM queue_events WHERE call_id != '' ORDER BY id")]
    for step in [("ENTER", None), ("RING", "anna"), ("ANSWER", "anna"), ("TRANSFER", "anna"), ("END", "anna"), ("END", "bo")]:
        assert step in events, f"{step} missing from the queue log {events}"
    (agent, transferred, outcome, ended) = db.execute(
        "SELECT agent_id, transferred, outcome, ended_us FROM calls WHERE entry_point = 'hovednummer'").fetchone()
    assert (agent, bool(transferred)) == ("bo", True), (agent, transferred)
    assert outcome and ended
    states = dict(db.execute("SELECT agent_id, state FROM agent_states"))
    assert states.get("anna") == "Paused", states
    db.close()

    # A restart restores who is logged in and paused.
    centre.kald = Kald(centre.tmp, flow=FLOW, config=CONFIG)
    centre.kald.wait_for("agent state restored", 10)
    centre.wait(0.3)
    restored = {e.get("agent"): e.get("state") for e in centre.kald.events("agent state restored")}
    assert restored.get("anna") == "Paused", restored
    assert restored.get("bo") in ("WrapUp", "Available"), restored


def test_registrations_survive_a_restart(centre):
    """kald restarts while anna's phone is registered (for 5 minutes): the new kald restores
    the registration from the database, checks that the phone answers an OPTIONS, and rings it
    for the next caller without the phone registering again."""
    anna = centre.party("anna")
    citizen = centre.party("citizen", register=False)
    centre.feature(anna, "*20", "Available")
    port = centre.kald.sip_port
    centre.kald.stop()

    centre.kald = Kald(centre.tmp, flow=FLOW, config=CONFIG, sip_port=port,
                       rust_log="info,kald_sip=debug")
    restored = centre.kald.wait_for("restored agents' SIP registrations; each gets calls once it answers an OPTIONS", 10)
    assert (restored.get("restored"), restored.get("saved")) == (1, 1), restored
    c = centre.dial(citizen, "70101010")
    assert centre.pump(lambda: anna.incoming and answered(anna.incoming[0]) and answered(c), 10), centre.kald.text()
    assert centre.rang() == ["anna"], centre.rang()
    # Her phone never registered with the new kald: the call reached the restored binding.
    assert centre.kald.events("registered") == [], centre.kald.text()
    assert centre.kald.events("binding restored"), centre.kald.text()


def test_editing_kald_toml_changes_agents_while_kald_runs(centre):
    """An operator edits kald.toml during the day: a broken edit is refused with its line and
    column and changes nothing; the fixed file takes Bo out (his phone's registration ends)
    and Dora in (her phone registers, she logs in and takes the next call), without a
    restart."""
    anna = centre.party("anna")
    bo = centre.party("bo")
    citizen = centre.party("citizen", register=False)
    centre.feature(anna, "*20", "Available")
    centre.feature(bo, "*20", "Available")
    toml = centre.tmp / "kald.toml"

    dora_block = f"""
[[agent]]
login = "dora"
name = "Dora Dam"
password = "{PASSWORD}"
extension = "104"
skills = {{ sygedagpenge = 1 }}
"""
    bo_block = CONFIG[CONFIG.index('[[agent]]\nlogin = "bo"'):CONFIG.index('[[agent]]\nlogin = "carl"')]
    edited = CONFIG.replace(bo_block, "") + dora_block
    broken = edited + "\n[[agent]\n"
    toml.write_text(broken)
    refused = centre.kald.wait_for("the configuration file was not reloaded; the one in use stays", 10)
    line = broken.count("\n")
    assert f"kald.toml:{line}:" in refused.get("error", ""), refused

    toml.write_text(edited)
    reloaded = centre.kald.wait_for("configuration reloaded: queues, agents and web users apply now", 10)
    assert reloaded.get("agents") == 3, reloaded
    # Bo's phone lost its registration and Bo is logged out.
    assert centre.pump(lambda: "LoggedOut" in centre.agent_states("bo"), 5), centre.agent_states("bo")
    dora = centre.party("dora")
    centre.feature(dora, "*20", "Available")
    centre.feature(anna, "*21", "Paused")

    c = centre.dial(citizen, "70101010")
    assert centre.pump(lambda: dora.incoming and answered(dora.incoming[0]) and answered(c), 10), centre.kald.text()
    assert centre.rang() == ["dora"], centre.rang()
    assert not bo.incoming


def test_waiting_caller_hears_no_agents_then_position(peer, tmp_path):
    """Nobody logged in: the caller hears "no agents", then every few seconds their position,
    as the flow's announce_position says (the expected wait follows it once agents serve the
    queue; with nobody logged in there is none to tell)."""
    from test_call import load_wav, ncc_peak

    flow = tmp_path / "announce.toml"
    flow.write_text(FLOW.read_text().replace('announce_position = "20s"', 'announce_position = "4s"'))
    centre = Centre(peer, tmp_path, flow=flow)
    try:
        citizen = centre.party("citizen", register=False)
        c1 = centre.dial(citizen, "70101010")
        assert centre.pump(lambda: answered(c1), 10), centre.kald.text()
        assert centre.pump(lambda: bool(centre.kald.events("position announced")), 12), centre.kald.text()
        centre.wait(3.0)
        got = centre.kald.events("position announced")[0]
        assert got.get("position") == 1, got
        assert centre.kald.events("no agent is logged in to the queue"), centre.kald.text()
        _, heard = read_pcm(c1.path)
        for prompt in ("no-agents", "queue-position"):
            template = load_wav(REPO / "ivr-flows" / "prompts" / f"{prompt}.wav")[800:8800]
            corr, _ = ncc_peak(heard, template)
            assert corr > 0.6, f"the caller did not hear {prompt} (correlation {corr:.2f})"
    finally:
        centre.close()


def carrier_config(port: int) -> str:
    """CONFIG plus a trunk whose calls out go to a pjsua2 "carrier" on loopback `port`."""
    return f"""
transfer_allowlist = ["+4589401000"]

[[trunk]]
name = "loopback"
networks = ["127.0.0.0/8"]
numbers = [{{ pattern = "*", entry_point = "hovednummer" }}]
outbound = "127.0.0.1:{port}"
""" + CONFIG


def free_udp_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_blind_transfer_to_an_allowlisted_number(peer, tmp_path, measured):
    port = free_udp_port()
    centre = Centre(peer, tmp_path, config=carrier_config(port))
    try:
        anna = centre.party("anna")
        carrier = centre.party("carrier", register=False, port=port, user="+4589401000")
        citizen = centre.party("citizen", register=False)
        centre.feature(anna, "*20", "Available")
        c1 = centre.dial(citizen, "70101010")
        assert centre.pump(lambda: anna.incoming and answered(anna.incoming[0]) and answered(c1), 10), centre.kald.text()
        # A number that is not on the allowlist is refused; the citizen stays with anna.
        anna.incoming[0].xfer(f"sip:+4511111111@127.0.0.1:{centre.kald.sip_port}", pj.CallOpParam(True))
        centre.wait(1.0)
        assert not carrier.incoming and not anna.incoming[0].disconnected
        anna.incoming[0].xfer(f"sip:+4589401000@127.0.0.1:{centre.kald.sip_port}", pj.CallOpParam(True))
        assert centre.pump(lambda: carrier.incoming and answered(carrier.incoming[0]), 10), centre.kald.text()
        assert centre.pump(lambda: anna.incoming[0].disconnected, 10), "anna's leg stayed up"
        centre.wait(2.5)
        heard = tone_energy(c1.path, TONES["carrier"])
        measured(f"transfer out: the citizen hears the carrier's 1700 Hz at {heard:.2f}")
        assert heard > 0.5, heard
        assert centre.pump(lambda: centre.agent_states("anna")[-1:] == ["WrapUp"], 5), centre.agent_states("anna")
        centre.hang_up(c1)
        assert centre.pump(lambda: carrier.incoming[0].disconnected, 5), "the carrier's leg outlived the citizen"
    finally:
        centre.close()


def test_flow_transfer_node_calls_out(peer, tmp_path, measured):
    port = free_udp_port()
    flow = tmp_path / "transfer.toml"
    flow.write_text("""
description = "e2e: straight out to the switchboard"
start = "out"
transfer_allowlist = ["+4589401000"]

[nodes.out]
kind = "transfer"
target = "+4589401000"
""")
    centre = Centre(peer, tmp_path, flow=flow, config=carrier_config(port))
    try:
        carrier = centre.party("carrier", register=False, port=port, user="+4589401000")
        citizen = centre.party("citizen", register=False)
        c1 = centre.dial(citizen, "70101010")
        assert centre.pump(lambda: carrier.incoming and answered(carrier.incoming[0]) and answered(c1), 10), centre.kald.text()
        centre.wait(2.5)
        heard = tone_energy(c1.path, TONES["carrier"])
        heard_back = tone_energy(carrier.incoming[0].path, TONES["citizen"])
        measured(f"flow transfer: citizen hears the carrier at {heard:.2f}, the carrier hears the citizen at {heard_back:.2f}")
        assert heard > 0.5 and heard_back > 0.5, (heard, heard_back)
        centre.hang_up(carrier.incoming[0])
        assert centre.pump(lambda: c1.disconnected, 5), "the citizen's call outlived the transfer"
    finally:
        centre.close()


def test_agent_hanging_up_first_gets_wrap_up_and_the_next_call(centre):
    anna = centre.party("anna")
    citizen = centre.party("citizen", register=False)
    centre.feature(anna, "*20", "Available")
    c1 = centre.dial(citizen, "70101010")
    assert centre.pump(lambda: anna.incoming and answered(anna.incoming[0]) and answered(c1), 10), centre.kald.text()
    centre.hang_up(anna.incoming[0])
    assert centre.pump(lambda: c1.disconnected, 5), "the citizen's leg outlived the agent's"
    assert centre.pump(lambda: "WrapUp" in centre.agent_states("anna"), 5), centre.agent_states("anna")
    # Wrap-up (4 s) ends; the next citizen rings anna again.
    c2 = centre.dial(citizen, "70101010")
    assert centre.pump(lambda: len(anna.incoming) == 2, 10), f"anna was not offered the next call\n{centre.kald.text()}"
    centre.hang_up(c2)


def test_blind_transfer_to_a_queue_and_an_agent_who_hangs_up_at_once(centre):
    """Anna transfers the citizen to the queue and hangs up at once (as many phones do): the
    citizen waits in the queue and bo takes the call; then bo transfers to anna by name and
    hangs up at once too: anna rings and gets the citizen."""
    anna = centre.party("anna")
    bo = centre.party("bo")
    citizen = centre.party("citizen", register=False)
    centre.feature(bo, "*20", "Available")
    centre.feature(bo, "*21", "Paused")
    centre.feature(anna, "*20", "Available")
    c1 = centre.dial(citizen, "70101010")
    assert centre.pump(lambda: anna.incoming and answered(anna.incoming[0]) and answered(c1), 10), centre.kald.text()
    centre.feature(bo, "*21", "Available")
    anna.incoming[0].xfer(f"sip:sygedagpenge@127.0.0.1:{centre.kald.sip_port}", pj.CallOpParam(True))
    assert centre.pump(lambda: anna.incoming[0].disconnected, 10), "anna's leg stayed up after the transfer"
    assert centre.pump(lambda: bo.incoming and answered(bo.incoming[0]), 10), f"bo did not get the requeued call\n{centre.kald.text()}"
    assert not c1.disconnected
    centre.wait(1.0)
    # Bo transfers to anna and hangs up before she answers.
    anna.answer_after = 1.5
    bo.incoming[0].xfer(f"sip:anna@127.0.0.1:{centre.kald.sip_port}", pj.CallOpParam(True))
    centre.pump(lambda: len(anna.incoming) == 2, 5)
    centre.hang_up(bo.incoming[0])
    assert centre.pump(lambda: len(anna.incoming) == 2 and answered(anna.incoming[1]), 10), centre.kald.text()
    assert not c1.disconnected, "the citizen was hung up with the transferring agent"
    centre.wait(2.0)
    assert tone_energy(c1.path, TONES["anna"], last=1.0) > 0.5, "the citizen does not hear anna"
