// The explanation panels of one iteration, built from what the stage outputs' extra_data carry:
// why this goal, which requirements were read, why this model (candidates, exclusions), how the
// hardware figures were estimated, and the carbon breakdown with its assumptions and greener
// alternatives. Every panel is a <details> so the page stays short; the key ones start open.

import { el, table } from "./dom.js";
import { num, percent, withUnit } from "./format.js";

const obj = (v) => (v && typeof v === "object" && !Array.isArray(v) ? v : {});
const arr = (v) => (Array.isArray(v) ? v : []);

function panel(id, title, open, ...body) {
  return el("details", { class: "panel", id, open },
    el("summary", {}, el("h3", {}, title)), el("div", { class: "panel-body" }, ...body));
}

function para(...children) {
  return el("p", {}, ...children);
}

function list(items) {
  return el("ul", {}, items.map((x) => el("li", {}, x)));
}

function goalPanel(meta) {
  if (!meta) return null;
  const extra = obj(meta.extra_data);
  const goal = arr(meta.ml_model_metadata)[0] || extra.goal || "";
  const body = [];
  if (extra.error) body.push(el("p", { class: "alert" }, String(extra.error)));
  body.push(para("Goal: ", el("strong", {}, goal || "none"),
    extra.goal_source ? ` (decided by ${extra.goal_source})` : "",
    extra.confidence !== undefined ? `, confidence ${percent(Number(extra.confidence) * 100)}` : ""));
  if (extra.reason) body.push(para("Why: ", String(extra.reason)));
  if (extra.needs_clarification) {
    const q = extra.needs_clarification;
    const question = typeof q === "string" ? q : (q && q.question) || "";
    body.push(el("p", { class: "warn" }, el("strong", {}, "Needs clarification: "),
      question || "a more specific description (or choosing the goal) would help."));
  }
  const top = arr(extra.top_goals);
  if (top.length) {
    body.push(el("div", { class: "bars", role: "list", "aria-label": "Most likely goals" }, top.map((t) => {
      const share = Math.max(0, Math.min(1, Number(t.score) || 0));
      return el("div", { class: "bar-row", role: "listitem" },
        el("span", { class: "bar-label" }, String(t.goal)),
        el("span", { class: "bar", "aria-hidden": "true" }, el("span", { class: "bar-fill", style: `width:${(share * 100).toFixed(1)}%` })),
        el("span", { class: "bar-value" }, percent(share * 100)));
    })));
  }
  const rows = [];
  if (extra.modality) rows.push(`Input modality: ${extra.modality}${extra.modality_source ? ` (from ${extra.modality_source})` : ""}`);
  if (arr(meta.keywords).length) rows.push(`Key phrases: ${arr(meta.keywords).join(", ")}`);
  if (arr(extra.model_restrains).length) rows.push(`Models excluded by earlier iterations: ${arr(extra.model_restrains).join(", ")}`);
  if (extra.model_selected) rows.push(`Model chosen by the user: ${extra.model_selected}`);
  if (rows.length) body.push(list(rows));
  return panel("explain-goal", "Why this goal", true, ...body);
}

function requirementsPanel(app, hwc) {
  if (!app && !hwc) return null;
  const body = [];
  const reqs = arr(app && app.app_requirements);
  const extra = obj(app && app.extra_data);
  const evidence = obj(extra.evidence);
  if (reqs.length) {
    body.push(table("Requirements read from the description", ["requirement", "from the text"],
      reqs.map((r) => {
        const key = String(r).split("=")[0];
        const ev = evidence[key];
        const shown = ev === undefined ? "" : (typeof ev === "string" ? `“${ev}”` : JSON.stringify(ev));
        return [String(r), shown];
      })));
  } else if (app) {
    body.push(para("No explicit requirement (latency, deployment, privacy, budget…) found in the description."));
  }
  for (const c of arr(extra.contradictions)) body.push(el("p", { class: "warn" }, `Contradiction: ${typeof c === "string" ? c : JSON.stringify(c)}`));
  if (hwc) {
    const src = obj(obj(hwc.extra_data).constraint_sources);
    body.push(list([
      `Hardware required: ${arr(hwc.hardware_required).join(", ") || "–"}${src.hardware_required ? ` — ${src.hardware_required}` : ""}`,
      `Max memory footprint: ${withUnit(hwc.max_memory_footprint, "MB")}${src.max_memory_footprint ? ` — ${src.max_memory_footprint}` : ""}`,
    ]));
  }
  return panel("explain-requirements", "Requirements and constraints", false, ...body);
}

