// DDSP Morph play page: a keyboard, the timbre map as an XY pad, and the sound drawn.
// Plain JavaScript, no build step, no network beyond this page's own server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { map: null, pad: [0, 0], dragging: false, octave: 4, down: new Set(),
                frames: 0, drawn: 0, socket: null, recording: false };

// --- connection ---------------------------------------------------------------------------
function send(msg) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) {
    state.socket.send(JSON.stringify(msg));
  }
}

function connect() {
  const ws = new WebSocket(`ws://${location.host}/ws`);
  state.socket = ws;
  ws.onopen = () => { $("status").textContent = "connected"; };
  ws.onclose = () => { $("status").textContent = "disconnected — retrying"; setTimeout(connect, 1000); };
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "hello") hello(msg);
    else if (msg.type === "frame") frame(msg);
    else if (msg.type === "recorded") {
      const a = $("download");
      a.href = msg.url; a.hidden = false; a.download = msg.url.split("/").pop();
    } else if (msg.type === "notice") { $("status").textContent = msg.text; }
  };
}

function hello(msg) {
  const runs = $("runs");
  runs.innerHTML = "";
  for (const name of msg.runs.length ? msg.runs : [msg.run]) {
    const opt = document.createElement("option");
    opt.value = opt.textContent = name;
    opt.selected = name === msg.run;
    runs.appendChild(opt);
  }
  state.map = msg.map;
  for (const id of ["path-from", "path-to"]) {
    const sel = $(id);
    sel.innerHTML = "";
    for (const inst of (msg.map ? msg.map.instruments : [])) {
      const opt = document.createElement("option");
      opt.value = opt.textContent = inst.name;
      sel.appendChild(opt);
    }
  }
  if (msg.map && msg.map.instruments.length > 1) $("path-to").selectedIndex = 1;
  if (msg.map) state.pad = [msg.map.instruments[0].x, msg.map.instruments[0].y];
  drawPad();
}

// --- the timbre map -----------------------------------------------------------------------
const pad = $("pad");
const toCanvas = (x, y) => [(x + 1) / 2 * pad.width, (1 - (y + 1) / 2) * pad.height];
const fromCanvas = (px, py) => [px / pad.width * 2 - 1, 1 - py / pad.height * 2];
const colours = ["#f0a030", "#4cb8e8", "#8ed06a", "#e8607a", "#b48ef0", "#e8e070"];

function drawPad() {
  const g = pad.getContext("2d");
  g.clearRect(0, 0, pad.width, pad.height);
  g.strokeStyle = "#22252c";
  for (let i = 1; i < 8; i++) {
    const v = i / 8 * pad.width;
    g.beginPath(); g.moveTo(v, 0); g.lineTo(v, pad.height); g.stroke();
    g.beginPath(); g.moveTo(0, v); g.lineTo(pad.width, v); g.stroke();
  }
  if (!state.map) {
    g.fillStyle = "#8a8f99"; g.fillText("this run has no timbre latent", 20, 30); return;
  }
  for (const c of state.map.clips) {
    const [px, py] = toCanvas(c.x, c.y);
    g.fillStyle = colours[c.i % colours.length] + "55";
    g.beginPath(); g.arc(px, py, 2.5, 0, 2 * Math.PI); g.fill();
  }
  state.map.instruments.forEach((inst, i) => {
    const [px, py] = toCanvas(inst.x, inst.y);
    g.fillStyle = colours[i % colours.length];
    g.beginPath(); g.arc(px, py, 7, 0, 2 * Math.PI); g.fill();
    g.font = "13px system-ui"; g.fillText(inst.name, px + 10, py + 4);
  });
  const [qx, qy] = toCanvas(state.pad[0], state.pad[1]);
  g.strokeStyle = "#fff"; g.lineWidth = 2;
  g.beginPath(); g.arc(qx, qy, 11, 0, 2 * Math.PI); g.stroke(); g.lineWidth = 1;
}

function snap(x, y) {
  // near an instrument the puck settles on it: gently, pulled by how near it is
  if (!state.map) return [x, y];
  let best = null, bestD = Infinity;
  for (const inst of state.map.instruments) {
    const d = Math.hypot(inst.x - x, inst.y - y);
    if (d < bestD) { best = inst; bestD = d; }
  }
  const r = state.map.snap;
  if (best && bestD < r) {
    const pull = 1 - bestD / r;
    return [x + (best.x - x) * pull, y + (best.y - y) * pull];
  }
  return [x, y];
}

function padAt(event) {
  const rect = pad.getBoundingClientRect();
  const px = (event.clientX - rect.left) * pad.width / rect.width;
  const py = (event.clientY - rect.top) * pad.height / rect.height;
  let [x, y] = fromCanvas(px, py);
  x = Math.max(-1, Math.min(1, x)); y = Math.max(-1, Math.min(1, y));
  state.pad = snap(x, y);
  send({ type: "pad", x: state.pad[0], y: state.pad[1] });
  drawPad();
}

pad.addEventListener("pointerdown", (e) => { state.dragging = true; pad.setPointerCapture(e.pointerId); padAt(e); });
pad.addEventListener("pointermove", (e) => { if (state.dragging) padAt(e); });
pad.addEventListener("pointerup", () => { state.dragging = false; });

function sendPath() {
  send({ type: "path", from: $("path-from").value, to: $("path-to").value,
         morph: Number($("morph").value) / 1000 });
}
$("morph").addEventListener("input", sendPath);
$("path-from").addEventListener("change", sendPath);
$("path-to").addEventListener("change", sendPath);

