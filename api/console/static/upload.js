// Drag-and-drop and batched upload with per-file progress, over the REST upload (POST /api/projects/{id}/media).
// Without this script the same form posts to the console, which stores the files and lists the refused ones.
import { describe, root } from "./console.js";

const BATCH_FILES = 16;
const BATCH_BYTES = 16 * 1024 * 1024;

const form = document.getElementById("upload-form");
const input = document.getElementById("files");
const zone = document.getElementById("drop-zone");
const progress = document.getElementById("upload-progress");

function batches(files) {
  const result = [];
  let current = [];
  let bytes = 0;
  for (const file of files) {
    if (current.length && (current.length >= BATCH_FILES || bytes + file.size > BATCH_BYTES)) {
      result.push(current);
      current = [];
      bytes = 0;
    }
    current.push(file);
    bytes += file.size;
  }
  if (current.length) result.push(current);
  return result;
}

function row(list, file) {
  const item = document.createElement("li");
  const name = document.createElement("span");
  name.className = "file-name";
  name.textContent = file.name;
  const state = document.createElement("span");
  state.className = "badge status-pending";
  state.textContent = "… queued";
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = 0;
  bar.setAttribute("aria-label", `Upload of ${file.name}`);
  item.append(name, state, bar);
  list.append(item);
  return {
    file,
    progress(percent) { bar.value = percent; state.className = "badge status-running"; state.textContent = `▶ ${Math.round(percent)} %`; },
    done() { bar.value = 100; state.className = "badge status-completed"; state.textContent = "✓ stored"; item.dataset.state = "stored"; },
    refuse(reason) {
      bar.remove();
      state.className = "badge status-failed";
      state.textContent = "✕ refused";
      const detail = document.createElement("span");
      detail.className = "file-detail";
      detail.textContent = reason;
      item.append(detail);
      item.dataset.state = "refused";
    },
  };
}

function send(projectId, label, rows) {
  const data = new FormData();
  data.append("label", label);
  for (const entry of rows) data.append("files", entry.file, entry.file.name);
  // Where each file's bytes lie in the body: multipart sends the parts in order.
  const ends = [];
  let offset = 0;
  for (const entry of rows) { offset += entry.file.size; ends.push(offset); }
  return new Promise((resolve) => {
    const request = new XMLHttpRequest();
    request.open("POST", `${root}/api/projects/${projectId}/media`);
    request.setRequestHeader("Accept", "application/json");
    request.upload.onprogress = (event) => {
      const total = event.lengthComputable ? event.total : offset;
      const sent = event.loaded * (offset / Math.max(total, 1));
      rows.forEach((entry, index) => {
        const start = index ? ends[index - 1] : 0;
        const share = entry.file.size ? (sent - start) / entry.file.size : (sent >= start ? 1 : 0);
        entry.progress(Math.max(0, Math.min(1, share)) * 100);
      });
    };
    request.onload = () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch { body = request.responseText; }
      resolve({ status: request.status, body });
    };
    request.onerror = () => resolve({ status: 0, body: "the server could not be reached" });
    request.send(data);
  });
}

function settle(rows, status, body) {
  const refused = status === 201 ? body.errors : status === 422 && body?.detail?.errors ? body.detail.errors : null;
  if (!refused) {
    const reason = status === 0 ? body : describe(body, status);
    for (const entry of rows) entry.refuse(reason);
    return 0;
  }
  // The API reports refused files by name, in the order they were sent; the rest were stored.
  let next = 0;
  let stored = 0;
  for (const entry of rows) {
    if (next < refused.length && refused[next].filename === entry.file.name) {
      entry.refuse(refused[next].detail);
      next += 1;
    } else {
      entry.done();
      stored += 1;
    }
  }
  return stored;
}

async function upload(files) {
  if (!files.length) return;
  const projectId = form.dataset.projectId;
  const label = new FormData(form).get("label") || "normal";
  progress.replaceChildren();
  const summary = document.createElement("p");
  summary.className = "upload-summary";
  summary.textContent = `Uploading ${files.length} file${files.length === 1 ? "" : "s"} as ${label}…`;
  const list = document.createElement("ul");
  list.className = "upload-list";
  progress.append(summary, list);
  const rows = files.map((file) => row(list, file));
  let stored = 0;
  let start = 0;
  for (const group of batches(files)) {
    const batch = rows.slice(start, start + group.length);
    start += group.length;
    const { status, body } = await send(projectId, label, batch);
    stored += settle(batch, status, body);
  }
  const refused = files.length - stored;
  summary.textContent = `${stored} stored, ${refused} refused`;
  if (stored) {
    const link = document.createElement("a");
    link.href = window.location.pathname;
    link.textContent = " Show them in the gallery";
    summary.append(link);
  }
  form.dataset.state = "done";
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  upload([...input.files]).finally(() => { input.value = ""; });
});
for (const name of ["dragenter", "dragover"]) {
  zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.add("dragging"); });
}
zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  zone.classList.remove("dragging");
  upload([...(event.dataTransfer?.files || [])]);
});
input.required = false;  // a drop needs no chosen file; the submit handler ignores an empty choice
