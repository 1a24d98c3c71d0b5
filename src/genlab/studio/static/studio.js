// genlab studio: plain JavaScript over the studio's JSON API (/openapi.json). No build step,
// no network access beyond the page's own server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  runs: [], run: null, view: "samples",
  base: null, z: null, keyA: null, keyB: null, nextKey: "A",
  pen: null, game: null, gameGeneration: 0, playing: false, monitorSince: 0, monitorRows: [], monitorTimer: null,
  drawn: [], drawing: false,  // the game's own distribution: points the user puts down on the D(x) square
};

// ------------------------------------------------------------------ requests

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : body.detail;
    throw new Error(detail || `${response.status} ${response.statusText}`);
  }
  return body;
}

const postJSON = (path, body) =>
  api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

function postFile(path, blob, fields = {}) {
  const form = new FormData();
  form.append("image", blob, "image.png");
  for (const [k, v] of Object.entries(fields)) {
    if (v instanceof Blob) form.append(k, v, `${k}.png`);
    else if (v !== null && v !== undefined) form.append(k, String(v));
  }
  return api(path, { method: "POST", body: form });
}

async function guarded(what, fn) {
  try {
    setStatus(what + "…");
    const result = await fn();
    setStatus("");
    return result;
  } catch (err) {
    setStatus(`${what}: ${err.message}`, true);
    return null;
  }
}

// Requests that follow a control (a slider, a pen stroke): one in flight, the latest waiting.
function latestOnly(fn) {
  let running = false, pending = null;
  return async function run(...args) {
    if (running) { pending = args; return; }
    running = true;
    try { await fn(...args); } finally {
      running = false;
      if (pending) { const next = pending; pending = null; run(...next); }
    }
  };
}

// ------------------------------------------------------------------ runs and views

const caps = () => (state.run && state.run.capabilities) || {};
const runPath = (tail) => `/api/runs/${state.run.index}/${tail}`;
const currentClass = (id) => (caps().classes ? Number($(id).value) : null);
const currentText = () => (caps().text ? $("sample-text").value : null);
// a diffusion model's sampling settings from the samples view (null: the model's own)
const currentSteps = () => (caps().iterative && $("sample-steps").value !== "" ? Number($("sample-steps").value) : null);
const guidable = (c) => Boolean(c.iterative && (c.classes || c.text));  // guidance needs a condition
const currentGuidance = () => (guidable(caps()) ? Number($("guidance").value) : null);

async function loadRuns() {
  state.runs = await guarded("loading runs", () => api("/api/runs")) || [];
  const select = $("run-select");
  select.innerHTML = "";
  state.runs.forEach((run) => select.add(new Option(`${run.index}: ${run.name}`, run.index)));
  if (!state.runs.length) select.add(new Option("no runs given (the game works without one)", ""));
  selectRun(state.runs.length ? 0 : null);
  setupCompare();
}

function selectRun(index) {
  state.run = index === null ? null : state.runs[index];
  state.base = state.z = state.keyA = state.keyB = null;
  state.nextKey = "A";
  state.monitorSince = 0;
  state.monitorRows = [];
  renderSummary();
  const c = caps();
  $("tab-samples").disabled = !c.sampler;
  $("tab-latent").disabled = !c.sampler;
  $("tab-grids").disabled = !c.sampler;
  setupGrids(c);
  setupCaptionForm(c.caption_form);
  $("tab-translate").disabled = !c.translator;
  $("tab-monitor").disabled = !state.run;
  $("tab-compare").disabled = state.runs.length < 2;
  for (const id of ["sample-class", "latent-class"]) {
    const select = $(id);
    select.innerHTML = "";
    (c.classes || []).forEach((name, k) => select.add(new Option(`${k}: ${name}`, k)));
  }
  document.querySelectorAll(".needs-classes").forEach((el) => { el.style.display = c.classes ? "" : "none"; });
  document.querySelectorAll(".needs-text").forEach((el) => { el.style.display = c.text ? "" : "none"; });
  document.querySelectorAll(".needs-iterative").forEach((el) => { el.style.display = c.iterative ? "" : "none"; });
  document.querySelectorAll(".needs-style").forEach((el) => { el.style.display = c.style_image ? "" : "none"; });
  document.querySelectorAll(".needs-reverse").forEach((el) => { el.style.display = c.reverse ? "" : "none"; });
  $("translate-direction").value = "AtoB";
  state.style = null;
  $("style-input").value = "";  // else the old file's name stays and choosing it again fires no change
  document.querySelectorAll(".needs-guidance").forEach((el) => { el.style.display = guidable(c) ? "" : "none"; });
  if (c.iterative) {
    $("sample-steps").value = c.iterative.steps;
    $("guidance").value = c.iterative.guidance;
    $("guidance-value").textContent = Number(c.iterative.guidance).toFixed(1);
  }
  $("denoise-strip").innerHTML = "";
  $("samples-grid").innerHTML = "";
  $("interp-strip").innerHTML = "";
  for (const id of ["latent-image", "key-a", "key-b", "upload-input-image", "upload-recon", "translation", "example-target", "mix-image", "style-image"]) $(id).removeAttribute("src");
  buildSliders();
  $("style-mixing").style.display = c.style_based ? "" : "none";
  if (c.style_based) { $("crossover").max = c.num_ws; $("crossover").value = Math.floor(c.num_ws / 2); $("crossover-value").textContent = $("crossover").value; }
  if (c.translator) setupCanvas();
  const preferred = c.sampler ? "samples" : c.translator ? "translate" : state.run ? "monitor" : "game";
  showView($(`tab-${state.view}`).disabled ? preferred : state.view);
  if (c.sampler) newSamples(false);
}

