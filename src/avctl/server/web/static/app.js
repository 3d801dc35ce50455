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

  // A part of a page that refreshes itself from the live stream (hx-trigger="sse:...") never
  // redraws a form the user is in: the refresh waits while the user is editing a form of that part
  // (the part is marked data-live-held meanwhile), and runs once when they leave the form or their
  // request from it is answered. What they typed and did not send is carried over into the form of
  // the same id in the new content.
  const held = new Map(); // live part -> its refresh, waiting
  const carried = new Map(); // form id -> [[field name, value or checked]] of its unsent fields
  const sending = new Set(); // forms whose request is on its way
  const sent = new WeakMap(); // form -> its fields as last sent

  const fieldsOf = (form) => JSON.stringify(Array.from(new FormData(form)));

  // editing: the focus is in a field of one of the part's forms, or on a button of one with changes
  // not sent yet, or a request from one is on its way (a button keeps the focus once it is answered:
  // that alone holds nothing)
  function editing(live) {
    if (Array.from(sending).some((form) => live.contains(form))) return true;
    const active = document.activeElement;
    const form = active && active.closest("form");
    if (!form || !live.contains(form)) return false;
    if (active.matches("input, select, textarea")) return true;
    return sent.has(form) ? fieldsOf(form) !== sent.get(form) : unsent(form).length > 0;
  }

  document.addEventListener("htmx:beforeRequest", (e) => {
    const form = e.detail.elt.closest("form");
    if (form) {
      sending.add(form);
      sent.set(form, fieldsOf(form));
    }
  });

  document.addEventListener("htmx:confirm", (e) => {
    const trigger = e.detail.triggeringEvent;
    if (!trigger || !String(trigger.type).startsWith("sse:") || !editing(e.detail.elt)) return;
    e.preventDefault();
    held.set(e.detail.elt, e.detail.issueRequest);
    e.detail.elt.setAttribute("data-live-held", "");
  });

  function release() {
    held.forEach((refresh, live) => {
      if (live.isConnected && editing(live)) return;
      held.delete(live);
      live.removeAttribute("data-live-held");
      if (live.isConnected) refresh(true);
    });
  }
  // on focusout the focus has not reached its next element yet: look once it has
  document.addEventListener("focusout", () => setTimeout(release, 0));
  // a form's own request answered (its row redrawn, the focus gone with it)
  document.addEventListener("htmx:afterRequest", (e) => {
    const form = e.detail.elt.closest("form");
    if (form) sending.delete(form);
    setTimeout(release, 0);
  });

  function unsent(form) {
    const fields = [];
    for (const f of form.elements) {
      if (!f.name || ["hidden", "submit", "button", "password"].includes(f.type)) continue;
      if (f.type === "checkbox" || f.type === "radio") {
        if (f.checked !== f.defaultChecked) fields.push([f.name, f.checked, f.value]);
      } else if (f.tagName === "SELECT") {
        if (Array.from(f.options).some((o) => o.selected !== o.defaultSelected)) fields.push([f.name, f.value]);
      } else if (f.value !== f.defaultValue) {
        fields.push([f.name, f.value]);
      }
    }
    return fields;
  }

  document.addEventListener("htmx:beforeSwap", (e) => {
    if (!(e.detail.elt.getAttribute("hx-trigger") || "").includes("sse:")) return;
    e.detail.elt.querySelectorAll("form[id]").forEach((form) => {
      const fields = unsent(form);
      if (fields.length) carried.set(form.id, fields);
    });
  });

  function carryOver() {
    carried.forEach((fields, id) => {
      const form = document.getElementById(id);
      if (!form || form.tagName !== "FORM") return;
      for (const [name, value, checkedValue] of fields) {
        const f = checkedValue === undefined ? form.elements.namedItem(name)
          : form.querySelector(`[name="${CSS.escape(name)}"][value="${CSS.escape(checkedValue)}"]`);
        if (!f || f instanceof RadioNodeList) continue;
        if (checkedValue === undefined) f.value = value; else f.checked = value;
        f.dispatchEvent(new Event("input")); // what reacts to typing (a typed confirmation) sees it
      }
    });
    carried.clear();
  }

  function onLoad(root) {
    localTimes(root);
    typedConfirmations(root);
    carryOver();
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
