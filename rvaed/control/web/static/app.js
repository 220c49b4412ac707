// rvaed's page: draws what the daemon's snapshots say, sends OSC-shaped commands over one
// WebSocket. Nothing here is fetched from anywhere but the daemon that served the page.
"use strict";
const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...kids);
  return node;
};
const VOICE_HUES = [20, 0, 50, 80, 190, 210, 240, 300, 330];

const page = {
  key: null, socket: null, params: [], rows: {}, snap: null, map: null, mapId: null,
  received: 0, storing: false, finger: null, pending: null, batch: null, curveLen: -1,
  lastModel: null, lastTraining: null,
};
window.rvaed = page;  // for tests and the curious: the daemon's newest snapshot is page.snap

// -- the key ------------------------------------------------------------------------------
function takeKey() {
  const url = new URL(location.href);
  const given = url.searchParams.get("key");
  if (given) {
    localStorage.setItem("rvaed-key", given);
    url.searchParams.delete("key");
    history.replaceState(null, "", url.pathname + url.search);
  }
  page.key = localStorage.getItem("rvaed-key");
}
function keyed(path) {
  return page.key ? `${path}${path.includes("?") ? "&" : "?"}key=${encodeURIComponent(page.key)}` : path;
}
async function api(path, body, isForm) {
  const init = { method: body === undefined ? "GET" : "POST", headers: {} };
  if (page.key) init.headers["X-Rvaed-Key"] = page.key;
  if (body !== undefined) {
    init.body = isForm ? body : JSON.stringify(body);
    if (!isForm) init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    const text = await response.text();
    if (response.status === 401) showPairing();
    throw new Error(text || response.statusText);
  }
  return response.json();
}
function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
  clearTimeout(showError.timer);
  if (message) showError.timer = setTimeout(() => { box.hidden = true; }, 6000);
}
function showPairing() {
  for (const slot of document.querySelectorAll(".keyed")) {
    if (page.key && slot.dataset.paired) continue;
    slot.replaceChildren();
    if (page.key) continue;
    const form = $("pairing").content.firstElementChild.cloneNode(true);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const { key } = await api("/api/pair", { code: form.code.value });
        localStorage.setItem("rvaed-key", key);
        page.key = key;
        document.querySelectorAll(".keyed").forEach((s) => s.replaceChildren());
        connect();
        if (!$("models").hidden) loadModels();
      } catch (error) { showError(`pairing: ${error.message}`); }
    });
    slot.append(form);
  }
}

// -- the socket ---------------------------------------------------------------------------
function connect() {
  if (page.socket) page.socket.close();
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  const socket = new WebSocket(keyed(url));
  page.socket = socket;
  socket.onopen = () => { $("conn").textContent = "live"; $("conn").className = ""; };
  socket.onclose = () => {
    if (page.socket !== socket) return;
    $("conn").textContent = "offline"; $("conn").className = "bad";
    setTimeout(connect, 1000);
  };
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    page.received += 1;
    if (message.t === "hello") hello(message);
    else if (message.t === "state") render(message);
    else if (message.t === "error") showError(message.message);
  };
}
function send(address, ...args) {
  if (page.socket && page.socket.readyState === WebSocket.OPEN) {
    page.socket.send(JSON.stringify({ a: address, v: args }));
    page.sent = { a: address, v: args };
  }
}

