// The SustainML dashboard: problem form, live progress, node status, results, comparison, details.
// Plain ES module; every HTTP call goes through api.js.

import { api, ApiError, getToken, setToken } from "./api.js";
import { $, $$, clear, el, kv } from "./dom.js";
import { explanations } from "./explain.js";
import { exact, num, scaleFor, UNITS, when, withUnit } from "./format.js";

const PIPELINE = ["ML_MODEL_METADATA", "APP_REQUIREMENTS", "HW_CONSTRAINTS", "ML_MODEL", "HW_RESOURCES", "CARBON_FOOTPRINT"];
const NODE_LABELS = {
  ML_MODEL_METADATA: "Task encoder",
  APP_REQUIREMENTS: "Requirements",
  HW_CONSTRAINTS: "HW constraints",
  ML_MODEL: "Model provider",
  HW_RESOURCES: "HW resources",
  CARBON_FOOTPRINT: "Carbon footprint",
};
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const METRICS = [
  { key: "latency", label: "Latency", unit: UNITS.latency },
  { key: "memory", label: "Memory footprint", unit: UNITS.memory_footprint_of_ml_model },
  { key: "power", label: "Power consumption", unit: UNITS.power_consumption },
  { key: "energy", label: "Energy consumption (training)", unit: UNITS.energy_consumption },
  { key: "carbon", label: "Carbon footprint (training)", unit: UNITS.carbon_footprint },
  { key: "intensity", label: "Carbon intensity", unit: UNITS.carbon_intensity },
];
const EXTRA_FIELDS = ["goal", "metric", "type", "hardware_required", "max_memory_footprint", "model_selected", "num_outputs",
  "dataset_metadata_description", "dataset_metadata_topic", "dataset_metadata_keywords", "dataset_metadata_applications", "dataset_metadata_profile"];
const NUMBER_EXTRA = new Set(["max_memory_footprint", "num_outputs"]);
const CHART_COLOURS = ["#2f6f4f", "#3b6ea8", "#b5651d", "#7a4fa0", "#a83b5a", "#4f8a8b", "#8a7a2f", "#555"];

const key = (p, i) => `${p}.${i}`;
const tid = (t) => ({ p: Number(t.problem_id), i: Number(t.iteration_id) });

const store = {
  tasks: new Map(), // "p.i" -> summary row of GET /v1/tasks (kept current by events)
  details: new Map(), // "p.i" -> GET /v1/tasks/{p}/{i}
  live: new Map(), // "p.i" -> {NODE: {state, at}} progress seen through events
  selected: new Map(), // p -> Set of iterations to compare
  follow: null, // {p, i}: the task the progress panel shows
  followStart: null,
  nodes: { nodes: {}, replicas: [] },
  sseOpen: false,
  sseEverOpened: false,
  options: { modality: false, hardwares: false, regions: false, inout: false },
  regions: [],
  iterateFrom: null, // {p, i} when the form submits an iteration
  activeProblem: null,
  chart: null,
  datasetPath: "",
};

// ------------------------------------------------------------------------------------------- utils

function showBanner(message, kind = "error") {
  const banner = $("#banner");
  banner.className = `banner ${kind}`;
  $("#banner-text").textContent = message;
  banner.hidden = false;
}

function hideBanner() {
  $("#banner").hidden = true;
}

function reportError(context, err) {
  console.error(`sustainml dashboard: ${context}`, err);
  if (err instanceof ApiError && err.status === 401) {
    showBanner(`${context}: ${err.message}. Set the API token (button at the top right).`);
  } else {
    showBanner(`${context}: ${err && err.message ? err.message : err}`);
  }
}

function logEvent(text) {
  const log = $("#event-log");
  log.prepend(el("li", {}, el("time", {}, new Date().toLocaleTimeString()), " ", text));
  while (log.children.length > 300) log.lastElementChild.remove();
}

const MODEL_SENTINELS = new Set(["NO_MODEL", "Error"]);

function outputsOf(detail) {
  return detail || {};
}

/** The figures of one task for the tables and the chart (null where a stage has no output),
 * from a full result (GET /v1/tasks/{p}/{i}) or from a list item with its `summary`
 * (GET /v1/tasks: the server computed the same figures, so the list needs no request per task). */
function summaryOf(detail) {
  const d = outputsOf(detail);
  const { p, i } = tid(d.task_id || {});
  const head = { p, i, state: d.state, error: d.error || null, note: d.note || null, alerts: d.alerts || [] };
  if (d.summary && !d.ML_MODEL && !d.HW_RESOURCES && !d.CARBON_FOOTPRINT) {
    const f = d.summary;
    return {
      ...head,
      alerts: f.alerts || [],
      goal: f.goal ?? null,
      model: f.model ?? null,
      hardware: f.hardware ?? null,
      latency: f.latency ?? null,
      memory: f.memory_footprint_of_ml_model ?? null,
      power: f.power_consumption ?? null,
      energy: f.energy_consumption ?? null,
      carbon: f.carbon_footprint ?? null,
      intensity: f.carbon_intensity ?? null,
    };
  }
  const meta = d.ML_MODEL_METADATA || null;
  const model = d.ML_MODEL || null;
  const hw = d.HW_RESOURCES || null;
  const co2 = d.CARBON_FOOTPRINT || null;
  // NO_MODEL / Error: the zeros downstream are not figures of anything; show them as missing
  // (the server's list summary applies the same rule).
  const none = (model !== null && MODEL_SENTINELS.has(model.model)) || head.alerts.some((a) => a.kind === "no_model");
  const fig = (rec, name) => (rec && !none ? rec[name] : null);
  return {
    ...head,
    goal: meta ? ((meta.ml_model_metadata || [])[0] || "") : null,
    model: model ? model.model : null,
    hardware: hw ? hw.hw_description : null,
    latency: fig(hw, "latency"),
    memory: fig(hw, "memory_footprint_of_ml_model"),
    power: fig(hw, "power_consumption"),
    energy: fig(co2, "energy_consumption"),
    carbon: fig(co2, "carbon_footprint"),
    intensity: fig(co2, "carbon_intensity"),
  };
}