function renderSummary() {
  const el = $("run-summary");
  const run = state.run;
  if (!run) { el.textContent = "No run given: start the studio with run folders, e.g. genlab studio runs/00000-quickstart"; return; }
  const progress = run.kimg === null ? "no checkpoint yet" : `${run.kimg} of ${run.kimg_target} kimg`;
  const c = run.capabilities;
  const kinds = [c.encoder && "encoder", c.sampler && "sampler", c.translator && "translator", c.classes && `${c.classes.length} classes`,
                 c.iterative && `${c.iterative.sampler}, ${c.iterative.steps} steps`]
    .filter(Boolean).join(", ");
  let html = `<b>${escapeHTML(run.model)}</b> (${escapeHTML(run.objective)}) on <b>${escapeHTML(run.data)}</b> · ${escapeHTML(run.fields)}`
    + ` · ${progress} · batch ${run.batch_size}` + (kinds ? ` · ${kinds}` : "") + (c.waiting ? ` · ${escapeHTML(c.waiting)}` : "");
  if (run.card && run.card.results) {
    const figures = Object.entries(run.card.results).flatMap(([name, value]) => flatten(name, value))
      .map(([k, v]) => `<span>${escapeHTML(k)} = ${v}</span>`).join("");
    const by = run.card.command ? `, by <code>${escapeHTML(run.card.command)}</code>` : "";
    html += `<div class="card">latest eval (${escapeHTML(run.card.folder)}${by}): ${figures}</div>`;
  } else {
    html += `<div class="card">no eval card yet: <code>genlab eval ${escapeHTML(run.reference)}</code></div>`;
  }
  if (c.default_metrics && !c.waiting) {  // compute the card from the page, with a progress bar
    html += `<div class="card eval-form">${run.card ? "compute another card" : "or compute it here"}: metrics
      <input id="eval-metrics" size="24" value="${escapeHTML(c.default_metrics.join(","))}"> on
      <select id="eval-n"><option>500</option><option selected>1000</option><option>10000</option></select> samples
      <button id="eval-start">Compute</button> <progress id="eval-progress" max="1" value="0" hidden></progress>
      <span id="eval-state"></span></div>`;
  }
  el.innerHTML = html;
}

async function startEval() {
  const run = state.run;
  const metrics = $("eval-metrics").value.split(",").map((m) => m.trim()).filter(Boolean);
  const job = await guarded("starting the evaluation", () => postJSON(runPath("eval"), { metrics, n: Number($("eval-n").value) }));
  if (!job) return;
  $("eval-progress").hidden = false;
  for (let status = job; run === state.run; await new Promise((r) => setTimeout(r, 700))) {
    status = await api(`/api/runs/${run.index}/eval`).catch(() => null);
    if (!status || run !== state.run) return;
    $("eval-progress").max = status.total;
    $("eval-progress").value = status.done;
    $("eval-state").textContent = status.state === "running" ? `computing ${status.metric} (${status.done + 1} of ${status.total})` : status.state;
    if (status.state === "failed") { setStatus(`evaluation: ${status.error}`, true); return; }
    if (status.state === "done") break;
  }
  const summary = await guarded("reading the new card", () => api(`/api/runs/${run.index}`));
  if (summary && run === state.run) { Object.assign(run, summary); renderSummary(); }
}

function flatten(name, value) {
  if (typeof value === "number") return [[name, Number.isInteger(value) ? value : value.toPrecision(4)]];
  if (value && typeof value === "object" && !Array.isArray(value))
    return Object.entries(value).slice(0, 6).flatMap(([k, v]) => flatten(`${name}.${k}`, v));
  return [];
}

function escapeHTML(text) {
  return String(text).replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch]));
}

function showView(view) {
  state.view = view;
  document.querySelectorAll("nav button").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.view === view)));
  document.querySelectorAll(".view").forEach((v) => v.classList.toggle("active", v.id === `view-${view}`));
  clearInterval(state.monitorTimer);
  if (view === "monitor") { pollMonitor(); state.monitorTimer = setInterval(pollMonitor, 2000); }
  if (view === "game" && !state.game && !state.gameGeneration) newGame();
  if (view === "grids" && !$("grid-image").getAttribute("src")) drawGrid();
}

// ------------------------------------------------------------------ runs side by side

const COMPARE_COLORS = ["#2f6fde", "#e07b00", "#2a9d3a", "#b3261e", "#7b4fd0", "#555"];

function setupCompare() {
  $("compare-runs").innerHTML = state.runs.map((run) =>
    `<label><input type="checkbox" value="${run.index}"> ${escapeHTML(run.name)}</label>`).join("");
}

const comparedRuns = () => [...document.querySelectorAll("#compare-runs input:checked")].map((b) => state.runs[Number(b.value)]);