// --- what you hear ------------------------------------------------------------------------
const spec = $("spectrogram");
function frame(msg) {
  state.frames++;
  const g = spec.getContext("2d");
  // scroll one column left, draw the new column at the right edge (low frequencies at the bottom)
  g.drawImage(spec, -2, 0);
  const n = msg.spectrum.length, h = spec.height / n;
  for (let i = 0; i < n; i++) {
    const v = Math.max(0, Math.min(1, (msg.spectrum[i] + 100) / 100));
    g.fillStyle = `hsl(${30 + 250 * (1 - v)}, 90%, ${Math.round(6 + 60 * v)}%)`;
    g.fillRect(spec.width - 2, spec.height - (i + 1) * h, 2, Math.ceil(h));
  }
  state.drawn++;
  $("meter-fill").style.width = `${Math.max(0, Math.min(100, (msg.level_db + 60) / 60 * 100))}%`;
  $("f0").textContent = msg.f0_hz > 0 ? `${msg.f0_hz.toFixed(1)} Hz` : "—";
  $("loudness").textContent = `${msg.loudness_db.toFixed(1)} dB`;
  $("malformed").textContent = msg.malformed;
  if (msg.mode === "pad" && !state.dragging) {
    const [x, y] = msg.pad;
    if (x !== state.pad[0] || y !== state.pad[1]) { state.pad = [x, y]; drawPad(); }
  }
}

// --- the keyboard -------------------------------------------------------------------------
const WHITE = [0, 2, 4, 5, 7, 9, 11];
const KEYMAP = { a: 0, w: 1, s: 2, e: 3, d: 4, f: 5, t: 6, g: 7, y: 8, h: 9, u: 10, j: 11, k: 12 };
const NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
const keyboard = $("keyboard");
const keyEls = new Map();

function buildKeyboard() {
  keyboard.innerHTML = ""; keyEls.clear();
  const octaves = 2, whiteW = 100 / (7 * octaves + 1);
  let w = 0;
  for (let semis = 0; semis <= 12 * octaves; semis++) {
    const pc = semis % 12, white = WHITE.includes(pc);
    const el = document.createElement("div");
    el.className = `key ${white ? "white" : "black"}`;
    if (white) { el.style.left = `${w * whiteW}%`; el.style.width = `${whiteW}%`; w++; }
    else { el.style.left = `${(w - 0.3) * whiteW}%`; el.style.width = `${whiteW * 0.6}%`; }
    el.dataset.offset = semis;
    if (pc === 0) el.innerHTML = `<span>C${state.octave + Math.floor(semis / 12)}</span>`;
    el.addEventListener("pointerdown", (e) => {
      const rect = el.getBoundingClientRect();
      // higher on the key: louder (velocity 30 at the bottom, 127 at the top)
      const v = Math.round(127 - 97 * Math.max(0, Math.min(1, (e.clientY - rect.top) / rect.height)));
      noteOn(baseNote() + semis, v); el.setPointerCapture(e.pointerId);
    });
    el.addEventListener("pointerup", () => noteOff(baseNote() + semis));
    el.addEventListener("pointercancel", () => noteOff(baseNote() + semis));
    keyboard.appendChild(el); keyEls.set(semis, el);
  }
  $("octave").textContent = `C${state.octave}`;
}
const baseNote = () => 12 * (state.octave + 1);

function mark(note, on) {
  const el = keyEls.get(note - baseNote());
  if (el) el.classList.toggle("down", on);
}
function noteOn(note, velocity) {
  if (note < 0 || note > 127 || state.down.has(note)) return;
  state.down.add(note); mark(note, true);
  send({ type: "note_on", note, velocity });
}
function noteOff(note) {
  if (!state.down.has(note)) return;
  state.down.delete(note); mark(note, false);
  send({ type: "note_off", note });
}
function allOff() { for (const n of [...state.down]) noteOff(n); }

document.addEventListener("keydown", (e) => {
  if (e.repeat || e.target.tagName === "SELECT" || e.target.tagName === "INPUT") return;
  const k = e.key.toLowerCase();
  if (k in KEYMAP) noteOn(baseNote() + KEYMAP[k], 100);
  else if (k === "z" && state.octave > 0) { allOff(); state.octave--; buildKeyboard(); }
  else if (k === "x" && state.octave < 8) { allOff(); state.octave++; buildKeyboard(); }
});
document.addEventListener("keyup", (e) => {
  const k = e.key.toLowerCase();
  if (k in KEYMAP) noteOff(baseNote() + KEYMAP[k]);
});
window.addEventListener("blur", allOff);
$("octave-down").onclick = () => document.dispatchEvent(new KeyboardEvent("keydown", { key: "z" }));
$("octave-up").onclick = () => document.dispatchEvent(new KeyboardEvent("keydown", { key: "x" }));
$("hold").addEventListener("change", (e) => send({ type: "sustain", on: e.target.checked }));

// --- runs and recording -------------------------------------------------------------------
$("runs").addEventListener("change", (e) => send({ type: "run", name: e.target.value }));
$("record").addEventListener("click", () => {
  state.recording = !state.recording;
  $("record").classList.toggle("on", state.recording);
  $("record").textContent = state.recording ? "■ stop" : "● record";
  send({ type: "record", on: state.recording });
});

buildKeyboard();
drawPad();
connect();
window.ddspMorph = { state, send, toCanvas };  // for tests and the curious
