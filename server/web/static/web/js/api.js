// The JSON API (SPEC 3): same-origin fetch with the session cookie; every failure becomes an
// ApiError carrying the server's machine code.
import { gettext } from "./i18n.js";

export class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || (status === 0 ? "network_error" : "error");
    this.retryAfter = typeof body.retry_after === "number" ? body.retry_after : null;
    this.body = body;
  }
}

export async function api(path, { method = "GET", body, query } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, String(value));
  }
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, { message: gettext("The server could not be reached. Check your connection and try again.") });
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok || !data || data.result !== "success") {
    const error = new ApiError(response.status, data || {});
    if (error.status === 401 && !path.startsWith("/api/auth/")) toSignIn();
    throw error;
  }
  return data;
}

// Signing out closes every socket of the user (4401) before the page has moved on; that is
// not a session that ended by itself, so nothing sends the reader to sign in again meanwhile.
let signingOut = false;

export async function signOut() {
  signingOut = true;
  try {
    await api("/api/auth/logout/", { method: "POST" });
  } finally {
    window.location.assign("/login/");
  }
}

export function toSignIn() {
  if (signingOut) return;
  const next = window.location.pathname + window.location.search;
  window.location.assign(`/login/?next=${encodeURIComponent(next)}`);
}