async function compareRuns() {
  const runs = comparedRuns();
  if (runs.length < 2) { setStatus("tick two or more runs to compare", true); return; }
  // Eval cards as one table: a row per run, a column per figure any of them has.
  const figures = runs.map((run) => Object.fromEntries(
    Object.entries(run.card?.results || {}).flatMap(([k, v]) => flatten(k, v))));
  const columns = [...new Set(figures.flatMap((f) => Object.keys(f)))].filter((k) => !k.includes("."));
  $("compare-cards").innerHTML = `<tr><th>run</th><th>kimg</th>${columns.map((c) => `<th>${escapeHTML(c)}</th>`).join("")}</tr>`
    + runs.map((run, i) => `<tr><td style="color:${COMPARE_COLORS[i % 6]}">${escapeHTML(run.name)}</td><td>${run.kimg ?? ""}</td>`
      + columns.map((c) => `<td>${figures[i][c] ?? ""}</td>`).join("") + "</tr>").join("");
  // The same seed for every sampler (the first class for conditional ones).
  const seed = Number($("compare-seed").value || 0);
  const rows = await guarded("sampling every run", () => Promise.all(runs.map(async (run) => {
    if (!run.capabilities.sampler) return `<p>${escapeHTML(run.name)}: no samples (it does not generate from a latent)</p>`;
    const body = { seed, n: 8, label: run.capabilities.classes ? 0 : null, text: run.capabilities.text ? $("sample-text").value : null };
    const result = await postJSON(`/api/runs/${run.index}/samples`, body);
    return `<div class="strip" data-run="${run.index}"><span>${escapeHTML(run.name)}</span>${result.images.map((src) => `<img src="${src}" alt="">`).join("")}</div>`;
  })));
  if (rows) $("compare-samples").innerHTML = rows.join("");
  await drawCompareCurves(runs);
}

async function drawCompareCurves(runs) {
  const stats = await guarded("reading their logs", () => Promise.all(runs.map((run) => api(`/api/runs/${run.index}/stats`))));
  if (!stats) return;
  const common = Object.keys(stats[0].rows.at(-1) || {}).filter((k) => k !== "kimg" && k !== "iteration"
    && stats.every((s) => s.rows.length && k in s.rows.at(-1)));
  const chosen = common.includes($("compare-curve").value) ? $("compare-curve").value : common[0];
  $("compare-curve").innerHTML = common.map((k) => `<option${k === chosen ? " selected" : ""}>${escapeHTML(k)}</option>`).join("");
  if (!chosen) { $("compare-legend").textContent = "these runs log no figure in common"; return; }
  // One kimg axis for all: each run's values at its own kimg, joined on the union of their kimg.
  const xs = [...new Set(stats.flatMap((s) => s.rows.map((r) => r.kimg)))].sort((a, b) => a - b);
  const series = stats.map((s, i) => {
    const at = new Map(s.rows.map((r) => [r.kimg, r[chosen]]));
    return { values: xs.map((x) => (at.has(x) ? at.get(x) : NaN)), color: COMPARE_COLORS[i % 6], dots: true };
  });
  drawLines($("compare-chart"), xs.length > 1 ? xs : [0, 1], series, null, { x: "kimg", y: unitOf([chosen]) });
  $("compare-legend").innerHTML = `${escapeHTML(chosen)}: ` + runs.map((run, i) =>
    `<span style="color:${COMPARE_COLORS[i % 6]}">${escapeHTML(run.name)}</span>`).join(" · ");
}

// ------------------------------------------------------------------ captions from the data's grammar

// A select per slot of the captions' template, filled with that attribute's words; a choice rewrites the caption.
function setupCaptionForm(form) {
  const box = $("caption-form");
  box.innerHTML = "";
  if (!form) return;
  for (const [slot, words] of Object.entries(form.choices)) {
    const select = Object.assign(document.createElement("select"), { id: `caption-${slot}`, title: slot });
    words.forEach((w) => select.add(new Option(w, w)));
    select.addEventListener("change", () => { $("sample-text").value = composeCaption(form); newSamples(false); });
    box.append(select);
  }
  const said = $("sample-text").value.split(" ");  // keep the caption shown, where its words fit the choices
  for (const [slot, words] of Object.entries(form.choices)) {
    const word = words.find((w) => said.includes(w));
    if (word) $(`caption-${slot}`).value = word;
  }
  $("sample-text").value = composeCaption(form);
}

const composeCaption = (form) => form.template.replace(/\{(\w+)\}/g, (_, slot) => $(`caption-${slot}`).value);

// ------------------------------------------------------------------ signature grids

const GRIDS = {
  classes: ["Class × seed", "Each column one class, each row one latent decoded as every class: every column should be its class. Truncation below 1 trades variety for fidelity (BigGAN)."],
  mixing: ["Style mixing", "Rows: sources A, giving the styles before the crossover (coarse: pose, shape); columns: sources B, the styles after it (fine: colour). ψ < 1 pulls every w towards the mean."],
  traversal: ["Latent traversal", "Each row moves one latent dimension of one sample from −span to +span prior standard deviations."],
};

function setupGrids(c) {
  const kinds = [c.classes && "classes", c.style_based && "mixing", c.sampler && "traversal"].filter(Boolean);
  $("grid-kind").innerHTML = kinds.map((k) => `<option value="${k}">${GRIDS[k][0]}</option>`).join("");
  if (c.style_based) $("grid-crossover").value = Math.floor(c.num_ws / 2);
  $("grid-image").removeAttribute("src");
  showGridControls();
}

function showGridControls() {
  const kind = $("grid-kind").value;
  for (const k of Object.keys(GRIDS)) document.querySelectorAll(`.grid-${k}`).forEach((el) => { el.style.display = k === kind ? "" : "none"; });
  $("grid-hint").textContent = kind ? GRIDS[kind][1] : "";
}

async function drawGrid() {
  const kind = $("grid-kind").value;
  if (!kind) return;
  const truncation = $("grid-truncation").value === "" ? null : Number($("grid-truncation").value);
  const body = { kind, seed: Number($("grid-seed").value || 0), truncation, crossover: Number($("grid-crossover").value),
                 psi: Number($("grid-psi").value), span: Number($("grid-span").value) };
  const result = await guarded("drawing the grid", () => postJSON(runPath("grid"), body));
  if (result) $("grid-image").src = result.image;
}

