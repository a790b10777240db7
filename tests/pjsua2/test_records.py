"""Records management (issue 9, "Done when"), tried in real headless Chromium as new users
would, against a real `kald serve` with real calls from PJSIP.

1. A citizen calls (pjsua2), consents (1) and types a CPR number by RFC 4733 DTMF; agent anna
   (a pjsua2 softphone, logged in from the agent page) answers; citizen 440 Hz, anna 1000 Hz.
   During the call anna types a malformed case number on /agent ("Sag og CPR-nummer"), sees the
   error, then the right one and clicks "Tilknyt sag". A second citizen (another CPR number)
   calls; anna links that call in wrap-up and nobody ever journalises it.
2. Team leader tina on /agent ("Medarbejdernes optagelser") chooses Anna: access "Ingen", the
   audio gives 403; "Bed om adgang" (the prompt answered with a reason); anna sees the request
   under "Mine optagelser" and clicks "Giv adgang": tina's audio is 200, a WAV with the citizen
   left (440 Hz) and anna right (1000 Hz); anna clicks "Træk tilbage": 403 again; anna's row
   names tina under "Hvem har haft adgang".
3. Records officer rita, first time on /records: "Ny anmodning" (forvaltningsloven, received
   today, requester, identity, the citizen's CPR) → "Opret og find"; the review lists the
   recording, the call record and the audit entries of tina's listening; she decides each with
   the visible selects (recording muted 0:01-0:02, audit entries withheld with a legal reason,
   the rest released) and "Gem"; "Hent arkiv (ZIP)" downloads the archive: indeks.txt lists
   every item and decision, the WAV is silent from 1.0 to 2.0 s on both channels and carries
   the tones elsewhere; the request is "Besvaret" within its 7 working days. She closes it.
4. rita searches by the case number and clicks "Journalisér": the drop folder gets the WAV and
   the JSON manifest (0600; case number and CPR), the API says acknowledged, the recording is
   exported. kald is stopped and started again on the same data with its clock pinned four
   months later: the sweeper deletes the exported recording (the drop folder's copy stays) and
   keeps the linked-but-not-journalised one (file and catalogue row) with an ALERT naming it.
5. Administrator adam on /records: "Revisionslog" shows the listening, grants, withdrawal,
   links, search, decisions, export, journalising and the sweeper's deletion; "Kontrollér
   kæden" says the chain is intact.

Screenshots of each page state go to target/test-artifacts/records-*.png."""

import datetime as dt
import hashlib
import io
import json
import sqlite3
import stat
import time
import wave
import zipfile
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pjsua2 as pj
import pytest

from conftest import REPO, Kald
from test_agents import PASSWORD, TONES, Centre, answered
from test_cpr_leak import call_with_cpr, http
from test_pages import ARTIFACTS, api, browser, http_port, log_in, token, until  # noqa: F401 (fixture)
from test_recordings import channel_energy

FLOW = REPO / "tests" / "pjsua2" / "flows" / "cpr.toml"
CPR1, CPR2 = "1503842137", "2309712822"  # the two citizens (valid birth dates, modulus 11)
CPR3 = "0707614285"  # call 2's citizen as the agent corrects the number after verifying them
CASE1, CASE2 = "27.12.04-P20-1-26", "27.12.04-P20-2-26"  # the default KLE-style pattern
MALFORMED_CASE = "27.12.04-P20-1"  # the year is missing
OFFICER_PASSWORD, ADMIN_PASSWORD = "secret-pass-8", "secret-pass-9"
LISTEN_REASON = "Coaching: gennemgang af samtalen med Anna"
LEGAL_REASON = "Forvaltningsloven § 12, stk. 1 (interne arbejdsdokumenter)"


