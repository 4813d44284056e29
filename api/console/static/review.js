// The review queue by keyboard: n normal, a anomalous, s skip, arrows move. Each verdict is stored at once
// (PATCH /api/media/{id}) and the next item shows without loading a page. Without this script the page's
// buttons and links do the same, one page load each.
import { api, root } from "./console.js";

const WINDOW = 50;
const view = document.getElementById("review");

if (view) {
  const projectId = view.dataset.projectId;
  const hasChampion = Boolean(view.dataset.champion);
  const start = Number(view.dataset.position);
  let total = Number(view.dataset.total);
  let remaining = total;
  const items = [];  // {id, filename, score, verdict?}; in queue order from `start`
  const seen = new Set();
  let index = 0;
  let exhausted = false;
  let busy = false;
  const element = (id) => document.getElementById(id);
  const status = element("review-status");

  async function loadMore() {
    if (exhausted) return;
    // Judged items have left the unlabelled list: the next unseen ones start after those still unlabelled.
    const stillUnlabelled = items.filter((item) => !item.verdict).length;
    const page = await api(`${root}/api/projects/${projectId}/media?label=unlabelled&limit=${WINDOW}&offset=${start + stillUnlabelled}`);
    let added = 0;
    for (const item of page.items) {
      if (!seen.has(item.id)) {
        seen.add(item.id);
        items.push(item);
        added += 1;
      }
    }
    if (!added || start + stillUnlabelled + page.items.length >= page.total) exhausted = true;
  }

  function preload(item) {
    if (item) new Image().src = `${root}/api/media/${item.id}`;
  }

  function show() {
    const item = items[index];
    if (!item) {
      view.hidden = true;
      element("review-empty").hidden = false;
      element("review-empty").setAttribute("role", "status");
      return;
    }
    const image = `${root}/api/media/${item.id}`;
    element("review-image").src = image;
    element("review-image").alt = item.filename;
    element("review-caption").textContent = item.filename + (item.score != null ? ` · score when collected ${item.score.toFixed(3)}` : "");
    element("review-media-id").value = item.id;
    element("review-position").textContent = String(start + index + 1);
    element("review-total").textContent = String(total);
    element("remaining").textContent = String(remaining);
    status.textContent = item.verdict ? `Already judged: ${item.verdict}` : "";
    if (hasChampion) showPrediction(item);
    preload(items[index + 1]);
  }

  function showPrediction(item) {
    const score = element("review-score");
    const verdict = element("review-verdict");
    const heatmap = element("review-heatmap");
    element("review-side-image").src = `${root}/api/media/${item.id}`;
    score.textContent = "…";
    verdict.textContent = "";
    verdict.className = "";
    heatmap.hidden = false;
    heatmap.src = `${root}/api/media/${item.id}/prediction/heatmap.png`;
    api(`${root}/api/media/${item.id}/prediction`).then((prediction) => {
      if (items[index] !== item) return;
      score.textContent = prediction.score.toFixed(3);
      const anomalous = prediction.label === "anomalous";
      verdict.className = `badge ${anomalous ? "label-anomalous" : "label-normal"}`;
      verdict.textContent = `${anomalous ? "⚠" : "✓"} ${prediction.label}`;
    }).catch((error) => {
      if (items[index] !== item) return;
      score.textContent = "—";
      heatmap.hidden = true;
      verdict.textContent = error.message;
    });
  }

  async function move(step) {
    await ready;
    const target = index + step;
    if (target < 0) {
      status.textContent = "This is the first item.";
      return;
    }
    if (target >= items.length) await loadMore();
    if (target >= items.length) {
      status.textContent = "This is the last item.";
      return;
    }
    index = target;
    show();
  }

  const waiting = (after) => items.findIndex((item, position) => position > after && !item.verdict);

  async function judge(label) {
    await ready;  // a key pressed before the queue arrived counts, on the first item
    const item = items[index];
    if (!item || busy) return;
    busy = true;
    status.textContent = "Saving…";
    try {
      await api(`${root}/api/media/${item.id}`, { method: "PATCH", json: { label } });
      if (!item.verdict) remaining -= 1;
      item.verdict = label;
      // The next item still waiting for a verdict; then any skipped earlier; else the queue is done.
      let next = waiting(index);
      if (next < 0) {
        await loadMore();
        next = waiting(index);
      }
      if (next < 0) next = waiting(-1);
      index = next < 0 ? items.length : next;
      show();
      status.textContent = `Saved: ${item.filename} is ${label}`;
    } catch (error) {
      status.textContent = `Not saved: ${error.message}`;
    } finally {
      busy = false;
    }
  }

  const actions = { n: () => judge("normal"), a: () => judge("anomalous"), s: () => move(1), ArrowRight: () => move(1), ArrowLeft: () => move(-1) };

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (event.target.closest?.("input, select, textarea, [contenteditable]")) return;
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });
  element("verdict-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const label = event.submitter?.value;
    if (label) judge(label);
  });
  for (const [id, step] of [["review-skip", 1], ["review-next", 1], ["review-previous", -1]]) {
    element(id).addEventListener("click", (event) => { event.preventDefault(); move(step); });
  }

  const ready = loadMore().then(() => {
    index = 0;
    total = Math.max(total, items.length);
    show();
    view.dataset.ready = "true";
  }).catch((error) => { status.textContent = error.message; });
}
