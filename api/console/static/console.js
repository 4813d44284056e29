// Shared by every console page: times in the browser's zone, and one way to call the REST API.

/** Calls the platform's REST API (same origin: the session cookie or no key). Throws Error(detail) on 4xx/5xx. */
export async function api(path, options = {}) {
  const init = { credentials: "same-origin", ...options, headers: { Accept: "application/json", ...(options.headers || {}) } };
  if (init.json !== undefined) {
    init.body = JSON.stringify(init.json);
    init.headers["Content-Type"] = "application/json";
    delete init.json;
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const error = new Error(describe(body, response.status));
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

/** The API's {"detail": ...} as one line of text. */
export function describe(body, status) {
  const detail = body && typeof body === "object" ? body.detail : body;
  if (!detail) return `HTTP ${status}`;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((item) => item.msg || JSON.stringify(item)).join("; ");
  return detail.message || JSON.stringify(detail);
}

/** The path prefix the console is served under (a reverse proxy's root path). */
export const root = document.documentElement.dataset.root || "";

/** Job states after which nothing changes. */
export const FINISHED = new Set(["completed", "failed", "cancelled"]);

/** The symbols of the status_badge macro (_macros.html): the state is written out, colour only repeats it. */
export const STATUS_SYMBOLS = {
  pending: "…", running: "▶", completed: "✓", failed: "✕", cancelled: "⊘", ready: "✓", training: "▶",
  starting: "…", stopping: "…", stopped: "■", idle: "○",
};

/** A badge as the macros draw it: a symbol hidden from screen readers, then the text. */
export function badge(className, symbol, text) {
  const element = document.createElement("span");
  element.className = `badge ${className}`;
  const mark = document.createElement("span");
  mark.setAttribute("aria-hidden", "true");
  mark.textContent = symbol;
  element.append(mark, ` ${text}`);
  return element;
}

/** The status_badge macro's badge of a job's or a line's state. */
export function statusBadge(status) {
  return badge(`status-${status}`, STATUS_SYMBOLS[status] || "•", status);
}

/** A running job's stage and epoch from its metrics, e.g. "fitting, epoch 3". */
export function jobStage(metrics = {}) {
  return [metrics.stage, metrics.epoch != null ? `epoch ${metrics.epoch}` : null].filter(Boolean).join(", ");
}

export function localiseTimes(scope = document) {
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  for (const element of scope.querySelectorAll("time[datetime]")) {
    const value = new Date(element.getAttribute("datetime"));
    if (!Number.isNaN(value.getTime())) {
      element.title = element.textContent.trim();
      element.textContent = format.format(value);
    }
  }
}

localiseTimes();