function modelPanel(model) {
  if (!model) return null;
  const extra = obj(model.extra_data);
  const body = [];
  if (model.model === "NO_MODEL" || extra.error) {
    body.push(el("p", { class: "alert" }, String(extra.error || "No suitable model found for this task.")));
  }
  body.push(para("Model: ", el("strong", {}, model.model || "–"),
    extra.selected_by ? ` (selected by ${String(extra.selected_by).replace("_", " ")})` : ""));
  if (extra.ranking_rule) body.push(para(el("span", { class: "muted" }, "Ranking: "), String(extra.ranking_rule)));
  const cands = arr(extra.candidates);
  if (cands.length) {
    body.push(table(`Best candidates (${extra.candidates_feasible ?? cands.length} met every constraint)`,
      ["#", "model", "score", "quality", "energy / inference", "on", "why"],
      cands.map((c) => {
        const q = obj(c.quality);
        return [String(c.rank ?? ""), String(c.name), num(c.score),
          q.metric ? `${q.metric} ${num(q.value)}` : "–",
          withUnit(c.energy_per_inference_j, "J"), String(c.device || ""), String(c.why || "")];
      }), { numeric: [0, 2, 4] }));
  }
  const excluded = arr(extra.excluded);
  if (excluded.length) {
    body.push(table(`Excluded candidates (${excluded.length})`, ["model", "constraint", "reason"],
      excluded.map((x) => [String(x.model ?? x.name ?? ""), String(x.constraint ?? ""), String(x.reason ?? "")])));
  } else if (cands.length) {
    body.push(para("No candidate was excluded by a constraint."));
  }
  const limits = obj(extra.limits);
  const shownLimits = Object.entries(limits).filter(([, v]) => v !== null && v !== "" && !(typeof v === "object" && !Object.keys(v || {}).length));
  if (shownLimits.length) {
    body.push(para(el("span", { class: "muted" }, "Limits applied: "),
      shownLimits.map(([k, v]) => `${k.replaceAll("_", " ")} = ${typeof v === "object" ? JSON.stringify(v) : v}`).join("; ")));
  }
  for (const w of arr(extra.warnings)) body.push(el("p", { class: "warn" }, String(w)));
  return panel("explain-model", "Why this model", true, ...body);
}

function hardwarePanel(hw) {
  if (!hw) return null;
  const extra = obj(hw.extra_data);
  const body = [];
  if (extra.error) body.push(el("p", { class: "alert" }, String(extra.error)));
  body.push(para("Hardware: ", el("strong", {}, hw.hw_description || "–"),
    extra.device ? ` — ${extra.device}` : "", extra.selection ? ` (chosen by ${String(extra.selection).replaceAll("_", " ")})` : ""));
  const roof = obj(extra.roofline);
  const power = obj(extra.power);
  const mem = obj(extra.memory);
  const rows = [];
  rows.push(`Latency ${withUnit(hw.latency, "s")}${roof.method ? ` by ${roof.method}` : ""}${roof.bound ? `, ${roof.bound}-bound` : ""}`
    + (roof.compute_bound_s !== undefined ? ` (compute ${withUnit(roof.compute_bound_s, "s")}, memory ${withUnit(roof.memory_bound_s, "s")}, per-operator overhead ${withUnit(roof.overhead_s, "s")})` : ""));
  rows.push(`Power ${withUnit(hw.power_consumption, "W")}${power.formula ? ` = ${power.formula}` : ""}`
    + (power.idle_w !== undefined ? ` (idle ${withUnit(power.idle_w, "W")}, TDP ${withUnit(power.tdp_w, "W")}, utilisation ${percent(Number(power.utilisation) * 100)})` : ""));
  if (extra.energy_per_inference_j !== undefined) rows.push(`Energy per inference ${withUnit(extra.energy_per_inference_j, "J")}`);
  rows.push(`Memory ${withUnit(hw.memory_footprint_of_ml_model, "MB")} of ${withUnit(hw.max_hw_memory_footprint, "MB")} on the device`
    + (mem.fits_device === false ? " — does NOT fit" : "")
    + (mem.within_max_memory_footprint === false ? ` — over the limit of ${withUnit(mem.max_memory_footprint_mb, "MB")}` : ""));
  const measured = obj(extra.measured);
  if (measured.latency_s !== undefined) rows.push(`Measured on this CPU: ${withUnit(measured.latency_s, "s")}`);
  body.push(list(rows));
  if (extra.constraints_met === false || arr(extra.violations).length) {
    body.push(el("p", { class: "warn" }, `Constraints not met: ${arr(extra.violations).map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join("; ")}`));
  }
  const slow = arr(roof.slowest_ops);
  if (slow.length) {
    body.push(el("details", { class: "sub" }, el("summary", {}, "Slowest operators"),
      table(null, ["operator", "type", "time", "bound"], slow.map((o) => [String(o.name), String(o.op_type), withUnit(o.seconds, "s"), String(o.bound)]), { numeric: [2] })));
  }
  return panel("explain-hardware", "How the hardware figures were estimated", false, ...body);
}

