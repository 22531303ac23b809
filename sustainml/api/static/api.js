// Every HTTP call of the dashboard lives here: adapting to a change of the /v1 API is one edit.
// Shapes follow docs/api.md; responses are normalised to what app.js expects.

const V1 = "/v1";
const TOKEN_KEY = "sustainml.api_token";

/** An HTTP error with the field the API named (422) when there is one. */
export class ApiError extends Error {
  constructor(status, message, field = null, body = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.field = field;
    this.body = body;
  }
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** "UserInput.minimum_samples: must be >= 0" -> "minimum_samples". */
function fieldFromMessage(message) {
  const m = /^(?:[A-Za-z]+\.)?(?:extra_data\.)?([a-z_][a-z0-9_]*)\s*:/.exec(message || "");
  return m ? m[1] : null;
}

/** The message and field of an error body, whichever of the usual shapes it has. */
export function describeError(status, body) {
  if (body && typeof body === "object") {
    const detail = body.detail;
    if (typeof body.error === "string" && body.error) {
      // The API's own sentence (it names the field); the field from the structured detail if any.
      let field = body.field || null;
      if (!field && Array.isArray(detail) && detail.length && Array.isArray(detail[0].loc)) {
        const loc = detail[0].loc.filter((p) => typeof p === "string" && p !== "body");
        field = loc.length ? loc[loc.length - 1] : null;
      }
      return { message: body.error, field: field || fieldFromMessage(body.error) };
    }
    if (Array.isArray(detail) && detail.length) {
      // FastAPI's validation shape: {"detail": [{"loc": ["body", "minimum_samples"], "msg": ...}]}
      const first = detail[0];
      const loc = Array.isArray(first.loc) ? first.loc.filter((p) => typeof p === "string" && p !== "body") : [];
      const field = loc.length ? loc[loc.length - 1] : null;
      const msg = detail.map((d) => {
        const where = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body").join(".") : "";
        return where ? `${where}: ${d.msg}` : String(d.msg);
      }).join("; ");
      return { message: msg, field };
    }
    const text = body.error || body.message || (typeof detail === "string" ? detail : null)
      || (detail && typeof detail === "object" ? (detail.error || detail.message) : null);
    const field = body.field || (detail && typeof detail === "object" ? detail.field : null) || fieldFromMessage(text);
    if (text) return { message: String(text), field: field ? String(field).split(".").pop() : null };
  }
  if (typeof body === "string" && body.trim()) return { message: body.trim(), field: fieldFromMessage(body) };
  return { message: `HTTP ${status}`, field: null };
}

async function request(method, path, { json, form, query, signal } = {}) {
  const url = new URL(V1 + path, window.location.origin);
  if (query) {
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
    }
  }
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser sets the multipart boundary
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body, signal });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, `cannot reach the API (${err && err.message ? err.message : err})`);
  }
  const type = response.headers.get("Content-Type") || "";
  let payload = null;
  if (response.status !== 204) {
    payload = type.includes("json") ? await response.json().catch(() => null) : await response.text();
  }
  if (!response.ok) {
    const { message, field } = describeError(response.status, payload);
    throw new ApiError(response.status, message, field, payload);
  }
  return payload;
}

/** {problem_id, iteration_id} from the usual reply shapes. */
function taskIdOf(reply) {
  const t = (reply && (reply.task_id || reply.task || reply)) || {};
  return { problem_id: Number(t.problem_id), iteration_id: Number(t.iteration_id) };
}

