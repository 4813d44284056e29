// The schedule page: follows retraining runs that have not ended (GET /api/jobs/{id} every 2 s) and fills in
// their decision, reason and scores when they do. Without it, a reload shows the same.
import { FINISHED, api, badge, root, statusBadge } from "./console.js";

const SYMBOLS = { promoted: "★", kept: "=", skipped: "–" };
const POLL_MS = 2000;

function auroc(value) {
  return typeof value === "number" ? value.toFixed(3) : "—";
}

function show(row, job) {
  row.dataset.status = job.status;
  const field = (name) => row.querySelector(`[data-field="${name}"]`);
  const decision = job.metrics.decision;
  field("decision").replaceChildren(decision ? badge(`decision-${decision}`, SYMBOLS[decision] || "•", decision)
                                              : statusBadge(job.status));
  field("reason").textContent = job.metrics.reason || (job.status === "failed" ? job.message || "" : "");
  field("candidate").textContent = auroc(job.metrics.candidate_image_auroc);
  field("champion").textContent = auroc(job.metrics.champion_image_auroc);
}

async function follow() {
  const rows = [...document.querySelectorAll("#history tr[data-job-id]")].filter((row) => !FINISHED.has(row.dataset.status));
  if (!rows.length) return;
  for (const row of rows) {
    try {
      show(row, await api(`${root}/api/jobs/${row.dataset.jobId}`));
    } catch {
      // try again at the next round
    }
  }
  setTimeout(follow, POLL_MS);
}

follow();
