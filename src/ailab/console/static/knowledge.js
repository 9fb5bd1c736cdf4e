// Knowledge: upload with a progress bar and a result per file, the retrieval inspector (fused, dense and
// BM25 ranks and scores per hit) and ask with a streamed answer and clickable citations.
"use strict";
(function () {
  const base = (name) => "/v1/knowledge/collections/" + encodeURIComponent(name);

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  const upload = document.getElementById("upload");
  if (upload) {
    upload.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const files = Array.from(upload.elements.files.files);
      if (!files.length) return;
      const data = new FormData();
      for (const f of files) data.append("files", f, f.name);
      const bar = document.getElementById("upload-progress");
      const out = document.getElementById("upload-results");
      bar.hidden = false; bar.value = 0; out.textContent = "";
      const xhr = new XMLHttpRequest();
      xhr.open("POST", base(upload.elements.collection.value) + "/documents");
      xhr.setRequestHeader("X-CSRF-Token", window.ailab.csrf());
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total); };
      xhr.onload = () => {
        bar.value = 100;
        let body;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = { error: { message: xhr.statusText } }; }
        if (xhr.status >= 400) { window.ailab.toast(body.error.message, true); return; }
        const failed = new Map((body.failed || []).map((f) => [f.source.split("/").pop(), f.reason]));
        for (const f of files) {
          const li = document.createElement("li");
          const reason = failed.get(f.name);
          li.className = reason ? "error" : "ok";
          li.textContent = f.name + ": " + (reason ? "failed — " + reason : "ingested");
          out.appendChild(li);
        }
        const sum = document.createElement("li");
        sum.className = "muted";
        sum.textContent = body.added + " added, " + body.updated + " updated, " + body.unchanged + " unchanged, " + body.chunks + " chunks";
        out.appendChild(sum);
        const more = document.createElement("li");
        const link = document.createElement("a");
        link.href = "?collection=" + encodeURIComponent(upload.elements.collection.value);
        link.textContent = "Show the collection's documents";
        more.appendChild(link);
        out.appendChild(more);
      };
      xhr.onerror = () => window.ailab.toast("upload failed: the server did not answer", true);
      xhr.send(data);
    });
  }

  function ranks(hits, key) {
    const order = hits.map((h, i) => [h[key], i]).filter((x) => x[0] !== null && x[0] !== undefined);
    order.sort((a, b) => b[0] - a[0]);
    const out = {};
    order.forEach(([, i], r) => { out[i] = r + 1; });
    return out;
  }

  const inspect = document.getElementById("inspect");
  if (inspect) {
    inspect.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = inspect.elements;
      try {
        const res = await window.ailab.api("POST", base(f.collection.value) + "/search", {
          query: f.query.value, k: Number(f.k.value || 8), mode: f.mode.value, group: "chunk",
        });
        const hits = res.data;
        const dense = ranks(hits, "dense_score"), sparse = ranks(hits, "sparse_score");
        const table = document.getElementById("hits");
        const body = table.querySelector("tbody");
        body.textContent = "";
        hits.forEach((h, i) => {
          const tr = document.createElement("tr");
          cell(tr, String(i + 1));
          cell(tr, h.score.toFixed(4));
          cell(tr, h.dense_score === null ? "—" : "#" + dense[i] + " (" + h.dense_score.toFixed(4) + ")");
          cell(tr, h.sparse_score === null ? "—" : "#" + sparse[i] + " (" + h.sparse_score.toFixed(4) + ")");
          cell(tr, (h.source || "—") + (h.page ? " p. " + h.page : "") + (h.heading && h.heading.length ? " › " + h.heading.join(" › ") : ""));
          cell(tr, h.text, "chunk");
          body.appendChild(tr);
        });
        if (!hits.length) { const tr = document.createElement("tr"); cell(tr, "No results.").colSpan = 6; body.appendChild(tr); }
        table.hidden = false;
      } catch (e) { window.ailab.toast(e.message, true); }
    });
  }

  function showCitations(list) {
    const ol = document.getElementById("citations");
    ol.textContent = "";
    for (const c of list) {
      const li = document.createElement("li");
      li.id = "cite-" + c.n;
      const details = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = "[" + c.n + "] " + (c.source || "—") + (c.page ? " p. " + c.page : "") + (c.cited ? " (cited)" : "");
      const text = document.createElement("p");
      text.textContent = c.text;
      details.append(summary, text);
      li.appendChild(details);
      ol.appendChild(li);
    }
  }

  function renderAnswer(el, text) {
    el.textContent = "";
    const parts = text.split(/(\[\d+\])/);
    for (const part of parts) {
      const m = part.match(/^\[(\d+)\]$/);
      if (m) {
        const a = document.createElement("a");
        a.href = "#cite-" + m[1];
        a.textContent = part;
        a.addEventListener("click", () => { const d = document.querySelector("#cite-" + m[1] + " details"); if (d) d.open = true; });
        el.appendChild(a);
      } else el.appendChild(document.createTextNode(part));
    }
  }

  const ask = document.getElementById("ask");
  if (ask) {
    ask.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = ask.elements;
      const out = document.getElementById("answer");
      out.textContent = "…";
      const res = await fetch(base(f.collection.value) + "/ask", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": window.ailab.csrf() },
        body: JSON.stringify({ question: f.question.value, model: f.model.value || null, stream: true }),
      });
      if (!res.ok) {
        const err = await res.json().catch(() => ({ error: { message: res.statusText } }));
        out.textContent = err.error.message;
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
          const line = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (!line.startsWith("data: ")) continue;
          const evt = JSON.parse(line.slice(6));
          if (evt.type === "sources") showCitations(evt.sources);
          else if (evt.type === "delta") { answer += evt.content; out.textContent = answer; }
          else if (evt.type === "error") { out.textContent = evt.message; }
          else if (evt.type === "done") { renderAnswer(out, evt.answer || answer); showCitations(evt.citations); out.dataset.done = "1"; }
        }
      }
    });
  }
})();
