// Live progress of the unfinished jobs on the page: each is read from GET /api/jobs/{id} every two seconds.
import { FINISHED, api, jobStage, root, statusBadge } from "./console.js";

const INTERVAL_MS = 2000;

function duration(seconds) {
  const total = Math.max(0, Math.round(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  if (hours) return `${hours} h ${String(minutes).padStart(2, "0")} min`;
  return minutes ? `${minutes} min ${String(secs).padStart(2, "0")} s` : `${secs} s`;
}

function render(row, job) {
  const field = (name) => row.querySelector(`[data-field="${name}"]`);
  row.dataset.status = job.status;
  const status = field("status");
  status.replaceChildren(statusBadge(job.status));
  const note = (job.error !== job.status && job.error) || (!FINISHED.has(job.status) && job.message);
  if (note) {
    const detail = document.createElement("div");
    detail.className = job.error ? "field-error small" : "muted small";
    detail.textContent = note;
    status.append(detail);
  }
  const percent = Math.round(job.progress * 100);
  row.querySelector("progress").value = percent;
  field("progress").textContent = `${percent} %`;
  field("stage").textContent = FINISHED.has(job.status) ? "" : jobStage(job.metrics || {});
  if (job.started_at) {
    const end = job.finished_at ? new Date(job.finished_at) : new Date();
    field("duration").textContent = duration((end - new Date(job.started_at)) / 1000);
  }
  if (FINISHED.has(job.status)) field("cancel")?.remove();
}

async function refresh() {
  const rows = [...document.querySelectorAll("#jobs tr[data-job-id]")]
    .filter((row) => !FINISHED.has(row.dataset.status));
  await Promise.all(rows.map(async (row) => {
    try {
      render(row, await api(`${root}/api/jobs/${row.dataset.jobId}`));
    } catch (error) {
      row.title = error.message;  // Prefect not answering: keep the last known state
    }
  }));
  if (rows.length) window.setTimeout(refresh, INTERVAL_MS);
}

window.setTimeout(refresh, INTERVAL_MS);
