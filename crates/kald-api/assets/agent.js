// kald: the agent page: my state and its buttons, the screen pop, who listens in, the queues.
"use strict";

(function () {
  let me = null;        // {login, name, role}
  let view = null;      // the latest LiveView
  let receivedAt = 0;   // when it arrived (ms)

  /** Which buttons make sense in which state. */
  const allowed = {
    logged_out: ["login"],
    available: ["pause", "logout"],
    ringing: ["pause", "logout"],
    talking: ["pause", "logout"],
    wrap_up: ["end-wrap-up", "pause", "logout"],
    paused: ["ready", "pause", "logout"],
  };

  function render() {
    if (!view) return;
    const status = view.me;
    const state = status ? status.state : "logged_out";
    const stateElement = kald.text("agent-state", kald.stateNames[state] || state);
    stateElement.dataset.state = state;
    const elapsed = (Date.now() - receivedAt) / 1000;
    kald.text("agent-since", status ? `i ${kald.duration(status.since_s + elapsed)}` : "");
    kald.text("agent-reason", status && status.reason ? `– ${status.reason}` : "");
    kald.text("agent-reachable", status && !status.reachable && state !== "logged_out"
      ? "Din softphone svarer ikke: du får ingen opkald." : "");
    for (const button of document.querySelectorAll("[data-action]")) {
      button.disabled = !(allowed[state] || []).includes(button.dataset.action);
    }

    const call = view.call;
    document.querySelector('[data-testid="no-call"]').hidden = !!call;
    document.querySelector('[data-testid="call-details"]').hidden = !call;
    if (call) {
      kald.text("caller-topic", call.topic || "–");
      kald.text("caller-queue", queueName(call.queue));
      kald.text("caller-wait", kald.duration(call.waited_s));
      kald.text("caller-cpr", call.cpr || "Ikke indtastet");
      kald.text("caller-consent",
        call.consent === true ? "Ja" : call.consent === false ? "Nej" : "Ikke spurgt");
      const recording = kald.text("caller-recording", call.recording ? "Samtalen optages" : "Optages ikke");
      recording.classList.toggle("recording", call.recording);
    }
    document.querySelector('[data-testid="btn-stop-recording"]').hidden = !(call && call.recording);
    const listeners = status ? status.listeners : [];
    kald.text("listeners", listeners.length
      ? `Lytter med: ${listeners.map(agentName).join(", ")}` : "Ingen lytter med.");

    const rows = view.queues.map((q) => {
      const waitSeconds = q.waiting > 0 ? q.longest_wait_s + elapsed : 0;
      return `<tr data-testid="queue-row-${escape(q.name)}"><td>${escape(q.display)}</td>` +
        `<td class="num">${q.waiting}</td><td class="num">${kald.duration(waitSeconds)}</td>` +
        `<td class="num">${q.agents.available || 0}</td></tr>`;
    });
    document.querySelector('[data-testid="queue-table"]').innerHTML = rows.join("");

    if (view.agents) {
      const select = document.querySelector('[data-testid="listen-target"]');
      const chosen = select.value;
      const options = view.agents
        .filter((a) => a.login !== me.login)
        .map((a) => `<option value="${escape(a.login)}">${escape(a.name)} (${kald.stateNames[a.state] || a.state})</option>`);
      if (select.dataset.options !== options.join("")) {
        select.innerHTML = options.join("");
        select.dataset.options = options.join("");
        if (chosen) select.value = chosen;
      }
    }
  }

  function queueName(name) {
    const queue = view.queues.find((q) => q.name === name);
    return queue ? queue.display : name || "–";
  }

  function agentName(login) {
    const agent = view.agents && view.agents.find((a) => a.login === login);
    return agent ? agent.name : login;
  }

  function escape(text) {
    return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  }

  async function act(action) {
    const body = { action };
    if (action === "pause") body.reason = document.querySelector('[data-testid="pause-reason"]').value;
    kald.text("action-message", "");
    const result = await kald.api("POST", "/api/me/state", body);
    if (!result.ok) {
      kald.text("action-message", (result.data && result.data.error) || "Det lykkedes ikke.");
    }
  }

  async function stopRecording() {
    kald.text("recording-message", "");
    const result = await kald.api("POST", "/api/me/recording/stop");
    kald.text("recording-message", result.ok
      ? "Optagelsen er stoppet, og det optagede er slettet."
      : (result.data && result.data.error) || "Det lykkedes ikke.");
  }

  async function listen(start) {
    kald.text("listen-message", "");
    const target = document.querySelector('[data-testid="listen-target"]').value;
    const result = start
      ? await kald.api("POST", "/api/listen", { target })
      : await kald.api("DELETE", "/api/listen");
    kald.text("listen-message", result.ok
      ? (start ? "Du lytter med." : "Medlyt stoppet.")
      : (result.data && result.data.error) || "Det lykkedes ikke.");
  }

  async function start() {
    const result = await kald.api("GET", "/api/me");
    if (!result.ok) return;
    me = result.data;
    kald.text("agent-name", `${me.name} (${me.login})`);
    const leads = me.role === "team-leader" || me.role === "coach";
    document.querySelector('[data-testid="listen-panel"]').hidden = !leads;
    document.querySelector('[data-testid="link-wallboard"]').hidden = me.role !== "team-leader";
    for (const button of document.querySelectorAll("[data-action]")) {
      button.addEventListener("click", () => act(button.dataset.action));
    }
    document.querySelector('[data-testid="btn-listen"]').addEventListener("click", () => listen(true));
    document.querySelector('[data-testid="btn-stop-recording"]').addEventListener("click", stopRecording);
    document.querySelector('[data-testid="btn-listen-stop"]').addEventListener("click", () => listen(false));
    document.querySelector('[data-testid="btn-sign-out"]').addEventListener("click", kald.signOut);
    kald.live((next) => {
      view = next;
      receivedAt = Date.now();
      render();
      // recordings.js follows the current call (case links, CPR corrections).
      document.dispatchEvent(new CustomEvent("kald-view", { detail: next }));
    }, (connected) => {
      const live = kald.text("live-indicator", connected ? "Live" : "Afbrudt");
      live.classList.toggle("on", connected);
    });
    setInterval(render, 1000);
  }

  start();
})();