/** Messages of the original GUI's error dialogs, plus the task's own error. */
function problemsOf(detail) {
  const d = outputsOf(detail);
  const out = [];
  if (d.error) out.push(`Task failed: ${d.error}`);
  for (const a of d.alerts || []) { // the server's findings: what changes the meaning of the result
    if (a.kind === "needs_clarification") continue; // shown next to the goal
    out.push(alertText(a));
  }
  const meta = d.ML_MODEL_METADATA;
  if (meta && meta.extra_data && meta.extra_data.error) out.push(`Error in node ML Model Metadata: ${meta.extra_data.error}`);
  const model = d.ML_MODEL;
  const explained = (d.alerts || []).some((a) => a.kind === "no_model");
  if (model && model.model === "NO_MODEL" && !explained) out.push("No suitable model found for this task. Please refine the problem or constraints.");
  else if (model && model.model === "Error") out.push(`Error in node ML Model Provider: ${(model.extra_data || {}).error || "unknown"}`);
  const hw = d.HW_RESOURCES;
  if (hw && /error/i.test(hw.hw_description || "")) out.push(`Error in node HW Resource: ${hw.hw_description}`);
  const co2 = d.CARBON_FOOTPRINT;
  const noModel = model && (model.model === "NO_MODEL" || model.model === "Error");
  if (co2 && !noModel && d.state === "succeeded" && Number(co2.carbon_intensity) === 0) {
    out.push("Error in node Carbon Footprint: carbon intensity is 0.");
  }
  return [...new Set(out)];
}

/** One line for an alert of the API (kind, node, title, details). */
function alertText(a) {
  const label = { binding_constraint: "Binding constraint", relaxation: "What would help", violations: "Violations" };
  const first = a.title ? a.title.charAt(0).toUpperCase() + a.title.slice(1) : a.kind;
  const details = Object.entries(a.details || {})
    .filter(([k]) => !(k === "violations" && a.title.includes(String(a.details[k]))))
    .map(([k, v]) => `${label[k] || k}: ${v}.`);
  return [`${first}.`, ...details].join(" ");
}

function stateBadge(state) {
  return el("span", { class: `badge state-${state || "unknown"}` }, state || "unknown");
}

/** The state, or what the result really is when every stage ran but nothing fits. */
function resultBadges(s) {
  const out = [stateBadge(s.state)];
  const kinds = new Set((s.alerts || []).map((a) => a.kind));
  if (kinds.has("no_model")) out.push(" ", el("span", { class: "badge alert-no-model", title: "ML_MODEL found no feasible model" }, "no feasible model"));
  if (kinds.has("constraints_not_met")) out.push(" ", el("span", { class: "badge alert-constraints" }, "constraints not met"));
  if (kinds.has("needs_clarification")) out.push(" ", el("span", { class: "badge alert-clarify" }, "needs clarification"));
  return out;
}

/** The question the task encoder needs answered, if any (from the alerts or the record). */
function clarificationOf(d) {
  const a = (d.alerts || []).find((x) => x.kind === "needs_clarification");
  if (a) return a.title.replace(/^needs clarification:\s*/, "");
  const extra = (d.ML_MODEL_METADATA && d.ML_MODEL_METADATA.extra_data) || {};
  const q = extra.needs_clarification;
  if (!q) return "";
  if (typeof q === "string") return q;
  return q.question || "";
}

function unitCell(value, unit) {
  return el("td", { class: "num", title: exact(value, unit) }, withUnit(value, unit));
}

// ------------------------------------------------------------------------------------------ routing