def config(drop: Path) -> str:
    return f"""
policy = "{REPO / 'recordings-policy' / 'policy.toml'}"

[registrar]
networks = ["127.0.0.0/8"]

[[queue]]
name = "sygedagpenge"
display = "Sygedagpenge"
wrap_up_seconds = 120
ring_seconds = 15

[[agent]]
login = "anna"
name = "Anna Jensen"
password = "{PASSWORD}"
extension = "101"
skills = {{ sygedagpenge = 1 }}

[[agent]]
login = "tina"
name = "Tina Teamleder"
password = "{PASSWORD}"
extension = "109"
role = "team-leader"

[[user]]
login = "rita"
name = "Rita Records"
password = "{OFFICER_PASSWORD}"
role = "records-officer"

[[user]]
login = "adam"
name = "Adam Administrator"
password = "{ADMIN_PASSWORD}"
role = "administrator"

[journal]
drop_folder = "{drop}"
"""


def new_page(browser, width: int, height: int):
    """A page of its own browser context (cookies), in Danish and in Copenhagen time."""
    return browser.new_page(viewport={"width": width, "height": height}, locale="da-DK",
                            timezone_id="Europe/Copenhagen", accept_downloads=True)


def shot(page, name: str):
    page.screenshot(path=str(ARTIFACTS / f"records-{name}.png"), full_page=True)


