// kald: the log-in page; a logged-in user goes on to the page of their role.
"use strict";

(function () {
  const form = document.querySelector('[data-testid="login-form"]');

  function goHome(role) {
    const home = kald.homeOf(role);
    if (home) {
      window.location.assign(home);
    } else {
      kald.text("login-error", "Din rolle har ingen side her endnu.");
    }
  }

  fetch("/api/me", { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : null))
    .then((me) => { if (me) goHome(me.role); })
    .catch(() => {});

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    kald.text("login-error", "");
    const result = await kald.api("POST", "/api/login", {
      login: form.login.value.trim(),
      password: form.password.value,
    });
    if (result.ok) {
      goHome(result.data.me.role);
    } else if (result.status === 429) {
      kald.text("login-error", "For mange forkerte forsøg. Vent et minut, og prøv igen.");
    } else if (result.status === 401) {
      kald.text("login-error", "Forkert brugernavn eller adgangskode.");
    } else {
      kald.text("login-error", "Det lykkedes ikke at logge ind. Prøv igen.");
    }
  });
})();
