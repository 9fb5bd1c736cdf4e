// Usage charts: spend, tokens and requests per hour or day, drawn with the vendored uPlot.
"use strict";
(function () {
  const series = JSON.parse(document.getElementById("series").textContent);
  const xs = series.map((p) => p.t);
  const charts = [];

  const money = (v) => (v === 0 ? "$0" : "$" + Number(v.toPrecision(2)).toString());
  const count = (v) => (Math.abs(v) >= 1000 ? (v / 1000).toFixed(1) + "k" : String(v));

  function draw(id, lines, format) {
    const el = document.getElementById(id);
    const opts = {
      width: Math.max(260, el.clientWidth),
      height: 200,
      scales: { x: { time: true } },
      series: [{}, ...lines.map((l) => ({ label: l.label, stroke: l.color, fill: l.color + "33", width: 2 }))],
      axes: [{}, { size: 70, values: (u, ticks) => ticks.map(format) }],
    };
    charts.push([el, new uPlot(opts, [xs, ...lines.map((l) => l.values)], el)]);
  }

  draw("chart-cost", [{ label: "USD", color: "#1f6feb", values: series.map((p) => Number(p.cost_usd)) }], money);
  draw("chart-tokens", [
    { label: "prompt", color: "#2da44e", values: series.map((p) => p.prompt_tokens) },
    { label: "completion", color: "#bf8700", values: series.map((p) => p.completion_tokens) },
  ], count);
  draw("chart-requests", [
    { label: "requests", color: "#8250df", values: series.map((p) => p.requests) },
    { label: "errors", color: "#cf222e", values: series.map((p) => p.errors) },
    { label: "unpriced", color: "#57606a", values: series.map((p) => p.unpriced) },
  ], count);

  window.addEventListener("resize", () => {
    for (const [el, chart] of charts) chart.setSize({ width: Math.max(260, el.clientWidth), height: 200 });
  });
})();
