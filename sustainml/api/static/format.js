// Units and number formatting. UNITS mirrors sustainml.messages.UNITS (a test keeps them equal).

export const UNITS = {
  carbon_footprint: "kgCO2e",
  desired_carbon_footprint: "kgCO2e",
  energy_consumption: "Wh",
  carbon_intensity: "gCO2e/kWh",
  power_consumption: "W",
  latency: "s",
  target_latency: "s",
  max_memory_footprint: "MB",
  memory_footprint_of_ml_model: "MB",
  max_hw_memory_footprint: "MB",
};

// Readable scales per base unit: [factor to multiply the base value by, unit shown], largest first.
const SCALES = {
  kgCO2e: [[1e-3, "tCO2e"], [1, "kgCO2e"], [1e3, "gCO2e"], [1e6, "mgCO2e"], [1e9, "µgCO2e"]],
  Wh: [[1e-6, "MWh"], [1e-3, "kWh"], [1, "Wh"], [1e3, "mWh"], [1e6, "µWh"]],
  W: [[1e-3, "kW"], [1, "W"], [1e3, "mW"]],
  s: [[1 / 3600, "h"], [1, "s"], [1e3, "ms"], [1e6, "µs"]],
  MB: [[1e-3, "GB"], [1, "MB"], [1e3, "kB"]],
  J: [[1e-3, "kJ"], [1, "J"], [1e3, "mJ"], [1e6, "µJ"]],
};

/** The scale that shows `value` (in `unit`) between 1 and 1000 where possible. */
export function scaleFor(unit, value) {
  const scales = SCALES[unit];
  if (!scales || !Number.isFinite(value) || value === 0) return { factor: 1, unit };
  const abs = Math.abs(value);
  for (const [factor, shown] of scales) {
    const v = abs * factor;
    // hours only from 2 h up; seconds otherwise stay seconds
    if (shown === "h" && abs < 7200) continue;
    if (v >= 1) return { factor, unit: shown };
  }
  const [factor, shown] = scales[scales.length - 1];
  return { factor, unit: shown };
}

/** A number with about 3 significant digits, without exponent noise for ordinary values. */
export function num(value, digits = 3) {
  if (value === null || value === undefined || value === "") return "–";
  const v = Number(value);
  if (!Number.isFinite(v)) return String(value);
  if (v === 0) return "0";
  const abs = Math.abs(v);
  if (abs >= 1e6 || abs < 1e-3) return v.toExponential(digits - 1).replace("e+", "e");
  if (abs >= 1000) return Math.round(v).toLocaleString("en-US");
  return Number(v.toPrecision(digits)).toString();
}

/** `value` in `unit`, auto-scaled: "0.48 gCO2e". */
export function withUnit(value, unit) {
  if (value === null || value === undefined || value === "") return "–";
  const v = Number(value);
  if (!Number.isFinite(v)) return String(value);
  const s = scaleFor(unit, v);
  return `${num(v * s.factor)} ${s.unit}`;
}

/** A field of a record with the unit the data model gives it. */
export function field(name, value) {
  const unit = UNITS[name];
  return unit ? withUnit(value, unit) : num(value);
}

/** The exact value with its base unit (for tooltips and screen readers). */
export function exact(value, unit) {
  if (value === null || value === undefined || value === "") return "";
  return `${value} ${unit || ""}`.trim();
}

export function percent(value) {
  if (value === null || value === undefined) return "–";
  return `${num(value)} %`;
}

export function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}
