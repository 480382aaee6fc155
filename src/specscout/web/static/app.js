// specscout labelling app: keyboard-first, every label saved the moment its key is pressed.
"use strict";

const S = {
  session: null,      // /api/session
  list: [],           // items navigated with n / p (queue, audit, candidates or search hits)
  audit: false,       // labelling the audit sample (kept apart, blind)
  mode: null,         // "queue", "audit" or "spectrum"
  current: null,      // the spectrum shown: its /api/spectrum payload
  undo: [],           // [{row, audit, before}] labels this page has written, newest last
  sampSeen: 0,
  plots: [],
  nav: 0,             // raised by every navigation: a page whose data comes back later is dropped
};

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const fmt = (v, d = 4) => (v === null || v === undefined ? "" : Number(v).toFixed(d));

// The session's secret lives in this tab only: the cookie alone opens nothing.
const SECRET = "specscout-secret";

async function api(path, body) {
  const headers = { "X-Session-Secret": sessionStorage.getItem(SECRET) || "" };
  const options = body === undefined ? { headers } : {
    method: "POST", keepalive: true,  // a label sent as the tab closes still arrives
    headers: { ...headers, "Content-Type": "application/json",
               "X-CSRF-Token": S.session?.csrf || "" },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    let detail = data.detail ?? response.statusText;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return data;
}

function toast(text, error = false) {
  const t = $("#toast");
  t.textContent = text;
  t.className = "show" + (error ? " error" : "");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = error ? "error" : ""; }, error ? 6000 : 1800);
}

// --- plots --------------------------------------------------------------------------------

function wheelZoomPan() {
  // Wheel zooms around the cursor; shift+drag pans; drag selects a range; double-click resets.
  return {
    hooks: {
      ready: (u) => {
        const over = u.over;
        over.addEventListener("wheel", (e) => {
          e.preventDefault();
          const { min, max } = u.scales.x;
          const at = u.posToVal(e.offsetX, "x");
          const f = e.deltaY < 0 ? 0.8 : 1.25;
          u.setScale("x", { min: at - (at - min) * f, max: at + (max - at) * f });
        }, { passive: false });
        over.addEventListener("mousedown", (e) => {
          if (!e.shiftKey) return;
          e.preventDefault(); e.stopPropagation();
          const x0 = e.clientX, { min, max } = u.scales.x;
          const perPx = (max - min) / u.bbox.width * devicePixelRatio;
          const move = (m) => {
            const dx = (m.clientX - x0) * perPx;
            u.setScale("x", { min: min - dx, max: max - dx });
          };
          const up = () => { removeEventListener("mousemove", move);
                             removeEventListener("mouseup", up); };
          addEventListener("mousemove", move); addEventListener("mouseup", up);
        }, true);
      },
    },
  };
}

function linesMarker(lines, band) {
  // Dashed lines at the marked wavelengths (labels staggered where they crowd), and on the
  // whole spectrum a shaded band over the window the network sees.
  return {
    hooks: {
      draw: (u) => {
        const ctx = u.ctx, dpr = devicePixelRatio, top = u.bbox.top, h = u.bbox.height;
        ctx.save();
        if (band) {
          const x0 = u.valToPos(band[0], "x", true), x1 = u.valToPos(band[1], "x", true);
          ctx.fillStyle = "rgba(31, 111, 235, 0.07)";
          ctx.fillRect(x0, top, x1 - x0, h);
        }
        ctx.strokeStyle = "#cf222e"; ctx.fillStyle = "#cf222e";
        ctx.setLineDash([4, 4]); ctx.lineWidth = dpr;
        ctx.font = `${11 * dpr}px sans-serif`;
        let lastX = -Infinity, row = 0;
        const shown = Object.entries(lines).sort((a, b) => a[1] - b[1]);
        for (const [name, wave] of shown) {
          if (wave < u.scales.x.min || wave > u.scales.x.max) continue;
          const x = Math.round(u.valToPos(wave, "x", true));
          ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + h); ctx.stroke();
          row = x - lastX < 70 * dpr ? row + 1 : 0;
          ctx.fillText(name, x + 3 * dpr, top + (12 + 13 * row) * dpr);
          lastX = x;
        }
        ctx.restore();
      },
    },
  };
}

function plot(el, wave, flux, title, lines, band = null) {
  const width = Math.max(400, el.clientWidth || 900);
  const opts = {
    title, width, height: 260,
    scales: { x: { time: false } },
    axes: [{ label: "wavelength (Å)" }, { label: "flux" }],
    series: [{ label: "λ (Å)", value: (u, v) => fmt(v, 2) },
             { label: "flux", stroke: "#1f6feb", width: 1.2, value: (u, v) => fmt(v, 4) }],
    cursor: { drag: { x: true, y: false } },
    plugins: [wheelZoomPan(), linesMarker(lines, band)],
  };
  const u = new uPlot(opts, [wave, flux], el);
  S.plots.push(u);
  return u;
}

// --- the spectrum view --------------------------------------------------------------------

function keyHelp() {
  const keys = S.session.classes.map((c, i) =>
    `<button data-label="${esc(c)}" class="label-btn"><kbd>${i + 1}</kbd> ${esc(c)}</button>`);
  return `<div class="bar">${keys.join("")}
    <button data-action="unsure"><kbd>u</kbd> unsure / skip</button>
    <button data-action="undo"><kbd>z</kbd> undo</button>
    <button data-action="prev"><kbd>p</kbd> previous</button>
    <button data-action="next"><kbd>n</kbd> next</button>
    <button data-action="comment"><kbd>c</kbd> comment</button></div>`;
}