export const api = {
  /** POST /v1/tasks with a UserInput body -> {problem_id, iteration_id}. */
  async submit(userInput) {
    return taskIdOf(await request("POST", "/tasks", { json: userInput }));
  },

  /** POST /v1/tasks/{p}/{i}/iterate with the fields to override -> the new task id. */
  async iterate(p, i, overrides) {
    return taskIdOf(await request("POST", `/tasks/${p}/${i}/iterate`, { json: overrides }));
  },

  /** POST /v1/tasks/{p}/{i}/cancel (no body) -> {task_id, state}. */
  async cancel(p, i) {
    return request("POST", `/tasks/${p}/${i}/cancel`);
  },

  /**
   * GET /v1/tasks, every page (newest first) -> task list items. With `summary` (default) each
   * item carries its goal, model, hardware and figures; `summary: false` skips them (cheaper).
   */
  async listTasks({ state, problemId, summary = true, pageSize = 500, max = 5000 } = {}) {
    const all = [];
    for (let offset = 0; offset < max; offset += pageSize) {
      const reply = await request("GET", "/tasks", {
        query: { state, problem_id: problemId, summary: summary ? undefined : "false", limit: pageSize, offset },
      });
      const items = Array.isArray(reply) ? reply : (reply.tasks || []);
      all.push(...items);
      if (items.length < pageSize) break;
    }
    return all;
  },

  /**
   * GET /v1/tasks/{p}/{i} -> the stored result (state, USER_INPUT, the six outputs by node
   * name, note). `omit` asks the server to leave out bulky fields (input_batch: megabytes of
   * base64); a server that ignores it still answers correctly.
   */
  async getTask(p, i, { omit = "input_batch,raw_model", wait } = {}) {
    return request("GET", `/tasks/${p}/${i}`, { query: { omit, wait } });
  },

  /** GET /v1/nodes -> {nodes: {NODE: STATUS}, replicas: [...]}. */
  async nodes() {
    return request("GET", "/nodes");
  },

  /** POST /v1/nodes/{node}/config -> {success, errCode, configuration (parsed object)}. */
  async config(node, configuration) {
    const reply = await request("POST", `/nodes/${encodeURIComponent(node)}/config`, {
      json: { configuration },
    });
    let conf = reply.parsed ?? reply.configuration;
    if (typeof conf === "string") {
      try {
        conf = conf ? JSON.parse(conf) : {};
      } catch (err) {
        throw new ApiError(200, `configuration reply of ${node} is not JSON: ${err.message}`);
      }
    }
    return { success: reply.success !== false, errCode: reply.err_code ?? "NO_ERROR", configuration: conf || {} };
  },

  /** POST /v1/datasets (multipart, field "file") -> {path, name, profile|null, profileError|null}. */
  async uploadDataset(file) {
    const form = new FormData();
    form.append("file", file, file.name);
    const reply = await request("POST", "/datasets", { form });
    return {
      path: reply.path,
      name: reply.name || file.name,
      profile: reply.profile || null,
      profileError: reply.profile_error || null,
    };
  },

  /** Where the export of one task downloads from. */
  exportUrl(p, i, format) {
    return `${V1}/tasks/${p}/${i}/export?format=${encodeURIComponent(format)}`;
  },

  /**
   * Subscribe to GET /v1/events (server-sent events). `onEvent(kind, data)` gets "snapshot"
   * (node status on connect), "task" (a state change or a stored stage output) and "node"
   * (a replica's status changed); `onState(open)` the connection state. EventSource reconnects
   * by itself; events are not replayed, so the caller re-reads what it follows on reopen.
   * Returns a function that closes the stream.
   */
  events(onEvent, onState) {
    let source = null;
    let closed = false;
    let retry = null;
    const open = () => {
      source = new EventSource(`${V1}/events`);
      for (const kind of ["snapshot", "task", "node"]) {
        source.addEventListener(kind, (ev) => {
          let data;
          try {
            data = JSON.parse(ev.data);
          } catch (err) {
            console.warn("sustainml: undecodable event", kind, ev.data, err);
            return;
          }
          onEvent(kind, data);
        });
      }
      source.onopen = () => onState(true);
      source.onerror = () => {
        onState(source.readyState === EventSource.OPEN);
        // The browser retries dropped connections itself, but gives up after an HTTP error
        // status: open a new stream a little later then.
        if (source.readyState === EventSource.CLOSED && !closed && retry === null) {
          retry = setTimeout(() => { retry = null; if (!closed) open(); }, 5000);
        }
      };
    };
    open();
    return () => {
      closed = true;
      if (retry !== null) clearTimeout(retry);
      source.close();
    };
  },
};
