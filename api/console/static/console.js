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