function renderSpectrum(s, context) {
  S.current = s;
  S.plots.forEach((u) => u.destroy()); S.plots = [];
  const r = s.record;
  const probs = s.probabilities ? Object.entries(s.probabilities).map(([c, p]) =>
    `<div>${esc(c)}</div><div><div class="fill" style="width:${(100 * p).toFixed(1)}%"></div></div>
     <div class="num">${fmt(p, 3)}</div>`).join("") : "";
  const history = s.history.length ? `<table><tr><th>time</th><th>annotator</th><th>label</th>
    <th>iteration</th><th>comment</th></tr>${s.history.map((h) => `<tr><td>${esc(h.time.slice(0, 19))}</td>
    <td>${esc(h.annotator)}</td><td>${esc(h.label ?? "—")}</td><td>${esc(h.iteration ?? "")}</td>
    <td>${esc(h.comment)}</td></tr>`).join("")}</table>` : `<p class="muted">No labels yet.</p>`;
  const samp = S.session.samp || WebSamp.key ? `<div class="bar">
      <button data-samp="spectrum">Spectrum to SPLAT</button>
      <button data-samp="point">Point Aladin here</button>
      ${S.mode === "queue" ? `<button data-samp="queue">Queue to TOPCAT</button>` : ""}</div>` : "";
  $("#view").innerHTML = `
    <h2>${esc(context)}</h2>
    ${keyHelp()}
    <div id="state" class="bar"></div>
    <div class="plots"><div id="plot-window"></div><div id="plot-full" class="muted">
      Loading the original file…</div><div id="epochs"></div><div id="neighbours"></div></div>
    <div class="side">
      <section><h3>Metadata</h3><table>
        ${["id", "designation", "obsid", "ra", "dec", "snr", "window_snr", "survey_class",
           "survey_subclass", "release", "instrument", "file"].map((k) =>
          `<tr><th>${k}</th><td>${esc(typeof r[k] === "number" && !Number.isInteger(r[k]) ?
            fmt(r[k], k === "ra" || k === "dec" ? 6 : 1) : r[k])}</td></tr>`).join("")}
        <tr><th>row</th><td>${s.row}</td></tr></table></section>
      <section>${s.probabilities ? `<h3>Model (iteration ${esc(s.iteration)})</h3>
        <div class="prob">${probs}</div>` : (S.audit ?
        `<h3>Audit</h3><p class="muted">Labelled blind: the model's output is hidden.</p>` : "")}
        ${samp}</section>
      <section><h3>Lines</h3><div id="lines" class="muted">Measuring…</div></section>
      <section><h3>Label history</h3>${history}</section>
    </div>`;
  showState();
  plot($("#plot-window"), s.wavelength, s.flux, "Preprocessed window (what the network sees)",
       S.session.lines);
  api(`/api/spectrum/${s.row}/original`).then((o) => {
    if (S.current !== s) return;
    const el = $("#plot-full");
    el.className = "";
    if (o.error) { el.textContent = `Original file not readable: ${o.error}`; return; }
    el.textContent = "";
    const w = s.wavelength;
    plot(el, o.wavelength, o.flux, `Whole spectrum (${o.medium} wavelengths; shaded: the window)`,
         S.session.lines, [w[0], w[w.length - 1]]);
  }).catch((e) => { if (S.current === s) $("#plot-full").textContent = e.message; });
  api(`/api/spectrum/${s.row}/lines`).then((m) => {
    if (S.current === s) showLines(m);
  }).catch((e) => { if (S.current === s) $("#lines").textContent = e.message; });
  api(`/api/spectrum/${s.row}/epochs`).then((e) => {
    if (S.current !== s || !e.epochs.length) return;
    showEpochs(s, e.epochs);
  }).catch(() => {});
  if (!S.audit) {
    api(`/api/spectrum/${s.row}/neighbours`).then((n) => {
      if (S.current === s && n.neighbours.length) showNeighbours(n.neighbours);
    }).catch(() => {});
  }
}

// The line measurement of the spectrum shown (docs/lines.md).
function showLines(m) {
  const el = $("#lines");
  el.className = "";
  if (m.status !== "ok") {
    el.innerHTML = `<p class="muted">Not measured: ${esc(m.status)} ${esc(m.notes)}</p>`;
    return;
  }
  const pm = (v, e, d = 2, unit = "") => v === null ? "—" :
    `${fmt(v, d)}${e === null || e === undefined ? "" : ` ± ${fmt(e, d)}`}${unit}`;
  const rows = [
    ["kind", `${m.kind}${m.profile ? ` (${m.profile})` : ""}${m.kind_reason ?
      ` — ${m.kind_reason}` : ""}${m.nebular ? ", nebular lines" : ""}`],
    ["Hα net EW", pm(m.ha_ew, m.ha_ew_err, 2, " Å")],
    ["Hα emission EW", `${pm(m.ha_emission_ew, m.ha_emission_ew_err, 2, " Å")} above
      ${m.photosphere || "the continuum"}`],
    ["peak", `${pm(m.ha_peak, null, 3)} (${pm(m.ha_peak_snr, null, 1)} σ)`],
    ["FWHM", `${pm(m.ha_fwhm, null, 0, " km/s")} (instrument ${pm(m.ha_fwhm_instrument, null,
      0)}), ${m.ha_resolved ? "resolved" : "not resolved"}`],
    ["peaks", `${m.ha_peaks}${m.ha_peak_separation !== null ? `, ${fmt(m.ha_peak_separation,
      0)} km/s apart, V/R ${pm(m.ha_vr, null)}` : ""}`],
    ["velocity", pm(m.ha_velocity, null, 0, " km/s")],
    ["[N II] 6548 / 6583", `${pm(m.nii_6548_ew, m.nii_6548_ew_err)} / ${pm(m.nii_6583_ew,
      m.nii_6583_ew_err, 2, " Å")}`],
    ["[N II]/Hα", pm(m.nii_ha, m.nii_ha_err, 3)],
    ["He I 6678", pm(m.hei_6678_ew, m.hei_6678_ew_err, 2, " Å")],
    ["[S II] 6716 / 6731", `${pm(m.sii_6716_ew, m.sii_6716_ew_err)} / ${pm(m.sii_6731_ew,
      m.sii_6731_ew_err, 2, " Å")}`],
  ];
  el.innerHTML = `<table>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td>
    </tr>`).join("")}</table>${m.notes ? `<p class="muted">Not measured: ${esc(m.notes)}</p>` :
    ""}<p class="muted">EWs negative for emission.</p>`;
}