def wait(page, check, timeout: float, what: str):
    """Poll a condition (no calls going on, nothing to pump)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    path = ARTIFACTS / f"records-failed-{what.replace(' ', '-')}.png"
    page.screenshot(path=str(path), full_page=True)
    pytest.fail(f"{what}: not within {timeout} s (screenshot {path})")


def audio_status(page, port: int, rid: str) -> int:
    """GET the recording's audio with the page's own session (fetch in the page)."""
    return page.evaluate(
        "async (url) => (await fetch(url, {credentials: 'same-origin'})).status",
        f"http://127.0.0.1:{port}/api/recordings/{rid}/audio")


def stereo(wav_bytes: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(wav_bytes), "rb") as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64).reshape(-1, 2)


def sides(x: np.ndarray) -> tuple[float, float]:
    """440 Hz share of the left channel, 1000 Hz share of the right."""
    return channel_energy(x[:, 0], TONES["citizen"]), channel_energy(x[:, 1], TONES["anna"])


def add_months(d: dt.datetime, months: int) -> dt.datetime:
    m = d.month - 1 + months
    return d.replace(year=d.year + m // 12, month=m % 12 + 1, day=min(d.day, 28))


def dial_with_cpr(centre, citizen, cpr: str):
    """call_with_cpr, once PJSIP has call slots free.

    Ordering: test_recordings.py's kill -9 test must stay last in its file (the killed kald
    never answers the BYEs of its calls, so their PJSIP call slots, 4 in this build, stay taken
    until PJSIP gives up after 32 s). This file is separate but sorts after it
    (test_recordings < test_records), so in a whole run the first call here may find no slot
    (makeCall raises): it is tried again until the slots are free."""
    deadline = time.monotonic() + 40
    while True:
        try:
            return call_with_cpr(centre, citizen, "1", [cpr])
        except pj.Error:
            if time.monotonic() > deadline:
                raise
            centre.wait(1.0)


def talk(centre, anna, citizen, cpr: str) -> tuple[object, object]:
    """A citizen calls, consents, types `cpr`; anna answers. Returns (citizen's, anna's) call."""
    n = len(anna.incoming)
    c = dial_with_cpr(centre, citizen, cpr)
    assert centre.pump(lambda: len(anna.incoming) > n and answered(anna.incoming[-1]) and answered(c), 30), (
        f"anna was not rung\n{centre.kald.text()[-10000:]}")
    return c, anna.incoming[-1]


def test_records_done_when(peer, tmp_path, browser, measured):  # noqa: F811 (fixture)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    drop = tmp_path / "esdh-ind"
    drop.mkdir(mode=0o700)  # the case system's folder exists already
    cfg = config(drop)
    centre = Centre(peer, tmp_path, flow=FLOW, config=cfg)
    kald2 = None
    try:
        port = http_port(centre)
        anna_token = token(port, "anna", PASSWORD)
        rita_token = token(port, "rita", OFFICER_PASSWORD)
        anna = centre.party("anna")
        citizen = centre.party("citizen", register=False)

        # --- 1. anna's calls, linked to cases from the agent page ---------------------------
        ap = new_page(browser, 1280, 1000)
        log_in(ap, port, "anna", PASSWORD, "/agent")
        state = ap.get_by_test_id("agent-state")
        until(centre, ap, lambda: state.get_attribute("data-state") == "logged_out", 5, "anna's page loads")
        ap.get_by_test_id("btn-login").click()
        until(centre, ap, lambda: state.get_attribute("data-state") == "available", 5, "anna is available")

        c1, a1 = talk(centre, anna, citizen, CPR1)
        talk_started = time.monotonic()
        call1 = api(port, "/api/me/call", anna_token)["call"]
        assert call1["cpr"] == f"{CPR1[:6]}-{CPR1[6:]}" and call1["consent"] is True, call1
        centre.kald.wait_for("recording started", 5)
        panel = ap.get_by_test_id("journal-panel")
        until(centre, ap, lambda: panel.is_visible(), 5, "the case panel shows during the call")
        assert "aktuelle samtale" in ap.get_by_test_id("journal-call").inner_text()
        message = ap.get_by_test_id("journal-message")
        ap.get_by_test_id("case-number").fill(MALFORMED_CASE)
        ap.get_by_test_id("case-note").fill("sygemelding, opfølgning")
        ap.get_by_test_id("btn-link-case").click()
        until(centre, ap, lambda: message.inner_text() != "", 5, "the malformed case number's error")
        error = message.inner_text()
        shot(ap, "agent-case-number-error")
        # The API's message, in Danish on the page.
        assert error.startswith("Journalnummeret har ikke den form") and message.is_visible(), error
        assert ap.get_by_test_id("case-link").count() == 0
        ap.get_by_test_id("case-number").fill(CASE1)
        ap.get_by_test_id("btn-link-case").click()
        until(centre, ap, lambda: message.inner_text() == "Samtalen er tilknyttet sagen.", 5, "call 1 linked")
        until(centre, ap, lambda: ap.get_by_test_id("case-link").count() == 1, 5, "the link listed")
        assert CASE1 in ap.get_by_test_id("case-link").inner_text()
        shot(ap, "agent-linked-during-call")
        centre.wait(max(0.0, 5.0 - (time.monotonic() - talk_started)))
        centre.hang_up(c1)
        assert centre.pump(lambda: a1.disconnected, 5)
        assert centre.pump(lambda: len(centre.kald.events("recording closed")) == 1, 10), centre.kald.text()[-5000:]
        until(centre, ap, lambda: state.get_attribute("data-state") == "wrap_up", 5, "anna in wrap-up")
        until(centre, ap, lambda: ap.get_by_test_id("no-call").is_visible(), 5, "the screen pop empties")
        assert not ap.get_by_test_id("call-details").is_visible(), "the ended call's details (labels) still show"
        ap.get_by_test_id("btn-end-wrap-up").click()
        until(centre, ap, lambda: state.get_attribute("data-state") == "available", 5, "wrap-up ended")

        # A second citizen; anna links this call in wrap-up; it is never journalised.
        c2, a2 = talk(centre, anna, citizen, CPR2)
        call2 = api(port, "/api/me/call", anna_token)["call"]
        assert call2["cpr"] == f"{CPR2[:6]}-{CPR2[6:]}", call2
        # The caller mistyped; Anna verifies their identity and corrects the number on the
        # page: the screen pop keeps showing the corrected one (the live call took it).
        until(centre, ap, lambda: ap.get_by_test_id("caller-cpr").inner_text() == f"{CPR2[:6]}-{CPR2[6:]}", 5,
              "call 2's screen pop")
        ap.get_by_test_id("cpr-fix").fill(CPR3)
        ap.get_by_test_id("cpr-verified").select_option("MitID")
        ap.get_by_test_id("btn-fix-cpr").click()
        until(centre, ap, lambda: message.inner_text().startswith("CPR-nummeret er rettet"), 5, "CPR corrected")
        centre.wait(1.5)  # at least one more snapshot: it must not bring the old number back
        assert ap.get_by_test_id("caller-cpr").inner_text() == f"{CPR3[:6]}-{CPR3[6:]}"
        assert api(port, "/api/me/call", anna_token)["call"]["cpr"] == f"{CPR3[:6]}-{CPR3[6:]}"
        centre.wait(1.0)
        centre.hang_up(c2)
        assert centre.pump(lambda: a2.disconnected, 5)
        assert centre.pump(lambda: len(centre.kald.events("recording closed")) == 2, 10), centre.kald.text()[-5000:]
        until(centre, ap, lambda: state.get_attribute("data-state") == "wrap_up", 5, "anna in wrap-up again")
        until(centre, ap, lambda: "seneste samtale" in ap.get_by_test_id("journal-call").inner_text(), 5,
              "the case panel follows the last call")
        ap.get_by_test_id("case-number").fill(CASE2)
        ap.get_by_test_id("btn-link-case").click()
        until(centre, ap, lambda: message.inner_text() == "Samtalen er tilknyttet sagen.", 5, "call 2 linked")
        until(centre, ap, lambda: CASE2 in ap.get_by_test_id("case-links").inner_text(), 5, "call 2's link listed")
        assert CASE1 not in ap.get_by_test_id("case-links").inner_text()
        shot(ap, "agent-linked-in-wrap-up")

        mine = {m["recording"]["call_id"]: m["recording"] for m in api(port, "/api/me/recordings", anna_token)}
        assert set(mine) == {call1["id"], call2["id"]}, mine
        rec1, rec2 = mine[call1["id"]], mine[call2["id"]]
        assert rec1["state"] == "closed" and rec1["duration_s"] >= 4.0, rec1
        assert (rec1["journal"], rec2["journal"]) == ("linked", "linked"), (rec1, rec2)
        rid1, rid2 = rec1["id"], rec2["id"]
        with sqlite3.connect(f"file:{tmp_path / 'data' / 'kald.db'}?mode=ro", uri=True) as con:
            rows = dict(con.execute("SELECT id, file FROM recordings"))
        assert set(rows) == {rid1, rid2}, rows
        assert all((tmp_path / "data" / "recordings" / f).is_file() for f in rows.values())

        # --- 2. the team leader is refused until the agent consents -----------------------
        tp = new_page(browser, 1280, 1000)
        log_in(tp, port, "tina", PASSWORD, "/agent")
        team = tp.get_by_test_id("team-recordings-panel")
        until(centre, tp, lambda: team.is_visible(), 5, "tina sees the team panel")
        select = tp.get_by_test_id("team-agent")
        until(centre, tp, lambda: "Anna Jensen" in select.inner_text(), 5, "anna in tina's list")
        select.select_option(label="Anna Jensen")
        tp.get_by_test_id("btn-team-show").click()
        row = tp.get_by_test_id(f"team-recording-{rid1}")
        until(centre, tp, lambda: row.count() == 1, 5, "anna's recording in tina's list")
        assert row.get_attribute("data-grant") == "none" and "Ingen" in row.inner_text(), row.inner_text()
        assert row.get_by_role("button", name="Afspil").count() == 0
        assert audio_status(tp, port, rid1) == 403
        shot(tp, "team-leader-no-access")
        tp.once("dialog", lambda d: d.accept(LISTEN_REASON))
        row.get_by_role("button", name="Bed om adgang").click()
        until(centre, tp, lambda: row.get_attribute("data-grant") == "requested", 5, "tina's request recorded")
        assert tp.get_by_test_id("team-message").inner_text() == "Medarbejderen er spurgt."
        assert audio_status(tp, port, rid1) == 403

        ap.reload()  # anna, still in wrap-up, reloads the page: the last call stays in the case panel
        until(centre, ap, lambda: panel.is_visible() and CASE2 in ap.get_by_test_id("case-links").inner_text(), 5,
              "the case panel keeps the last call after a reload")
        assert "seneste samtale" in ap.get_by_test_id("journal-call").inner_text()
        grant = ap.get_by_test_id(f"grant-{rid1}-tina")
        until(centre, ap, lambda: grant.count() == 1 and grant.get_attribute("data-state") == "requested", 5,
              "anna sees tina's request")
        assert LISTEN_REASON in grant.inner_text()
        shot(ap, "agent-sees-request")
        grant.get_by_role("button", name="Giv adgang").click()
        until(centre, ap, lambda: grant.get_attribute("data-state") == "granted", 5, "anna granted")
        assert audio_status(tp, port, rid1) == 200
        got = tp.request.get(f"http://127.0.0.1:{port}/api/recordings/{rid1}/audio")
        assert got.status == 200 and got.headers["content-type"] == "audio/wav", got.status
        x = stereo(got.body())
        mid = x[len(x) // 5: 4 * len(x) // 5]
        left, right = sides(mid)
        measured(f"records: tina hears anna's recording ({len(x) / 8000:.2f} s) after the grant: "
                 f"left 440 Hz {left:.2f}, right 1000 Hz {right:.2f}")
        assert left > 0.8 and right > 0.8, (left, right)
        tp.get_by_test_id("btn-team-show").click()
        until(centre, tp, lambda: row.get_attribute("data-grant") == "granted", 5, "tina's list says granted")
        assert "Givet" in row.inner_text()
        # She listens on the page: the player loads the whole recording.
        row.get_by_role("button", name="Afspil").click()
        player = tp.get_by_test_id("team-player")
        until(centre, tp, lambda: player.is_visible() and (tp.evaluate(
            "() => document.querySelector('[data-testid=\"team-player\"]').duration") or 0) > 4.0, 5,
              "tina's player loads the recording")
        shot(tp, "team-leader-granted")
        grant.get_by_role("button", name="Træk tilbage").click()
        until(centre, ap, lambda: grant.get_attribute("data-state") == "withdrawn", 5, "anna withdrew")
        assert audio_status(tp, port, rid1) == 403
        accesses = ap.get_by_test_id(f"accesses-{rid1}").inner_text()
        assert "tina lyttede" in accesses and "tina bad om adgang" in accesses, accesses
        shot(ap, "agent-withdrew-who-listened")

        # --- 3. the records officer answers an access request ----------------------------
        officer_started = time.monotonic()
        rp = new_page(browser, 1400, 1100)
        log_in(rp, port, "rita", OFFICER_PASSWORD, "/records")
        until(centre, rp, lambda: rp.get_by_test_id("requests-panel").is_visible(), 5, "rita's page loads")
        assert "Ingen sager." in rp.get_by_test_id("requests").inner_text()
        shot(rp, "officer-first-visit")
        today = dt.datetime.now(ZoneInfo("Europe/Copenhagen")).date()  # kald's today
        rp.get_by_test_id("ar-law").select_option(label="Aktindsigt efter forvaltningsloven (7 arbejdsdage)")
        rp.get_by_test_id("ar-received").fill(today.isoformat())
        rp.get_by_test_id("ar-requester").fill("Borgeren selv")
        rp.get_by_test_id("ar-identity").fill("MitID")
        rp.get_by_test_id("ar-cpr").fill(f"{CPR1[:6]}-{CPR1[6:]}")
        rp.get_by_test_id("btn-open-request").click()
        review = rp.get_by_test_id("review-panel")
        until(centre, rp, lambda: review.is_visible(), 5, "the review opens")
        assert "er oprettet" in rp.get_by_test_id("request-message").inner_text()
        items = rp.locator('[data-testid="review-items"] > tr')
        n_items = items.count()
        kinds = [items.nth(i).get_attribute("data-kind") for i in range(n_items)]
        ids = [items.nth(i).get_attribute("data-item") for i in range(n_items)]
        notes = [items.nth(i).inner_text() for i in range(n_items)]
        assert ("recording", rid1) in zip(kinds, ids), list(zip(kinds, ids))
        assert ("call", call1["id"]) in zip(kinds, ids), list(zip(kinds, ids))
        assert rid2 not in ids and call2["id"] not in ids, "another citizen's call was found"
        audit_notes = [t for k, t in zip(kinds, notes) if k == "audit"]
        assert any("tina (team-leader) listen " in t for t in audit_notes), audit_notes
        shot(rp, "officer-review-found")
        wanted = {}
        for i, kind in enumerate(kinds):
            tr = rp.get_by_test_id(f"item-{i}")
            if kind == "recording":
                label, detail, decision = "Udleveres, dele gøres tavse", "0:01-0:02", "release-muted"
            elif kind == "audit":
                label, detail, decision = "Undtages", LEGAL_REASON, "withhold"
            else:
                label, detail, decision = "Udleveres", "", "release"
            rp.get_by_test_id(f"decision-{i}").select_option(label=label)
            if detail:
                rp.get_by_test_id(f"detail-{i}").fill(detail)
            tr.get_by_role("button", name="Gem").click()
            until(centre, rp, lambda: tr.get_attribute("data-decision") == decision, 5, f"item {i} decided")
            wanted[i] = decision
        assert rp.get_by_test_id("review-message").is_visible()
        shot(rp, "officer-review-decided")
        with rp.expect_download(timeout=10_000) as download:
            rp.get_by_test_id("btn-archive").click()
        archive = tmp_path / "aktindsigt.zip"
        download.value.save_as(archive)
        req_row = rp.locator('[data-testid^="request-"]').first
        wait(rp, lambda: "Besvaret" in req_row.inner_text(), 5, "the request is answered")
        officer_seconds = time.monotonic() - officer_started
        shot(rp, "officer-answered")
        requests = api(port, "/api/access-requests", rita_token)
        assert len(requests) == 1, requests
        request = requests[0]
        deadline = dt.date.fromisoformat(request["deadline"])
        assert request["state"] == "answered" and request["law"] == "forvaltningsloven", request
        assert request["decided"] == request["items"] == n_items, request
        # 7 working days: at least one weekend in between, at most a week of holidays more.
        assert 9 <= (deadline - today).days <= 16 and request["working_days_left"] >= 0, request
        assert request["deadline"] in req_row.inner_text()
        measured(f"records: rita answered an access request ({n_items} items: {', '.join(kinds)}) from her first "
                 f"page load to the downloaded archive in {officer_seconds:.1f} s; deadline {request['deadline']} "
                 f"({request['working_days_left']} working days left)")

        with zipfile.ZipFile(archive) as z:
            names = z.namelist()
            index = z.read("indeks.txt").decode()
            wavs = [n for n in names if n.endswith(".wav")]
            assert len(wavs) == 1, names
            muted = stereo(z.read(wavs[0]))
        assert f"Emner (items): {n_items} —" in index, index
        decided_lines = [l.strip() for l in index.splitlines() if l.strip().startswith("Afgørelse (decision):")]
        assert len(decided_lines) == n_items, index
        names_of = {"release": "Udleveres (released)", "withhold": "Undtaget (withheld)",
                    "release-muted": "Udleveres med dele gjort tavse (released, parts muted)"}
        assert [l.split(": ", 1)[1] for l in decided_lines] == [names_of[wanted[i]] for i in range(n_items)], index
        assert index.count(LEGAL_REASON) == kinds.count("audit"), index
        assert "Tavse tidsrum (muted ranges): 0:01" in index and "Borgeren selv" in index, index
        assert CPR1 not in index and f"{CPR1[:6]}-{CPR1[6:]}" not in index, "the index names the CPR number"
        silent = muted[8000:16000]
        before, after = muted[int(0.3 * 8000):int(0.95 * 8000)], muted[int(2.1 * 8000):int(3.6 * 8000)]
        peak = float(np.abs(silent).max())
        measured(f"records: the archive's WAV is silent 1.0-2.0 s (peak {peak:.0f}); around it left/right "
                 f"{sides(before)[0]:.2f}/{sides(before)[1]:.2f} before, {sides(after)[0]:.2f}/{sides(after)[1]:.2f} after")
        assert peak == 0.0, f"1.0-2.0 s is not silent (peak {peak})"
        for seg in (before, after):
            assert min(sides(seg)) > 0.8, sides(seg)
        assert np.abs(muted[16000:16400]).max() > 1000 and np.abs(muted[7600:8000]).max() > 1000, (
            "more than 1.0-2.0 s was muted")
        # Done with it: closing lifts the hold the request placed on the citizen's data.
        rp.get_by_test_id("btn-close-request").click()
        wait(rp, lambda: "Lukket" in req_row.inner_text(), 5, "the request is closed")
        wait(rp, lambda: "Status: Lukket" in rp.get_by_test_id("review-summary").inner_text(), 5,
             "the review shows the request closed")

        # --- 4. journalising, then the sweeper four months later -------------------------
        journalise_started = time.monotonic()
        rp.get_by_test_id("s-case").fill(CASE1)
        rp.get_by_test_id("btn-search").click()
        found = rp.get_by_test_id(f"found-recording-{rid1}")
        wait(rp, lambda: found.count() == 1, 5, "the search by case number finds the recording")
        assert rp.get_by_test_id("search-message").inner_text() == "1 opkald fundet."
        assert "tilknyttet sag" in found.inner_text()
        found.get_by_role("button", name="Journalisér").click()
        wait(rp, lambda: "Sendt til sagssystemet" in rp.get_by_test_id("search-message").inner_text(), 5,
             "journalising confirmed")
        wait(rp, lambda: any(drop.glob("*.json")), 10, "the manifest in the drop folder")
        journalised_in = time.monotonic() - journalise_started
        (manifest_path,) = drop.glob("*.json")
        wav_path = manifest_path.with_suffix(".wav")
        assert sorted(p.name for p in drop.iterdir()) == sorted([manifest_path.name, wav_path.name])
        for p in (manifest_path, wav_path):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p, oct(p.stat().st_mode))
        manifest = json.loads(manifest_path.read_text())
        assert (manifest["case_number"], manifest["cpr"], manifest["recording_id"], manifest["agent"]) == (
            CASE1, CPR1, rid1, "anna"), manifest
        assert manifest["file"] == wav_path.name and manifest["journalised_by"] == "rita", manifest
        assert manifest["sha256"] == hashlib.sha256(wav_path.read_bytes()).hexdigest()
        assert min(sides(stereo(wav_path.read_bytes())[8000:24000])) > 0.8

        def exports():
            return http(port, "GET", f"/api/recordings/{rid1}/journal", rita_token)[1]

        wait(rp, lambda: [e["state"] for e in exports()] == ["acknowledged"], 5, "the export acknowledged")
        assert exports()[0]["case_number"] == CASE1 and exports()[0]["target"] == "folder"
        rp.get_by_test_id("btn-search").click()
        wait(rp, lambda: "journaliseret" in found.inner_text(), 5, "the page shows the recording journalised")
        shot(rp, "officer-journalised")
        # A second click (a user who is not sure it worked) sends nothing twice.
        found.get_by_role("button", name="Journalisér").click()
        wait(rp, lambda: "Sendt til sagssystemet" in rp.get_by_test_id("search-message").inner_text(), 5,
             "journalising confirmed again")
        time.sleep(1.0)
        assert len(exports()) == 1 and len(list(drop.iterdir())) == 2, (exports(), list(drop.iterdir()))
        with sqlite3.connect(f"file:{tmp_path / 'data' / 'kald.db'}?mode=ro", uri=True) as con:
            journal = dict(con.execute("SELECT id, journal_state FROM recordings"))
        assert journal == {rid1: "exported", rid2: "linked"}, journal
        measured(f"records: journalised from the search to the drop folder in {journalised_in:.1f} s "
                 f"(incl. typing the case number)")
        for p in (ap, tp, rp):
            p.close()
        drop_copy = {p.name: p.read_bytes() for p in drop.iterdir()}

        # Four months later on the same data: the sweeper runs at start.
        centre.close()
        later = add_months(dt.datetime.now(ZoneInfo("Europe/Copenhagen")), 4)
        kald2 = Kald(tmp_path, flow=FLOW, config=cfg, extra_args=["--now", later.strftime("%Y-%m-%dT%H:%M")])
        swept = kald2.wait_for("retention sweep", 20)
        alert = "ALERT: past its deadline but linked to a case and not yet journalised; kept until exported or unlinked"
        alerts = kald2.events(alert)
        measured(f"records: kald restarted at {later:%Y-%m-%d}: sweep {({k: v for k, v in swept.items() if k in ('deleted', 'awaiting_journal', 'held')})}, "
                 f"ALERT for {[a.get('recording') for a in alerts]}")
        assert swept.get("deleted") == 1 and swept.get("awaiting_journal") == 1 and swept.get("held", 0) == 0, swept
        assert [a.get("recording") for a in alerts] == [rid2], alerts
        with sqlite3.connect(f"file:{tmp_path / 'data' / 'kald.db'}?mode=ro", uri=True) as con:
            left_rows = dict(con.execute("SELECT id, journal_state FROM recordings"))
            tombs = [r[0] for r in con.execute("SELECT recording_id FROM tombstones")]
        assert left_rows == {rid2: "linked"}, left_rows
        assert tombs == [rid1], tombs
        assert not (tmp_path / "data" / "recordings" / rows[rid1]).exists(), "the deleted recording's file stayed"
        assert (tmp_path / "data" / "recordings" / rows[rid2]).is_file(), "the linked recording's file went"
        assert {p.name: p.read_bytes() for p in drop.iterdir()} == drop_copy, "the case system's copy changed"

        # --- 5. the administrator reads the audit log --------------------------------------
        port2 = int(str(kald2.wait_for("web pages and API listening", 10)["http"]).rsplit(":", 1)[1])
        adp = new_page(browser, 1400, 1100)
        log_in(adp, port2, "adam", ADMIN_PASSWORD, "/records")
        rows_el = adp.locator('[data-testid="audit-rows"] > tr')
        wait(adp, lambda: rows_el.count() > 10, 5, "the audit log shows")
        entries = adp.eval_on_selector_all(
            '[data-testid="audit-rows"] > tr',
            "trs => trs.map(tr => Array.from(tr.cells).map(td => td.textContent))")
        by_action: dict[str, set[str]] = {}
        for _, _, actor, _, action, *_ in entries:
            by_action.setdefault(action, set()).add(actor)
        expected = {
            "listen": "tina", "listen-request": "tina", "consent-grant": "anna", "consent-withdraw": "anna",
            "link": "anna", "search": "rita", "access-request-open": "rita", "access-request-decision": "rita",
            "access-request-export": "rita", "access-request-close": "rita", "journalise-request": "rita",
            "journalise": "kald", "delete": "kald",
        }
        missing = {a: who for a, who in expected.items() if who not in by_action.get(a, set())}
        assert not missing, f"not in the audit log page: {missing}; shown: {by_action}"
        adp.get_by_test_id("btn-verify").click()
        verdict = adp.get_by_test_id("audit-message")
        wait(adp, lambda: verdict.inner_text().startswith("Kæden er intakt"), 5, "the chain is intact")
        shot(adp, "admin-audit-log")
        measured(f"records: the audit log page shows {len(entries)} entries; {verdict.inner_text()}")
        adp.close()
    finally:
        centre.close()
        if kald2 is not None:
            kald2.stop()
