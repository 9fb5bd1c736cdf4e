// Playground: streams a chat turn (server-sent events from /console/playground/chat) into one or two
// panes; each turn ends with its tokens, cost, latency and time to first token from the ledger event.
"use strict";
(function () {
  const form = document.getElementById("play");
  if (!form) return;
  const history = { 1: [], 2: [] };

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function stats(s) {
    const cost = s.cost_usd === null || s.cost_usd === undefined ? "unpriced" : "$" + Number(s.cost_usd).toPrecision(3);
    return (s.prompt_tokens ?? "?") + " in / " + (s.completion_tokens ?? "?") + " out tokens · " + cost +
      " · latency " + s.latency_ms + " ms · TTFT " + (s.ttft_ms ?? "—") + " ms" + (s.deployment ? " · " + s.deployment : "");
  }

  async function run(pane, model, system, params) {
    const list = document.querySelector("#pane-" + pane + " .turns");
    const turn = el("li", "turn");
    turn.appendChild(el("div", "who", model));
    const text = el("div", "reply");
    const meta = el("div", "meta muted small", "waiting…");
    turn.append(text, meta);
    list.appendChild(turn);
    const messages = (system ? [{ role: "system", content: system }] : []).concat(history[pane]);
    const res = await fetch("/console/playground/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": window.ailab.csrf() },
      body: JSON.stringify({ model, messages, ...params }),
    });
    if (!res.ok) {
      const err = await res.json().catch(() => ({ error: { message: res.statusText } }));
      meta.textContent = err.error.message;
      meta.className = "meta error";
      return;
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = "", answer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const kind = (block.match(/^event: (.*)$/m) || [null, "message"])[1];
        const data = JSON.parse(block.slice(block.indexOf("data: ") + 6));
        if (kind === "stats") { meta.textContent = stats(data); meta.dataset.done = "1"; }
        else if (kind === "error") { meta.textContent = data.message; meta.className = "meta error"; }
        else {
          const delta = data.choices && data.choices[0] && data.choices[0].delta;
          if (delta && delta.content) { answer += delta.content; text.textContent = answer; }
        }
      }
    }
    history[pane].push({ role: "assistant", content: answer });
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = form.elements;
    const message = f.message.value.trim();
    if (!message) return;
    const params = {};
    if (f.temperature.value !== "") params.temperature = Number(f.temperature.value);
    if (f.max_tokens.value !== "") params.max_tokens = Number(f.max_tokens.value);
    const second = f.model2.value;
    document.getElementById("pane-2").hidden = !second;
    for (const pane of [1, 2]) {
      history[pane].push({ role: "user", content: message });
      const li = el("li", "turn mine");
      li.append(el("div", "who", "you"), el("div", "reply", message));
      document.querySelector("#pane-" + pane + " .turns").appendChild(li);
    }
    f.message.value = "";
    const button = form.querySelector("[type=submit]");
    button.disabled = true;
    const runs = [run(1, f.model.value, f.system.value, params)];
    if (second) runs.push(run(2, second, f.system.value, params));
    try { await Promise.all(runs); } catch (e) { window.ailab.toast(e.message, true); }
    button.disabled = false;
  });

  document.getElementById("play-reset").addEventListener("click", () => {
    history[1] = []; history[2] = [];
    document.querySelectorAll(".turns").forEach((l) => { l.textContent = ""; });
  });
})();