// -- controls from the parameter table ----------------------------------------------------
function hello(message) {
  page.params = message.parameters;
  const box = $("params");
  box.replaceChildren();
  page.rows = {};
  for (const row of page.params) {
    const label = el("label", { title: row.doc });
    const out = el("output");
    let input;
    if (row.choices.length) {  // a voice's condition: one of a list, by name
      input = el("select", {}, ...row.choices.map((name, i) => el("option", { value: i, textContent: name })));
      input.addEventListener("change", () => send(row.address, row.choices[Number(input.value)]));
      input.dataset.param = row.name;
      label.append(el("span", { className: "name", textContent: row.name }), out, input,
        el("span", { className: "doc", textContent: row.doc }));
    } else if (row.kind === "bool") {
      input = el("button", { textContent: row.name, type: "button" });
      input.addEventListener("click", () => send(row.address, input.classList.contains("on") ? 0 : 1));
      label.append(input, el("span", { className: "doc", textContent: row.doc }));
    } else {
      const [low, high] = row.span;
      input = el("input", { type: "range", min: low, max: high,
        step: row.kind === "int" ? 1 : (high - low) / 500 });
      input.dataset.param = row.name;
      input.addEventListener("input", () => {
        out.textContent = format(row, Number(input.value));
        send(row.address, Number(input.value));
      });
      label.append(el("span", { className: "name", textContent: row.name }), out, input,
        el("span", { className: "doc", textContent: row.doc }));
    }
    page.rows[row.name] = { row, input, out };
    box.append(label);
  }
  const choices = page.params.find((row) => row.choices.length);
  if (choices) fillStepChoices(choices.choices);
  if (!message.trusted && page.key) {  // a key from another run of the daemon
    localStorage.removeItem("rvaed-key");
    page.key = null;
  }
  showPairing();
}
function format(row, value) {
  if (row.choices.length) return row.choices[value] ?? String(value);
  if (row.off !== null && value < row.low) return "off";
  return row.kind === "int" ? String(Math.round(value)) : value.toFixed(row.high > 10 ? 1 : 2);
}

// -- rendering a snapshot -----------------------------------------------------------------
function render(update) {
  // a snapshot's changed parts: merged into the whole the page draws
  const snap = Object.assign({}, page.snap, update);
  delete snap.t;
  page.snap = snap;
  page.snapAt = performance.now();
  $("model").textContent = snap.model;
  const clock = snap.clock;
  $("link").textContent = clock.link ? `Link ${clock.peers} peer${clock.peers === 1 ? "" : "s"}` : "Link off";
  $("transport").textContent = clock.playing ? "Stop" : "Play";
  $("transport").classList.toggle("on", clock.playing);
  if (document.activeElement !== $("tempo")) $("tempo").value = clock.tempo.toFixed(1);
  for (const [name, { row, input, out }] of Object.entries(page.rows)) {
    const value = snap.values[name];
    if (row.kind === "bool") { input.classList.toggle("on", Boolean(value)); continue; }
    if (document.activeElement !== input) {
      input.value = value;
      out.textContent = format(row, value);
    }
  }
  renderPresets(snap);
  $("autostate").textContent = snap.automation.status;
  renderGrid(snap);
  if (snap.map !== page.mapId && !page.mapLoading) loadMap();
  drawPad();
  renderTraining(snap.training);
  if (page.lastModel !== null && page.lastModel !== snap.model && !$("models").hidden) loadModels();
  page.lastModel = snap.model;
  $("where").textContent = `x ${snap.x.toFixed(3)}  y ${snap.y.toFixed(3)}`;
}
function renderPresets(snap) {
  const box = $("presets");
  if (box.querySelectorAll("[data-preset]").length !== snap.presets.length) {
    box.querySelectorAll("[data-preset]").forEach((b) => b.remove());
    snap.presets.forEach((_, i) => {
      const button = el("button", { textContent: String(i + 1) });
      button.dataset.preset = i + 1;
      button.addEventListener("click", () => {
        send(page.storing ? "/rvaed/preset/store" : "/rvaed/preset/recall", i + 1);
        page.storing = false;
        $("store").classList.remove("on");
      });
      box.insertBefore(button, $("store"));
    });
  }
  box.querySelectorAll("[data-preset]").forEach((b, i) => b.classList.toggle("empty", !snap.presets[i]));
}

