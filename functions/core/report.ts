/**
 * report.html: one self-contained page per run (no scripts, no external files; charts are
 * inline SVG) that a person opens in a browser: decision, metrics, training curves and, for
 * classification, the confusion matrix and per-class scores.
 */
import type { Task } from './contracts';
import type { Champion, PromotionDecision } from './gate';
import type { PromotionRule } from './manifest';
import type { EvaluationMetrics } from './metrics';

/** One epoch: `values` holds loss, val_loss and every (val_)metric the history recorded. */
export interface HistoryPoint {
  readonly epoch: number;
  readonly values: Readonly<Record<string, number>>;
}

const IGNORED_KEYS = new Set(['epoch', 'samplesPerSecond', 'seconds', 'time']);

function numericEntries(record: Record<string, unknown>, into: Record<string, number>): void {
  for (const [key, value] of Object.entries(record)) {
    if (IGNORED_KEYS.has(key)) continue;
    if (typeof value === 'number' && Number.isFinite(value)) into[key] = value;
    else if (key === 'metrics' && value !== null && typeof value === 'object') numericEntries(value as Record<string, unknown>, into);
  }
}

/**
 * Reads history.json as functions/train writes it ({epochs: [{epoch, loss, metrics: {...}}]})
 * and, tolerantly, flat records ({epoch, loss, val_loss, acc}), a bare array of those, or the
 * Keras/TF.js shape ({history: {loss: [...], acc: [...]}}). Anything else gives no points.
 */
export function parseHistory(value: unknown): HistoryPoint[] {
  if (value === null || typeof value !== 'object') return [];
  const keras = (value as { history?: unknown }).history;
  if (keras !== null && typeof keras === 'object' && !Array.isArray(keras)) {
    const series = Object.entries(keras as Record<string, unknown>).filter((e): e is [string, unknown[]] => Array.isArray(e[1]));
    const length = Math.max(0, ...series.map(([, v]) => v.length));
    return Array.from({ length }, (_, i) => {
      const values: Record<string, number> = {};
      for (const [name, v] of series) if (typeof v[i] === 'number' && Number.isFinite(v[i])) values[name] = v[i] as number;
      return { epoch: i + 1, values };
    });
  }
  const records = Array.isArray(value) ? value : (value as { epochs?: unknown }).epochs;
  if (!Array.isArray(records)) return [];
  const points: HistoryPoint[] = [];
  records.forEach((record, i) => {
    if (record === null || typeof record !== 'object') return;
    const values: Record<string, number> = {};
    numericEntries(record as Record<string, unknown>, values);
    const epoch = (record as { epoch?: unknown }).epoch;
    points.push({ epoch: typeof epoch === 'number' && Number.isFinite(epoch) ? epoch : i + 1, values });
  });
  return points;
}

export interface ReportInput {
  readonly runId: string;
  readonly modelName: string;
  readonly task: Task;
  readonly generatedAt: string;
  readonly metrics: EvaluationMetrics;
  readonly history: readonly HistoryPoint[];
  readonly decision: PromotionDecision;
  readonly rule: PromotionRule;
  readonly champion?: Champion;
  readonly counts?: { readonly train: number; readonly validation: number; readonly test: number };
  readonly parity?: { readonly rows: number; readonly maxAbsDiff: number; readonly tolerance: number; readonly passed: boolean };
  readonly dataset?: string;
}

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Numbers as people read them in a table: 4 decimals, or exponent form when tiny/huge. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : v.toFixed(4);
}

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];

function niceTicks(min: number, max: number, count = 5): number[] {
  if (min === max) return [min];
  const step0 = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= step0)!;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** An SVG line chart of the named series over epochs; each series is one <path data-series="...">. */