// ------------------------------------------------------------------ samples

async function newSamples(advance = true) {
  if (advance) $("seed").value = Number($("seed").value || 0) + 1;
  const truncation = $("truncation").value === "" ? null : Number($("truncation").value);
  const body = { seed: Number($("seed").value || 0), n: Number($("sample-count").value),
                 label: currentClass("sample-class"), truncation, text: currentText(),
                 steps: currentSteps(), guidance: currentGuidance() };
  const result = await guarded("sampling", () => postJSON(runPath("samples"), body));
  if (!result) return;
  const grid = $("samples-grid");
  grid.innerHTML = "";
  result.images.forEach((src, i) => {
    const img = new Image();
    img.src = src;
    img.alt = `sample ${i}`;
    img.addEventListener("click", () => pickSample(img, result.latents[i]));
    grid.append(img);
  });
  if (!state.base) setBase(result.latents[0], result.images[0], "sample 0 of seed " + body.seed);
  if (caps().iterative) showDenoising(result.latents[0]);
}

const showDenoising = latestOnly(async (z) => {
  const run = state.run;
  const body = { z, label: currentClass("sample-class"), text: currentText(), steps: currentSteps(),
                 guidance: currentGuidance() };
  const result = await guarded("denoising", () => postJSON(runPath("denoise"), body));
  if (!result || run !== state.run) return;
  const strip = $("denoise-strip");
  strip.innerHTML = "";
  result.images.forEach((src, i) => strip.append(Object.assign(new Image(), { src, alt: `denoising state ${i}` })));
});

function pickSample(img, z) {
  const key = state.nextKey;
  document.querySelectorAll(`.grid img.pick-${key.toLowerCase()}`).forEach((el) => el.classList.remove(`pick-${key.toLowerCase()}`));
  img.classList.add(`pick-${key.toLowerCase()}`);
  if (key === "A") { state.keyA = z; $("key-a").src = img.src; setBase(z, img.src, img.alt); }
  else { state.keyB = z; $("key-b").src = img.src; }
  state.nextKey = key === "A" ? "B" : "A";
  if (caps().style_based) mixStyles();
  if (caps().iterative) showDenoising(z);
}

const mixStyles = latestOnly(async () => {
  if (!state.keyA || !state.keyB) return;
  const run = state.run;
  const body = { a: state.keyA, b: state.keyB, crossover: Number($("crossover").value), psi: Number($("psi").value) };
  const result = await guarded("mixing styles", () => postJSON(runPath("mix"), body));
  if (result && run === state.run) $("mix-image").src = result.image;
});

// ------------------------------------------------------------------ latent sliders

const SLIDER_LIMIT = 64;  // dimensions shown; sliders beyond are hard to use anyway

function buildSliders() {
  const box = $("sliders");
  box.innerHTML = "";
  const dim = caps().latent_dim || 0;
  for (let d = 0; d < Math.min(dim, SLIDER_LIMIT); d++) {
    const label = document.createElement("label");
    const slider = Object.assign(document.createElement("input"), { type: "range", min: -3, max: 3, step: 0.05, value: 0 });
    slider.dataset.dim = d;
    slider.setAttribute("aria-label", `latent dimension ${d}`);
    const value = document.createElement("output");
    value.textContent = "0.00";
    slider.addEventListener("input", () => {
      state.z[d] = Number(slider.value);
      value.textContent = Number(slider.value).toFixed(2);
      decodeLive();
    });
    label.append(`z${d}`, slider, value);
    box.append(label);
  }
  if (dim > SLIDER_LIMIT) box.append(Object.assign(document.createElement("p"), { className: "hint", textContent: `sliders for the first ${SLIDER_LIMIT} of ${dim} dimensions` }));
}

function setBase(z, src, caption) {
  state.base = z.slice();
  state.z = z.slice();
  $("latent-image").src = src;
  $("latent-caption").textContent = caption;
  syncSliders();
}

function syncSliders() {
  document.querySelectorAll("#sliders input").forEach((slider) => {
    const v = state.z[Number(slider.dataset.dim)];
    slider.value = v;
    slider.nextSibling.textContent = v.toFixed(2);
  });
}

const decodeLive = latestOnly(async () => {
  const run = state.run;
  if (!state.z) return;
  const body = { z: state.z.map(clampLatent), label: currentClass("latent-class"), text: currentText(),
                 steps: currentSteps(), guidance: currentGuidance() };
  const result = await guarded("decoding", () => postJSON(runPath("decode"), body));
  if (result && run === state.run) $("latent-image").src = result.image;
});

const clampLatent = (v) => Math.max(-10, Math.min(10, v));

async function uploadToEdit(file) {
  if (!file) return;
  const label = currentClass("latent-class");
  const result = await guarded(caps().encoder ? "encoding" : "inverting (a second or two)", () => postFile(runPath("encode"), file, { label }));
  if (!result) return;
  $("upload-input-image").src = result.input;
  $("upload-recon").src = result.reconstruction;
  $("upload-caption").textContent = `${result.method === "encoder" ? "reconstruction" : "inversion"} (MSE ${result.mse.toFixed(4)})`;
  setBase(result.z, result.reconstruction, "your image: move the sliders to edit it");
  state.keyA = result.z;
  $("key-a").src = result.reconstruction;
  if (result.note) setStatus(result.note);
}