// A spectrum drawn small on a canvas (the map's hover, the neighbours).
function thumbnail(canvas, flux, color = "#1f6feb") {
  const c = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  const lo = Math.min(...flux), hi = Math.max(...flux);
  c.clearRect(0, 0, w, h);
  c.strokeStyle = color;
  c.lineWidth = 1.2;
  c.beginPath();
  flux.forEach((v, i) => {
    const x = (i / (flux.length - 1)) * (w - 4) + 2;
    const y = h - 2 - ((v - lo) / (hi - lo || 1)) * (h - 4);
    if (i) c.lineTo(x, y); else c.moveTo(x, y);
  });
  c.stroke();
}

// The labelled spectra the network puts nearest to this one.
function showNeighbours(near) {
  const el = $("#neighbours");
  el.innerHTML = `<h3>Nearest labelled spectra (the network's features)</h3>
    <div class="thumbs">${near.map((n) => `<a class="thumb" href="#/spectrum/${n.row}"
      title="${esc(n.id)}"><canvas width="160" height="60"></canvas>
      <span class="label-chip">${esc(n.label)}</span> <span class="muted">row ${n.row},
      d ${fmt(n.distance, 2)}</span></a>`).join("")}</div>`;
  el.querySelectorAll("canvas").forEach((c, i) => thumbnail(c, near[i].flux));
}

// --- the map of the pool ------------------------------------------------------------------

const PALETTE = ["#8c959f", "#d1242f", "#1f6feb", "#8250df", "#bf8700", "#1a7f37"];

async function mapPage(colour = "label") {
  S.mode = "list"; S.audit = false;
  const nav = S.nav;
  let m;
  try { m = await api("/api/map"); } catch (e) {
    if (nav !== S.nav) return;
    if (e.status === 401) throw e;
    $("#view").innerHTML = `<h2>Map</h2><p class="muted">${esc(e.message)}</p>`;
    return;
  }
  if (nav !== S.nav) return;
  S.current = null;
  S.map = { m, colour, selected: new Set() };
  $("#view").innerHTML = `<h2>Map of the pool (iteration ${esc(m.iteration)}, ${m.points}
    spectra)</h2>
    <div class="bar"><label>colour by <select id="map-colour">
      ${["label", "predicted", "uncertainty"].map((c) =>
        `<option${c === colour ? " selected" : ""}>${c}</option>`).join("")}</select></label>
      <span class="muted">hover: the spectrum; click: open it; drag: lasso a selection</span>
      <button id="map-send" disabled>Send the selection to the queue</button>
      <span id="map-selected" class="muted"></span></div>
    <div class="map-wrap"><canvas id="map" width="1000" height="640"></canvas>
      <div id="map-tip" hidden><canvas width="180" height="64"></canvas><div></div></div></div>
    <div class="legend">${colour === "uncertainty" ? "low → high entropy" : [
      ...(colour === "label" ? [["none", "#d0d7de"]] : []),
      ...m.classes.map((c, i) => [c, PALETTE[i % PALETTE.length]])].map(([c, col]) =>
      `<span><i style="background:${col}"></i>${esc(c)}</span>`).join("")}</div>`;
  $("#map-colour").addEventListener("change", (e) => mapPage(e.target.value));
  $("#map-send").addEventListener("click", sendSelection);
  $("#map-send").hidden = S.session.role !== "owner";  // only the owner changes the queue
  drawMap();
  mapEvents($("#map"));
}

function mapScale() {
  const { m } = S.map, c = $("#map");
  const pad = 12;
  if (!S.map.bounds) {  // a loop: spreading 100,000 arguments overflows the stack
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (let i = 0; i < m.x.length; i++) {
      x0 = Math.min(x0, m.x[i]); x1 = Math.max(x1, m.x[i]);
      y0 = Math.min(y0, m.y[i]); y1 = Math.max(y1, m.y[i]);
    }
    S.map.bounds = [x0, x1, y0, y1];
  }
  const [x0, x1, y0, y1] = S.map.bounds;
  const sx = (c.width - 2 * pad) / (x1 - x0 || 1), sy = (c.height - 2 * pad) / (y1 - y0 || 1);
  return { px: (i) => pad + (m.x[i] - x0) * sx, py: (i) => c.height - pad - (m.y[i] - y0) * sy };
}

function pointColour(i) {
  const { m, colour } = S.map;
  if (colour === "predicted") return PALETTE[m.predicted[i] % PALETTE.length];
  if (colour === "uncertainty") {
    const t = Math.min(1, m.entropy[i] / Math.log(m.classes.length));
    return `hsl(${240 - 240 * t} 80% 45%)`;
  }
  return m.label[i] < 0 ? "#d0d7de" : PALETTE[m.label[i] % PALETTE.length];
}

function drawMap() {
  const { m, selected } = S.map, c = $("#map"), g = c.getContext("2d");
  const { px, py } = mapScale();
  S.map.grid = new Map();  // 8-pixel cells -> points, for hovering
  g.clearRect(0, 0, c.width, c.height);
  const order = [...m.x.keys()].sort((a, b) => (m.label[a] >= 0) - (m.label[b] >= 0));
  for (const i of order) {  // labelled points last, on top
    const x = px(i), y = py(i);
    g.fillStyle = pointColour(i);
    const r = m.label[i] >= 0 || m.kind[i] === 2 ? 3 : 2;
    g.fillRect(x - r / 2, y - r / 2, r, r);
    const key = `${Math.floor(x / 8)},${Math.floor(y / 8)}`;
    if (!S.map.grid.has(key)) S.map.grid.set(key, []);
    S.map.grid.get(key).push(i);
  }
  g.strokeStyle = "#000";
  for (const i of selected) g.strokeRect(px(i) - 2.5, py(i) - 2.5, 5, 5);
  $("#map-selected").textContent = selected.size ? `${selected.size} selected` : "";
  $("#map-send").disabled = !selected.size;
}