function carbonPanel(co2, note) {
  if (!co2) return null;
  const extra = obj(co2.extra_data);
  const body = [];
  if (extra.error) body.push(el("p", { class: "alert" }, String(extra.error)));
  const training = obj(extra.training);
  const inference = obj(extra.inference);
  const workload = obj(extra.workload);
  const grid = obj(extra.grid);
  body.push(list([
    `Training: ${withUnit(co2.energy_consumption, "Wh")}, ${withUnit(co2.carbon_footprint, "kgCO2e")}`
      + (training.time_s !== undefined ? ` (${withUnit(training.time_s, "s")} on ${training.num_devices ?? 1} device(s))` : ""),
    inference.inferences !== undefined
      ? `Inference: ${withUnit(inference.energy_per_inference_wh, "Wh")} per inference; ${num(inference.inferences)} inferences = ${withUnit(inference.total_energy_wh, "Wh")}, ${withUnit(inference.total_carbon_kg, "kgCO2e")}`
      : null,
    workload.energy_wh !== undefined
      ? `Whole workload: ${withUnit(workload.energy_wh, "Wh")}, ${withUnit(workload.carbon_kg, "kgCO2e")} (training ${percent(workload.training_share_percent)})`
      : null,
    `Grid carbon intensity: ${withUnit(co2.carbon_intensity, "gCO2e/kWh")}${grid.name ? ` (${grid.name}${grid.year ? `, ${grid.year}` : ""}; ${String(grid.source || "").replaceAll("_", " ")})` : ""}`,
  ].filter(Boolean)));
  if (extra.target_kg !== null && extra.target_kg !== undefined) {
    body.push(el("p", { class: extra.meets_target ? "ok" : "warn" },
      `Target ${withUnit(extra.target_kg, "kgCO2e")}: ${extra.meets_target ? "met" : "not met"}`));
  }
  if (note) body.push(el("p", { class: "note" }, `Note: ${note}`));
  const steps = arr(extra.breakdown);
  if (steps.length) {
    body.push(el("h4", {}, "Breakdown (check it by hand)"), el("ol", { class: "breakdown" }, steps.map((s) => el("li", {}, el("code", {}, String(s))))));
  }
  const assumptions = Object.entries(obj(extra.assumptions));
  if (assumptions.length) {
    body.push(el("details", { class: "sub", id: "assumptions" }, el("summary", {}, `Assumptions (${assumptions.length})`),
      table(null, ["assumption", "value", "source", "reference"], assumptions.map(([name, a]) => {
        const x = obj(a);
        return [name.replaceAll("_", " "), typeof x.value === "number" ? num(x.value) : String(x.value ?? ""), String(x.source ?? ""), String(x.reference ?? "")];
      }), { numeric: [1] })));
  }
  const greener = obj(extra.greener_alternatives);
  const regions = obj(greener.regions);
  if (arr(regions.options).length) {
    body.push(table(`Greener regions (compared with ${regions.scope || "the current one"})`,
      ["region", "carbon intensity", "workload carbon", "saving"],
      arr(regions.options).map((o) => [`${o.name} (${o.region})`, withUnit(o.carbon_intensity, "gCO2e/kWh"), withUnit(o.workload_kg, "kgCO2e"), percent(o.saving_percent)]),
      { numeric: [1, 2, 3] }));
  }
  const hardware = obj(greener.hardware);
  if (arr(hardware.options).length) {
    body.push(table(`Greener hardware (${hardware.scope || ""}, now ${hardware.current || "–"})`,
      ["hardware", "class", "workload energy", "workload carbon", "saving"],
      arr(hardware.options).map((o) => [String(o.hardware), String(o.device_class || ""), withUnit(o.workload_energy_wh, "Wh"), withUnit(o.workload_kg, "kgCO2e"), percent(o.saving_percent)]),
      { numeric: [2, 3, 4] }));
  }
  const next = arr(extra.next_options);
  if (next.length) {
    body.push(para(el("span", { class: "muted" }, "Next options for automatic optimisation: "),
      next.map((o) => (o.kind === "hardware" ? `hardware ${o.hardware} (${withUnit(o.estimated_kg, "kgCO2e")}, saves ${percent(o.saving_percent)})` : `another model than ${o.exclude}`)).join("; ")));
  }
  return panel("explain-carbon", "Carbon footprint: breakdown, assumptions, greener alternatives", true, ...body);
}

/** The explanation panels of a task detail (GET /v1/tasks/{p}/{i}). */
export function explanations(detail) {
  return [
    goalPanel(detail.ML_MODEL_METADATA),
    requirementsPanel(detail.APP_REQUIREMENTS, detail.HW_CONSTRAINTS),
    modelPanel(detail.ML_MODEL),
    hardwarePanel(detail.HW_RESOURCES),
    carbonPanel(detail.CARBON_FOOTPRINT, detail.note),
  ].filter(Boolean);
}
