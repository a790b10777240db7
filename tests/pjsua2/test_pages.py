"""The web pages in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)
against a real `kald serve`, with real calls from PJSIP: a supervisor opens the wallboard and
sees a call enter and leave the queue; an agent works from the agent page (log in, screen pop
of a call, pause with a reason) and the API sees each change. Screenshots of both pages are
kept under target/test-artifacts/."""

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO
from test_agents import CONFIG, Centre, answered

ARTIFACTS = Path(os.environ.get("KALD_TEST_ARTIFACTS", REPO / "target" / "test-artifacts"))
SUPERVISOR = """
[[user]]
login = "sofie"
name = "Sofie Supervisor"
password = "secret-pass-2"
role = "supervisor"
"""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("no /usr/bin/chromium: tests/run.sh installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        try:
            yield b
        finally:
            b.close()


def http_port(centre) -> int:
    line = centre.kald.wait_for("web pages and API listening", 10)
    return int(str(line["http"]).rsplit(":", 1)[1])


def api(port: int, path: str, token: str | None = None, body: dict | None = None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST" if body is not None else "GET")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    data = None
    if body is not None:
        req.add_header("Content-Type", "application/json")
        data = json.dumps(body).encode()
    with urllib.request.urlopen(req, data, timeout=5) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def token(port: int, login: str, password: str) -> str:
    return api(port, "/api/login", body={"login": login, "password": password})["token"]


def log_in(page, port: int, login: str, password: str, lands_on: str):
    page.goto(f"http://127.0.0.1:{port}/")
    page.get_by_test_id("login-user").fill(login)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"**{lands_on}", timeout=5000)


def until(centre, page, check, timeout: float, what: str):
    """Pump PJSIP while waiting for a condition on the page (or elsewhere)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        centre.pump(lambda: False, 0.1)
        if check():
            return
    shot = ARTIFACTS / f"failed-{what.replace(' ', '-')}.png"
    page.screenshot(path=str(shot))
    pytest.fail(f"{what}: not within {timeout} s (screenshot {shot})\n{centre.kald.text()[-3000:]}")


def test_wallboard_shows_calls_enter_and_leave_live(peer, tmp_path, browser, measured):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    centre = Centre(peer, tmp_path, config=CONFIG + SUPERVISOR)
    try:
        port = http_port(centre)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        log_in(page, port, "sofie", "secret-pass-2", "/wallboard")
        waiting = page.get_by_test_id("waiting-sygedagpenge")
        until(centre, page, lambda: waiting.is_visible() and waiting.inner_text() == "0", 5, "wallboard shows the queue")
        assert page.get_by_test_id("live-indicator").is_visible()
        citizen = centre.party("citizen", register=False)
        entered = time.monotonic()
        c1 = centre.dial(citizen, "70101010")
        until(centre, page, lambda: waiting.inner_text() == "1", 5, "wallboard shows the waiting call")
        shown_after = time.monotonic() - entered
        centre.wait(3.0)  # whole seconds on the wall: the wait must show at least 0:01 by now
        page.screenshot(path=str(ARTIFACTS / "wallboard.png"))
        longest = page.get_by_test_id("longest-sygedagpenge").inner_text()
        queues = api(port, "/api/queues", token(port, "sofie", "secret-pass-2"))
        assert longest not in ("", "0:00"), f"the longest wait does not tick: {longest!r}; API: {queues}"
        centre.hang_up(c1)
        left = time.monotonic()
        until(centre, page, lambda: waiting.inner_text() == "0", 5, "wallboard shows the call leaving")
        measured(f"wallboard: a call entering showed after {shown_after:.2f} s (incl. call set-up), "
                 f"leaving after {time.monotonic() - left:.2f} s")
        # The abandon reached the day's figures (from the store's queue log).
        until(centre, page, lambda: page.get_by_test_id("offered-sygedagpenge").inner_text() == "1", 10,
              "today's offered calls")
    finally:
        centre.close()


def test_agent_works_from_the_agent_page(peer, tmp_path, browser, measured):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    centre = Centre(peer, tmp_path, config=CONFIG + SUPERVISOR)
    try:
        port = http_port(centre)
        sofie = token(port, "sofie", "secret-pass-2")

        def anna_state():
            agents = api(port, "/api/agents", sofie)
            return next(a for a in agents if a["login"] == "anna")

        anna = centre.party("anna")
        citizen = centre.party("citizen", register=False)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        log_in(page, port, "anna", "secret-pass-1", "/agent")
        state = page.get_by_test_id("agent-state")
        until(centre, page, lambda: state.get_attribute("data-state") == "logged_out", 5, "agent page shows logged out")

        page.get_by_test_id("btn-login").click()
        until(centre, page, lambda: anna_state()["state"] == "available", 5, "API sees anna available")
        until(centre, page, lambda: state.get_attribute("data-state") == "available", 5, "agent page shows available")

        # A call: the screen pop shows its topic while anna talks.
        c1 = centre.dial(citizen, "70101010")
        until(centre, page, lambda: bool(anna.incoming) and answered(anna.incoming[0]), 10, "anna answers")
        until(centre, page, lambda: page.get_by_test_id("caller-topic").is_visible(), 5, "screen pop")
        assert "sygemelding" in page.get_by_test_id("caller-topic").inner_text().lower()
        until(centre, page, lambda: state.get_attribute("data-state") == "talking", 5, "agent page shows talking")
        page.screenshot(path=str(ARTIFACTS / "agent-screen-pop.png"))
        centre.hang_up(c1)
        until(centre, page, lambda: anna_state()["state"] == "wrap_up", 5, "API sees anna in wrap-up")
        page.get_by_test_id("btn-end-wrap-up").click()
        until(centre, page, lambda: anna_state()["state"] == "available", 5, "wrap-up ended from the page")

        # Pause with a reason: the API sees it at once.
        page.get_by_test_id("pause-reason").select_option(label="Frokost")
        clicked = time.monotonic()
        page.get_by_test_id("btn-pause").click()
        until(centre, page, lambda: anna_state()["state"] == "paused", 5, "API sees anna paused")
        measured(f"agent page: pause reached the API after {time.monotonic() - clicked:.2f} s")
        assert anna_state()["reason"] == "Frokost"
        until(centre, page, lambda: state.get_attribute("data-state") == "paused", 5, "agent page shows paused")
        page.screenshot(path=str(ARTIFACTS / "agent-paused.png"))
        page.get_by_test_id("btn-ready").click()
        until(centre, page, lambda: anna_state()["state"] == "available", 5, "API sees anna ready")
    finally:
        centre.close()


def test_team_leader_listens_in_through_the_api(peer, tmp_path, measured):
    """A team leader asks the API to listen in; kald rings their softphone, they hear both
    sides unheard; the agent's status names the listener; the session is in the queue log."""
    import sqlite3

    from test_agents import TONES, tone_energy

    centre = Centre(peer, tmp_path, config=CONFIG)
    try:
        port = http_port(centre)
        anna = centre.party("anna")
        carl = centre.party("carl")
        citizen = centre.party("citizen", register=False)
        centre.feature(anna, "*20", "Available")
        c1 = centre.dial(citizen, "70101010")
        centre.pump(lambda: bool(anna.incoming) and answered(anna.incoming[0]) and answered(c1), 10)
        carl_token = token(port, "carl", "secret-pass-1")
        anna_token = token(port, "anna", "secret-pass-1")
        # An agent may not listen in.
        try:
            api(port, "/api/listen", anna_token, {"target": "bo"})
            raise AssertionError("an agent was allowed to listen in")
        except urllib.error.HTTPError as e:
            assert e.code == 403, e.code
        api(port, "/api/listen", carl_token, {"target": "anna"})
        assert centre.pump(lambda: bool(carl.incoming) and answered(carl.incoming[0]), 10), centre.kald.text()
        assert "Medlyt" in carl.incoming[0].remote, carl.incoming[0].remote
        centre.wait(2.5)
        both = (tone_energy(carl.incoming[0].path, TONES["citizen"]), tone_energy(carl.incoming[0].path, TONES["anna"]))
        leaks = (tone_energy(c1.path, TONES["carl"]), tone_energy(anna.incoming[0].path, TONES["carl"]))
        measured(f"listening in via the API: carl hears citizen {both[0]:.2f} + anna {both[1]:.2f}; "
                 f"heard by citizen {leaks[0]:.3f}, anna {leaks[1]:.3f}")
        assert both[0] > 0.15 and both[1] > 0.15, both
        assert leaks[0] < 0.02 and leaks[1] < 0.02, leaks
        anna_status = next(a for a in api(port, "/api/agents", carl_token) if a["login"] == "anna")
        assert anna_status["listeners"] == ["carl"], anna_status
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{port}/api/listen", method="DELETE",
            headers={"Authorization": f"Bearer {carl_token}"}), timeout=5)
        assert centre.pump(lambda: carl.incoming[0].disconnected, 5), "the listening leg stayed up"
        centre.hang_up(c1)
        centre.kald.stop()
        with sqlite3.connect(tmp_path / "data" / "kald.db") as con:
            events = [r[0] for r in con.execute("SELECT event FROM queue_events WHERE event LIKE 'LISTEN%' ORDER BY id")]
            audit = con.execute("SELECT actor, role, action, target FROM audit_log ORDER BY id").fetchall()
        assert events == ["LISTENSTART", "LISTENEND"], events
        assert audit == [("carl", "team-leader", "listen-in-start", "anna"),
                         ("carl", "team-leader", "listen-in-end", "anna")], audit
    finally:
        centre.close()