function nearestPoint(x, y) {
  const { px, py } = mapScale();
  let best = null, bestD = 36;
  for (let gx = Math.floor(x / 8) - 1; gx <= Math.floor(x / 8) + 1; gx++) {
    for (let gy = Math.floor(y / 8) - 1; gy <= Math.floor(y / 8) + 1; gy++) {
      for (const i of S.map.grid.get(`${gx},${gy}`) || []) {
        const d = (px(i) - x) ** 2 + (py(i) - y) ** 2;
        if (d < bestD) { best = i; bestD = d; }
      }
    }
  }
  return best;
}

function inside(poly, x, y) {  // ray casting
  let hit = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}

function mapEvents(c) {
  const tip = $("#map-tip");
  const pos = (e) => { const r = c.getBoundingClientRect();
    return [(e.clientX - r.left) * (c.width / r.width), (e.clientY - r.top) * (c.height / r.height)]; };
  let lasso = null, hoverTimer = null;
  c.addEventListener("mousedown", (e) => { lasso = [pos(e)]; });
  c.addEventListener("mousemove", (e) => {
    const [x, y] = pos(e);
    if (lasso) {
      lasso.push([x, y]);
      const g = c.getContext("2d");
      g.strokeStyle = "#57606a";
      const [a, b] = lasso[lasso.length - 2];
      g.beginPath(); g.moveTo(a, b); g.lineTo(x, y); g.stroke();
      return;
    }
    const i = nearestPoint(x, y);
    clearTimeout(hoverTimer);
    if (i === null) { tip.hidden = true; return; }
    const { m } = S.map, row = m.row[i];
    tip.style.left = `${e.offsetX + 14}px`;
    tip.style.top = `${e.offsetY + 14}px`;
    tip.dataset.row = row;
    hoverTimer = setTimeout(async () => {
      const sp = await api(`/api/spectrum/${row}`);
      if (tip.dataset.row !== String(row)) return;
      thumbnail($("canvas", tip), sp.flux, pointColour(i));
      $("div", tip).textContent = `row ${row} · ${sp.record.id} · ${
        m.label[i] >= 0 ? m.classes[m.label[i]] : "unlabelled"} · model: ${m.classes[m.predicted[i]]}`;
      tip.hidden = false;
    }, 80);
  });
  c.addEventListener("mouseleave", () => { tip.hidden = true; lasso = null; });
  c.addEventListener("mouseup", (e) => {
    const path = lasso;
    lasso = null;
    if (!path || path.length < 4) {  // a click: open the spectrum
      const [x, y] = pos(e);
      const i = nearestPoint(x, y);
      if (i !== null) location.hash = `#/spectrum/${S.map.m.row[i]}`;
      return;
    }
    const { px, py } = mapScale();
    S.map.selected = new Set([...S.map.m.x.keys()].filter((i) => inside(path, px(i), py(i))));
    drawMap();
  });
}

async function sendSelection() {
  const rows = [...S.map.selected].map((i) => S.map.m.row[i]);
  let added = 0, iteration = null;
  try {
    for (let i = 0; i < rows.length; i += 2000) {  // requests of a bounded size
      const r = await api("/api/queue/add", { rows: rows.slice(i, i + 2000) });
      added += r.added;
      iteration = r.iteration;
    }
    toast(`${added} of ${rows.length} spectra added to the queue (iteration ${iteration})`);
    S.map.selected = new Set();
    drawMap();
  } catch (err) {
    toast(`${added} added, then: ${err.message}`, true);
  }
}

// The other epochs of the object (exposures of a multi-epoch file, revisits), overlaid.
function showEpochs(s, epochs) {
  const el = $("#epochs");
  const when = (m) => (m === null ? "" : `MJD ${fmt(m, 3)}`);
  el.innerHTML = `<h3>Other epochs of this object (${epochs.length})</h3>
    <div id="plot-epochs"></div>${rowsTable(epochs.map((x) => ({ ...x,
      when: when(x.mjd) })), [["id", "id"], ["exposure", "exposure"], ["when", "observed"],
      ["release", "release"]])}`;
  if (!S.audit) {
    el.querySelectorAll("tr.link").forEach((tr) => tr.addEventListener("click", () => {
      location.hash = `#/spectrum/${tr.dataset.row}`;
    }));
  }
  const width = Math.max(400, el.clientWidth || 900);
  const series = [{ label: "λ (Å)", value: (u, v) => fmt(v, 2) },
    { label: "this one", stroke: "#1f6feb", width: 2, value: (u, v) => fmt(v, 4) },
    ...epochs.map((x, i) => ({ label: x.exposure || x.id, width: 1,
      stroke: `hsl(${(35 + 47 * i) % 360} 60% 50% / 0.7)`, value: (u, v) => fmt(v, 4) }))];
  const u = new uPlot({ title: "Windows of every epoch", width, height: 220,
    scales: { x: { time: false } }, series, legend: { show: epochs.length <= 12 },
    axes: [{ label: "wavelength (Å)" }, { label: "flux" }],
    plugins: [wheelZoomPan(), linesMarker(S.session.lines)] },
    [s.wavelength, s.flux, ...epochs.map((x) => x.flux)], $("#plot-epochs"));
  S.plots.push(u);
}

function showState() {
  const s = S.current;
  document.querySelectorAll(".label-btn").forEach((b) =>
    b.classList.toggle("current", b.dataset.label === s.label));
  const where = S.list.findIndex((i) => i.row === s.row);
  const left = S.list.filter((i) => i.done === false).length;
  $("#state").innerHTML = `Your label: <span class="label-chip" id="my-label">${
    esc(s.label ?? "none")}</span>
    ${where >= 0 ? `<span class="muted">${where + 1} of ${S.list.length}` +
      (S.mode !== "spectrum" ? `, ${left} to label` : "") + "</span>" : ""}`;
}