// -- the pattern grid ---------------------------------------------------------------------
function buildGrid(voices, steps, spb, bar) {
  const grid = $("grid");
  grid.replaceChildren();
  grid.style.gridTemplateColumns = `minmax(52px, 96px) repeat(${steps}, minmax(0, 1fr))`;
  grid.dataset.shape = `${voices.length}x${steps}x${bar}`;
  page.cells = [];
  voices.forEach((name, v) => {
    const mute = el("button", { textContent: "M", title: `mute ${name}` });
    const freeze = el("button", { textContent: "F", title: `freeze ${name}` });
    mute.addEventListener("click", () => send("/rvaed/mute", v + 1, page.snap.mutes.includes(v) ? 0 : 1));
    freeze.addEventListener("click", () => send("/rvaed/freeze", v + 1, page.snap.freezes.includes(v) ? 0 : 1));
    mute.dataset.mute = v; freeze.dataset.freeze = v;
    grid.append(el("div", { className: "name" }, el("span", { textContent: name, title: name }), mute, freeze));
    const row = [];
    for (let s = 0; s < steps; s += 1) {
      const cell = el("div", { className: `cell${s % spb === 0 ? " beat" : ""}${s % bar === 0 ? " bar" : ""}` });
      cell.dataset.voice = v; cell.dataset.step = s;
      cell.addEventListener("click", () => pickStep(v, s));
      grid.append(cell);
      row.push(cell);
    }
    page.cells.push(row);
  });
}
function renderGrid(snap) {
  const { steps, steps_per_beat: spb, steps_per_bar: bar } = snap.grid;
  if ($("grid").dataset.shape !== `${snap.voices.length}x${steps}x${bar}`) buildGrid(snap.voices, steps, spb, bar);
  const hits = new Map(snap.pattern.map((h) => [h[0] * steps + h[1], h]));
  const conditions = new Map((snap.steps || []).map(([v, s, name]) => [v * steps + s, name]));
  page.cells.forEach((row, v) => row.forEach((cell, s) => {
    const hit = hits.get(v * steps + s);
    const condition = conditions.get(v * steps + s);
    if (condition) cell.dataset.condition = condition; else delete cell.dataset.condition;
    cell.title = condition ? `${snap.voices[v]} step ${s + 1}: ${condition}` : "";
    const shown = cell.dataset.v || "";
    const want = hit ? `${hit[2]}/${hit[3]}/${hit[4]}` : "";
    cell.classList.toggle("muted", snap.mutes.includes(v));
    if (shown === want) return;
    cell.replaceChildren();
    if (!hit) { delete cell.dataset.v; delete cell.dataset.velocity; delete cell.dataset.note; return; }
    cell.dataset.v = want;
    cell.dataset.velocity = hit[2];
    if (hit[4] !== null) cell.dataset.note = hit[4]; else delete cell.dataset.note;
    const bar = el("b", { className: hit[4] !== null ? "" : "unsent", title: `velocity ${hit[2]}, timing ${hit[3] >= 0 ? "+" : ""}${hit[3]} step` });
    bar.style.height = `${Math.max(8, (hit[2] / 127) * 100)}%`;
    bar.style.transform = `translateX(${(hit[3] * 100).toFixed(0)}%)`;
    cell.append(bar);
  }));
  showPicked(snap);
  document.querySelectorAll("[data-mute]").forEach((b) => b.classList.toggle("on", snap.mutes.includes(Number(b.dataset.mute))));
  document.querySelectorAll("[data-freeze]").forEach((b) => b.classList.toggle("on", snap.freezes.includes(Number(b.dataset.freeze))));
}
// -- a condition on one step: tap the cell, choose in the bar under the grid ---------------
function fillStepChoices(names) {
  const percents = [90, 75, 50, 25, 10].map((p) => `${p}%`);
  $("stepcond").replaceChildren(...[...names, ...percents].map((name) => el("option", { value: name, textContent: name })));
  $("stepcond").onchange = () => {
    if (page.picked) send("/rvaed/step", page.picked[0] + 1, page.picked[1] + 1, $("stepcond").value);
  };
}
function pickStep(v, s) {
  page.picked = [v, s];
  if (page.snap) showPicked(page.snap);
}
function showPicked(snap) {
  document.querySelectorAll("#grid .picked").forEach((c) => c.classList.remove("picked"));
  if (!page.picked || !page.cells[page.picked[0]] || !page.cells[page.picked[0]][page.picked[1]]) return;
  const [v, s] = page.picked;
  page.cells[v][s].classList.add("picked");
  const own = (snap.steps || []).find((e) => e[0] === v && e[1] === s);
  $("stepat").textContent = `${snap.voices[v]}, step ${s + 1}:`;
  $("stepcond").disabled = false;
  if (document.activeElement !== $("stepcond")) $("stepcond").value = own ? own[2] : "always";
}