async function interpolateAB() {
  if (!state.keyA || !state.keyB) { setStatus("pick A and B first: click two samples (or upload an image for A)", true); return; }
  const body = { a: state.keyA, b: state.keyB, steps: Number($("interp-steps").value), method: $("interp-method").value || null,
                 label: currentClass("latent-class") };
  const result = await guarded("interpolating", () => postJSON(runPath("interpolate"), body));
  if (!result) return;
  const strip = $("interp-strip");
  strip.innerHTML = "";
  result.images.forEach((src, i) => strip.append(Object.assign(new Image(), { src, alt: `step ${i}` })));
}

// ------------------------------------------------------------------ drawing canvas

function setupCanvas() {
  const spec = caps().canvas;
  const pens = $("pens");
  pens.innerHTML = "";
  spec.pens.forEach((pen, i) => {
    const button = document.createElement("button");
    button.innerHTML = `<span class="swatch" style="background: rgb(${pen.color.join(",")})"></span>${escapeHTML(pen.name)}`;
    button.addEventListener("click", () => choosePen(i));
    pens.append(button);
  });
  choosePen(spec.mode === "labels" ? Math.min(1, spec.pens.length - 1) : 0);
  state.exampleNumber = -1;
  $("example-target-figure").style.display = "none";
  $("example-source").style.display = caps().examples ? "" : "none";
  $("brush").value = spec.mode === "labels" ? 28 : spec.mode === "edges" ? 6 : 12;  // regions, lines, strokes
  clearCanvas(false);
}

function choosePen(i) {
  state.pen = caps().canvas.pens[i];
  document.querySelectorAll("#pens button").forEach((b, k) => b.setAttribute("aria-pressed", String(k === i)));
}

function clearCanvas(translate = true) {
  const canvas = $("canvas"), ctx = canvas.getContext("2d");
  ctx.fillStyle = `rgb(${caps().canvas.background.join(",")})`;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (translate) translateCanvas();
}

