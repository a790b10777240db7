// kald: shared helpers of the pages (no framework, no build step).
"use strict";

const kald = {
  /** Danish names of the agent states. */
  stateNames: {
    logged_out: "Logget ud",
    available: "Klar",
    ringing: "Ringer",
    talking: "I samtale",
    wrap_up: "Efterbehandling",
    paused: "Pause",
  },

  /** The page a role starts on. */
  homeOf(role) {
    if (role === "agent" || role === "team-leader" || role === "coach") return "/agent";
    if (role === "supervisor") return "/wallboard";
    if (role === "records-officer" || role === "administrator") return "/records";
    return null;
  },

  /** Calls the API; resolves to {ok, status, data}; a 401 sends the user to the log-in page. */
  async api(method, path, body) {
    const options = { method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (e) {
      return { ok: false, status: 0, data: { error: "Ingen forbindelse til kald" } };
    }
    let data = null;
    const text = await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (!response.ok && data && typeof data.error === "string") data.error = kald.danish(data.error);
    if (response.status === 401 && path !== "/api/login") {
      window.location.assign("/");
    }
    return { ok: response.ok, status: response.status, data };
  },

  /** The API's messages (English, for integrators) in Danish for the pages; others as given. */
  danish(message) {
    const texts = {
      "the case number does not have the configured form": "Journalnummeret har ikke den form, kommunen bruger (fx 27.12.04-P20-1-26).",
      "the note is longer than 1000 characters": "Noten er for lang (højst 1000 tegn).",
      "not a valid CPR number": "Det er ikke et gyldigt CPR-nummer.",
      "say how the caller's identity was verified": "Skriv, hvordan borgerens identitet er kontrolleret.",
      "a reason is required": "Skriv en begrundelse.",
      "not allowed for your role": "Det har din rolle ikke adgang til.",
      "not found": "Findes ikke.",
      "the recording is on hold": "Optagelsen er tilbageholdt og kan ikke slettes.",
      "the recording is still being made": "Optagelsen er ikke færdig endnu.",
      "the request is answered or closed": "Sagen er besvaret eller lukket.",
      "say who asked and how their identity was verified": "Skriv, hvem der spørger, og hvordan identiteten er kontrolleret.",
      "received is in the future": "Modtagelsesdatoen ligger i fremtiden.",
      "withholding needs a legal reason": "Skriv lovhjemlen for at undtage.",
      "records are not available": "Journal og optagelser er ikke sat op i kald.",
      "say why (reason=…): it is logged": "Skriv, hvorfor du lytter (det logges).",
      "the grantee must be a team leader or coach who needs the agent's consent": "Adgang kan kun gives til teamledere og coaches.",
    };
    if (texts[message]) return texts[message];
    if (message.startsWith("journalised:")) return "Optagelsen er journaliseret; sagssystemets kopi er myndighedens. Slet den dér.";
    if (message.startsWith("no case system is configured")) return "Der er ikke sat et sagssystem op ([journal] i kald.toml).";
    const missing = /^(\d+) item\(s\) still need a valid decision \(numbers (.*)\)$/.exec(message);
    if (missing) return `${missing[1]} emne(r) mangler en gyldig afgørelse (nr. ${missing[2]}).`;
    if (/^muted range \d+ (ends after the audio|overlaps|is empty)/.test(message)) return `Tavse tidsrum: ${message}`;
    return message;
  },

  /** Opens the push channel; calls onView(view) per snapshot and onStatus(connected). */
  live(onView, onStatus) {
    const source = new EventSource("/api/events");
    source.addEventListener("open", () => onStatus(true));
    source.addEventListener("snapshot", (event) => {
      onStatus(true);
      onView(JSON.parse(event.data));
    });
    // Listening grants or requests changed: pages that show them look again.
    source.addEventListener("records", () => window.dispatchEvent(new Event("kald-records")));
    source.addEventListener("error", async () => {
      onStatus(false);
      if (source.readyState === EventSource.CLOSED) {
        // Refused (session gone?) or the server ended the stream: check, then retry.
        const me = await kald.api("GET", "/api/me");
        if (me.ok) setTimeout(() => kald.live(onView, onStatus), 2000);
      }
    });
    return source;
  },

  /** Seconds as m:ss (or h:mm:ss). */
  duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = String(seconds % 60).padStart(2, "0");
    return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  },

  /** A fraction 0–1 as a Danish percentage, or a dash. */
  percent(fraction) {
    return fraction === null || fraction === undefined ? "–" : `${Math.round(fraction * 100)} %`;
  },

  /** Sets the text of the element with this data-testid. */
  text(testid, value) {
    const element = document.querySelector(`[data-testid="${testid}"]`);
    if (element) element.textContent = value;
    return element;
  },

  /** Logs out of kald (the session) and goes to the log-in page. */
  async signOut() {
    await kald.api("POST", "/api/logout");
    window.location.assign("/");
  },
};