// -- the coming phrase: the next bars as the sequencer will play them ----------------------
async function loadComing() {
  if ($("comingview").hidden) return;
  try {
    const response = await fetch("/api/coming");
    if (!response.ok) throw new Error(await response.text());
    page.coming = await response.json();
    drawComing();
  } catch (error) { showError(`coming phrase: ${error.message}`); }
}
function drawComing() {
  const canvas = $("comingview");
  const { bars, steps_per_bar: bar, voices, hits } = page.coming;
  const width = canvas.clientWidth || 600;
  const rowH = 6;
  canvas.width = width; canvas.height = voices.length * rowH + 2;
  const ctx = canvas.getContext("2d");
  const cellW = width / (bars * bar);
  ctx.fillStyle = "#202026"; ctx.fillRect(0, 0, width, canvas.height);
  ctx.fillStyle = "#55556a";
  for (let b = 1; b < bars; b += 1) ctx.fillRect(b * bar * cellW, 0, 1, canvas.height);
  for (const [column, voice, velocity] of hits) {
    ctx.fillStyle = `hsla(${VOICE_HUES[voice % VOICE_HUES.length]}, 90%, 60%, ${(0.3 + 0.7 * velocity / 127).toFixed(2)})`;
    ctx.fillRect(column * cellW, voice * rowH + 1, Math.max(1, cellW - 1), rowH - 1);
  }
}

function beatNow() {
  const { clock } = page.snap;
  if (!clock.playing) return clock.beat;
  return clock.beat + ((performance.now() - page.snapAt) / 1000) * (clock.tempo / 60);
}
function playhead() {
  requestAnimationFrame(playhead);
  if (!page.snap || !page.cells) return;
  const { steps, steps_per_beat: spb } = page.snap.grid;
  const { playing, playhead: at } = page.snap.clock;  // step at.step sounds at beat at.beat
  const played = at.step + Math.floor((beatNow() - at.beat) * spb * at.speed + 1e-6);
  const step = playing && played >= 0 ? played % steps : -1;
  if (step === page.step) return;
  const previous = page.step;
  page.step = step;
  for (const row of page.cells) {
    if (previous >= 0 && row[previous]) row[previous].classList.remove("now");
    if (step >= 0) row[step].classList.add("now");
  }
  $("grid").dataset.playhead = step;
}