export function lineChart(title: string, points: readonly HistoryPoint[], series: readonly string[]): string {
  const present = series.filter((s) => points.some((p) => s in p.values));
  if (present.length === 0) return '';
  const W = 560;
  const H = 280;
  const m = { left: 60, right: 20, top: 48, bottom: 44 };
  const epochs = points.map((p) => p.epoch);
  const xMin = Math.min(...epochs);
  const xMax = Math.max(...epochs);
  const all = present.flatMap((s) => points.filter((p) => s in p.values).map((p) => p.values[s]));
  let yMin = Math.min(...all);
  let yMax = Math.max(...all);
  if (yMin === yMax) {
    yMin -= Math.abs(yMin) * 0.1 || 1;
    yMax += Math.abs(yMax) * 0.1 || 1;
  }
  const pad = (yMax - yMin) * 0.05;
  yMin -= pad;
  yMax += pad;
  const x = (e: number) => m.left + (xMax === xMin ? (W - m.left - m.right) / 2 : ((e - xMin) / (xMax - xMin)) * (W - m.left - m.right));
  const y = (v: number) => m.top + (1 - (v - yMin) / (yMax - yMin)) * (H - m.top - m.bottom);
  const f = (n: number) => n.toFixed(1);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(title)}">`);
  parts.push(`<text x="${W / 2}" y="18" text-anchor="middle" class="title">${escapeHtml(title)}</text>`);
  for (const t of niceTicks(yMin, yMax)) {
    parts.push(`<line x1="${m.left}" x2="${W - m.right}" y1="${f(y(t))}" y2="${f(y(t))}" class="grid"/>`);
    parts.push(`<text x="${m.left - 6}" y="${f(y(t) + 4)}" text-anchor="end" class="tick">${escapeHtml(formatTick(t))}</text>`);
  }
  const xTicks = xMax - xMin <= 12 ? epochs : niceTicks(xMin, xMax, 8).filter((t) => Number.isInteger(t));
  for (const t of [...new Set(xTicks)]) parts.push(`<text x="${f(x(t))}" y="${H - m.bottom + 16}" text-anchor="middle" class="tick">${t}</text>`);
  parts.push(`<line x1="${m.left}" x2="${W - m.right}" y1="${H - m.bottom}" y2="${H - m.bottom}" class="axis"/>`);
  parts.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${H - m.bottom}" class="axis"/>`);
  parts.push(`<text x="${(m.left + W - m.right) / 2}" y="${H - 8}" text-anchor="middle" class="label">epoch</text>`);
  present.forEach((name, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = points.filter((p) => name in p.values);
    const d = pts.map((p, j) => `${j === 0 ? 'M' : 'L'}${f(x(p.epoch))},${f(y(p.values[name]))}`).join(' ');
    const dash = name.startsWith('val_') ? ' stroke-dasharray="6 4"' : '';
    parts.push(`<path class="series" data-series="${escapeHtml(name)}" d="${d}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`);
    for (const p of pts) parts.push(`<circle cx="${f(x(p.epoch))}" cy="${f(y(p.values[name]))}" r="3" fill="${color}"><title>${escapeHtml(`${name} epoch ${p.epoch}: ${formatNumber(p.values[name])}`)}</title></circle>`);
    const lx = m.left + 10 + i * 130;
    parts.push(`<line x1="${lx}" x2="${lx + 20}" y1="32" y2="32" stroke="${color}" stroke-width="2"${dash}/>`);
    parts.push(`<text x="${lx + 25}" y="36" class="legend">${escapeHtml(name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

function formatTick(t: number): string {
  return Math.abs(t) >= 1e4 || (Math.abs(t) < 1e-3 && t !== 0) ? t.toExponential(1) : String(Number(t.toPrecision(4)));
}

/** Confusion matrix as an SVG grid: rows actual, columns predicted, shade by row share. */
export function confusionMatrixSvg(confusion: readonly (readonly number[])[], classNames: readonly string[]): string {
  const k = classNames.length;
  const cell = k <= 10 ? 44 : k <= 20 ? 28 : 18;
  const longest = Math.max(...classNames.map((c) => short(c).length));
  // Short names sit upright above their column; longer ones are tilted so they do not collide.
  const tilt = longest > 3;
  const tickSpace = 10 + longest * 7 * (tilt ? 0.75 : 1);
  const titleSpace = 20;
  const left = titleSpace + Math.max(tickSpace, 24);
  const top = titleSpace + (tilt ? tickSpace : 18);
  const W = left + k * cell + (tilt ? tickSpace : 10);
  const H = top + k * cell + 10;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" class="confusion" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="confusion matrix">`);
  parts.push(`<text x="${left + (k * cell) / 2}" y="13" text-anchor="middle" class="label">predicted</text>`);
  parts.push(`<text x="13" y="${top + (k * cell) / 2}" text-anchor="middle" class="label" transform="rotate(-90 13 ${top + (k * cell) / 2})">actual</text>`);
  for (let c = 0; c < k; c++) {
    const cx = left + c * cell + cell / 2;
    const name = escapeHtml(short(classNames[c]));
    parts.push(
      tilt
        ? `<text x="${cx}" y="${top - 6}" text-anchor="start" class="tick" transform="rotate(-45 ${cx} ${top - 6})">${name}</text>`
        : `<text x="${cx}" y="${top - 6}" text-anchor="middle" class="tick">${name}</text>`,
    );
    parts.push(`<text x="${left - 6}" y="${top + c * cell + cell / 2 + 4}" text-anchor="end" class="tick">${name}</text>`);
  }
  for (let r = 0; r < k; r++) {
    const total = confusion[r].reduce((a, b) => a + b, 0);
    for (let c = 0; c < k; c++) {
      const n = confusion[r][c];
      const share = total === 0 ? 0 : n / total;
      const fill = r === c ? `rgba(31,119,180,${(0.08 + share * 0.92).toFixed(3)})` : `rgba(214,39,40,${(share === 0 ? 0.02 : 0.15 + share * 0.85).toFixed(3)})`;
      const x = left + c * cell;
      const y = top + r * cell;
      parts.push(`<rect class="cell" data-actual="${r}" data-predicted="${c}" x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${fill}" stroke="#fff"><title>${escapeHtml(`actual ${classNames[r]}, predicted ${classNames[c]}: ${n}`)}</title></rect>`);
      if (cell >= 28) parts.push(`<text x="${x + cell / 2}" y="${y + cell / 2 + 4}" text-anchor="middle" class="count${share > 0.5 ? ' dark' : ''}">${n}</text>`);
    }
  }
  parts.push('</svg>');
  return parts.join('\n');
}

const short = (name: string) => (name.length > 16 ? `${name.slice(0, 15)}…` : name);

function metricsTable(input: ReportInput, scalars: Record<string, number>): string {
  const champ = input.champion;
  const head = `<tr><th>metric</th><th>this run</th>${champ ? `<th>version ${escapeHtml(champ.version)} (${escapeHtml(input.rule.alias ?? 'production')})</th>` : ''}</tr>`;
  const rows = Object.entries(scalars).map(([name, value]) => {
    const mark = name === input.decision.metric ? ' class="gated"' : '';
    const other = champ ? `<td>${champ.metrics[name] === undefined ? '–' : escapeHtml(formatNumber(champ.metrics[name]))}</td>` : '';
    return `<tr${mark}><td>${escapeHtml(name)}</td><td>${escapeHtml(formatNumber(value))}</td>${other}</tr>`;
  });
  return `<table class="metrics">${head}${rows.join('')}</table>`;
}

function perClassTable(metrics: Extract<EvaluationMetrics, { task: 'classification' }>): string {
  const rows = metrics.perClass.map(
    (c) =>
      `<tr><td>${escapeHtml(c.className)}</td><td>${formatNumber(c.precision)}</td><td>${formatNumber(c.recall)}</td><td>${formatNumber(c.f1)}</td><td>${c.support}</td></tr>`,
  );
  return `<table class="per-class"><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>${rows.join('')}</table>`;
}

/** The whole page. Every piece of text from data, manifest or run goes through escapeHtml. */
export function renderReport(input: ReportInput, scalars: Record<string, number>): string {
  const m = input.metrics;
  const seriesNames = [...new Set(input.history.flatMap((p) => Object.keys(p.values)))];
  const lossSeries = seriesNames.filter((s) => s === 'loss' || s === 'val_loss');
  const base = seriesNames.filter((s) => !s.startsWith('val_') && s !== 'loss');
  const metricName = base.find((s) => s === 'acc' || s === 'accuracy') ?? base[0];
  const metricSeries = metricName === undefined ? [] : [metricName, `val_${metricName}`];
  const curves = input.history.length === 0
    ? '<p class="note">No training history was found for this run.</p>'
    : [lineChart('loss per epoch', input.history, lossSeries), metricName ? lineChart(`${metricName} per epoch`, input.history, metricSeries) : ''].join('\n');
  const verdict = input.decision.promote ? 'promoted' : 'not promoted';
  const counts = input.counts ? `train ${input.counts.train} · validation ${input.counts.validation} · test ${input.counts.test} rows` : `${m.rows} test rows`;
  const parity = input.parity
    ? `<p>ONNX parity: max |ONNX − TF.js| = ${escapeHtml(formatNumber(input.parity.maxAbsDiff))} on ${input.parity.rows} rows (tolerance ${escapeHtml(String(input.parity.tolerance))}, ${input.parity.passed ? 'passed' : 'failed'}).</p>`
    : '';
  const rule = input.rule;
  const ruleText = [`metric ${rule.metric}`, rule.minimum !== undefined ? `${input.decision.lowerIsBetter ? 'maximum' : 'minimum'} ${rule.minimum}` : undefined, `beat ${rule.alias ?? 'production'} by at least ${rule.minImprovement ?? 0}`]
    .filter((s) => s !== undefined)
    .join(', ');
  const classification =
    m.task === 'classification'
      ? `<section><h2>Confusion matrix (test split)</h2>${confusionMatrixSvg(m.confusion, m.perClass.map((c) => c.className))}</section>
<section><h2>Per class</h2>${perClassTable(m)}</section>`
      : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(`dlops report: ${input.modelName} (${input.runId})`)}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#222}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:2rem}
.meta{color:#555;margin-top:0}
.decision{padding:.8rem 1rem;border-radius:6px;margin:1rem 0}
.decision.yes{background:#e6f4ea;border:1px solid #34a853}.decision.no{background:#fdecea;border:1px solid #d93025}
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ddd;padding:.3rem .7rem;text-align:right}th:first-child,td:first-child{text-align:left}
tr.gated td{font-weight:600;background:#fff8e1}
.charts{display:flex;flex-wrap:wrap;gap:1rem}
svg text{font-size:11px;fill:#333}svg .title{font-size:13px;font-weight:600}svg .label{font-size:12px;fill:#555}
svg .grid{stroke:#eee}svg .axis{stroke:#999}svg .count{font-size:11px}svg .count.dark{fill:#fff}
.note{color:#777}
</style>
</head>
<body>
<h1>${escapeHtml(input.modelName)} — run ${escapeHtml(input.runId)}</h1>
<p class="meta">${escapeHtml(input.task)}${input.dataset ? ` · dataset ${escapeHtml(input.dataset)}` : ''} · ${escapeHtml(counts)} · evaluated ${escapeHtml(input.generatedAt)}</p>
<div class="decision ${input.decision.promote ? 'yes' : 'no'}"><strong>${verdict}</strong>: ${escapeHtml(input.decision.reason)}<br><small>rule: ${escapeHtml(ruleText)}</small></div>
<section><h2>Test metrics (ONNX model)</h2>${metricsTable(input, scalars)}${parity}</section>
<section><h2>Training curves</h2><div class="charts">${curves}</div></section>
${classification}
</body>
</html>
`;
}
