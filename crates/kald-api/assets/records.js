// kald: the records page: access requests and their review (records officers), search,
// listening with a reason, holds, journalising, erasure; the audit log (administrators).
"use strict";

(function () {
  let me = null;
  let current = null;    // the access request under review (its detail)

  const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
  const escape = (text) => String(text === null || text === undefined ? "" : text)
    .replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const when = (iso) => iso ? new Date(iso).toLocaleString("da-DK", { dateStyle: "short", timeStyle: "short" }) : "–";
  const kinds = { recording: "Optagelse", message: "Besked", call: "Opkald", tombstone: "Slettet optagelse", audit: "Logpost" };
  const decisions = { release: "Udleveres", withhold: "Undtages", "release-muted": "Udleveres, dele gøres tavse" };
  const states = { open: "Åben", reviewed: "Gennemgået", answered: "Besvaret", closed: "Lukket" };
  const laws = { forvaltningsloven: "Forvaltningsloven", gdpr: "GDPR art. 15" };
  const journal = { none: "", linked: "tilknyttet sag", exported: "journaliseret" };

  function say(testid, result, ok) {
    $(testid).textContent = result.ok ? ok : (result.data && result.data.error) || "Det lykkedes ikke.";
  }

  /** "m:ss-m:ss, …" → [[s, e], …] in seconds, or null when malformed. */
  function parseRanges(text) {
    const seconds = (t) => {
      const parts = t.trim().split(":").map(Number);
      if (parts.some((n) => !Number.isFinite(n) || n < 0)) return NaN;
      return parts.reduce((acc, n) => acc * 60 + n, 0);
    };
    const ranges = [];
    for (const piece of text.split(",").map((p) => p.trim()).filter(Boolean)) {
      const [a, b] = piece.split("-");
      if (b === undefined) return null;
      const range = [seconds(a), seconds(b)];
      if (range.some(Number.isNaN)) return null;
      ranges.push(range);
    }
    return ranges;
  }

  const clock = (s) => kald.duration(s) + (s % 1 ? (s % 1).toFixed(3).slice(1) : "");

  // --- access requests ------------------------------------------------------------------

  async function listRequests() {
    const result = await kald.api("GET", "/api/access-requests");
    if (!result.ok) return;
    $("requests").innerHTML = result.data.map((r) => {
      const badge = r.reminder === "overdue"
        ? `<span class="badge bad">Overskredet</span>`
        : r.reminder === "due-soon" ? `<span class="badge warn">Frist snart</span>` : "";
      const left = r.state === "answered" || r.state === "closed" ? "" :
        r.working_days_left >= 0 ? ` (${r.working_days_left} arbejdsdage)` : ` (${-r.working_days_left} dage over)`;
      return `<tr data-testid="request-${r.id}"><td>${r.id}</td><td>${laws[r.law] || escape(r.law)}</td>` +
        `<td>${escape(r.received)}</td><td>${escape(r.deadline)}${left} ${badge}</td><td>${escape(r.requester)}</td>` +
        `<td>${states[r.state] || escape(r.state)}</td><td class="num">${r.decided}/${r.items}</td>` +
        `<td><button type="button" class="small" data-open="${r.id}">Åbn</button></td></tr>`;
    }).join("") || '<tr><td colspan="8" class="muted">Ingen sager.</td></tr>';
  }

  async function openRequest() {
    const result = await kald.api("POST", "/api/access-requests", {
      law: $("ar-law").value,
      received: $("ar-received").value || null,
      requester: $("ar-requester").value.trim(),
      identity_verified_by: $("ar-identity").value.trim(),
      cpr: $("ar-cpr").value.trim(),
    });
    say("request-message", result, result.ok ? `Sag ${result.data.request.id} er oprettet; ${result.data.items.length} emner fundet og tilbageholdt.` : "");
    if (result.ok) {
      $("ar-cpr").value = "";
      show(result.data);
      listRequests();
    }
  }

  function show(detail) {
    current = detail;
    const r = detail.request;
    $("review-panel").hidden = false;
    $("review-id").textContent = r.id;
    $("review-summary").textContent =
      `${laws[r.law]}, modtaget ${r.received}, frist ${r.deadline}` +
      `${r.extension_reason ? ` (forlænget: ${r.extension_reason})` : ""}. Anmoder: ${r.requester} ` +
      `(identitet: ${r.identity_verified_by}). CPR ${r.cpr}. Status: ${states[r.state]}. Afgjort ${r.decided} af ${r.items}.`;
    $("review-items").innerHTML = detail.items.map((item, n) => {
      const key = `${item.kind}/${item.id}`;
      const audio = (item.kind === "recording" || item.kind === "message") && item.duration_s !== null;
      const extra = item.decision === "withhold" ? item.legal_reason || ""
        : item.decision === "release-muted" ? item.muted.map(([s, e]) => `${clock(s)}-${clock(e)}`).join(", ") : "";
      const options = ["", "release", "withhold", "release-muted"]
        .filter((d) => audio || d !== "release-muted")
        .map((d) => `<option value="${d}" ${item.decision === d || (!item.decision && d === "") ? "selected" : ""}>${d ? decisions[d] : "Vælg …"}</option>`)
        .join("");
      return `<tr data-testid="item-${n}" data-kind="${escape(item.kind)}" data-item="${escape(item.id)}" data-decision="${escape(item.decision || "")}">` +
        `<td>${kinds[item.kind] || escape(item.kind)}${audio ? ` (${kald.duration(item.duration_s)})` : ""}</td>` +
        `<td>${when(item.at)}</td><td>${escape(item.note || "")}${item.agent ? ` – ${escape(item.agent)}` : ""}</td>` +
        `<td><select data-testid="decision-${n}" data-key="${escape(key)}">${options}</select></td>` +
        `<td><input data-testid="detail-${n}" value="${escape(extra)}" placeholder="lovhjemmel / tavse tidsrum"></td>` +
        `<td><button type="button" class="small primary" data-save="${n}">Gem</button>` +
        `${audio ? ` <button type="button" class="small" data-listen="${escape(item.id)}">Afspil</button>` : ""}</td></tr>`;
    }).join("");
    $("btn-archive").href = `/api/access-requests/${r.id}/archive`;
  }

  async function save(n) {
    const item = current.items[n];
    const decision = $(`decision-${n}`).value;
    const detail = $(`detail-${n}`).value.trim();
    const body = { decision };
    if (decision === "withhold") body.legal_reason = detail;
    if (decision === "release-muted") {
      const ranges = parseRanges(detail);
      if (!ranges || ranges.length === 0) {
        $("review-message").textContent = "Skriv de tavse tidsrum som m:ss-m:ss, adskilt af komma.";
        return;
      }
      body.muted = ranges;
    }
    const path = `/api/access-requests/${current.request.id}/items/${encodeURIComponent(item.kind)}/${encodeURIComponent(item.id)}`;
    const result = await kald.api("PUT", path, body);
    say("review-message", result, `${kinds[item.kind]}: ${decisions[decision]}.`);
    if (result.ok) { show(result.data); listRequests(); }
  }

  async function addItem() {
    const id = window.prompt("Opkaldets id (fra søgningen nedenfor):");
    if (!id) return;
    const result = await kald.api("POST", `/api/access-requests/${current.request.id}/items`, { kind: "call", id: id.trim() });
    say("review-message", result, "Opkaldet og dets optagelser er tilføjet og tilbageholdt.");
    if (result.ok) show(result.data);
  }

  async function extend() {
    const until = window.prompt("Ny frist (ÅÅÅÅ-MM-DD):");
    if (!until) return;
    const reason = window.prompt("Begrundelse (meddeles anmoderen):");
    if (!reason) return;
    const result = await kald.api("POST", `/api/access-requests/${current.request.id}/extend`, { until, reason });
    say("review-message", result, "Fristen er forlænget.");
    if (result.ok) { show(result.data); listRequests(); }
  }

  async function closeRequest() {
    const result = await kald.api("POST", `/api/access-requests/${current.request.id}/close`);
    say("review-message", result, "Sagen er lukket; tilbageholdelsen er ophævet.");
    if (result.ok) openExisting(current.request.id);
    listRequests();
  }

  async function openExisting(id) {
    const result = await kald.api("GET", `/api/access-requests/${id}`);
    if (result.ok) show(result.data);
  }

  function listen(playerId, id, reason) {
    const player = $(playerId);
    player.hidden = false;
    player.src = `/api/recordings/${encodeURIComponent(id)}/audio?reason=${encodeURIComponent(reason)}`;
    player.play().catch(() => {});
  }

  // --- search, journalising, holds, erasure -----------------------------------------------

  async function search() {
    const params = new URLSearchParams();
    for (const [key, testid] of [["cpr", "s-cpr"], ["caller", "s-caller"], ["from", "s-from"], ["to", "s-to"], ["case", "s-case"], ["agent", "s-agent"]]) {
      const value = $(testid).value.trim();
      if (value) params.set(key, value);
    }
    const result = await kald.api("GET", `/api/search?${params}`);
    if (!result.ok) { say("search-message", result, ""); return; }
    $("search-message").textContent = `${result.data.length} opkald fundet.`;
    $("search-results").innerHTML = result.data.map((c) => {
      const links = c.links.filter((l) => !l.removed);
      const recs = c.recordings.map((r) =>
        `<div data-testid="found-recording-${escape(r.id)}">${kald.duration(r.duration_s || 0)} ${journal[r.journal] || ""} ` +
        `<button type="button" class="small" data-search-listen="${escape(r.id)}">Afspil</button> ` +
        (links.length ? `<button type="button" class="small" data-journalise="${escape(r.id)}" data-link="${links[0].id}">Journalisér</button> ` : "") +
        `<button type="button" class="small" data-hold="${escape(r.id)}">Tilbagehold</button> ` +
        `<button type="button" class="small danger" data-erase="${escape(r.id)}">Slet</button></div>`).join("");
      return `<tr data-testid="found-call-${escape(c.id)}"><td>${when(c.started)}<br><span class="muted">${escape(c.id)}</span></td>` +
        `<td>${escape(c.caller || "–")}</td><td class="cpr">${escape(c.cpr || "–")}${c.cpr_corrected ? ' <span class="badge ok">rettet</span>' : ""}` +
        (c.pii_scrubbed ? `<br><span class="muted" data-testid="scrubbed-${escape(c.id)}">Personoplysninger slettet ${when(c.pii_scrubbed)}</span>` : "") + `</td>` +
        `<td>${escape(c.topic || "–")}</td><td>${escape(c.agent || "–")}</td>` +
        `<td>${links.map((l) => escape(l.case_number)).join("<br>") || "–"}</td><td>${recs || "–"}</td></tr>`;
    }).join("");
  }

  async function journalise(id, link) {
    const result = await kald.api("POST", `/api/recordings/${encodeURIComponent(id)}/journalise`, { link_id: Number(link) });
    say("search-message", result, "Sendt til sagssystemet; kald prøver igen, til det er kvitteret.");
  }

  async function hold(id) {
    const reason = window.prompt("Hvorfor skal optagelsen tilbageholdes?");
    if (!reason) return;
    const result = await kald.api("POST", "/api/holds", { recording: id, reason });
    say("search-message", result, "Optagelsen er tilbageholdt og slettes ikke ved fristen.");
  }

  async function erase(id) {
    const reason = window.prompt("Sletning efter borgerens anmodning (GDPR art. 17). Begrundelse:");
    if (!reason) return;
    const result = await kald.api("POST", `/api/recordings/${encodeURIComponent(id)}/erase`, { reason });
    say("search-message", result, "Optagelsen er slettet; et sletningsnotat er gemt.");
    if (result.ok) search();
  }

  // --- the audit log ----------------------------------------------------------------------

  async function audit() {
    const params = new URLSearchParams();
    for (const [key, testid] of [["from", "a-from"], ["to", "a-to"], ["actor", "a-actor"], ["action", "a-action"], ["target", "a-target"]]) {
      const value = $(testid).value.trim();
      if (value) params.set(key, value);
    }
    $("link-audit-csv").href = `/api/audit?${params}&format=csv`;
    const result = await kald.api("GET", `/api/audit?${params}`);
    if (!result.ok) { say("audit-message", result, ""); return; }
    $("audit-message").textContent = `${result.data.length} poster.`;
    $("audit-rows").innerHTML = result.data.map((a) =>
      `<tr><td>${a.id}</td><td>${when(a.at)}</td><td>${escape(a.actor)}</td><td>${escape(a.role)}</td>` +
      `<td>${escape(a.action)}</td><td>${escape(a.target)}</td><td>${escape(a.reason || "")}</td></tr>`).join("");
  }

  async function verify() {
    const result = await kald.api("GET", "/api/audit/verify");
    if (!result.ok) { say("audit-message", result, ""); return; }
    $("audit-message").textContent = result.data.intact
      ? `Kæden er intakt (${result.data.entries} poster).`
      : `ADVARSEL: kæden er brudt ved post ${result.data.broken_at}: ${result.data.problem}.`;
  }

  // --- start ------------------------------------------------------------------------------

  document.addEventListener("click", (event) => {
    const b = event.target.closest("button");
    if (!b) return;
    if (b.dataset.open) openExisting(b.dataset.open);
    else if (b.dataset.save !== undefined) save(Number(b.dataset.save));
    else if (b.dataset.listen) listen("review-player", b.dataset.listen, `aktindsigt sag ${current.request.id}`);
    else if (b.dataset.searchListen) {
      const reason = window.prompt("Hvorfor lytter du? (logges)");
      if (reason) listen("search-player", b.dataset.searchListen, reason);
    } else if (b.dataset.journalise) journalise(b.dataset.journalise, b.dataset.link);
    else if (b.dataset.hold) hold(b.dataset.hold);
    else if (b.dataset.erase) erase(b.dataset.erase);
  });

  async function start() {
    const result = await kald.api("GET", "/api/me");
    if (!result.ok) return;
    me = result.data;
    $("user-name").textContent = `${me.name} (${me.login})`;
    const officer = me.role === "records-officer";
    const admin = me.role === "administrator";
    $("requests-panel").hidden = !officer;
    $("search-panel").hidden = !officer;
    $("audit-panel").hidden = !admin;
    $("link-wallboard").hidden = !admin;
    if (!officer && !admin) $("page-message").textContent = "Din rolle har ikke adgang til journal og aktindsigt.";
    $("btn-sign-out").addEventListener("click", kald.signOut);
    $("btn-open-request").addEventListener("click", openRequest);
    $("btn-add-item").addEventListener("click", addItem);
    $("btn-extend").addEventListener("click", extend);
    $("btn-close-request").addEventListener("click", closeRequest);
    $("btn-search").addEventListener("click", search);
    $("btn-audit").addEventListener("click", audit);
    $("btn-verify").addEventListener("click", verify);
    $("btn-archive").addEventListener("click", () => setTimeout(() => { openExisting(current.request.id); listRequests(); }, 1500));
    if (officer) listRequests();
    if (admin) audit();
  }

  start();
})();