// -- the pad over the latent map ----------------------------------------------------------
async function loadMap() {
  page.mapLoading = true;
  try {
    const response = await fetch("/api/map");
    page.map = await response.json();
    page.mapId = page.map.id;
    page.mapImage = null;
    drawPad();
  } catch (error) { showError(`map: ${error.message}`); }
  page.mapLoading = false;
}
function mapImage(size) {
  // the tiles drawn once per model and size: per tile, voices x steps, hue per voice
  const map = page.map;
  if (page.mapImage && page.mapImage.width === size) return page.mapImage;
  const canvas = el("canvas", { width: size, height: size });
  const ctx = canvas.getContext("2d");
  const tile = size / map.size;
  const rowH = (tile - 2) / map.voices.length;
  const cellW = (tile - 2) / map.steps;
  map.tiles.forEach((voices, index) => {
    const top = Math.floor(index / map.size) * tile + 1;
    const left = (index % map.size) * tile + 1;
    ctx.fillStyle = "#1e1e24";
    ctx.fillRect(left, top, tile - 2, tile - 2);
    voices.forEach((digits, v) => {
      const hue = VOICE_HUES[v % VOICE_HUES.length];
      for (let s = 0; s < digits.length; s += 1) {
        const p = Number(digits[s]) / 9;
        if (p < 0.15) continue;
        ctx.fillStyle = `hsla(${hue}, 90%, 60%, ${p.toFixed(2)})`;
        ctx.fillRect(left + s * cellW, top + v * rowH, Math.max(1, cellW), Math.max(1, rowH - 0.5));
      }
    });
  });
  page.mapImage = canvas;
  return canvas;
}
function drawPad() {
  if (!page.readyAt && page.snap && page.map && page.cells) page.readyAt = performance.now();
  const canvas = $("pad");
  const size = Math.round(canvas.clientWidth * (window.devicePixelRatio || 1));
  if (!size || !page.snap) return;
  if (canvas.width !== size) { canvas.width = size; canvas.height = size; }
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, size, size);
  if (page.map) {
    // tile centres sit at the tiles' pad values: the map spans one tile more than the pad
    const tile = size / (page.map.size - 1 || 1);
    ctx.globalAlpha = 0.85;
    ctx.drawImage(mapImage(Math.round(tile * page.map.size)), -tile / 2, -tile / 2);
    ctx.globalAlpha = 1;
  }
  const at = (x, y) => [x * size, (1 - y) * size];
  const auto = page.snap.automation.points;
  if (auto.length > 1) {
    ctx.strokeStyle = "rgba(140, 200, 255, 0.9)";
    ctx.lineWidth = size / 160;
    ctx.beginPath();
    auto.forEach(([, x, y], i) => { const [px, py] = at(x, y); if (i) ctx.lineTo(px, py); else ctx.moveTo(px, py); });
    ctx.stroke();
  }
  ctx.font = `${Math.round(size / 28)}px system-ui`;
  ctx.textAlign = "center"; ctx.textBaseline = "middle";
  page.snap.presets.forEach((preset, i) => {
    if (!preset) return;
    const [px, py] = at(preset[0], preset[1]);
    ctx.fillStyle = "rgba(20, 20, 24, 0.8)";
    ctx.beginPath(); ctx.arc(px, py, size / 30, 0, 7); ctx.fill();
    ctx.fillStyle = "#fff"; ctx.fillText(String(i + 1), px, py);
  });
  const ring = (x, y, colour, radius) => {
    const [px, py] = at(x, y);
    ctx.strokeStyle = colour; ctx.lineWidth = size / 120;
    ctx.beginPath(); ctx.arc(px, py, radius, 0, 7); ctx.stroke();
  };
  if (page.finger) ring(page.finger[0], page.finger[1], "rgba(255,255,255,0.5)", size / 18);
  ring(page.snap.x, page.snap.y, "#ffb030", size / 40);
}
function padPoint(event) {
  const rect = $("pad").getBoundingClientRect();
  const clamp = (v) => Math.min(1, Math.max(0, v));
  return [clamp((event.clientX - rect.left) / rect.width), clamp(1 - (event.clientY - rect.top) / rect.height)];
}
function padMove(event) {
  if (!page.finger) return;
  page.finger = padPoint(event);
  if (!page.pending) {
    page.pending = requestAnimationFrame(() => {
      page.pending = null;
      if (page.finger) send("/rvaed/xy", page.finger[0], page.finger[1]);
      drawPad();
    });
  }
}
function setupPad() {
  const pad = $("pad");
  pad.addEventListener("pointerdown", (event) => {
    pad.setPointerCapture(event.pointerId);
    page.finger = padPoint(event);
    send("/rvaed/xy", page.finger[0], page.finger[1]);
    drawPad();
  });
  pad.addEventListener("pointermove", padMove);
  const up = () => { page.finger = null; drawPad(); };
  pad.addEventListener("pointerup", up);
  pad.addEventListener("pointercancel", up);
  window.addEventListener("resize", () => { page.mapImage = null; drawPad(); });
}

