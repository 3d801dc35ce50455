// avctl dashboard behaviour: everything here, no inline scripts (the pages' CSP forbids them).
(function () {
  "use strict";

  function cookie(name) {
    const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }
  const csrfHeader = () => ({ "X-CSRF-Token": cookie("avctl_csrf") });

  // the session's CSRF token goes with every request htmx makes
  document.addEventListener("htmx:configRequest", (e) => {
    Object.assign(e.detail.headers, csrfHeader());
  });

  // an error answer (4xx/5xx) is a message fragment: show it in the page's message area
  document.addEventListener("htmx:beforeSwap", (e) => {
    const status = e.detail.xhr.status;
    if (status >= 400 && status !== 401) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
      e.detail.target = document.getElementById("flash");
      e.detail.swapOverride = "innerHTML";
    }
  });

  // times arrive as <time datetime="ISO 8601 UTC">: shown in the browser's own time zone
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach((t) => {
      const d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) {
        t.textContent = d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
        t.title = t.getAttribute("datetime");
      }
    });
  }

  // a form with a field that must be typed exactly (the number of devices of a disruptive job)
  // keeps its submit button disabled until it is
  function typedConfirmations(root) {
    root.querySelectorAll("input[data-must-equal]").forEach((input) => {
      const form = input.form;
      const buttons = form ? form.querySelectorAll("[type=submit]") : [];
      const check = () => buttons.forEach((b) => { b.disabled = input.value.trim() !== input.dataset.mustEqual; });
      input.addEventListener("input", check);
      // typing the confirmation changes nothing the form describes: it must not make a form that
      // refreshes itself on change (the job preview) redraw the field empty under the user's click
      input.addEventListener("change", (e) => e.stopPropagation());
      check();
    });
  }

  function onLoad(root) {
    localTimes(root);
    typedConfirmations(root);
  }

  document.addEventListener("click", async (e) => {
    const copy = e.target.closest("[data-copy]");
    if (copy) {
      const source = document.querySelector(copy.dataset.copy);
      if (source) {
        await navigator.clipboard.writeText(source.textContent.trim());
        copy.textContent = "Copied";
      }
    }
    if (e.target.closest("[data-dismiss]")) {
      e.target.closest(".flash").remove();
    }
    if (e.target.closest("[data-logout]")) {
      await fetch("/api/v1/auth/logout", { method: "POST", headers: csrfHeader(), credentials: "same-origin" });
      window.location.assign("/login");
    }
  });

  document.addEventListener("submit", async (e) => {
    const form = e.target;
    if (form.id !== "login-form") return;
    e.preventDefault();
    const error = document.getElementById("login-error");
    error.textContent = "";
    const data = new FormData(form);
    const answer = await fetch("/api/v1/auth/login", {
      method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: data.get("name"), password: data.get("password") }),
    });
    if (answer.ok) {
      const next = form.dataset.next || "/";
      window.location.assign(next.startsWith("/") && !next.startsWith("//") ? next : "/");
    } else {
      const body = await answer.json().catch(() => ({}));
      error.textContent = body.error || "sign-in failed (" + answer.status + ")";
    }
  });

  document.addEventListener("DOMContentLoaded", () => onLoad(document));
  document.addEventListener("htmx:afterSettle", (e) => onLoad(e.detail.elt));
})();
