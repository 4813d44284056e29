// Live progress of the training started from this page: GET /api/jobs/{id} every second until it ends.
import { FINISHED, api, jobStage, root, statusBadge } from "./console.js";

const INTERVAL_MS = 1000;
const panel = document.getElementById("training");

function show(job) {
  panel.dataset.status = job.status;
  document.getElementById("training-status").replaceChildren(statusBadge(job.status));
  const percent = Math.round(job.progress * 100);
  document.getElementById("training-bar").value = percent;
  document.getElementById("training-percent").textContent = `${percent} %`;
  const metrics = job.metrics || {};
  const parts = [jobStage(metrics)];
  if (job.status === "completed" && metrics.image_auroc != null) parts.push(`image AUROC ${Number(metrics.image_auroc).toFixed(3)}`);
  document.getElementById("training-stage").textContent = parts.filter(Boolean).join(", ");
  const error = document.getElementById("training-error");
  error.hidden = !(job.status === "failed" && job.error);
  error.textContent = job.error || "";
  if (FINISHED.has(job.status)) document.getElementById("training-cancel")?.remove();
}

async function follow() {
  try {
    const job = await api(`${root}/api/jobs/${panel.dataset.jobId}`);
    show(job);
    if (FINISHED.has(job.status)) return;
  } catch (error) {
    document.getElementById("training-stage").textContent = error.message;  // Prefect not answering: retry
  }
  window.setTimeout(follow, INTERVAL_MS);
}

if (panel) follow();
