// kald: the agent page's records parts: link the call to a case and correct its CPR number,
// my recordings (grants, who accessed them), and for team leaders and coaches the agents'
// recordings they may ask to hear.
"use strict";

(function () {
  let me = null;
  let callId = null;     // the current call, or the last one (wrap-up)
  let agents = [];       // [{login, name}] from the live view (team leaders, coaches)

  const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
  const escape = (text) => String(text === null || text === undefined ? "" : text)
    .replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const when = (iso) => iso ? new Date(iso).toLocaleString("da-DK", { dateStyle: "short", timeStyle: "short" }) : "–";
  const grantNames = { requested: "Anmodet", granted: "Givet", refused: "Afvist", withdrawn: "Trukket tilbage", none: "Ingen" };
  const actionNames = {
    listen: "lyttede", download: "hentede", "listen-request": "bad om adgang", "consent-grant": "gav adgang",
    "consent-refuse": "afviste", "consent-withdraw": "trak adgang tilbage", journalise: "journaliserede",
    "journalise-request": "sendte til journalisering", erase: "slettede", delete: "slettede",
  };
  const journalNames = { none: "–", linked: "Tilknyttet", exported: "Journaliseret" };

  // The last call survives a reload of the page (in this tab): in wrap-up the live view has
  // no call any more, and the agent must still be able to link it.
  const LAST_CALL = "kald-last-call";

  function remember() {
    if (!me || !callId) return;
    try { sessionStorage.setItem(LAST_CALL, JSON.stringify({ login: me.login, id: callId })); } catch (e) { /* private mode */ }
  }

  function restore() {
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(LAST_CALL) || "null"); } catch (e) { saved = null; }
    if (callId || !saved || saved.login !== me.login || !saved.id) return;
    callId = saved.id;
    $("journal-panel").hidden = false;
    $("journal-call").textContent = "Gælder den seneste samtale.";
    showLinks();
  }

  function message(testid, result, ok) {
    $(testid).textContent = result.ok ? ok : (result.data && result.data.error) || "Det lykkedes ikke.";
  }

  // --- the current call: case links and CPR correction ----------------------------------

  async function showLinks() {
    if (!callId) return;
    const result = await kald.api("GET", `/api/calls/${encodeURIComponent(callId)}/links`);
    const list = result.ok ? result.data.filter((l) => !l.removed) : [];
    $("case-links").innerHTML = list.map((l) =>
      `<li data-testid="case-link">${escape(l.case_number)}${l.note ? " – " + escape(l.note) : ""} ` +
      `<button type="button" class="small" data-unlink="${l.id}">Fjern</button></li>`).join("");
  }

  async function linkCase() {
    const result = await kald.api("POST", `/api/calls/${encodeURIComponent(callId)}/links`, {
      case_number: $("case-number").value.trim(), note: $("case-note").value.trim() || null,
    });
    message("journal-message", result, "Samtalen er tilknyttet sagen.");
    if (result.ok) { $("case-number").value = ""; $("case-note").value = ""; }
    showLinks();
  }

  async function fixCpr() {
    const result = await kald.api("POST", `/api/calls/${encodeURIComponent(callId)}/cpr`, {
      cpr: $("cpr-fix").value.trim(), verified_by: $("cpr-verified").value,
    });
    message("journal-message", result, "CPR-nummeret er rettet på samtalen og dens optagelser.");
    if (result.ok) {
      const shown = $("cpr-fix").value.trim();
      $("cpr-fix").value = "";
      const cpr = $("caller-cpr");
      if (cpr && !cpr.closest("[hidden]")) cpr.textContent = shown;
    }
  }

  document.addEventListener("kald-view", (event) => {
    const view = event.detail;
    if (view.agents) agents = view.agents.filter((a) => me && a.login !== me.login);
    if (view.call && view.call.id !== callId) {
      callId = view.call.id;
      remember();
      $("journal-panel").hidden = false;
      $("journal-call").textContent = "Gælder den aktuelle samtale.";
      showLinks();
    } else if (!view.call && callId) {
      $("journal-call").textContent = "Gælder den seneste samtale.";
    }
    const select = $("team-agent");
    const options = agents.map((a) => `<option value="${escape(a.login)}">${escape(a.name)}</option>`).join("");
    if (select.dataset.options !== options) {
      const chosen = select.value;
      select.innerHTML = options;
      select.dataset.options = options;
      if (chosen) select.value = chosen;
    }
  });

  // --- my recordings ------------------------------------------------------------------

  async function showMine() {
    const result = await kald.api("GET", "/api/me/recordings");
    if (!result.ok) return;
    $("my-recordings").innerHTML = result.data.map((m) => {
      const r = m.recording;
      const grants = m.grants.map((g) => {
        const buttons = g.state === "requested"
          ? `<button type="button" class="small primary" data-grant="${escape(r.id)}" data-grantee="${escape(g.grantee)}">Giv adgang</button>` +
            ` <button type="button" class="small danger" data-refuse="${escape(r.id)}" data-grantee="${escape(g.grantee)}">Afvis</button>`
          : g.state === "granted"
            ? `<button type="button" class="small" data-withdraw="${escape(r.id)}" data-grantee="${escape(g.grantee)}">Træk tilbage</button>`
            : "";
        return `<div data-testid="grant-${escape(r.id)}-${escape(g.grantee)}" data-state="${escape(g.state)}">` +
          `${escape(g.grantee)}: ${grantNames[g.state] || escape(g.state)}` +
          `${g.reason ? ` <span class="muted">(${escape(g.reason)})</span>` : ""} ${buttons}</div>`;
      }).join("") || '<span class="muted">–</span>';
      const accesses = m.accesses.filter((a) => a.actor !== me.login).map((a) =>
        `<div>${escape(a.actor)} ${actionNames[a.action] || escape(a.action)} ${when(a.at)}` +
        `${a.reason ? ` <span class="muted">(${escape(a.reason)})</span>` : ""}</div>`).join("") ||
        '<span class="muted">Ingen</span>';
      return `<tr data-testid="my-recording-${escape(r.id)}"><td>${when(r.started)}</td><td>${escape(r.topic || "–")}</td>` +
        `<td class="num">${r.duration_s === null ? "–" : kald.duration(r.duration_s)}</td>` +
        `<td>${journalNames[r.journal] || escape(r.journal)}</td><td>${grants}</td>` +
        `<td data-testid="accesses-${escape(r.id)}">${accesses}</td>` +
        `<td><button type="button" class="small" data-play="${escape(r.id)}">Afspil</button></td></tr>`;
    }).join("");
  }

  async function decide(id, grantee, grant) {
    const result = await kald.api("POST", `/api/recordings/${encodeURIComponent(id)}/grants`, { grantee, grant });
    message("my-recordings-message", result, grant ? `${grantee} har fået adgang.` : `Adgang afvist for ${grantee}.`);
    showMine();
  }

  async function withdraw(id, grantee) {
    const result = await kald.api("DELETE", `/api/recordings/${encodeURIComponent(id)}/grants/${encodeURIComponent(grantee)}`);
    message("my-recordings-message", result, `Adgangen for ${grantee} er trukket tilbage.`);
    showMine();
  }

  function play(playerId, id) {
    const player = $(playerId);
    player.hidden = false;
    player.src = `/api/recordings/${encodeURIComponent(id)}/audio`;
    player.play().catch(() => {});
  }

  // --- team leaders and coaches ---------------------------------------------------------

  async function showTeam() {
    const agent = $("team-agent").value;
    if (!agent) return;
    const result = await kald.api("GET", `/api/recordings?agent=${encodeURIComponent(agent)}`);
    if (!result.ok) { message("team-message", result, ""); return; }
    $("team-recordings").innerHTML = result.data.map((t) => {
      const r = t.recording;
      const action = t.grant === "granted"
        ? `<button type="button" class="small primary" data-team-play="${escape(r.id)}">Afspil</button>`
        : `<button type="button" class="small" data-ask="${escape(r.id)}">Bed om adgang</button>`;
      return `<tr data-testid="team-recording-${escape(r.id)}" data-grant="${escape(t.grant)}"><td>${when(r.started)}</td>` +
        `<td>${escape(r.topic || "–")}</td><td class="num">${r.duration_s === null ? "–" : kald.duration(r.duration_s)}</td>` +
        `<td>${grantNames[t.grant] || escape(t.grant)}</td><td>${action}</td></tr>`;
    }).join("") || '<tr><td colspan="5" class="muted">Ingen optagelser.</td></tr>';
  }

  async function ask(id) {
    const reason = window.prompt("Hvorfor vil du høre optagelsen? (medarbejderen ser begrundelsen)");
    if (!reason) return;
    const result = await kald.api("POST", `/api/recordings/${encodeURIComponent(id)}/listen-requests`, { reason });
    message("team-message", result, "Medarbejderen er spurgt.");
    showTeam();
  }

  // --- start ------------------------------------------------------------------------------

  document.addEventListener("click", (event) => {
    const b = event.target.closest("button");
    if (!b) return;
    if (b.dataset.grant) decide(b.dataset.grant, b.dataset.grantee, true);
    else if (b.dataset.refuse) decide(b.dataset.refuse, b.dataset.grantee, false);
    else if (b.dataset.withdraw) withdraw(b.dataset.withdraw, b.dataset.grantee);
    else if (b.dataset.play) play("player", b.dataset.play);
    else if (b.dataset.teamPlay) play("team-player", b.dataset.teamPlay);
    else if (b.dataset.ask) ask(b.dataset.ask);
    else if (b.dataset.unlink) kald.api("DELETE", `/api/links/${b.dataset.unlink}`).then(showLinks);
  });

  async function start() {
    const result = await kald.api("GET", "/api/me");
    if (!result.ok) return;
    me = result.data;
    const takesCalls = ["agent", "team-leader", "coach"].includes(me.role);
    const leads = me.role === "team-leader" || me.role === "coach";
    $("my-recordings-panel").hidden = !takesCalls;
    $("team-recordings-panel").hidden = !leads;
    $("btn-link-case").addEventListener("click", linkCase);
    $("btn-fix-cpr").addEventListener("click", fixCpr);
    $("btn-team-show").addEventListener("click", showTeam);
    if (takesCalls) {
      remember();
      restore();
      showMine();
      // Pushed when grants or listen requests change; the slow poll is a fallback.
      window.addEventListener("kald-records", showMine);
      setInterval(showMine, 60000);
    }
    if (leads) window.addEventListener("kald-records", showTeam);
  }

  start();
})();
