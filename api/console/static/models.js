// The export started from the models page: follows its job (GET /api/jobs/{id}) and says when the download is ready.
import { api, root } from "./console.js";

const INTERVAL_MS = 1500;
const status = document.getElementById("export-status");

async function follow() {
  let job;
  try {
    job = await api(`${root}/api/jobs/${status.dataset.jobId}`);
  } catch (error) {
    status.querySelector('[data-field="export-hint"]').textContent = error.message;
    window.setTimeout(follow, INTERVAL_MS);
    return;
  }
  const hint = status.querySelector('[data-field="export-hint"]');
  status.dataset.status = job.status;
  if (job.status === "completed") {
    hint.textContent = "✓ Ready.";
    document.getElementById("export-download").classList.add("button-primary");
  } else if (job.status === "failed" || job.status === "cancelled") {
    hint.textContent = `✕ Export ${job.status}: ${job.error || job.message || ""}`;
    hint.className = "field-error small";
  } else {
    hint.textContent = `${job.status}, ${Math.round(job.progress * 100)} %…`;
    window.setTimeout(follow, INTERVAL_MS);
  }
}

if (status) follow();