async function label(value, comment = "") {
  const s = S.current;
  if (!s) return;
  const before = s.label;
  try {
    const saved = await api("/api/labels", { row: s.row, label: value, comment,
                                             audit: S.audit, spectrum: s.record.id });
    S.undo.push({ row: s.row, audit: S.audit, before, after: value });
    s.label = value;
    mark(s.row, value);
    const what = comment && comment !== "unsure" ? "comment saved" :
      (value === null ? "unsure, skipped" : `✓ ${value}`);
    toast(`${what}: ${s.record.id} (saved #${saved.id})`);
    return true;
  } catch (e) {
    toast(`Not saved: ${e.message}`, true);
    return false;
  }
}

function mark(row, value) {
  const item = S.list.find((i) => i.row === row);
  if (!item) return;
  item.label = value;
  if (item.done !== undefined) {
    item.done = value !== null || Object.keys(item.others || {}).length > 0;
  }
}

async function labelAndAdvance(value, comment = "") {
  if (await label(value, comment)) {
    if (S.mode === "spectrum") { showState(); return; }
    await advance();
  }
}

async function advance() {
  const nav = S.nav;
  const after = S.list.find((i) => i.row === S.current?.row)?.rank ?? -1;
  const data = await api(`/api/next?audit=${S.audit}&after=${after}`);
  if (nav !== S.nav) return;
  if (!data.item) {
    const items = S.list.map((i) => ({ ...i, rank: i.rank + 1, label: i.label ?? "" }));
    $("#view").innerHTML = `<h2>${S.audit ? "Audit sample" : "Queue"}: all labelled</h2>
      <p>Every spectrum of this ${S.audit ? "audit sample" : "query batch"} has a label.
      Press <kbd>z</kbd> to undo your last one, or open a spectrum to change its label.</p>
      ${rowsTable(items, [["rank", "rank"], ["row", "row"], ["id", "id"],
                          ["label", "your label"]])}`;
    S.current = null;
    return;
  }
  renderSpectrum(data.spectrum, title(data.item, data.remaining));
}

function title(item, remaining) {
  const what = S.audit ? "Audit sample" : "Queue";
  const score = item.acquisition_score !== undefined ?
    ` · acquisition score ${fmt(item.acquisition_score, 3)}` : "";
  return `${what} · rank ${item.rank + 1}${score} · ${remaining} to label`;
}

async function show(row, context) {
  const nav = S.nav;
  try {
    const s = await api(`/api/spectrum/${row}?audit=${S.audit}`);
    if (nav === S.nav) renderSpectrum(s, context);
  } catch (e) { toast(e.message, true); }
}

async function step(delta) {
  if (!S.current || !S.list.length) return;
  const i = S.list.findIndex((x) => x.row === S.current.row);
  const j = Math.min(S.list.length - 1, Math.max(0, (i < 0 ? 0 : i) + delta));
  const item = S.list[j];
  const context = S.mode === "spectrum" ? `Spectrum ${item.row}` : title(item,
    S.list.filter((x) => x.done === false).length);
  await show(item.row, context);
}

async function undo() {
  const last = S.undo.pop();
  if (!last) { toast("Nothing to undo on this page", true); return; }
  const audit = S.audit;
  S.audit = last.audit;
  if (!S.current || S.current.row !== last.row) {
    await show(last.row, `Undo · spectrum ${last.row}`);
  }
  S.audit = audit;
  const s = S.current;
  try {
    const saved = await api("/api/labels", { row: last.row, label: last.before, comment: "undo",
                                             audit: last.audit, spectrum: s.record.id });
    s.label = last.before;
    mark(last.row, last.before);
    toast(`↶ undone: ${s.record.id} is ${last.before ?? "unlabelled"} again (saved #${saved.id})`);
    showState();
  } catch (e) {
    S.undo.push(last);
    toast(`Undo not saved: ${e.message}`, true);
  }
}

function openComment() {
  if (!S.current) return;
  const dialog = $("#comment-dialog");
  $("#comment-text").value = "";
  dialog.showModal();
  $("#comment-text").focus();
}

// --- pages --------------------------------------------------------------------------------

async function queuePage(audit) {
  S.mode = audit ? "audit" : "queue";
  S.audit = audit;
  const nav = S.nav;
  const q = await api(`/api/queue?audit=${audit}`);
  if (nav !== S.nav) return;
  S.list = q.items;
  if (!q.items.length) {
    $("#view").innerHTML = audit ?
      `<h2>Audit sample</h2><p>No audit sample yet: draw one with
       <code>specscout audit PROJECT --draw</code>.</p>` :
      `<h2>Queue</h2><p>The queue is empty: run <code>specscout iterate PROJECT</code>
       (or <code>specscout query</code>) to fill it.</p>`;
    S.current = null;
    return;
  }
  S.current = null;
  await advance();
}

async function auditSpectrum(row) {
  S.mode = "audit";
  S.audit = true;
  const nav = S.nav;
  const items = (await api("/api/queue?audit=true")).items;
  if (nav !== S.nav) return;
  S.list = items;
  const item = S.list.find((i) => i.row === row);
  if (!item) throw new Error(`row ${row} is not in the audit sample`);
  await show(row, title(item, S.list.filter((x) => x.done === false).length));
}

async function spectrumPage(row) {
  S.mode = "spectrum";
  S.audit = false;
  if (!S.list.some((i) => i.row === row)) S.list = [{ row }];
  await show(row, `Spectrum ${row}`);
}

function rowsTable(items, columns) {
  return `<table><tr>${columns.map(([k, h, num]) => `<th class="${num ? "num" : ""}">${esc(h)}</th>`)
    .join("")}</tr>${items.map((it) => `<tr class="link" data-row="${it.row}">${columns.map(
      ([k, h, num]) => `<td class="${num ? "num" : ""}">${esc(num && it[k] !== null ?
        fmt(it[k], num) : it[k])}</td>`).join("")}</tr>`).join("")}</table>`;
}