function canvasDrawing() {
  const canvas = $("canvas"), ctx = canvas.getContext("2d");
  let last = null;
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  };
  canvas.addEventListener("pointerdown", (e) => { last = at(e); canvas.setPointerCapture(e.pointerId); stroke(last, last); });
  canvas.addEventListener("pointermove", (e) => { if (last) { const p = at(e); stroke(last, p); last = p; } });
  const end = () => { if (last) { last = null; translateCanvas(); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  function stroke(a, b) {
    // Label maps must keep exact palette colours: no anti-aliasing, square brush in whole pixels.
    const crisp = caps().canvas.mode === "labels";
    ctx.imageSmoothingEnabled = !crisp;
    ctx.strokeStyle = `rgb(${state.pen.color.join(",")})`;
    ctx.lineWidth = Number($("brush").value);
    ctx.lineCap = crisp ? "square" : "round";
    ctx.beginPath();
    ctx.moveTo(...a);
    ctx.lineTo(...b);
    ctx.stroke();
  }
}

// The drawing at the model's source resolution (nearest-neighbour for label maps), as a PNG blob.
function canvasSource() {
  const [, h, w] = caps().source_shape;
  const small = Object.assign(document.createElement("canvas"), { width: w, height: h });
  const ctx = small.getContext("2d");
  ctx.imageSmoothingEnabled = caps().canvas.mode !== "labels";
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage($("canvas"), 0, 0, w, h);
  if (caps().canvas.mode === "labels") snapToPalette(ctx, w, h);
  return new Promise((resolve) => small.toBlob(resolve, "image/png"));
}

function snapToPalette(ctx, w, h) {
  const colors = caps().canvas.pens.map((p) => p.color);
  const image = ctx.getImageData(0, 0, w, h);
  for (let i = 0; i < image.data.length; i += 4) {
    let best = colors[0], bestDist = Infinity;
    for (const c of colors) {
      const d = (image.data[i] - c[0]) ** 2 + (image.data[i + 1] - c[1]) ** 2 + (image.data[i + 2] - c[2]) ** 2;
      if (d < bestDist) { bestDist = d; best = c; }
    }
    image.data.set([...best, 255], i);
  }
  ctx.putImageData(image, 0, 0);
}

const translateCanvas = latestOnly(async () => {
  const run = state.run;
  if (!caps().translator) return;  // a stroke queued before another model was picked
  const blob = await canvasSource();
  const fields = { seed: Number($("translate-seed").value || 0), style: caps().style_image ? state.style : null,
                   direction: caps().reverse ? $("translate-direction").value : null };
  const result = await guarded("translating", () => postFile(runPath("translate"), blob, fields));
  if (result && run === state.run) $("translation").src = result.image;
});

async function exampleSource() {
  state.exampleNumber = (state.exampleNumber ?? -1) + 1;
  const pair = await guarded("loading a test example", () => api(runPath(`example?number=${state.exampleNumber}`)));
  if (!pair) return;
  const image = new Image();
  image.src = pair.source;
  await image.decode();
  const canvas = $("canvas"), ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;  // keep a label map's exact colours and an edge map's crisp lines
  ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
  $("example-target").src = pair.target;
  $("example-target-figure").style.display = "";
  translateCanvas();
}

async function uploadSource(file) {
  if (!file) return;
  const bitmap = await createImageBitmap(file).catch(() => null);
  if (!bitmap) { setStatus(`${file.name} is not an image this browser can read`, true); return; }
  const canvas = $("canvas");
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  translateCanvas();
}

function chooseStyle(file) {
  // A label-map-and-style model (SPADE): the translation takes this image's colours and texture.
  state.style = file || null;
  if (state.style) $("style-image").src = URL.createObjectURL(state.style);
  else $("style-image").removeAttribute("src");
  translateCanvas();
}

// ------------------------------------------------------------------ the game

// Each new game bumps the generation; answers about an older game are dropped, never drawn.
async function newGame() {
  const data = $("game-data").value;
  if (data === "drawn" && !state.drawn.length) { setStatus("put down some points on the square first", true); return; }
  const generation = ++state.gameGeneration;
  state.playing = false;
  state.drawing = false;
  $("game-play").textContent = "Play";
  const body = { data, g_loss: $("game-loss").value, k: Number($("game-k").value),
                 lr_d: Number($("game-lr-d").value), lr_g: Number($("game-lr-g").value),
                 points: data === "drawn" ? state.drawn : [] };
  const view = await guarded("starting a game", () => postJSON("/api/game", body));
  if (view && generation === state.gameGeneration) drawGame(view);
}

async function stepGame(n, players = "both") {
  if (!state.game) return null;
  const generation = state.gameGeneration;
  const view = await guarded("playing", () => postJSON(`/api/game/${state.game.id}/step`, { n, players }));
  if (!view || generation !== state.gameGeneration) return null;
  drawGame(view);
  return view;
}

// Drawing: each click on the square puts down a point of the data (a Gaussian of width 0.2 in the game).
const DRAW_BOX = 4;
function startDrawing() {
  ++state.gameGeneration;  // answers about the game on screen are no longer drawn
  state.playing = false;
  state.game = null;
  state.drawing = true;
  state.drawn = [];
  $("game-field").width = 300;
  $("game-dstar-figure").style.display = "none";
  $("game-legend").textContent = "click the square to put down data points (each a Gaussian of width 0.2), then New game";
  $("game-field-caption").textContent = `your data: ${state.drawn.length} points`;
  drawHeat($("game-field"), [[1]], [-DRAW_BOX, DRAW_BOX], [], []);
}

function drawPoint(event) {
  if (!state.drawing) return;
  const canvas = $("game-field"), box = canvas.getBoundingClientRect();
  const x = ((event.clientX - box.left) / box.width * 2 - 1) * DRAW_BOX;
  const y = (1 - (event.clientY - box.top) / box.height * 2) * DRAW_BOX;
  if (state.drawn.length < 200) state.drawn.push([x, y]);
  $("game-field-caption").textContent = `your data: ${state.drawn.length} points`;
  drawHeat(canvas, [[1]], [-DRAW_BOX, DRAW_BOX], state.drawn, []);
}

// k, the learning rates and G's loss change the game in progress (GAN Lab's way); the data starts a new one.
async function retuneGame() {
  if (!state.game) return;
  const generation = state.gameGeneration;
  const body = { g_loss: $("game-loss").value, k: Number($("game-k").value),
                 lr_d: Number($("game-lr-d").value), lr_g: Number($("game-lr-g").value) };
  const view = await guarded("changing the game", () => api(`/api/game/${state.game.id}`, {
    method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }));
  if (view && generation === state.gameGeneration) drawGame(view);
}

async function togglePlay() {
  state.playing = !state.playing;
  $("game-play").textContent = state.playing ? "Pause" : "Play";
  while (state.playing && state.view === "game") {
    if (!(await stepGame(10))) state.playing = false;
  }
  $("game-play").textContent = "Play";
}

function drawGame(view) {
  state.game = view;
  $("game-warnings").innerHTML = view.warnings.map((w) => `<li>${escapeHTML(w)}</li>`).join("");
  const last = view.history[view.history.length - 1];
  const grad = last.g_grad_norm === null ? "" : `, ‖∇G‖ = ${fmt(last.g_grad_norm)}`;
  $("game-step-label").textContent = `step ${view.step}: V(D, G) = ${view.value.toFixed(4)}, −log 4 + 2·JSD = ${view.theorem_value.toFixed(4)}${grad}`;
  $("value-plot").dataset.points = view.history.length;
  $("game-dstar-figure").style.display = view.dim === 2 ? "" : "none";
  $("game-field").width = view.dim === 2 ? 300 : 440;  // a heat map is square
  if (view.dim === 1) {
    $("game-legend").textContent = "black: p_data, green: p_g (exact, by change of variables), blue: D(x), dashed blue: D*(x)";
    $("game-field-caption").textContent = "densities and discriminator on the line";
    drawLines($("game-field"), view.x, [
      { values: normalise(view.p_data), color: "#111" }, { values: normalise(view.p_g), color: "#2a9d3a" },
      { values: view.d, color: "#2f6fde" }, { values: view.d_star, color: "#2f6fde", dash: [5, 4] }], [0, 1],
      { x: "x", y: "density (scaled), D" });
  } else {
    $("game-legend").textContent = "heat maps: D(x) (left) and D*(x) (right), dark 0 to bright 1; black dots: data, green dots: G's samples (fixed latents), white arrows: where G's loss pushes them; p_g is a kernel density estimate";
    $("game-field-caption").textContent = "D(x)";
    drawHeat($("game-field"), view.d, view.extent, view.real, view.fake, view.arrows);
    drawHeat($("game-dstar"), view.d_star, view.extent, view.real, view.fake);
  }
  const steps = view.history.map((h) => h.step);
  drawLines($("value-plot"), steps.length > 1 ? steps : [0, 1], [
    { values: view.history.map((h) => h.value), color: "#2f6fde", dots: true },
    { values: view.history.map((h) => h.theorem_value), color: "#e07b00", dots: true },
    { values: steps.map(() => view.minus_log_4), color: "#999", dash: [3, 3] }], null, { x: "G steps", y: "nats" });
  drawLines($("grad-plot"), steps.length > 1 ? steps : [0, 1], [
    { values: view.history.map((h) => h.push.nonsaturating), color: "#2a9d3a", dots: true },
    { values: view.history.map((h) => h.push.minimax), color: "#b3261e", dots: true },
    { values: view.history.map((h) => (h.g_grad_norm === null ? NaN : h.g_grad_norm)), color: "#777", dash: [4, 3] }], null,
    { x: "G steps", y: "gradient norm" });
  $("grad-plot").dataset.points = view.history.length;
}

function normalise(values) {
  const top = Math.max(...values, 1e-12);
  return values.map((v) => v / top);
}

// Line chart of series over xs; yRange [lo, hi] or null for the data's own range; axes names each axis with its unit.
function drawLines(canvas, xs, series, yRange, axes = { x: "", y: "" }) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, pad = 46;
  ctx.clearRect(0, 0, W, H);
  const ink = getComputedStyle(document.body).getPropertyValue("--muted").trim() || "#555";
  const all = series.flatMap((s) => s.values).filter(Number.isFinite);
  let [lo, hi] = yRange || [Math.min(...all), Math.max(...all)];
  if (!(hi > lo)) { lo -= 0.5; hi += 0.5; }
  const x0 = Math.min(...xs), x1 = Math.max(...xs) > x0 ? Math.max(...xs) : x0 + 1;
  const px = (x) => pad + (x - x0) / (x1 - x0) * (W - pad - 8), py = (y) => H - pad + 8 - (y - lo) / (hi - lo) * (H - pad - 8);
  ctx.strokeStyle = "#ccc"; ctx.fillStyle = ink; ctx.font = "11px system-ui"; ctx.lineWidth = 1; ctx.setLineDash([]);
  ctx.strokeRect(pad, 8, W - pad - 8, H - pad);
  ctx.fillText(fmt(hi), 2, 16); ctx.fillText(fmt(lo), 2, H - pad + 6);
  ctx.fillText(fmt(x0), pad, H - pad + 22); ctx.fillText(fmt(x1), W - 40, H - pad + 22);
  if (axes.x) { ctx.textAlign = "center"; ctx.fillText(axes.x, pad + (W - pad) / 2, H - pad + 22); ctx.textAlign = "start"; }
  if (axes.y) {
    ctx.save(); ctx.translate(12, 8 + (H - pad) / 2); ctx.rotate(-Math.PI / 2); ctx.textAlign = "center";
    ctx.fillText(axes.y, 0, 0); ctx.restore();
  }
  canvas.dataset.axes = `${axes.x}|${axes.y}`;
  for (const s of series) {
    ctx.strokeStyle = s.color; ctx.fillStyle = s.color; ctx.lineWidth = 2; ctx.setLineDash(s.dash || []);
    ctx.beginPath();
    s.values.forEach((v, i) => { if (Number.isFinite(v)) (i ? ctx.lineTo : ctx.moveTo).call(ctx, px(xs[i]), py(v)); });
    ctx.stroke();
    if (s.dots) s.values.forEach((v, i) => { if (Number.isFinite(v)) ctx.fillRect(px(xs[i]) - 2, py(v) - 2, 4, 4); });
  }
  ctx.setLineDash([]);
}