// -- play view buttons --------------------------------------------------------------------
function setupPlay() {
  $("transport").addEventListener("click", () => send("/rvaed/play", page.snap && page.snap.clock.playing ? 0 : 1));
  $("tempo").addEventListener("change", () => send("/rvaed/tempo", Number($("tempo").value)));
  $("fillnow").addEventListener("click", () => send("/rvaed/fill/now"));
  $("showcoming").addEventListener("click", () => {
    $("comingview").hidden = !$("comingview").hidden;
    $("showcoming").classList.toggle("on", !$("comingview").hidden);
    loadComing();
  });
  setInterval(loadComing, 1000);  // while shown: the phrase moves on
  $("reroll").addEventListener("click", () => send("/rvaed/seed/new"));
  $("store").addEventListener("click", () => { page.storing = !page.storing; $("store").classList.toggle("on", page.storing); });
  document.querySelectorAll("[data-auto]").forEach((b) => b.addEventListener("click", () => send(`/rvaed/automation/${b.dataset.auto}`)));
  const capture = async (bars, coming = false) => {
    try {
      const { url, file } = await api("/api/capture", { bars, coming });
      const link = $("download");
      link.href = keyed(url); link.download = file; link.textContent = `download ${file}`; link.hidden = false;
      link.click();
    } catch (error) { showError(`capture: ${error.message}`); }
  };
  $("capture").addEventListener("click", () => capture(null));
  $("capture4").addEventListener("click", () => capture(4));
  $("coming").addEventListener("click", () => capture(page.snap.values.phrase || page.snap.grid.steps / page.snap.grid.steps_per_bar, true));
}

// -- training -----------------------------------------------------------------------------
async function collect(items) {
  // files from a drop, folders walked (the paper's drag and drop of a folder of grooves)
  const files = [];
  const walk = async (entry) => {
    if (entry.isFile) files.push(await new Promise((ok, fail) => entry.file(ok, fail)));
    else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
        if (!batch.length) break;
        for (const child of batch) await walk(child);
      }
    }
  };
  for (const entry of items) await walk(entry);
  return files;
}
async function upload(files) {
  if (!files.length) return;
  const form = new FormData();
  for (const file of files) form.append("file", file, file.name);
  $("report").textContent = `reading ${files.length} file(s)…`;
  try {
    const report = await api("/api/upload", form, true);
    renderReport(report);
  } catch (error) {
    $("report").textContent = "";
    showError(`upload refused: ${error.message}`);
  }
}
function renderReport(report) {
  page.batch = report.batch;
  const box = $("report");
  box.replaceChildren();
  const summary = report.summary || { files: 0, windows: 0 };
  box.append(el("p", { textContent: `${summary.files} file(s) read, ${report.refused.length} refused, ${summary.windows} training windows (kit ${report.kit}, ${report.channel ? `channel ${report.channel}` : "all channels"})` }));
  const table = el("table", {}, el("tr", {}, ...["file", "windows", "bars", "unmapped"].map((h) => el("th", { textContent: h }))));
  for (const file of report.files || []) {
    const unmapped = Object.entries(file.unmapped_notes).map(([n, c]) => `${n}×${c}`).join(", ");
    table.append(el("tr", {}, ...[file.file, file.windows, file.bars, unmapped || "–"].map((v) => el("td", { textContent: String(v) }))));
  }
  box.append(table);
  for (const refused of report.refused) box.append(el("p", { className: "refused", textContent: `refused ${refused.file}: ${refused.reason}` }));
  const unmapped = Object.entries(report.unmapped_notes || {});
  if (unmapped.length) box.append(el("p", { textContent: `notes no voice takes: ${unmapped.map(([n, c]) => `${n}×${c}`).join(", ")}` }));
  if (report.hint) box.append(el("p", { className: "hint", textContent: report.hint }));
  if (report.problem) box.append(el("p", { className: "refused", textContent: report.problem }));
  $("start").disabled = !(summary.windows > 0);
}
function renderTraining(training) {
  $("tstatus").textContent = training.status;
  $("cancel").disabled = !training.busy;
  if (training.busy) $("start").disabled = true;
  const key = `${training.curve.length}/${training.status}`;
  if (key === page.curveKey) return;
  page.curveKey = key;
  const last = training.curve[training.curve.length - 1];
  if (last) $("tstatus").textContent = `${training.busy ? training.status : training.status} · loss ${last.loss.toFixed(3)} · val ${last.val_loss.toFixed(3)} · F1 ${last.val_onset_f1.toFixed(2)}${training.busy ? ` · ${Math.round(last.eta)} s left` : ""}`;
  drawChart(training.curve);
  if (page.lastTraining && page.lastTraining.busy && !training.busy && !$("models").hidden) loadModels();
  page.lastTraining = training;
}
function drawChart(curve) {
  const canvas = $("chart");
  const ratio = window.devicePixelRatio || 1;
  const w = Math.round(canvas.clientWidth * ratio), h = Math.round(canvas.clientHeight * ratio);
  if (!w) return;
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  if (!curve.length) return;
  const pad = 8 * ratio;
  const epochs = Math.max(curve[0].epochs, 2);
  const top = Math.max(...curve.flatMap((p) => [p.loss, p.val_loss])) || 1;
  const line = (field, colour, scale) => {
    ctx.strokeStyle = colour; ctx.lineWidth = 2 * ratio; ctx.beginPath();
    curve.forEach((p, i) => {
      const x = pad + ((p.epoch - 1) / (epochs - 1)) * (w - 2 * pad);
      const y = h - pad - (p[field] / scale) * (h - 2 * pad);
      if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    });
    ctx.stroke();
  };
  line("loss", "#ffb030", top);
  line("val_loss", "#5ac8fa", top);
  line("val_onset_f1", "#7ddc7d", 1);
}
function setupTrain() {
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const entries = [...event.dataTransfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
    upload(entries.length ? await collect(entries) : [...event.dataTransfer.files]);
  });
  for (const input of [$("files"), $("folder")]) input.addEventListener("change", () => upload([...input.files]));
  $("start").addEventListener("click", async () => {
    try {
      $("start").disabled = true;
      await api("/api/train", { batch: page.batch });
    } catch (error) { showError(`training: ${error.message}`); $("start").disabled = false; }
  });
  $("cancel").addEventListener("click", () => send("/rvaed/train/cancel"));
}