// The candidate list: each candidate's window drawn small, its kind of emission and line
// measurements (docs/lines.md); sorted by a click on a column's head, filtered by kind.
const CANDIDATE_COLUMNS = [
  ["row", "row"], ["designation", "designation"], ["class", "class"], ["kind", "kind"],
  ["profile", "profile"], ["probability", "p", 3], ["ha_ew", "net EW (Å)", 2],
  ["ha_ew_err", "±", 2], ["ha_emission_ew", "emission EW (Å)", 2], ["ha_peak_snr", "peak σ", 1],
  ["ha_fwhm", "FWHM (km/s)", 0], ["nii_ha", "[N II]/Hα", 2], ["snr", "SNR", 1],
  ["catalogue", "known in"], ["catalogue_type", "type there"]];

function candidateRows(items, sort) {
  const { key, dir } = sort;
  const value = (it) => it[key];
  const missing = (v) => v === null || v === undefined;
  const sorted = [...items].sort((a, b) => {
    const x = value(a), y = value(b);
    if (missing(x) || missing(y)) return missing(x) - missing(y);  // nothing measured: last
    return (typeof x === "number" ? x - y : String(x).localeCompare(String(y))) * dir;
  });
  return `<table id="candidates"><tr><th>line</th>${CANDIDATE_COLUMNS.map(([k, h, num]) =>
    `<th class="sort ${num !== undefined ? "num" : ""}" data-key="${k}">${esc(h)}${
      k === key ? (dir > 0 ? " ▲" : " ▼") : ""}</th>`).join("")}</tr>${sorted.map((it) =>
    `<tr class="link${it.flagged ? " flagged" : ""}" data-row="${it.row}"
      title="${esc(it.kind_reason || it.lines_status || "")}"><td><canvas width="90" height="26"
      data-thumb="${it.row}"></canvas></td>${CANDIDATE_COLUMNS.map(([k, h, num]) =>
      `<td class="${num !== undefined ? "num" : ""}">${esc(num !== undefined && it[k] !== null &&
        it[k] !== undefined ? fmt(it[k], num) : it[k] ?? "")}${k === "kind" && it.flagged ?
        " ⚑" : ""}</td>`).join("")}</tr>`).join("")}</table>`;
}

async function candidatesPage(threshold = 0.5) {
  S.mode = "list"; S.audit = false;
  const nav = S.nav;
  const c = await api(`/api/candidates?threshold=${threshold}`);
  if (nav !== S.nav) return;
  S.current = null;
  const kinds = [...new Set(c.items.map((it) => it.kind))].sort();
  const view = { kind: "listed", flagged: true, sort: { key: "probability", dir: -1 } };
  const listed = new Set(c.listed_kinds);
  const shows = (it) => view.kind === "" || (view.kind === "listed" ?
    listed.has(it.kind) || it.source === "label" : it.kind === view.kind);
  $("#view").innerHTML = `<h2>Candidates (iteration ${esc(c.iteration)})</h2>
    <div class="bar"><label>probability threshold
      <input id="threshold" type="number" min="0" max="1" step="0.05" value="${threshold}"></label>
      <label>kind <select id="kind-filter"><option value="listed">as the catalogue lists
        them</option><option value="">all</option>${kinds.map((k) =>
        `<option>${esc(k)}</option>`).join("")}</select></label>
      <label><input id="show-flagged" type="checkbox" checked> flagged kinds (⚑)</label>
      <span class="muted">${c.spectra} spectra of ${c.objects} objects; the ${c.items.length}
      most probable shown, ${c.measured} of them measured; a human label overrides the model;
      the audit sample's spectra are not listed (blind)</span>
      ${S.session.samp || WebSamp.key ?
        `<button data-samp="candidates">Candidates to TOPCAT</button>` : ""}</div>
    <div id="candidate-table"></div>`;
  const draw = () => {
    const shown = c.items.filter((it) => shows(it) && (view.flagged || !it.flagged));
    S.list = shown;
    $("#candidate-table").innerHTML = candidateRows(shown, view.sort);
    const byRow = new Map(shown.map((it) => [String(it.row), it]));
    $("#candidate-table").querySelectorAll("canvas[data-thumb]").forEach((cv) =>
      thumbnail(cv, byRow.get(cv.dataset.thumb).thumb));
    $("#candidate-table").querySelectorAll("th.sort").forEach((th) =>
      th.addEventListener("click", () => {
        const key = th.dataset.key;
        view.sort = { key, dir: view.sort.key === key ? -view.sort.dir : -1 };
        draw();
      }));
  };
  draw();
  $("#threshold").addEventListener("change", (e) => candidatesPage(Number(e.target.value)));
  $("#kind-filter").addEventListener("change", (e) => { view.kind = e.target.value; draw(); });
  $("#show-flagged").addEventListener("change", (e) => { view.flagged = e.target.checked;
                                                         draw(); });
}

async function searchPage(q = "") {
  S.mode = "list"; S.audit = false;
  $("#view").innerHTML = `<h2>Search</h2><form id="search-form" class="bar">
    <input id="q" size="50" value="${esc(q)}"
      placeholder="id, obsid, designation, 'row 12', or 'ra dec [radius″]'">
    <button>Search</button></form><div id="hits"></div>`;
  $("#search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/search?q=${encodeURIComponent($("#q").value)}`;
  });
  if (!q) { $("#q").focus(); return; }
  const nav = S.nav;
  const r = await api(`/api/search?q=${encodeURIComponent(q)}`);
  if (nav !== S.nav) return;
  S.list = r.items;
  $("#hits").innerHTML = r.items.length ? rowsTable(r.items, [["row", "row"], ["match", "match"],
    ["id", "id"], ["obsid", "obsid"], ["designation", "designation"], ["ra", "RA", 5],
    ["dec", "Dec", 5], ["separation", "sep (″)", 2], ["snr", "SNR", 1]]) :
    `<p>Nothing matches “${esc(q)}”.</p>`;
}