function route() {
  const [view, ...rest] = (location.hash.replace(/^#/, "") || "problem").split("/");
  const known = { problem: "problem", results: "results", task: "results", compare: "results", nodes: "nodes" };
  const shown = known[view] || "problem";
  for (const section of $$(".view")) section.hidden = section.id !== `view-${shown}`;
  for (const link of $$(".nav a")) {
    if (link.dataset.view === shown) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (shown === "results") {
    const p = Number(rest[0]) || null;
    if (view === "task" && p) {
      showResults(p).then(() => openDetail(p, Number(rest[1])));
    } else if (view === "compare" && p) {
      const its = String(rest[1] || "").split(",").map(Number).filter((x) => x > 0);
      store.selected.set(p, new Set(its));
      showResults(p).then(() => openCompare(p));
    } else {
      showResults(p);
    }
  } else if (shown === "nodes") {
    refreshNodes();
  }
}

// ------------------------------------------------------------------------------------- node status

function summaryStatus(name) {
  return (store.nodes.nodes || {})[name] || "INACTIVE";
}

function renderNodeStrip() {
  const strip = clear($("#node-strip"));
  for (const name of PIPELINE) {
    const status = summaryStatus(name);
    strip.append(el("span", { class: `pill status-${status}`, title: `${name}: ${status}` },
      el("span", { class: "pill-name" }, NODE_LABELS[name]), " ", el("span", { class: "pill-status" }, status)));
  }
}

function renderNodesTable() {
  const body = clear($("#nodes-table tbody"));
  const replicas = [...(store.nodes.replicas || [])];
  for (const name of PIPELINE) {
    const mine = replicas.filter((r) => r.node_name === name).sort((a, b) => String(a.replica_id).localeCompare(String(b.replica_id)));
    if (!mine.length) {
      body.append(el("tr", {}, el("th", { scope: "row" }, name), el("td", { colspan: 7, class: "muted" }, `no live replica (${summaryStatus(name)})`)));
      continue;
    }
    mine.forEach((r, idx) => {
      body.append(el("tr", {},
        idx === 0 ? el("th", { scope: "row", rowspan: mine.length }, name, el("br"), el("span", { class: `badge status-${summaryStatus(name)}` }, summaryStatus(name))) : null,
        el("td", {}, String(r.replica_id)),
        el("td", {}, el("span", { class: `badge status-${r.status}` }, String(r.status))),
        el("td", { class: "num" }, num(r.in_flight)),
        el("td", { class: "num" }, num(r.processed)),
        el("td", { class: "num" }, r.age_s === undefined ? "–" : withUnit(r.age_s, "s") + " ago"),
        el("td", {}, r.task_id ? String(typeof r.task_id === "object" ? key(r.task_id.problem_id, r.task_id.iteration_id) : r.task_id) : "–"),
        el("td", {}, r.error_description || "")));
    });
  }
}

function applyNodes(data) {
  store.nodes = { nodes: data.nodes || {}, replicas: data.replicas || [] };
  renderNodeStrip();
  if (!$("#view-nodes").hidden) renderNodesTable();
  loadOptions();
}

async function refreshNodes() {
  try {
    applyNodes(await api.nodes());
  } catch (err) {
    reportError("Node status", err);
  }
}

function applyNodeEvent(data) {
  const nodes = { ...(store.nodes.nodes || {}) };
  if (data.node && data.status) nodes[data.node] = data.status;
  let replicas = [...(store.nodes.replicas || [])];
  if (data.replica_id) {
    replicas = replicas.filter((r) => !(r.node_name === data.node && r.replica_id === data.replica_id));
    if (data.event !== "offline") {
      replicas.push({
        node_name: data.node, replica_id: data.replica_id, status: data.replica_status, age_s: 0,
        in_flight: data.in_flight, processed: data.processed, error_description: data.error_description || "",
        task_id: data.task_id,
      });
    }
  }
  store.nodes = { nodes, replicas };
  renderNodeStrip();
  if (!$("#view-nodes").hidden) renderNodesTable();
  if (data.event && data.event !== "heartbeat") logEvent(`Node ${data.node} replica ${data.replica_id || ""}: ${data.event}, ${data.replica_status || data.status}`);
  loadOptions();
}

// ------------------------------------------------------------------------------ form options

function fillSelect(select, values, { keep = 1, labels = {} } = {}) {
  const current = select.value;
  while (select.options.length > keep) select.remove(keep);
  for (const v of values) select.append(el("option", { value: v }, labels[v] || v));
  if ([...select.options].some((o) => o.value === current)) select.value = current;
}

function ensureOption(select, value) {
  if (value && ![...select.options].some((o) => o.value === value)) select.append(el("option", { value }, value));
  select.value = value || "";
}

function fillDatalist(list, values) {
  clear(list);
  for (const v of values) list.append(el("option", { value: v }));
}

const splitList = (s) => String(s || "").split(",").map((x) => x.trim()).filter(Boolean);
let optionsBusy = false;
let optionsLastTry = 0;

/** Fill the form's lists from configuration requests, once each, when the node answering is up. */
async function loadOptions() {
  if (optionsBusy || Date.now() - optionsLastTry < 3000) return;
  const o = store.options;
  const alive = (n) => ["IDLE", "RUNNING"].includes(summaryStatus(n));
  const jobs = [];
  if (!o.modality && alive("ML_MODEL_METADATA")) {
    jobs.push(api.config("ML_MODEL_METADATA", "modality").then((r) => {
      if (!r.success) throw new Error(r.configuration.error || "modality request refused");
      fillSelect($("#f-modality"), splitList(r.configuration.modalities));
      fillSelect($("#f-goal"), splitList(r.configuration.goals));
      o.modality = true;
    }));
  }
  if (!o.inout && alive("ML_MODEL_METADATA")) {
    jobs.push(api.config("ML_MODEL_METADATA", "in_out_modalities").then((r) => {
      if (!r.success) throw new Error(r.configuration.error || "in_out_modalities request refused");
      fillDatalist($("#dl-inputs"), splitList(r.configuration.inputs));
      fillDatalist($("#dl-outputs"), splitList(r.configuration.outputs));
      o.inout = true;
    }));
  }
  if (!o.hardwares && alive("HW_RESOURCES")) {
    jobs.push(api.config("HW_RESOURCES", "hardwares").then((r) => {
      if (!r.success) throw new Error(r.configuration.error || "hardwares request refused");
      fillSelect($("#f-hardware_required"), splitList(r.configuration.hardwares), { keep: 2 });
      o.hardwares = true;
    }));
  }
  if (!o.regions && alive("CARBON_FOOTPRINT")) {
    jobs.push(api.config("CARBON_FOOTPRINT", "regions").then((r) => {
      if (!r.success) throw new Error(r.configuration.error || "regions request refused");
      store.regions = Array.isArray(r.configuration.entries) ? r.configuration.entries : [];
      const continents = [...new Set(store.regions.map((e) => e.continent).filter(Boolean))].sort();
      fillSelect($("#f-geo_location_continent"), continents);
      fillRegions();
      o.regions = true;
    }));
  }
  if (!jobs.length) return;
  optionsBusy = true;
  optionsLastTry = Date.now();
  const results = await Promise.allSettled(jobs);
  optionsBusy = false;
  for (const r of results) {
    if (r.status !== "rejected") continue;
    console.warn("sustainml dashboard: option list (retried when a node reports)", r.reason);
    if (r.reason instanceof ApiError && r.reason.status === 401) reportError("Form lists", r.reason);
  }
}

function fillRegions() {
  const continent = $("#f-geo_location_continent").value;
  const rows = store.regions.filter((e) => !continent || e.continent === continent)
    .sort((a, b) => String(a.name).localeCompare(String(b.name)));
  const select = $("#f-geo_location_region");
  const labels = {};
  for (const e of rows) labels[e.code] = `${e.name} (${e.code}) — ${withUnit(e.carbon_intensity, UNITS.carbon_intensity)}`;
  fillSelect(select, rows.map((e) => e.code), { labels });
}

async function onModalityChange() {
  const modality = $("#f-modality").value;
  const metric = $("#f-metric");
  try {
    if (!modality) {
      fillSelect(metric, []);
      const r = await api.config("ML_MODEL_METADATA", "modality");
      if (r.success) fillSelect($("#f-goal"), splitList(r.configuration.goals));
      return;
    }
    const r = await api.config("ML_MODEL_METADATA", `metrics, cover_tag: ${modality}`);
    if (!r.success) throw new Error(r.configuration.error || "metrics request refused");
    fillSelect(metric, splitList(r.configuration.metrics));
    if (r.configuration.goals) fillSelect($("#f-goal"), splitList(r.configuration.goals));
  } catch (err) {
    reportError(`Metrics for ${modality || "every modality"}`, err);
  }
  onGoalChange();
}

async function onGoalChange() {
  const goal = $("#f-goal").value;
  if (!goal) {
    fillDatalist($("#dl-models"), []);
    return;
  }
  const hw = $("#f-hardware_required").value;
  const family = $("#f-type").value;
  const parts = [goal];
  if (hw && hw !== "auto") parts.push(hw);
  if (family) {
    if (parts.length === 1) parts.push("");
    parts.push(family);
  }
  try {
    const r = await api.config("ML_MODEL", `model_from_goal, ${parts.join(", ")}`);
    fillDatalist($("#dl-models"), r.success ? splitList(r.configuration.models) : []);
  } catch (err) {
    console.warn("sustainml dashboard: model list", err);
  }
}

// ----------------------------------------------------------------------------------------- the form

const fieldEl = (name) => document.getElementById(`f-${name}`);

function clearFieldErrors() {
  for (const input of $$("#problem-form [aria-invalid]")) input.removeAttribute("aria-invalid");
  for (const p of $$("#problem-form .error-text")) {
    p.hidden = true;
    p.textContent = "";
  }
  const box = $("#form-errors");
  box.hidden = true;
  clear(box);
}

function showFieldError(err) {
  const box = $("#form-errors");
  box.hidden = false;
  clear(box).append(el("p", {}, el("strong", {}, err.status === 422 ? "The input was refused: " : "Submission failed: "), err.message));
  const input = err.field ? fieldEl(err.field) : null;
  if (input) {
    input.setAttribute("aria-invalid", "true");
    const text = document.getElementById(`e-${err.field}`);
    if (text) {
      text.textContent = err.message;
      text.hidden = false;
      input.setAttribute("aria-describedby", text.id);
    }
    const details = input.closest("details");
    if (details) details.open = true;
    input.focus();
  } else {
    box.setAttribute("tabindex", "-1");
    box.focus();
  }
}

function numberOrUndefined(input) {
  const raw = input.value.trim();
  if (raw === "") return undefined;
  const v = Number(raw);
  return Number.isFinite(v) ? v : raw; // the API names the field when it is not a number
}

/** The UserInput the form describes (empty fields left out, so iterations inherit them). */
function readForm() {
  const f = (n) => fieldEl(n);
  const body = {
    modality: f("modality").value,
    problem_short_description: f("problem_short_description").value.trim(),
    problem_definition: f("problem_definition").value.trim(),
    inputs: f("inputs").value.split(/\s+/).filter(Boolean),
    outputs: f("outputs").value.split(/\s+/).filter(Boolean),
    optimize_carbon_footprint_manual: f("optimize_carbon_footprint_manual").checked,
    optimize_carbon_footprint_auto: f("optimize_carbon_footprint_auto").checked,
    geo_location_continent: f("geo_location_continent").value,
    geo_location_region: f("geo_location_region").value,
  };
  for (const n of ["minimum_samples", "maximum_samples", "desired_carbon_footprint"]) {
    const v = numberOrUndefined(f(n));
    if (v !== undefined) body[n] = v;
  }
  const extra = {};
  for (const n of EXTRA_FIELDS) {
    const input = f(n);
    if (!input) continue;
    if (NUMBER_EXTRA.has(n)) {
      const v = numberOrUndefined(input);
      if (v !== undefined) extra[n] = v;
    } else if (input.value.trim()) {
      extra[n] = input.value.trim();
    }
  }
  if (extra.type) extra.model_family = extra.type;
  if (extra.model_selected) extra.num_outputs = 1; // a chosen model gives one proposal (as upstream)
  if (store.datasetPath) extra.dataset_path = store.datasetPath;
  body.extra_data = extra;
  return body;
}

function resetForm() {
  $("#problem-form").reset();
  store.datasetPath = "";
  $("#dataset-status").textContent = "";
  setIterateFrom(null);
  clearFieldErrors();
  syncModelSelection();
}

/** Put a stored UserInput into the form. */
function fillForm(input) {
  resetForm();
  const f = (n) => fieldEl(n);
  ensureOption(f("modality"), input.modality || "");
  f("problem_short_description").value = input.problem_short_description || "";
  f("problem_definition").value = input.problem_definition || "";
  f("inputs").value = (input.inputs || []).join(" ");
  f("outputs").value = (input.outputs || []).join(" ");
  for (const n of ["minimum_samples", "maximum_samples", "desired_carbon_footprint"]) {
    f(n).value = input[n] ? String(input[n]) : "";
  }
  f("optimize_carbon_footprint_manual").checked = Boolean(input.optimize_carbon_footprint_manual);
  f("optimize_carbon_footprint_auto").checked = Boolean(input.optimize_carbon_footprint_auto);
  ensureOption(f("geo_location_continent"), input.geo_location_continent || "");
  fillRegions();
  ensureOption(f("geo_location_region"), input.geo_location_region || "");
  const extra = input.extra_data || {};
  for (const n of EXTRA_FIELDS) {
    const node = f(n);
    if (!node) continue;
    let v = extra[n];
    if (Array.isArray(v)) v = n === "hardware_required" ? v[0] : v.join(", ");
    if (v === undefined || v === null) v = n === "num_outputs" ? "1" : "";
    if (node.tagName === "SELECT") ensureOption(node, String(v));
    else node.value = String(v);
  }
  store.datasetPath = extra.dataset_path ? String(extra.dataset_path) : "";
  if (store.datasetPath) $("#dataset-status").textContent = `Dataset: ${store.datasetPath}`;
  syncModelSelection();
}

function syncModelSelection() {
  const chosen = fieldEl("model_selected").value.trim() !== "";
  const n = fieldEl("num_outputs");
  if (chosen) n.value = "1";
  n.disabled = chosen;
}

function setIterateFrom(base, detail = null) {
  store.iterateFrom = base;
  const banner = $("#iterate-banner");
  banner.hidden = !base;
  $("#submit-button").textContent = base ? `Submit iteration of problem ${base.p}` : "Submit problem";
  if (!base) return;
  $("#iterate-title").textContent = `Re-iterating from problem ${base.p}, iteration ${base.i}`;
  const s = summaryOf(detail || {});
  kv($("#previous-results"), [
    ["Previous iteration", `${base.i}`],
    ["Problem kind", s.goal || "–"],
    ["Suggested model", s.model || "–"],
    ["Suggested hardware", s.hardware || "–"],
    ["Power consumption", withUnit(s.power, UNITS.power_consumption), exact(s.power, UNITS.power_consumption)],
    ["Carbon footprint", withUnit(s.carbon, UNITS.carbon_footprint), exact(s.carbon, UNITS.carbon_footprint)],
    ["Carbon intensity", withUnit(s.intensity, UNITS.carbon_intensity), exact(s.intensity, UNITS.carbon_intensity)],
  ]);
}

async function onSubmit(ev) {
  ev.preventDefault();
  clearFieldErrors();
  hideBanner();
  const button = $("#submit-button");
  button.disabled = true;
  try {
    const body = readForm();
    if (!store.iterateFrom && !body.problem_short_description && !body.problem_definition && !store.datasetPath) {
      // Nothing to work on: refused here (the server refuses it too), so no task fails for it.
      showFieldError({ status: 422, field: "problem_short_description",
        message: "Describe the problem first (the description is empty), e.g. \"detect defects in photos of welded seams\"." });
      return;
    }
    let id;
    if (store.iterateFrom) {
      id = await api.iterate(store.iterateFrom.p, store.iterateFrom.i, body);
    } else {
      id = await api.submit({ ...body, previous_iteration: 0 });
    }
    const p = id.problem_id;
    const i = id.iteration_id;
    store.tasks.set(key(p, i), { task_id: id, state: "queued", problem_short_description: body.problem_short_description });
    logEvent(`Submitted task ${p}.${i}`);
    followTask(p, i);
    if (store.iterateFrom) setIterateFrom(null);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 422 || err.status === 400 || err.status === 404)) showFieldError(err);
    else reportError("Submit", err);
  } finally {
    button.disabled = false;
  }
}

async function onDatasetUpload() {
  const input = $("#f-dataset");
  const status = $("#dataset-status");
  const file = input.files && input.files[0];
  status.classList.remove("error");
  if (!file) {
    status.textContent = "Choose a file first.";
    status.classList.add("error");
    input.focus();
    return;
  }
  status.textContent = `Uploading ${file.name}…`;
  try {
    const reply = await api.uploadDataset(file);
    store.datasetPath = reply.path;
    if (!reply.profile) {
      status.textContent = `Stored as ${reply.name}, but not profiled: ${reply.profileError || "no profile returned"}`;
      status.classList.add("error");
      return;
    }
    const prof = reply.profile;
    const join = (v, sep) => (Array.isArray(v) ? v.join(sep) : String(v || ""));
    fieldEl("dataset_metadata_description").value = join(prof.description, " ");
    fieldEl("dataset_metadata_topic").value = join(prof.topic, " ");
    fieldEl("dataset_metadata_keywords").value = join(prof.keywords, ", ");
    fieldEl("dataset_metadata_applications").value = join(prof.applications, "; ");
    fieldEl("dataset_metadata_profile").value = join(prof.profile, " ");
    $("#dataset-details").open = true;
    const shape = prof.rows !== undefined ? ` — ${num(prof.rows)} rows × ${num(prof.column_count ?? (prof.columns || []).length)} columns` : "";
    status.textContent = `Profiled ${reply.name}${shape}${prof.modality ? `, ${prof.modality} data` : ""}.`;
  } catch (err) {
    status.textContent = `Upload failed: ${err.message}`;
    status.classList.add("error");
    console.error("sustainml dashboard: dataset upload", err);
  }
}

// ---------------------------------------------------------------------------------- live progress

function followTask(p, i) {
  store.follow = { p, i };
  store.followStart = Date.now();
  if (!store.live.has(key(p, i))) store.live.set(key(p, i), {});
  renderProgress();
  syncFollowed();
}

/** Re-read the followed task (on follow, on reconnect, and as a fallback when events are down). */
let syncing = false;

async function syncFollowed() {
  if (!store.follow || syncing) return;
  const { p, i } = store.follow;
  syncing = true;
  try {
    const d = await api.getTask(p, i);
    const live = store.live.get(key(p, i)) || {};
    for (const n of PIPELINE) if (d[n] && !live[n]) live[n] = { state: "done" };
    store.live.set(key(p, i), live);
    mergeTask(d);
    if (TERMINAL.has(d.state)) store.details.set(key(p, i), d);
    renderProgress();
  } catch (err) {
    reportError(`Task ${p}.${i}`, err);
  } finally {
    syncing = false;
  }
}

function mergeTask(t) {
  const { p, i } = tid(t.task_id);
  const k = key(p, i);
  const old = store.tasks.get(k) || {};
  // A finished task never goes back (a slow, older answer may arrive after a newer one).
  const state = TERMINAL.has(old.state) && !TERMINAL.has(t.state) ? old.state : (t.state ?? old.state);
  const row = { ...old, task_id: t.task_id, state, error: t.error ?? old.error ?? null };
  if (t.current_stage !== undefined) row.current_stage = t.current_stage;
  if (t.stage !== undefined) row.current_stage = t.stage;
  if (t.note !== undefined) row.note = t.note;
  // The list's figures: kept until the task moves on (a stage output, a new state), and never
  // taken from a slow answer older than the finished state already known.
  const stale = TERMINAL.has(old.state) && !TERMINAL.has(t.state);
  if (t.summary && !stale) row.summary = t.summary;
  else if (!t.summary && (t.completed || (t.state && t.state !== old.state))) delete row.summary;
  if (t.problem_short_description) row.problem_short_description = t.problem_short_description;
  if (t.USER_INPUT) row.problem_short_description = t.USER_INPUT.problem_short_description;
  store.tasks.set(k, row);
  return row;
}

function renderProgress() {
  const list = clear($("#stages"));
  const stopButton = $("#stop-button");
  const open = $("#progress-open");
  if (!store.follow) {
    for (const n of PIPELINE) {
      list.append(el("li", { class: "stage waiting", dataset: { node: n, state: "waiting" } },
        el("span", { class: "stage-icon", "aria-hidden": "true" }), el("span", { class: "stage-name" }, NODE_LABELS[n]),
        el("span", { class: "stage-state" }, "–")));
    }
    stopButton.disabled = true;
    return;
  }
  const { p, i } = store.follow;
  const row = store.tasks.get(key(p, i)) || {};
  const live = store.live.get(key(p, i)) || {};
  const state = row.state || "queued";
  const desc = row.problem_short_description ? ` — ${row.problem_short_description}` : "";
  $("#progress-title").textContent = `Problem ${p}, iteration ${i}${desc}`;
  $("#progress-title").classList.remove("muted");
  let failedAt = null;
  if (state === "failed" && row.error) failedAt = PIPELINE.find((n) => String(row.error).startsWith(n)) || null;
  for (const n of PIPELINE) {
    let s = "waiting";
    let text = "waiting";
    if (live[n]) {
      s = live[n].state === "failed" ? "failed" : "done";
      text = s === "failed" ? "failed" : "done";
      if (live[n].ms !== undefined) text += ` at ${num(live[n].ms)} ms`;
    } else if (n === failedAt) {
      s = "failed";
      text = "failed";
    } else if (TERMINAL.has(state)) {
      s = "skipped";
      text = state === "cancelled" ? "cancelled" : "skipped";
    } else if (row.current_stage === n || (!row.current_stage && n === PIPELINE.find((x) => !live[x]))) {
      s = "running";
      text = "working…";
    }
    list.append(el("li", { class: `stage ${s}`, dataset: { node: n, state: s } },
      el("span", { class: "stage-icon", "aria-hidden": "true" }),
      el("span", { class: "stage-name" }, NODE_LABELS[n]),
      el("span", { class: "stage-state" }, text)));
  }
  const stateText = $("#progress-state");
  stateText.dataset.state = state;
  if (TERMINAL.has(state)) {
    stateText.textContent = `Task ${p}.${i} ${state}${row.error ? `: ${row.error}` : ""}${row.note ? ` — ${row.note}` : ""}`;
    open.hidden = false;
    open.href = `#task/${p}/${i}`;
  } else {
    stateText.textContent = "Working on the task, please wait…";
    open.hidden = true;
  }
  stopButton.disabled = TERMINAL.has(state);
}

async function onStop() {
  if (!store.follow) return;
  const { p, i } = store.follow;
  const button = $("#stop-button");
  button.disabled = true;
  try {
    const reply = await api.cancel(p, i);
    mergeTask({ task_id: reply.task_id || { problem_id: p, iteration_id: i }, state: reply.state });
    logEvent(`Cancel of task ${p}.${i}: ${reply.state}`);
    renderProgress();
  } catch (err) {
    reportError(`Cancel ${p}.${i}`, err);
    button.disabled = false;
  }
}

function onTaskEvent(data) {
  const { p, i } = tid(data.task_id || {});
  if (!p || !i) return;
  const k = key(p, i);
  const isNew = !store.tasks.has(k);
  const row = mergeTask(data);
  const live = store.live.get(k) || {};
  if (data.completed) {
    const start = live._start || (data.at ? Date.parse(data.at) : Date.now());
    live[data.completed] = {
      state: data.state === "failed" && String(data.error || "").startsWith(data.completed) ? "failed" : "done",
      ms: data.at && live._start ? Date.parse(data.at) - live._start : undefined,
    };
    if (!live._start) live._start = start;
    logEvent(`Output received. Task ${p}.${i}, node ${data.completed}`);
  } else {
    if (!live._start && data.at) live._start = Date.parse(data.at);
    logEvent(`Task ${p}.${i}: ${data.state}${data.error ? ` (${data.error})` : ""}`);
  }
  store.live.set(k, live);
  // A newer iteration of the problem we follow (automatic iterations): follow it.
  if (store.follow && p === store.follow.p && i > store.follow.i && !TERMINAL.has(row.state)) followTask(p, i);
  if (store.follow && p === store.follow.p && i === store.follow.i) renderProgress();
  if (TERMINAL.has(row.state)) store.details.delete(k);
  if (!$("#view-results").hidden) {
    if (isNew) renderTabs();
    if (store.activeProblem === p && (isNew || TERMINAL.has(row.state))) refreshProblem(p);
  }
}

function startEvents() {
  api.events((kind, data) => {
    if (kind === "snapshot") applyNodes(data);
    else if (kind === "node") applyNodeEvent(data);
    else if (kind === "task") onTaskEvent(data);
  }, (open) => {
    const reopened = open && !store.sseOpen && store.sseEverOpened;
    store.sseOpen = open;
    if (open) store.sseEverOpened = true;
    const conn = $("#conn");
    conn.className = `conn ${open ? "up" : "down"}`;
    $("#conn-text").textContent = open ? "live" : "reconnecting…";
    if (reopened) {
      syncFollowed(); // events are not replayed after a reconnect
      refreshNodes();
      if ($("#banner-text").textContent.includes("cannot reach the API")) hideBanner();
    }
  });
  // Fallbacks: node ages keep moving, and a followed task progresses even without events.
  setInterval(() => {
    if (!store.sseOpen || !$("#view-nodes").hidden) refreshNodes();
  }, 3000);
  setInterval(() => {
    if (!store.sseOpen && store.follow) {
      const row = store.tasks.get(key(store.follow.p, store.follow.i));
      if (!row || !TERMINAL.has(row.state)) syncFollowed();
    }
  }, 1500);
}

// ---------------------------------------------------------------------------------------- results

async function loadTasks() {
  // Every task, for the problem tabs: no figures needed (each problem's table asks for its own).
  const rows = await api.listTasks({ summary: false });
  for (const t of rows) mergeTask(t);
}

function problems() {
  const ps = new Set();
  for (const row of store.tasks.values()) ps.add(Number(row.task_id.problem_id));
  return [...ps].sort((a, b) => a - b);
}

function iterationsOf(p) {
  return [...store.tasks.values()].filter((r) => Number(r.task_id.problem_id) === p)
    .sort((a, b) => a.task_id.iteration_id - b.task_id.iteration_id);
}

function renderTabs() {
  const tabs = clear($("#problem-tabs"));
  const ps = problems();
  $("#results-empty").hidden = ps.length > 0;
  $("#problem-panel").hidden = !ps.length;
  for (const p of ps) {
    const selected = p === store.activeProblem;
    const description = descriptionOf(p);
    tabs.append(el("button", {
      type: "button", role: "tab", id: `tab-${p}`, "aria-selected": selected ? "true" : "false",
      "aria-controls": "problem-panel", tabindex: selected ? "0" : "-1", dataset: { problem: String(p) },
      title: description ? `Problem ${p}: ${description}` : `Problem ${p}`,
    }, el("span", { class: "tab-id" }, `Problem ${p}`),
    description ? el("span", { class: "tab-description" }, shorten(description, 32)) : null));
  }
  $("#problem-panel").setAttribute("aria-labelledby", `tab-${store.activeProblem}`);
}

/** The description of problem p (its first known iteration's, which later ones inherit). */
function descriptionOf(p) {
  for (const row of iterationsOf(p)) {
    const d = row.USER_INPUT ? row.USER_INPUT.problem_short_description : row.problem_short_description;
    if (d) return String(d);
  }
  return "";
}

function shorten(text, n) {
  return text.length > n ? `${text.slice(0, n - 1).trimEnd()}…` : text;
}

async function showResults(p) {
  try {
    await loadTasks();
  } catch (err) {
    reportError("Tasks", err);
  }
  const ps = problems();
  store.activeProblem = p && ps.includes(p) ? p : (store.activeProblem && ps.includes(store.activeProblem) ? store.activeProblem : ps[ps.length - 1] || null);
  renderTabs();
  $("#compare-panel").hidden = true;
  $("#detail-panel").hidden = true;
  if (store.activeProblem) await refreshProblem(store.activeProblem);
}

async function detailOf(p, i, { fresh = false } = {}) {
  const k = key(p, i);
  const cached = store.details.get(k);
  if (cached && !fresh && TERMINAL.has(cached.state)) return cached;
  const d = await api.getTask(p, i);
  store.details.set(k, d);
  mergeTask(d);
  return d;
}

async function refreshProblem(p) {
  // One request for the whole table: the list carries each iteration's figures.
  let rows;
  try {
    rows = await api.listTasks({ problemId: p });
  } catch (err) {
    reportError(`Problem ${p}`, err);
    return;
  }
  for (const r of rows) mergeTask(r);
  if (store.activeProblem !== p) return;
  renderIterations(p, iterationsOf(p));
}

function renderIterations(p, details) {
  const body = clear($("#iterations-table tbody"));
  const first = details[0] || null;
  const description = first ? (first.USER_INPUT ? first.USER_INPUT.problem_short_description : first.problem_short_description) : "";
  $("#iterations-caption").textContent = `Problem ${p}${description ? ` — ${description}` : ""}: ${details.length} iteration${details.length === 1 ? "" : "s"}`;
  const sel = store.selected.get(p) || new Set();
  for (const d of details) {
    const s = summaryOf(d);
    const canCompare = s.carbon !== null || s.latency !== null;
    const box = el("input", {
      type: "checkbox", id: `cmp-${p}-${s.i}`, "aria-label": `Compare iteration ${s.i}`, disabled: !canCompare,
      dataset: { iteration: String(s.i) },
    });
    box.checked = sel.has(s.i) && canCompare;
    body.append(el("tr", { dataset: { iteration: String(s.i), state: s.state || "" } },
      el("td", {}, box),
      el("th", { scope: "row" }, el("a", { href: `#task/${p}/${s.i}` }, `Iteration ${s.i}`)),
      el("td", {}, ...resultBadges(s)),
      el("td", {}, s.goal || "–"),
      el("td", {}, s.model || "–"),
      el("td", {}, s.hardware || "–"),
      unitCell(s.latency, UNITS.latency),
      unitCell(s.memory, UNITS.memory_footprint_of_ml_model),
      unitCell(s.power, UNITS.power_consumption),
      unitCell(s.energy, UNITS.energy_consumption),
      unitCell(s.carbon, UNITS.carbon_footprint),
      unitCell(s.intensity, UNITS.carbon_intensity),
      el("td", { class: "row-actions" },
        el("button", { type: "button", class: "small secondary", dataset: { action: "reiterate", iteration: String(s.i) }, "aria-label": `Re-iterate from iteration ${s.i}` }, "Re-iterate"))));
  }
  updateCompareButton(p);
}

function updateCompareButton(p) {
  const n = (store.selected.get(p) || new Set()).size;
  const b = $("#compare-button");
  b.disabled = n < 1;
  b.textContent = n ? `Compare selected iterations (${n})` : "Compare selected iterations";
}

async function openDetail(p, i) {
  const panel = $("#detail-panel");
  try {
    const d = await detailOf(p, i, { fresh: true });
    const s = summaryOf(d);
    $("#detail-heading").textContent = `Problem ${p} · iteration ${i}`;
    const problemsFound = problemsOf(d);
    const alert = $("#detail-alert");
    alert.hidden = !problemsFound.length;
    alert.textContent = problemsFound.join(" ");
    const input = d.USER_INPUT || {};
    kv($("#detail-summary"), [
      ["State", el("span", {}, ...resultBadges(s))],
      ["Description", input.problem_short_description || "–"],
      ["Problem (goal)", goalCell(s.goal, clarificationOf(d))],
      ["ML model", s.model || "–"],
      ["Hardware", s.hardware || "–"],
      ["Latency", withUnit(s.latency, UNITS.latency), exact(s.latency, UNITS.latency)],
      ["Memory footprint", withUnit(s.memory, UNITS.memory_footprint_of_ml_model), exact(s.memory, UNITS.memory_footprint_of_ml_model)],
      ["Power consumption", withUnit(s.power, UNITS.power_consumption), exact(s.power, UNITS.power_consumption)],
      ["Energy consumption (training)", withUnit(s.energy, UNITS.energy_consumption), exact(s.energy, UNITS.energy_consumption)],
      ["Carbon footprint (training)", withUnit(s.carbon, UNITS.carbon_footprint), exact(s.carbon, UNITS.carbon_footprint)],
      ["Carbon intensity", withUnit(s.intensity, UNITS.carbon_intensity), exact(s.intensity, UNITS.carbon_intensity)],
      ["Submitted", when(d.created_at)],
      ["Finished", when(d.finished_at)],
      ...(d.note ? [["Note", d.note]] : []),
    ]);
    clear($("#explain")).append(...explanations(d));
    const raw = clear($("#raw-outputs"));
    for (const n of ["USER_INPUT", ...PIPELINE]) {
      const rec = d[n];
      raw.append(el("details", { class: "raw-node", dataset: { node: n } },
        el("summary", {}, n, rec ? "" : " (no output)"),
        rec ? el("pre", { tabindex: "0" }, JSON.stringify(rec, null, 2)) : null));
    }
    $("#export-json").href = api.exportUrl(p, i, "json");
    $("#export-json").setAttribute("download", `sustainml-task-${p}-${i}.json`);
    $("#export-csv").href = api.exportUrl(p, i, "csv");
    $("#export-csv").setAttribute("download", `sustainml-task-${p}-${i}.csv`);
    $("#detail-reiterate").dataset.problem = String(p);
    $("#detail-reiterate").dataset.iteration = String(i);
    panel.hidden = false;
    $("#compare-panel").hidden = true;
    panel.scrollIntoView({ block: "start" });
  } catch (err) {
    reportError(`Task ${p}.${i}`, err);
  }
}

function goalCell(goal, question) {
  if (!question) return goal || "–";
  return el("span", {}, goal || "–", " ", el("span", { class: "clarify", role: "note" }, el("strong", {}, "Needs clarification: "), question));
}

async function reiterate(p, i) {
  try {
    const d = await detailOf(p, i);
    fillForm(d.USER_INPUT || {});
    setIterateFrom({ p, i }, d);
    location.hash = "#problem";
    fieldEl("problem_short_description").focus();
  } catch (err) {
    reportError(`Re-iterate from ${p}.${i}`, err);
  }
}

async function newWithPreviousInput(p) {
  const rows = iterationsOf(p);
  if (!rows.length) return;
  const last = rows[rows.length - 1].task_id.iteration_id;
  try {
    const d = await detailOf(p, last);
    fillForm(d.USER_INPUT || {});
    setIterateFrom(null);
    location.hash = "#problem";
    fieldEl("problem_short_description").focus();
  } catch (err) {
    reportError(`Input of ${p}.${last}`, err);
  }
}

// ------------------------------------------------------------------------------------- comparison

async function openCompare(p) {
  const its = [...(store.selected.get(p) || new Set())].sort((a, b) => a - b);
  if (!its.length) return;
  try {
    // The table's rows carry the figures; a full result only for one the list did not summarise.
    const details = await Promise.all(its.map((i) => {
      const row = store.tasks.get(key(p, i));
      return row && row.summary && TERMINAL.has(row.state) ? row : detailOf(p, i);
    }));
    store.compare = { p, rows: details.map(summaryOf) };
    $("#compare-heading").textContent = `Comparison — problem ${p}, iterations ${its.join(", ")}`;
    $("#compare-panel").hidden = false;
    $("#detail-panel").hidden = true;
    renderCompareTable();
    renderChart();
    $("#compare-panel").scrollIntoView({ block: "start" });
  } catch (err) {
    reportError("Comparison", err);
  }
}

function renderCompareTable() {
  const { rows } = store.compare;
  const head = clear($("#compare-table thead"));
  head.append(el("tr", {}, el("th", { scope: "col" }, "Iteration"), el("th", { scope: "col" }, "ML model"), el("th", { scope: "col" }, "Hardware"),
    METRICS.map((m) => el("th", { scope: "col", class: "num" }, m.label))));
  const body = clear($("#compare-table tbody"));
  for (const r of rows) {
    body.append(el("tr", {}, el("th", { scope: "row" }, `Iteration ${r.i}`), el("td", {}, r.model || "–"), el("td", {}, r.hardware || "–"),
      METRICS.map((m) => unitCell(r[m.key], m.unit))));
  }
}

function renderChart() {
  if (!store.compare) return;
  const metric = METRICS.find((m) => m.key === $("#compare-metric").value) || METRICS[4];
  const rows = store.compare.rows;
  const values = rows.map((r) => (r[metric.key] === null ? null : Number(r[metric.key])));
  const max = Math.max(0, ...values.filter((v) => v !== null).map(Math.abs));
  const scale = scaleFor(metric.unit, max);
  const data = values.map((v) => (v === null ? null : v * scale.factor));
  // Two-line axis labels: the iteration, then what it proposes.
  const labels = rows.map((r) => [`Iteration ${r.i}`, `${r.model || "no model"} on ${r.hardware || "–"}`]);
  const title = `${metric.label} [${scale.unit}]`;
  const canvas = $("#compare-chart");
  canvas.setAttribute("aria-label", `${title}: ${rows.map((r, k) => `iteration ${r.i} ${data[k] === null ? "no value" : `${num(data[k])} ${scale.unit}`}`).join(", ")}`);
  if (typeof window.Chart !== "function") {
    showBanner("The chart library did not load; the table below has the same figures.", "warn");
    return;
  }
  if (store.chart) store.chart.destroy();
  store.chart = new window.Chart(canvas, {
    type: "bar",
    data: {
      labels,
      datasets: [{ label: title, data, backgroundColor: rows.map((_, k) => CHART_COLOURS[k % CHART_COLOURS.length]) }],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: {
        legend: { display: false },
        title: { display: true, text: title, font: { size: 15 } },
        tooltip: { callbacks: { label: (ctx) => `${num(ctx.parsed.y)} ${scale.unit} (${rows[ctx.dataIndex].model || "no model"} on ${rows[ctx.dataIndex].hardware || "–"})` } },
      },
      scales: { y: { beginAtZero: true, title: { display: true, text: scale.unit } } },
    },
  });
}

// ------------------------------------------------------------------------------------------ wiring

function wire() {
  window.addEventListener("hashchange", route);
  $("#problem-form").addEventListener("submit", onSubmit);
  $("#reset-button").addEventListener("click", () => {
    resetForm();
    fieldEl("problem_short_description").focus();
  });
  $("#iterate-clear").addEventListener("click", () => setIterateFrom(null));
  $("#f-modality").addEventListener("change", onModalityChange);
  $("#f-goal").addEventListener("change", onGoalChange);
  $("#f-type").addEventListener("change", onGoalChange);
  $("#f-hardware_required").addEventListener("change", onGoalChange);
  $("#f-geo_location_continent").addEventListener("change", fillRegions);
  $("#f-model_selected").addEventListener("input", syncModelSelection);
  $("#dataset-upload").addEventListener("click", onDatasetUpload);
  $("#stop-button").addEventListener("click", onStop);
  $("#banner-close").addEventListener("click", hideBanner);
  $("#refresh-results").addEventListener("click", () => showResults(store.activeProblem));
  $("#refresh-nodes").addEventListener("click", refreshNodes);

  const tabs = $("#problem-tabs");
  tabs.addEventListener("click", (ev) => {
    const tab = ev.target.closest("[role=tab]");
    if (tab) location.hash = `#results/${tab.dataset.problem}`;
  });
  tabs.addEventListener("keydown", (ev) => {
    const all = $$("[role=tab]", tabs);
    const at = all.indexOf(document.activeElement);
    if (at < 0) return;
    let next = null;
    if (ev.key === "ArrowRight") next = all[(at + 1) % all.length];
    else if (ev.key === "ArrowLeft") next = all[(at - 1 + all.length) % all.length];
    else if (ev.key === "Home") next = all[0];
    else if (ev.key === "End") next = all[all.length - 1];
    if (!next) return;
    ev.preventDefault();
    location.hash = `#results/${next.dataset.problem}`;
    requestAnimationFrame(() => { const t = document.getElementById(next.id); if (t) t.focus(); });
  });

  $("#iterations-table").addEventListener("change", (ev) => {
    const box = ev.target.closest("input[type=checkbox]");
    if (!box) return;
    const p = store.activeProblem;
    const set = store.selected.get(p) || new Set();
    const i = Number(box.dataset.iteration);
    if (box.checked) set.add(i);
    else set.delete(i);
    store.selected.set(p, set);
    updateCompareButton(p);
  });
  $("#iterations-table").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-action=reiterate]");
    if (b) reiterate(store.activeProblem, Number(b.dataset.iteration));
  });
  $("#compare-button").addEventListener("click", () => {
    const p = store.activeProblem;
    const its = [...(store.selected.get(p) || [])].sort((a, b) => a - b);
    const target = `#compare/${p}/${its.join(",")}`;
    if (location.hash === target) openCompare(p);
    else location.hash = target;
  });
  $("#new-with-input").addEventListener("click", () => newWithPreviousInput(store.activeProblem));
  $("#detail-reiterate").addEventListener("click", (ev) => {
    const b = ev.currentTarget;
    reiterate(Number(b.dataset.problem), Number(b.dataset.iteration));
  });

  const metric = $("#compare-metric");
  // No unit here: the chart title gives it, scaled to the values shown (mgCO2e, kWh, ...).
  for (const m of METRICS) metric.append(el("option", { value: m.key }, m.label));
  metric.value = "carbon";
  metric.addEventListener("change", renderChart);

  const dialog = $("#token-dialog");
  $("#token-button").addEventListener("click", () => {
    $("#token-input").value = getToken();
    dialog.showModal();
  });
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "save") {
      setToken($("#token-input").value.trim());
      store.options = { modality: false, hardwares: false, regions: false, inout: false };
      optionsLastTry = 0;
      loadOptions();
    }
  });
}

function main() {
  wire();
  renderNodeStrip();
  renderProgress();
  route();
  refreshNodes();
  startEvents();
}

main();