// -- the model library --------------------------------------------------------------------
async function loadModels() {
  if (!page.key) { showPairing(); return; }
  try {
    const models = await api("/api/models");
    const box = $("library");
    box.replaceChildren();
    for (const model of models) box.append(modelCard(model));
  } catch (error) { showError(`models: ${error.message}`); }
}
function modelCard(model) {
  const card = el("div", { className: model.playing ? "card playing" : "card" });
  card.dataset.model = model.name;
  const data = model.data || {};
  const f1 = model.metrics && model.metrics.val_onset_f1;
  const patterns = model.metrics && model.metrics.pad_patterns;
  card.append(el("img", { src: keyed(`/api/models/${encodeURIComponent(model.name)}/map.png`), alt: `map of ${model.name}`, loading: "lazy" }),
    el("h3", { textContent: model.name }),
    el("p", { className: "small", textContent: model.problem || `${model.date} · ${data.files ?? "?"} files, ${data.windows ?? "?"} windows${f1 !== undefined ? ` · onset F1 ${f1.toFixed(2)}` : ""}${patterns !== undefined ? ` · ${patterns} patterns on the pad` : ""}` }));
  for (const note of model.notes || []) card.append(el("p", { className: "small warn", textContent: note }));
  const play = el("button", { textContent: model.playing ? "playing" : "play" });
  play.disabled = model.playing;
  play.addEventListener("click", () => send("/rvaed/model", model.name));
  card.append(play);
  if (model.name !== "starter") {
    const rename = el("button", { textContent: "rename" });
    rename.addEventListener("click", async () => {
      const name = prompt("new name", model.name.replace(/-\d{8}-\d{6}.*$/, ""));
      if (!name) return;
      try { await api(`/api/models/${encodeURIComponent(model.name)}/rename`, { name }); loadModels(); } catch (error) { showError(`rename: ${error.message}`); }
    });
    card.append(" ", rename);
  }
  return card;
}

// -- views --------------------------------------------------------------------------------
function setupViews() {
  document.querySelectorAll("nav button").forEach((button) => button.addEventListener("click", () => {
    document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("on", b === button));
    for (const name of ["play", "train", "models"]) $(name).hidden = name !== button.dataset.view;
    if (button.dataset.view === "models") loadModels();
    if (button.dataset.view === "train" && page.snap) { page.curveKey = null; renderTraining(page.snap.training); }
    if (button.dataset.view === "play") { page.mapImage = null; drawPad(); }
  }));
}

takeKey();
setupViews();
setupPad();
setupPlay();
setupTrain();
connect();
loadMap();
requestAnimationFrame(playhead);
