// kald: the wallboard: every queue's load and today's figures, live, for a wall screen.
"use strict";

(function () {
  let view = null;       // the latest LiveView
  let receivedAt = 0;    // when it arrived (ms, client clock)
  let offset = 0;        // kald's clock − the client's (kald serve --now may pin it)

  /** Waits above these seconds are marked amber and red (target 25 s; at most 3 min). */
  const WARN_S = 25;
  const BAD_S = 180;
  /** The states shown per queue, in order. */
  const STATES = ["available", "ringing", "talking", "wrap_up", "paused"];

  function escape(text) {
    return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  }

  function level(seconds) {
    return seconds >= BAD_S ? "bad" : seconds >= WARN_S ? "warn" : "";
  }

  function card(queue, elapsed) {
    const id = escape(queue.name);
    const wait = queue.waiting > 0 ? queue.longest_wait_s + elapsed : 0;
    const states = STATES.map((s) =>
      `<span data-testid="agents-${id}-${s}">${kald.stateNames[s]} <b>${queue.agents[s] || 0}</b></span>`).join("");
    const t = queue.today;
    const today = t ? `
      <div class="today" data-testid="today-${id}">
        <span>Tilbudt <b data-testid="offered-${id}">${t.offered}</b></span>
        <span>Besvaret <b data-testid="answered-${id}">${t.answered}</b></span>
        <span>Svarprocent <b data-testid="answer-rate-${id}">${kald.percent(t.answer_rate)}</b></span>
        <span>Serviceniveau <b data-testid="service-level-${id}">${kald.percent(t.service_level)}</b></span>
        <span>Gns. ventetid <b data-testid="average-wait-${id}">${t.average_wait_s === null ? "–" : kald.duration(t.average_wait_s)}</b></span>
        <span>Straksafklaring <b data-testid="settled-${id}">${kald.percent(t.settled_first_contact)}</b></span>
      </div>` : "";
    return `
      <section class="queue ${level(wait)}" data-testid="queue-${id}">
        <h2>${escape(queue.display)}</h2>
        <div class="big">
          <div class="figure"><span class="value" data-testid="waiting-${id}">${queue.waiting}</span><span class="label">venter</span></div>
          <div class="figure"><span class="value ${level(wait)}" data-testid="longest-${id}">${kald.duration(wait)}</span><span class="label">længste ventetid</span></div>
        </div>
        <div class="states">${states}</div>
        ${today}
      </section>`;
  }

  function render() {
    const now = new Date(Date.now() + offset);
    kald.text("clock", now.toLocaleTimeString("da-DK", { timeZone: "Europe/Copenhagen", hour12: false }));
    if (!view) return;
    const elapsed = (Date.now() - receivedAt) / 1000;
    const main = document.querySelector('[data-testid="queues"]');
    const count = view.queues.length;
    main.style.setProperty("--cols", count <= 3 ? Math.max(count, 1) : count === 4 ? 2 : 3);
    main.style.setProperty("--scale", count <= 3 ? 1.8 : 1);
    main.innerHTML = view.queues.map((q) => card(q, elapsed)).join("");
  }

  async function start() {
    const me = await kald.api("GET", "/api/me");
    if (!me.ok) return;
    kald.text("wall-user", me.data.name);
    kald.live((next) => {
      view = next;
      receivedAt = Date.now();
      offset = Date.parse(next.at) - receivedAt;
      if (Math.abs(offset) < 2000) offset = 0;
      kald.text("wall-message", "");
      render();
    }, (connected) => {
      const live = kald.text("live-indicator", connected ? "Live" : "Afbrudt");
      live.classList.toggle("on", connected);
    });
    const check = await kald.api("GET", "/api/queues");
    if (check.status === 403) kald.text("wall-message", "Din rolle kan ikke se køerne.");
    render();
    setInterval(render, 1000);
  }

  start();
})();
