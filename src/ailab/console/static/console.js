// The console's shared behaviour: calls to the admin API with the session's CSRF token, forms that post
// JSON (data-api="METHOD /path/{field}"), buttons and pickers that call the API, copy buttons, the menu.
"use strict";
(function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  async function api(method, path, body) {
    const init = { method, headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: { message: text } }; }
    if (!res.ok) {
      const msg = (data && data.error && data.error.message) || res.status + " " + res.statusText;
      throw new Error(msg);
    }
    return data;
  }

  function toast(message, bad) {
    const t = document.getElementById("toast");
    t.textContent = message;
    t.className = bad ? "show bad" : "show";
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.className = ""; }, 6000);
  }

  function formBody(form, spec) {
    const body = {};
    let path = spec;
    for (const el of form.elements) {
      if (!el.name || el.type === "submit" || el.type === "button" || el.type === "file") continue;
      let value;
      if (el.hasAttribute("data-list")) {
        value = Array.from(el.selectedOptions).map((o) => o.value);
        if (!value.length) continue;
      } else if (el.type === "number" && !el.hasAttribute("data-string")) {
        if (el.value === "") continue;
        value = Number(el.value);
      } else {
        if (el.value === "") continue;
        value = el.value;
      }
      if (el.hasAttribute("data-path")) {
        path = path.replace("{" + el.name + "}", el.value);
        continue;
      }
      body[el.name] = value;
    }
    return [path, body];
  }

  function showSecret(value) {
    const box = document.getElementById("secret");
    document.getElementById("secret-value").textContent = value;
    box.hidden = false;
    box.querySelector("button").focus();
  }

  document.addEventListener("submit", async (ev) => {
    const form = ev.target;
    const spec = form.getAttribute("data-api");
    if (!spec) return;
    ev.preventDefault();
    const [method, rawPath] = spec.split(" ");
    const [path, body] = formBody(form, rawPath);
    const button = form.querySelector("[type=submit]");
    button.disabled = true;
    try {
      const out = await api(method, path, body);
      const then = form.getAttribute("data-then");
      if (then === "secret") showSecret(out.key);
      else if (then === "password" && out && out.password) showSecret(out.password);
      else location.reload();
    } catch (e) {
      toast(e.message, true);
    } finally {
      button.disabled = false;
    }
  });

  document.addEventListener("click", async (ev) => {
    const el = ev.target.closest("[data-api-click], [data-copy], [data-reload], .menu");
    if (!el) return;
    if (el.classList.contains("menu")) {
      const open = el.getAttribute("aria-expanded") === "true";
      el.setAttribute("aria-expanded", String(!open));
      document.getElementById("nav").classList.toggle("open", !open);
    } else if (el.hasAttribute("data-copy")) {
      const text = document.querySelector(el.getAttribute("data-copy")).textContent;
      try { await navigator.clipboard.writeText(text); toast("Copied"); }
      catch (e) { toast("Select the text and copy it (the clipboard is not available here)", true); }
    } else if (el.hasAttribute("data-reload")) {
      location.reload();
    } else {
      const confirmText = el.getAttribute("data-confirm");
      if (confirmText && !window.confirm(confirmText)) return;
      const [method, path] = el.getAttribute("data-api-click").split(" ");
      const raw = el.getAttribute("data-body");
      try { await api(method, path, raw ? JSON.parse(raw) : undefined); location.reload(); }
      catch (e) { toast(e.message, true); }
    }
  });

  document.addEventListener("change", async (ev) => {
    const el = ev.target;
    const spec = el.getAttribute && el.getAttribute("data-api-change");
    if (!spec || !el.value) return;
    const [method, rawPath] = spec.split(" ");
    const field = el.getAttribute("data-field");
    const body = field ? { [field]: el.value } : undefined;
    try { await api(method, rawPath.replace("{value}", el.value), body); location.reload(); }
    catch (e) { toast(e.message, true); }
  });

  const verify = document.getElementById("verify");
  if (verify) {
    verify.addEventListener("click", async () => {
      const out = document.getElementById("verify-result");
      try {
        const r = await api("GET", "/api/audit/verify");
        out.textContent = r.ok ? "chain intact: " + r.rows + " entries" : "chain BROKEN at entry " + r.broken_id + ": " + r.reason;
        out.className = r.ok ? "ok" : "error";
      } catch (e) { out.textContent = e.message; out.className = "error"; }
    });
  }

  window.ailab = { api, toast, csrf };
})();
