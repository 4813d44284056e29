// The line view made live: WebRTC video, metrics and the score chart every second, the threshold slider
// applied to the running line, and capture without leaving the page. The page works without it as forms.
import { STATUS_SYMBOLS, api, localiseTimes, root } from "./console.js";
import { playLive } from "./webrtc.js";

const ACTIVE = new Set(["starting", "running", "stopping"]);
const POLL_MS = 1000;
const CHART = { width: 300, height: 80 };

const view = document.getElementById("line");
const pipelineId = view.dataset.pipelineId;
const activeId = view.dataset.activeId;
const video = document.getElementById("live-video");
const liveStatus = document.getElementById("live-status");
const slider = document.getElementById("threshold");
const thresholdValue = document.getElementById("threshold-value");
const thresholdNote = document.getElementById("threshold-note");
let playing = null;

/** The same geometry as score_points() in api/console/lines.py: 0 at the bottom, 1 at the top. */
function points(scores) {
  if (scores.length < 2) return "";
  const step = CHART.width / (scores.length - 1);
  return scores.map((score, index) =>
    `${(index * step).toFixed(1)},${(CHART.height - Math.min(Math.max(score, 0), 1) * CHART.height).toFixed(1)}`).join(" ");
}

function drawThreshold(value) {
  const line = document.getElementById("chart-threshold");
  const y = CHART.height - value * CHART.height;
  line.setAttribute("y1", y);
  line.setAttribute("y2", y);
}

function format(pattern, value) {
  const match = /\{:(,|\.(\d)f)\}/.exec(pattern);
  const number = Number(value || 0);
  const text = match && match[2] !== undefined ? number.toFixed(Number(match[2])) : number.toLocaleString("en");
  return pattern.replace(/\{[^}]*\}/, text);
}

function showRun(run) {
  const badge = document.querySelector("#line-state .badge");
  if (badge && badge.dataset.status !== run.status) {
    badge.className = `badge status-${run.status}`;
    badge.firstElementChild.textContent = STATUS_SYMBOLS[run.status] || "•";
    badge.lastChild.textContent = ` ${run.status}`;
    badge.dataset.status = run.status;
  }
  document.getElementById("run-message").textContent = run.message || "";
  for (const cell of document.querySelectorAll("[data-metric]")) {
    cell.textContent = format(cell.dataset.format, run.metrics[cell.dataset.metric]);
  }
  const scores = run.metrics.recent_scores || [];
  document.getElementById("chart-scores").setAttribute("points", points(scores));
  if (scores.length) document.getElementById("last-score").textContent = scores[scores.length - 1].toFixed(3);
  view.dataset.frames = run.metrics.frames_processed;
}

function startVideo() {
  if (playing) return;
  playing = playLive(video, {
    activeId,
    post: (path, body) => api(`${root}/api${path}`, { method: "POST", json: body }),
    onState: (state, text) => { liveStatus.textContent = text; video.dataset.state = state; },
    onFrame: (count) => { document.getElementById("frames-decoded").textContent = String(count); },
  }).catch((error) => { playing = null; liveStatus.textContent = `Live view failed: ${error.message}`; });
}

async function poll() {
  try {
    const run = await api(`${root}/api/active-pipelines/${activeId}`);
    showRun(run);
    if (run.status === "running") startVideo();
    if (!ACTIVE.has(run.status)) {
      liveStatus.textContent = `The line is ${run.status}`;
      document.getElementById("capture-button").disabled = true;
      return;  // finished: nothing more to follow
    }
    document.getElementById("capture-button").disabled = run.status !== "running";
  } catch (error) {
    liveStatus.textContent = `Metrics unavailable: ${error.message}`;
  }
  setTimeout(poll, POLL_MS);
}

slider.addEventListener("input", () => {
  thresholdValue.textContent = Number(slider.value).toFixed(2);
  drawThreshold(Number(slider.value));
});
slider.addEventListener("change", () => applyThreshold());
document.getElementById("threshold-form").addEventListener("submit", (event) => {
  event.preventDefault();
  applyThreshold();
});

async function applyThreshold() {
  const value = Number(slider.value);
  thresholdNote.textContent = "Applying…";
  try {
    const line = await api(`${root}/api/pipelines/${pipelineId}`, { method: "PATCH", json: { config: { threshold: value } } });
    thresholdNote.textContent = `Threshold ${Number(line.config.threshold).toFixed(2)} applied${activeId ? "; the running line uses it within a second" : ""}.`;
  } catch (error) {
    thresholdNote.textContent = `Not applied: ${error.message}`;
  }
}

document.getElementById("capture-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const target = document.getElementById("capture-shot");
  target.textContent = "Capturing…";
  try {
    const shot = await api(`${root}/api/active-pipelines/${activeId}/capture`, { method: "POST" });
    const caption = document.createElement("p");
    caption.className = "small";
    caption.innerHTML = `Score ${shot.anomaly_score.toFixed(3)} (${shot.label}) · <time></time>`;
    const time = caption.querySelector("time");
    time.setAttribute("datetime", shot.timestamp);
    time.textContent = shot.timestamp;
    const image = document.createElement("img");
    image.src = `${root}${shot.image_url}`;
    image.alt = `Captured frame, score ${shot.anomaly_score.toFixed(3)}`;
    target.replaceChildren(caption, image);
    localiseTimes(target);
  } catch (error) {
    target.textContent = `Capture failed: ${error.message}`;
  }
});

if (activeId && ACTIVE.has(view.dataset.status)) poll();