// The learning curve: per iteration, training labels and predictions per class, and the
// audit's precision and recall with their 95 % intervals.
async function learningCurves(el) {
  const c = await api("/api/progress/curve");
  const its = c.iterations;
  if (!its.length || !el.isConnected) return;
  const x = its.map((i) => i.iteration);
  const colour = (k) => PALETTE[k % PALETTE.length];
  const chart = (title, series, data, ylabel, log = false) => {
    const box = document.createElement("div");
    el.appendChild(box);
    S.plots.push(new uPlot({ title, width: 420, height: 220,
      scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
      axes: [{ label: "iteration" }, { label: ylabel }],
      series: [{ label: "iteration" }, ...series] }, [x, ...data], box));
  };
  chart("Training labels per class", c.classes.map((k, i) => ({ label: k, stroke: colour(i),
    points: { show: true } })), c.classes.map((k) => its.map((i) => i.training[k] ?? null)),
    "labels");
  const targets = c.classes.slice(1);
  chart("Spectra predicted per class", targets.map((k, i) => ({ label: k, stroke: colour(i + 1),
    points: { show: true } })), targets.map((k) => its.map((i) => i.predicted[k] ?? null)),
    "spectra", true);
  const series = [], data = [];
  targets.forEach((k, i) => {
    for (const [m, dash] of [["precision", []], ["recall", [6, 4]]]) {
      series.push({ label: `${k} ${m}`, stroke: colour(i + 1), dash, points: { show: true } });
      data.push(its.map((it) => it.audit[k]?.[m] ?? null));
      for (const b of [0, 1]) {
        series.push({ label: `${k} ${m} ${b ? "high" : "low"}`, stroke: colour(i + 1),
                      width: 0.5, dash: [2, 3] });
        data.push(its.map((it) => it.audit[k]?.[`${m}_interval`]?.[b] ?? null));
      }
    }
  });
  if (its.some((it) => Object.keys(it.audit).length)) {
    chart("Audit: precision and recall (95 % intervals)", series, data, "fraction");
  }
}

async function progressPage() {
  S.mode = "list";
  const nav = S.nav;
  const p = await api("/api/progress");
  if (nav !== S.nav) return;
  S.current = null;
  const classes = Object.entries(p.classes);
  const iterations = Object.keys(p.iterations).sort((a, b) => a - b);
  $("#view").innerHTML = `<h2>Progress</h2>
    <p>Queue: ${p.queue.done} of ${p.queue.size} labelled (iteration ${esc(p.queue.iteration)});
       audit sample: ${p.audit.done} of ${p.audit.size}. ${p.labels} label rows in all;
       ${p.disagreements} spectra where annotators disagree.</p>
    <div id="curves" class="curves"></div>
    <h3>Current labels per class</h3><table><tr><th>class</th><th class="num">training</th>
      <th class="num">audit</th></tr>${classes.map(([c, n]) => `<tr><td>${esc(c)}</td>
      <td class="num">${n.training}</td><td class="num">${n.audit}</td></tr>`).join("")}</table>
    <h3>Labels per annotator</h3><table><tr><th>annotator</th><th class="num">training</th>
      <th class="num">audit</th></tr>${Object.entries(p.annotators).map(([a, n]) =>
      `<tr><td>${esc(a)}</td><td class="num">${n.training}</td><td class="num">${n.audit}</td></tr>`)
      .join("")}</table>
    <h3>Training labels per iteration</h3><table><tr><th>iteration</th>${classes.map(([c]) =>
      `<th class="num">${esc(c)}</th>`).join("")}</tr>${iterations.map((it) => `<tr><td>${esc(it)}</td>
      ${classes.map(([c]) => `<td class="num">${p.iterations[it][c] ?? 0}</td>`).join("")}</tr>`)
      .join("")}</table>
    ${p.disagreeing.length ? `<h3>Where annotators disagree</h3>
      <p class="muted">These train nothing until the annotators agree.</p>
      ${rowsTable(p.disagreeing.map((d) => ({ row: d.row, labels: Object.entries(d.labels)
        .map(([a, l]) => `${a}: ${l}`).join(", ") })), [["row", "row"], ["labels", "labels"]])}` : ""}`;
  S.list = p.disagreeing;
  learningCurves($("#curves")).catch(() => {});
}

function loginPage() {
  $("#view").innerHTML = `<h2>Log in</h2><form id="login">
    <label>Name <input id="login-name" autocomplete="username"></label>
    <label>Token <input id="login-token" type="password" autocomplete="current-password"></label>
    <button>Log in</button>
    <p class="muted">A token comes from <code>specscout user add PROJECT NAME</code>. A session
    belongs to the tab that opened it: in a new tab, log in again, or restart
    <code>specscout serve</code> for a new one-time link.</p></form>`;
  $("#login").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await api("/api/login",
        { name: $("#login-name").value, token: $("#login-token").value });
      sessionStorage.setItem(SECRET, r.secret);
      await start();
    } catch (err) { toast(err.message, true); }
  });
}

// --- routing, keys, clicks ----------------------------------------------------------------

async function route() {
  S.nav += 1;
  // an auditor labels the audit sample only
  const hash = location.hash || (S.session?.role === "auditor" ? "#/audit" : "#/queue");
  const [path, query] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean);
  document.querySelectorAll("nav a").forEach((a) =>
    a.classList.toggle("active", a.dataset.view === parts[0]));
  try {
    if (parts[0] === "audit" && parts[1]) await auditSpectrum(Number(parts[1]));
    else if (parts[0] === "audit") await queuePage(true);
    else if (parts[0] === "candidates") await candidatesPage();
    else if (parts[0] === "map") await mapPage();
    else if (parts[0] === "search") {
      await searchPage(new URLSearchParams(query || "").get("q") || "");
    } else if (parts[0] === "progress") await progressPage();
    else if (parts[0] === "spectrum") await spectrumPage(Number(parts[1]));
    else await queuePage(false);
  } catch (e) {
    if (e.status === 401) loginPage();
    else $("#view").innerHTML = `<h2>Error</h2><p>${esc(e.message)}</p>`;
  }
}

