// rlcollect report: draws the panels from the JSON block the binary wrote.
// Numeric charts are uPlot canvases; categories (pairs, reasons) are HTML bars.
// window.__rlreport lists every chart with what it drew, for tests and scripts.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("rlcollect-data").textContent);
  const REPORT = (window.__rlreport = { charts: [], errors: [], ready: false });
  window.addEventListener("error", (e) => REPORT.errors.push(String(e.message)));

  // Okabe–Ito: distinct for colour-blind readers, on light and dark.
  const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000", "#999999"];
  const RUNS = DATA.runs;
  const MULTI = RUNS.length > 1;
  const css = getComputedStyle(document.documentElement);
  const ink = (name) => css.getPropertyValue(name).trim();
  const THEME = { text: ink("--text"), muted: ink("--muted"), grid: ink("--grid"), mark: ink("--mark") };
  const runColour = (i) => PALETTE[i % PALETTE.length];

  // Colour of a series: its run's when runs are overlaid or when it is one
  // of a run's roles (raw and mean), else one per series.
  function colour(chart, s, k) {
    const byRun = (MULTI && !chart.per_run) || (s.role && s.role !== "main");
    return byRun ? runColour(s.run) : PALETTE[k % PALETTE.length];
  }
  // What the legend calls a series: the run when runs are overlaid.
  function seriesName(chart, s) {
    if (chart.per_run || !MULTI) return s.name || chart.y.label;
    const run = RUNS[s.run].label;
    return s.name ? run + " · " + s.name : run;
  }
  function alpha(hex, a) {
    const n = parseInt(hex.slice(1), 16);
    return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${a})`;
  }

  // ---- number formatting -------------------------------------------------
  const nf = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 4 });
  const intf = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  function fmtNum(v) {
    if (v == null || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-4 || a >= 1e12)) return v.toExponential(2);
    return nf.format(v);
  }
  function fmtTime(secs) {
    if (secs == null) return "–";
    return new Date(secs * 1000).toISOString().slice(0, 16).replace("T", " ");
  }
  const FORMATS = {
    num: fmtNum,
    int: (v) => (v == null ? "–" : intf.format(v)),
    pct: (v) => (v == null ? "–" : (100 * v).toFixed(1) + "%"),
    time: fmtTime,
  };
  const fmt = (axis) => FORMATS[axis.fmt] || fmtNum;

  // ---- layout --------------------------------------------------------------
  const PANELS = [
    ["trades", "Trades"],
    ["rl", "RL training"],
    ["predictions", "Predictions"],
    ["signals", "Signal propagation"],
  ];
  function panelTitle(id) {
    const known = PANELS.find((p) => p[0] === id);
    if (known) return known[1];
    if (id.startsWith("user:")) return "Stream " + id.slice(5);
    return "Run health";
  }
  function panelOrder(id) {
    const i = PANELS.findIndex((p) => p[0] === id);
    if (i >= 0) return i;
    return id === "health" ? 1e9 : 1e6;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function panelStats(id) {
    // One line per panel with its totals, per run.
    const lines = [];
    RUNS.forEach((r) => {
      const t = r.totals;
      const who = MULTI ? r.label + ": " : "";
      let s = null;
      if (id === "trades" && t.trades)
        s = `${intf.format(t.trades.count)} trades · profit ${fmtNum(t.trades.profit_abs_total)} · win rate ${(100 * t.trades.win_rate).toFixed(2)}% · max drawdown ${fmtNum(t.trades.max_drawdown_abs)} · at most ${t.trades.max_open} open at once`;
      if (id === "rl" && (t.rl_episodes || t.model_decisions)) {
        const parts = [];
        if (t.rl_episodes) parts.push(`${intf.format(t.rl_episodes.count)} episodes · mean reward ${fmtNum(t.rl_episodes.total_reward_mean)} · best ${fmtNum(t.rl_episodes.total_reward_max)} (episode ${t.rl_episodes.best_episode ?? "–"})`);
        if (t.model_decisions) parts.push(`${intf.format(t.model_decisions.count)} decisions`);
        s = parts.join(" · ");
      }
      if (id === "predictions" && t.predictions)
        s = `${intf.format(t.predictions.count)} predictions · do_predict = 1 in ${t.predictions.do_predict_share == null ? "–" : (100 * t.predictions.do_predict_share).toFixed(1) + "%"} · mean confidence ${fmtNum(t.predictions.confidence_mean)}`;
      if (id === "signals" && t.signal_propagation) {
        const g = t.signal_propagation;
        s = `${intf.format(g.count)} signals · ${intf.format(g.accepted)} accepted · ${intf.format(g.rejected)} rejected`;
      }
      if (id.startsWith("user:")) {
        const n = t.rows[id.slice(5)];
        if (n != null) s = `${intf.format(n)} rows`;
      }
      if (s) lines.push(who + s);
    });
    return lines;
  }

  // ---- charts ----------------------------------------------------------------
  const HEIGHT = 230;
  const INT_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 1e7, 1e8, 1e9];
  // Time axes in UTC, as the labels say, whatever the reader's time zone.
  const UTC = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");

  // One table of aligned x and y columns for uPlot (null where a series has no point).
  function aligned(series) {
    if (series.length === 1) return [series[0].x, series[0].y];
    return uPlot.join(series.map((s) => [s.x, s.y]));
  }

  function axes(chart) {
    const base = { stroke: THEME.muted, grid: { stroke: THEME.grid, width: 1 }, ticks: { stroke: THEME.grid, width: 1 }, labelSize: 18, labelFont: "12px system-ui, sans-serif", font: "11px system-ui, sans-serif" };
    const x = Object.assign({}, base, { label: chart.x.label });
    if (chart.x.fmt !== "time") x.values = (u, vals) => vals.map(fmt(chart.x));
    const y = Object.assign({}, base, { label: chart.y.label, size: 64, values: (u, vals) => vals.map(fmt(chart.y)) });
    // Whole counts (episodes, trades) get whole ticks only.
    if (chart.x.fmt === "int") x.incrs = INT_INCRS;
    if (chart.y.fmt === "int") y.incrs = INT_INCRS;
    return [x, y];
  }

  function record(chart, u, points, node) {
    const entry = { id: chart.id, panel: chart.panel, kind: chart.kind, points, series: chart.series.length, drawn: 0, node };
    if (u) {
      entry.uplot = u;
    }
    REPORT.charts.push(entry);
    return entry;
  }

  function pointsOf(series) {
    return series.reduce((n, s) => n + s.y.filter((v) => v != null).length, 0);
  }

  function seriesOpts(chart, step) {
    return chart.series.map((s, k) => {
      const c = colour(chart, s, k);
      const role = s.role || "main";
      const o = {
        label: seriesName(chart, s),
        stroke: role === "faint" ? alpha(c, 0.45) : c,
        width: role === "mean" ? 2.5 : role === "faint" ? 1 : 1.6,
        spanGaps: true,
        points: { show: false },
        value: (u, v) => fmt(chart.y)(v),
      };
      if (step) o.paths = uPlot.paths.stepped({ align: 1 });
      // A series of one or two points draws no visible line: mark its points.
      if (s.y.filter((v) => v != null).length < 3) o.points = { show: true, size: 8, fill: c };
      return o;
    });
  }

  // The max-drawdown window: a shaded band behind the lines.
  function marksHook(chart) {
    return (u) => {
      const ctx = u.ctx;
      chart.marks.forEach((m) => {
        const x0 = u.valToPos(m.from, "x", true);
        const x1 = u.valToPos(m.to, "x", true);
        ctx.save();
        ctx.fillStyle = alpha(MULTI ? runColour(m.run) : "#D55E00", 0.13);
        ctx.fillRect(Math.min(x0, x1), u.bbox.top, Math.max(2, Math.abs(x1 - x0)), u.bbox.height);
        ctx.restore();
      });
    };
  }

  function lineChart(chart, box, step) {
    const data = aligned(chart.series);
    const entry = record(chart, null, pointsOf(chart.series), box);
    const opts = {
      width: box.clientWidth,
      height: HEIGHT,
      tzDate: UTC,
      scales: { x: { time: chart.x.fmt === "time" } },
      axes: axes(chart),
      series: [{ label: chart.x.label, value: (u, v) => fmt(chart.x)(v) }].concat(seriesOpts(chart, step)),
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      hooks: {
        drawClear: chart.marks && chart.marks.length ? [marksHook(chart)] : [],
        drawSeries: [(u, si) => (entry.drawn = Math.max(entry.drawn, si))],
      },
    };
    if (chart.y.fmt === "pct") opts.scales.y = { range: (u, min, max) => [Math.min(0, min), Math.max(1, max)] };
    entry.uplot = new uPlot(opts, data, box);
  }

  // Histograms of several series share one grid: the widest bin width (all
  // widths are powers of two, so finer bins add up exactly into wider ones).
  function histData(chart) {
    const W = Math.max(...chart.series.map((s) => s.w));
    const keys = new Map();
    chart.series.forEach((s, k) => {
      s.x.forEach((x, i) => {
        const key = Math.floor(x / W);
        if (!keys.has(key)) keys.set(key, chart.series.map(() => 0));
        keys.get(key)[k] += s.y[i] || 0;
      });
    });
    const sorted = [...keys.keys()].sort((a, b) => a - b);
    const lo = sorted[0], hi = sorted[sorted.length - 1];
    const xs = [], ys = chart.series.map(() => []);
    for (let key = lo; key <= hi + 1; key++) {
      xs.push(key * W);
      const row = keys.get(key) || chart.series.map(() => 0);
      // One closing point after the last bin, so its step has a right edge.
      row.forEach((v, k) => ys[k].push(key > hi ? v * 0 : v));
    }
    return { xs, ys, W };
  }

  function histChart(chart, box) {
    const { xs, ys, W } = histData(chart);
    const entry = record(chart, null, pointsOf(chart.series), box);
    const series = seriesOpts(chart, true).map((o, k) => {
      o.fill = alpha(colour(chart, chart.series[k], k), chart.series.length > 1 ? 0.18 : 0.35);
      o.value = (u, v) => fmt(chart.y)(v);
      return o;
    });
    const opts = {
      width: box.clientWidth,
      height: HEIGHT,
      scales: { x: { time: false } },
      axes: axes(chart),
      series: [{ label: chart.x.label, value: (u, v) => (v == null ? "–" : `${fmtNum(v)} to ${fmtNum(v + W)}`) }].concat(series),
      cursor: { drag: { x: true, y: false } },
      hooks: { drawSeries: [(u, si) => (entry.drawn = Math.max(entry.drawn, si))] },
    };
    entry.uplot = new uPlot(opts, [xs].concat(ys), box);
  }

  // Stacked shares: each band fills down to the band under it.
  function stackedChart(chart, box) {
    const raw = aligned(chart.series).map((col) => col.map((v) => (v == null ? 0 : v)));
    const stacked = [raw[0]];
    const acc = raw[0].map(() => 0);
    for (let i = 1; i < raw.length; i++) stacked.push(raw[i].map((v, j) => (acc[j] += v)));
    const bands = [];
    for (let i = 2; i < stacked.length; i++) bands.push({ series: [i, i - 1] });
    const entry = record(chart, null, pointsOf(chart.series), box);
    const series = chart.series.map((s, k) => {
      const c = PALETTE[k % PALETTE.length];
      return { label: seriesName(chart, s), stroke: c, fill: alpha(c, 0.55), width: 1, points: { show: false }, value: (u, v, si, i) => (i == null ? "–" : FORMATS.pct(raw[si][i])) };
    });
    const opts = {
      width: box.clientWidth,
      height: HEIGHT,
      tzDate: UTC,
      scales: { x: { time: chart.x.fmt === "time" }, y: { range: [0, 1] } },
      axes: axes(chart),
      series: [{ label: chart.x.label, value: (u, v) => fmt(chart.x)(v) }].concat(series),
      bands,
      cursor: { drag: { x: true, y: false } },
      hooks: { drawSeries: [(u, si) => (entry.drawn = Math.max(entry.drawn, si))] },
    };
    entry.uplot = new uPlot(opts, stacked, box);
  }

  // Horizontal bars per category, one bar per run; diverging from 0 when
  // values have both signs (profit per pair).
  function hbarsChart(chart, box) {
    const cats = [];
    chart.series.forEach((s) => s.cats.forEach((c) => cats.includes(c) || cats.push(c)));
    const values = chart.series.flatMap((s) => s.y.filter((v) => v != null));
    const max = Math.max(...values.map(Math.abs), 1e-300);
    const hasNeg = values.some((v) => v < 0);
    const wrap = el("div", "hbars" + (hasNeg ? " diverging" : ""));
    let drawn = 0;
    cats.slice(0, 40).forEach((cat) => {
      const row = el("div", "hrow");
      row.appendChild(el("div", "hcat", cat));
      const bars = el("div", "hbarcol");
      chart.series.forEach((s, k) => {
        const i = s.cats.indexOf(cat);
        if (i < 0) return;
        const v = s.y[i];
        const line = el("div", "hline");
        const track = el("div", "htrack");
        const bar = el("div", "hbar" + (v < 0 ? " neg" : ""));
        const share = Math.abs(v) / max;
        bar.style.width = (hasNeg ? 50 : 100) * share + "%";
        if (hasNeg) bar.style[v < 0 ? "right" : "left"] = "50%";
        bar.style.background = colour(chart, s, MULTI ? s.run : 0);
        if (share > 0) drawn++;
        track.appendChild(bar);
        line.appendChild(track);
        const note = (s.text && s.text[i]) || "";
        line.appendChild(el("div", "hval", fmt(chart.y)(v) + (note ? "  ·  " + note : "")));
        line.title = (MULTI ? RUNS[s.run].label + ": " : "") + cat;
        bars.appendChild(line);
      });
      row.appendChild(bars);
      wrap.appendChild(row);
    });
    if (cats.length > 40) wrap.appendChild(el("div", "more", `… and ${cats.length - 40} more`));
    box.appendChild(wrap);
    const entry = record(chart, null, pointsOf(chart.series), box);
    entry.drawn = drawn;
  }

  function legendRuns(chart, card) {
    if (!MULTI || chart.per_run || chart.kind !== "hbars") return;
    const l = el("div", "runlegend");
    RUNS.forEach((r, i) => {
      const item = el("span", "item");
      const sw = el("span", "swatch");
      sw.style.background = runColour(i);
      item.appendChild(sw);
      item.appendChild(document.createTextNode(r.label));
      l.appendChild(item);
    });
    card.appendChild(l);
  }

  function drawChart(chart, grid) {
    const card = el("figure", "chart kind-" + chart.kind);
    card.dataset.chart = chart.id;
    const run = chart.per_run && MULTI && chart.series.length ? " — " + RUNS[chart.series[0].run].label : "";
    card.appendChild(el("figcaption", null, chart.title + run));
    if (chart.note) card.appendChild(el("p", "note", chart.note));
    legendRuns(chart, card);
    const box = el("div", "plot");
    card.appendChild(box);
    grid.appendChild(card);
    try {
      if (chart.kind === "hbars") hbarsChart(chart, box);
      else if (chart.kind === "hist") histChart(chart, box);
      else if (chart.kind === "stacked") stackedChart(chart, box);
      else lineChart(chart, box, chart.kind === "step");
    } catch (e) {
      REPORT.errors.push(chart.id + ": " + e);
      console.error(chart.id, e);
    }
  }

  // ---- tables ----------------------------------------------------------------
  function drawTable(t, grid) {
    const card = el("figure", "table wide");
    card.appendChild(el("figcaption", null, t.title));
    const wrap = el("div", "tablewrap");
    const table = el("table");
    const skip = MULTI ? -1 : 0; // the run column only when there are several
    const head = el("tr");
    t.columns.forEach((c, i) => i !== skip && head.appendChild(el("th", null, c)));
    table.appendChild(el("thead")).appendChild(head);
    const body = el("tbody");
    t.rows.forEach((r) => {
      const tr = el("tr");
      r.forEach((c, i) => i !== skip && tr.appendChild(el("td", null, c)));
      body.appendChild(tr);
    });
    table.appendChild(body);
    wrap.appendChild(table);
    card.appendChild(wrap);
    grid.appendChild(card);
  }

  // ---- page ------------------------------------------------------------------
  function render() {
    document.querySelectorAll(".swatch[data-run]").forEach((s) => (s.style.background = runColour(+s.dataset.run)));
    const ids = [...new Set(DATA.charts.map((c) => c.panel).concat(DATA.tables.map((t) => t.panel)))];
    ids.sort((a, b) => panelOrder(a) - panelOrder(b) || a.localeCompare(b));
    const main = document.getElementById("panels");
    ids.forEach((id) => {
      const charts = DATA.charts.filter((c) => c.panel === id);
      const tables = DATA.tables.filter((t) => t.panel === id);
      const panel = el("section", "panel");
      panel.dataset.panel = id;
      panel.appendChild(el("h2", null, panelTitle(id)));
      panelStats(id).forEach((line) => panel.appendChild(el("p", "stats", line)));
      const grid = el("div", "grid");
      panel.appendChild(grid);
      main.appendChild(panel);
      charts.forEach((c) => drawChart(c, grid));
      tables.forEach((t) => drawTable(t, grid));
    });
    let timer = null;
    window.addEventListener("resize", () => {
      clearTimeout(timer);
      timer = setTimeout(() => REPORT.charts.forEach((c) => c.uplot && c.uplot.setSize({ width: c.node.clientWidth, height: HEIGHT })), 150);
    });
  }

  // Pixels of the chart's canvas in one of its series' colours: proof that
  // data, not only axes, was drawn (for tests).
  REPORT.ink = function (i) {
    const c = REPORT.charts[i];
    if (!c.uplot) return c.drawn;
    const ctx = c.uplot.ctx;
    const { width, height } = ctx.canvas;
    const px = ctx.getImageData(0, 0, width, height).data;
    const wanted = c.uplot.series.slice(1).map((s) => {
      const probe = document.createElement("canvas").getContext("2d");
      probe.fillStyle = typeof s.stroke === "function" ? s.stroke(c.uplot, 1) : s._stroke || s.stroke;
      probe.fillRect(0, 0, 1, 1);
      return probe.getImageData(0, 0, 1, 1).data;
    });
    let n = 0;
    for (let p = 0; p < px.length; p += 4) {
      if (px[p + 3] < 40) continue;
      if (wanted.some((w) => Math.abs(w[0] - px[p]) + Math.abs(w[1] - px[p + 1]) + Math.abs(w[2] - px[p + 2]) < 60)) n++;
    }
    return n;
  };

  try {
    render();
  } catch (e) {
    REPORT.errors.push(String(e));
    console.error(e);
  }
  REPORT.ready = true;
})();