const fmt = (v) => (Math.abs(v) < 1e-9 ? "0" : Math.abs(v) >= 1000 || Math.abs(v) < 0.01 ? v.toExponential(1) : Number(v.toPrecision(3)).toString());

// A value in [0, 1] -> a dark-blue to yellow ramp (viridis-like stops).
const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function ramp(v) {
  const t = Math.max(0, Math.min(1, v)) * (RAMP.length - 1), i = Math.min(Math.floor(t), RAMP.length - 2), f = t - i;
  return RAMP[i].map((c, k) => Math.round(c + f * (RAMP[i + 1][k] - c)));
}

function drawHeat(canvas, rows, extent, real, fake, arrows = []) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, n = rows.length;
  const cells = new ImageData(n, n);
  rows.forEach((row, r) => row.forEach((v, c) => cells.data.set([...ramp(v), 255], ((n - 1 - r) * n + c) * 4)));  // y up
  const tile = Object.assign(document.createElement("canvas"), { width: n, height: n });
  tile.getContext("2d").putImageData(cells, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tile, 0, 0, W, H);
  const [lo, hi] = extent;
  const px = (x) => (x - lo) / (hi - lo) * W, py = (y) => H - (y - lo) / (hi - lo) * H;
  for (const [points, color] of [[real, "#000"], [fake, "#3ddc57"]]) {
    ctx.fillStyle = color;
    for (const [x, y] of points) ctx.fillRect(px(x) - 1.5, py(y) - 1.5, 3, 3);
  }
  // G's push on its points, scaled so that the longest arrow is a tenth of the square: lengths compare within a frame
  const longest = Math.max(...arrows.map(([, , dx, dy]) => Math.hypot(dx, dy)), 1e-12), scale = 0.1 * (hi - lo) / longest;
  ctx.strokeStyle = "#fff"; ctx.lineWidth = 1;
  for (const [x, y, dx, dy] of arrows) {
    const [x1, y1] = [px(x + scale * dx), py(y + scale * dy)], angle = Math.atan2(y1 - py(y), x1 - px(x));
    ctx.beginPath(); ctx.moveTo(px(x), py(y)); ctx.lineTo(x1, y1);
    ctx.lineTo(x1 - 4 * Math.cos(angle - 0.5), y1 - 4 * Math.sin(angle - 0.5)); ctx.moveTo(x1, y1);
    ctx.lineTo(x1 - 4 * Math.cos(angle + 0.5), y1 - 4 * Math.sin(angle + 0.5)); ctx.stroke();
  }
}

// ------------------------------------------------------------------ training monitor