document.addEventListener("keydown", (e) => {
  if (e.target.closest("input, textarea, select, dialog") || e.ctrlKey || e.metaKey || e.altKey) {
    return;
  }
  if (!S.current) { if (e.key === "z") undo(); return; }
  const n = Number(e.key);
  if (Number.isInteger(n) && n >= 1 && n <= S.session.classes.length) {
    labelAndAdvance(S.session.classes[n - 1]);
  } else if (e.key === "u") {
    labelAndAdvance(null, "unsure");
  } else if (e.key === "z") undo();
  else if (e.key === "n") step(1);
  else if (e.key === "p") step(-1);
  else if (e.key === "c") { e.preventDefault(); openComment(); }
  else return;
  e.preventDefault();
});

document.addEventListener("click", async (e) => {
  const b = e.target.closest("button, tr.link");
  if (!b) return;
  if (b.dataset.label) labelAndAdvance(b.dataset.label);
  else if (b.dataset.action === "unsure") labelAndAdvance(null, "unsure");
  else if (b.dataset.action === "undo") undo();
  else if (b.dataset.action === "next") step(1);
  else if (b.dataset.action === "prev") step(-1);
  else if (b.dataset.action === "comment") openComment();
  else if (b.dataset.samp) {
    try {
      const body = { action: b.dataset.samp, row: S.current?.row ?? null };
      const threshold = $("#threshold");
      if (threshold) body.threshold = Number(threshold.value);
      let sent;
      if (WebSamp.key) {  // through the hub of the desktop this browser runs on
        const m = await api("/api/samp/message", body);
        sent = await WebSamp.notifyAll(m.mtype, m.params);
      } else {  // through the server's own link
        sent = (await api("/api/samp", body)).sent;
      }
      toast(sent.length ? `Sent to ${sent.join(", ")}` : "No SAMP tool listens for that", !sent.length);
    } catch (err) { toast(err.message, true); }
  } else if (b.dataset.row !== undefined) {
    // Spectra of the audit sample stay on the audit page: labelled blind, kept apart.
    location.hash = `#/${S.mode === "audit" ? "audit" : "spectrum"}/${b.dataset.row}`;
  }
});

$("#comment-form").addEventListener("submit", async (e) => {
  const text = $("#comment-text").value.trim();
  if (e.submitter?.value === "save" && text && S.current) {
    if (await label(S.current.label, text)) showState();
  }
});
$("#comment-text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && e.ctrlKey) { e.preventDefault(); $("#comment-save").click(); }
});

function sampEvent(ev) {  // a VO tool pointed at a row of a table we sent, or at the sky
  if (!ev) return;
  if (ev.row !== null && ev.row !== undefined) {
    toast(`From a VO tool: spectrum ${ev.row}`);
    location.hash = `#/spectrum/${ev.row}`;
  } else if (ev.ra !== undefined) {
    toast(`No spectrum within 5″ of ${fmt(ev.ra, 5)} ${fmt(ev.dec, 5)}`, true);
  }
}

async function pollSamp() {
  if (!S.session?.samp) return;
  try {
    const r = await api(`/api/samp/events?after=${S.sampSeen}`);
    for (const ev of r.events) {
      S.sampSeen = Math.max(S.sampSeen, ev.n);
      sampEvent(ev);
    }
  } catch (_) { /* the server is restarting: try again later */ }
}

async function connectWebSamp() {
  const b = $("#samp-web");
  if (WebSamp.key) {
    await WebSamp.disconnect();
    b.textContent = "SAMP: connect this desktop";
    route();
    return;
  }
  try {
    await WebSamp.connect(S.session.samp_web_port, async (mtype, params) => {
      sampEvent((await api("/api/samp/received", { mtype, params })).event);
    });
    b.textContent = "SAMP: this desktop (disconnect)";
    toast("Connected to this desktop's SAMP hub");
    route();  // the SAMP buttons appear
  } catch (err) {
    toast(`No SAMP hub with the Web Profile on this desktop (start TOPCAT or Aladin): ${
      err.message}`, true);
  }
}
document.addEventListener("websamp", () => {
  $("#samp-web").textContent = "SAMP: connect this desktop";
  toast("The desktop's SAMP hub went away", true);
});
$("#samp-web").addEventListener("click", connectWebSamp);

async function start() {
  S.session = await api("/api/session");
  const launch = new URLSearchParams(location.search).get("token");
  if (launch) {  // the one-time link: traded for a session, and gone from the address bar
    history.replaceState(null, "", "/" + location.hash);
    try {
      sessionStorage.setItem(SECRET, (await api("/api/launch", { token: launch })).secret);
    } catch (err) { toast(err.message, true); }
    S.session = await api("/api/session");
  }
  $("#project").textContent = S.session.annotator ?
    `· ${S.session.project} · ${S.session.pool} spectra` : "";
  $("#who").innerHTML = S.session.annotator ? `labelling as ${esc(S.session.annotator)}` +
    (S.session.role && S.session.role !== "owner" ? ` (${esc(S.session.role)})` : "") +
    (S.session.login_required ? ` <a href="#" id="logout">log out</a>` : "") : "";
  $("#logout")?.addEventListener("click", async (e) => {
    e.preventDefault();
    await api("/api/logout", {});
    sessionStorage.removeItem(SECRET);
    await start();
  });
  if (!S.session.annotator) { loginPage(); return; }
  $("#samp-web").hidden = !S.session.samp_web_port;
  if (S.session.samp) {  // only what VO tools send from now on
    const r = await api("/api/samp/events?after=0");
    S.sampSeen = Math.max(0, ...r.events.map((ev) => ev.n));
  }
  await route();
}

window.addEventListener("hashchange", route);
setInterval(pollSamp, 1500);
start();