const MONITOR_KEYS = [/loss/, /D\(x\)|D\(G\(z\)\)/, /grad_norm/, /images_per_sec/];
// The y axis of a monitor chart: its unit where the stat's name says it.
function unitOf(keys) {
  const k = keys.join(" ");
  if (/images_per_sec/.test(k)) return "images / s";
  if (/D\(x\)|D\(G\(z\)\)/.test(k)) return "D's output";
  if (/grad_norm/.test(k)) return "gradient norm";
  if (/elbo|nll|kl|recon/i.test(k)) return "nats";
  if (/bits/i.test(k)) return "bits / dim";
  return /loss/.test(k) ? "loss" : keys.length === 1 ? keys[0] : "";
}

async function pollMonitor() {
  if (!state.run) return;
  let result;
  try { result = await api(runPath(`stats?since=${state.monitorSince}`)); } catch (err) { setStatus(`monitor: ${err.message}`, true); return; }
  state.monitorSince = result.next;
  state.monitorRows.push(...result.rows);
  const rows = state.monitorRows, last = rows[rows.length - 1];
  $("monitor-progress").textContent = last ? `${last.kimg} of ${result.kimg_target} kimg (${rows.length} log rows; updated every 2 s)` : "no stats logged yet";
  $("monitor-warnings").innerHTML = result.warnings.map((w) => `<li>${escapeHTML(w)}</li>`).join("");
  if (!rows.length) return;
  const keys = Object.keys(last).filter((k) => k !== "kimg" && k !== "iteration");
  const groups = MONITOR_KEYS.map((re) => keys.filter((k) => re.test(k))).filter((g) => g.length);
  const rest = keys.filter((k) => !groups.flat().includes(k) && !k.startsWith("lr/"));
  const box = $("monitor-charts");
  box.innerHTML = "";
  const colors = ["#2f6fde", "#e07b00", "#2a9d3a", "#b3261e", "#7b4fd0", "#555"];
  for (const group of [...groups, ...rest.map((k) => [k])]) {
    const figure = document.createElement("figure");
    const canvas = Object.assign(document.createElement("canvas"), { width: 320, height: 180 });
    figure.append(canvas, Object.assign(document.createElement("figcaption"), {
      innerHTML: group.map((k, i) => `<span style="color:${colors[i % colors.length]}">${escapeHTML(k)}</span>`).join(" · ") }));
    box.append(figure);
    drawLines(canvas, rows.map((r) => r.kimg), group.map((k, i) => ({ values: rows.map((r) => r[k]), color: colors[i % colors.length] })),
              null, { x: "kimg", y: unitOf(group) });
  }
}

// ------------------------------------------------------------------ wiring

document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => showView(b.dataset.view)));
$("run-select").addEventListener("change", (e) => selectRun(e.target.value === "" ? null : Number(e.target.value)));
$("new-samples").addEventListener("click", () => newSamples(true));
$("sample-class").addEventListener("change", () => newSamples(false));
$("sample-text").addEventListener("change", () => newSamples(false));
$("sample-steps").addEventListener("change", () => newSamples(false));
$("guidance").addEventListener("input", () => { $("guidance-value").textContent = Number($("guidance").value).toFixed(1); });
$("guidance").addEventListener("change", () => newSamples(false));
$("reset-sliders").addEventListener("click", () => { if (state.base) { state.z = state.base.slice(); syncSliders(); decodeLive(); } });
$("latent-class").addEventListener("change", () => decodeLive());
$("upload-input").addEventListener("change", (e) => uploadToEdit(e.target.files[0]));
$("interpolate").addEventListener("click", interpolateAB);
$("crossover").addEventListener("input", () => { $("crossover-value").textContent = $("crossover").value; mixStyles(); });
$("psi").addEventListener("input", () => { $("psi-value").textContent = Number($("psi").value).toFixed(2); mixStyles(); });
$("clear-canvas").addEventListener("click", () => clearCanvas(true));
$("style-input").addEventListener("change", (e) => chooseStyle(e.target.files[0]));
$("clear-style").addEventListener("click", () => { $("style-input").value = ""; chooseStyle(null); });
$("example-source").addEventListener("click", exampleSource);
$("source-input").addEventListener("change", (e) => uploadSource(e.target.files[0]));
$("translate-direction").addEventListener("change", () => translateCanvas());
$("run-summary").addEventListener("click", (event) => { if (event.target.id === "eval-start") startEval(); });
$("compare-go").addEventListener("click", compareRuns);
$("compare-curve").addEventListener("change", () => drawCompareCurves(comparedRuns()));
$("grid-kind").addEventListener("change", () => { showGridControls(); drawGrid(); });
$("grid-draw").addEventListener("click", drawGrid);
for (const id of ["grid-seed", "grid-truncation", "grid-crossover", "grid-psi", "grid-span"]) $(id).addEventListener("change", drawGrid);
$("game-new").addEventListener("click", newGame);
$("game-step1").addEventListener("click", () => stepGame(1));
$("game-step-d").addEventListener("click", () => stepGame(1, "D"));
$("game-step-g").addEventListener("click", () => stepGame(1, "G"));
for (const id of ["game-loss", "game-k", "game-lr-d", "game-lr-g"]) $(id).addEventListener("change", retuneGame);
$("game-data").addEventListener("change", () => ($("game-data").value === "drawn" ? startDrawing() : newGame()));
$("game-field").addEventListener("click", drawPoint);
$("game-step10").addEventListener("click", () => stepGame(10));
$("game-play").addEventListener("click", togglePlay);
canvasDrawing();
loadRuns();
