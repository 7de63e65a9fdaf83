/**
 * Renders ReportData as one self-contained HTML page: inline CSS, inline SVG charts, no scripts, no
 * network. Every string that comes from data passes through escapeHtml.
 */
import { formatObjective } from '@dro/artifacts';
import { wilsonInterval } from '../stats.ts';
import { escapeHtml } from './escape.ts';
import type { ObjectiveView, PcaView, ReportData, SummaryRow, TrainingCurve } from './model.ts';
import { comparisonTable, objectiveNotMet } from './tables.ts';
import { barChart, extent, lineChart, PALETTE, scatterChart, type Range } from './svg.ts';

const HARMFUL_COLOR = '#D55E00';
const HARMLESS_COLOR = '#0072B2';

const CSS = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1320px; color: #222; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta { color: #666; } .notes li { color: #444; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; } th { background: #f4f4f4; }
td.text, th.text { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
svg { background: #fafafa; border: 1px solid #e4e4e4; }
svg .tick { font-size: 10px; fill: #555; } svg .axis { font-size: 11px; fill: #333; }
svg .title { font-size: 12px; font-weight: 600; fill: #222; } svg .legend { font-size: 10px; fill: #333; }
details { margin: 4px 0; } summary { cursor: pointer; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: 6px 8px; margin: 4px 0 10px; border-left: 3px solid #ccc; }
.refused { border-left-color: ${HARMLESS_COLOR}; } .complied { border-left-color: ${HARMFUL_COLOR}; }
.empty { color: #888; font-style: italic; }
.warning { background: #fff1e6; border: 1px solid #D55E00; padding: 8px 12px; margin: 10px 0; }
.ok { background: #eef6fb; border: 1px solid #0072B2; padding: 8px 12px; margin: 10px 0; }
.model-panel { border-top: 3px solid #ddd; margin-top: 28px; }
td.flag { color: #D55E00; }
`;

function num(v: number | null | undefined, digits = 3): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
}

/** "k/n (p%) [low, high]" with the Wilson 95 % interval over queries. */
function pct(count: number, total: number): string {
  if (total === 0) return '–';
  const ci = wilsonInterval(count, total);
  return `${count}/${total} (${((100 * count) / total).toFixed(0)}%) [${(100 * ci.low).toFixed(0)}, ${(100 * ci.high).toFixed(0)}]`;
}

/** "0.250 [0.10, 0.40]": a mean with its 95 % interval. */
function meanWithInterval(mean: number, low: number, high: number): string {
  return `${num(mean)} [${num(low, 2)}, ${num(high, 2)}]`;
}

/** Mean refusal logit of the "none" condition for the same model and set, to express shifts against it. */
function baselineLogit(rows: SummaryRow[], row: SummaryRow): number | null {
  const base = rows.find((r) => r.model === row.model && r.set === row.set && r.condition === 'none');
  return base?.meanRefusalLogit ?? null;
}

function summaryTable(rows: SummaryRow[], objectives: ObjectiveView[]): string {
  if (rows.length === 0) return '<p class="empty">No evaluation metrics.</p>';
  const head = [
    'model', 'condition', 'set', 'label', 'queries', 'judged/drawn per query',
    'complied (any sample) [95% CI]', 'mean compliance [95% CI]', 'refused (any sample) [95% CI]', 'mean refusal [95% CI]',
    'mean r(h)', 'Δ r(h) vs none', 'mean a(h)', 'capability',
  ];
  const text = new Set(['model', 'condition', 'set', 'label']);
  const out = ['<table id="summary"><thead><tr>', ...head.map((h) => `<th class="${text.has(h) ? 'text' : ''}">${escapeHtml(h)}</th>`), '</tr></thead><tbody>'];
  for (const r of rows) {
    const base = baselineLogit(rows, r);
    const shift = r.meanRefusalLogit !== null && base !== null ? r.meanRefusalLogit - base : null;
    const cells = [
      `<td class="text">${escapeHtml(r.model)}</td>`,
      objectiveNotMet(objectives, r.model, r.condition)
        ? `<td class="text flag" title="this prompt did not reach its training objective">${escapeHtml(r.condition)} ⚠ objective not met</td>`
        : `<td class="text">${escapeHtml(r.condition)}</td>`,
      `<td class="text">${escapeHtml(r.set)}</td>`,
      `<td class="text">${escapeHtml(r.label)}</td>`,
      `<td>${r.queries}</td>`,
      `<td title="${escapeHtml(r.judge)}">${r.judgedPerQuery}/${r.samplesPerQuery}</td>`,
      `<td>${pct(r.queriesAnyComplied, r.queries)}</td>`,
      `<td>${meanWithInterval(r.meanCompliance, r.meanComplianceLow, r.meanComplianceHigh)}</td>`,
      `<td>${pct(r.queriesAnyRefused, r.queries)}</td>`,
      `<td>${meanWithInterval(1 - r.meanCompliance, 1 - r.meanComplianceHigh, 1 - r.meanComplianceLow)}</td>`,
      `<td>${num(r.meanRefusalLogit)}</td>`,
      `<td>${num(shift)}</td>`,
      `<td>${num(r.meanHarmfulnessLogit)}</td>`,
      `<td>${num(r.capability)}</td>`,
    ];
    out.push(`<tr>${cells.join('')}</tr>`);
  }
  out.push('</tbody></table>');
  return out.join('');
}

/** One model's compliance on harmful sets and refusal on harmless sets, one group of bars per condition. */
function rateCharts(rows: SummaryRow[], model: string): string {
  const charts: string[] = [];
  const mine = rows.filter((r) => r.model === model);
  const conditions = unique(mine.map((r) => r.condition));
  const mean = (label: 'harmful' | 'harmless', f: (r: SummaryRow) => number): number[] =>
    conditions.map((c) => {
      const sel = mine.filter((r) => r.condition === c && r.label === label);
      const total = sel.reduce((s, r) => s + r.queries, 0);
      return total > 0 ? sel.reduce((s, r) => s + f(r) * r.queries, 0) / total : NaN;
    });
  // Whiskers: Wilson intervals of the pooled query counts; a mean's t interval only where one set has the label.
  const wilson = (label: 'harmful' | 'harmless', count: (r: SummaryRow) => number) =>
    conditions.map((c): [number, number] | null => {
      const sel = mine.filter((r) => r.condition === c && r.label === label);
      const n = sel.reduce((s, r) => s + r.queries, 0);
      if (n === 0) return null;
      const ci = wilsonInterval(sel.reduce((s, r) => s + count(r), 0), n);
      return [ci.low, ci.high];
    });
  const refusalInterval = (label: 'harmful' | 'harmless') =>
    conditions.map((c): [number, number] | null => {
      const sel = mine.filter((r) => r.condition === c && r.label === label);
      return sel.length === 1 ? [1 - sel[0]!.meanComplianceHigh, 1 - sel[0]!.meanComplianceLow] : null;
    });
  const complianceInterval = (label: 'harmful' | 'harmless') =>
    conditions.map((c): [number, number] | null => {
      const sel = mine.filter((r) => r.condition === c && r.label === label);
      return sel.length === 1 ? [sel[0]!.meanComplianceLow, sel[0]!.meanComplianceHigh] : null;
    });
  charts.push(
    barChart({
      title: `${model}: compliance and refusal rates (95% CI)`,
      yLabel: 'rate',
      categories: conditions,
      yRange: { min: 0, max: 1 },
      series: [
        { label: 'harmful: complied (any)', color: HARMFUL_COLOR, values: mean('harmful', (r) => r.queriesAnyComplied / Math.max(1, r.queries)), intervals: wilson('harmful', (r) => r.queriesAnyComplied) },
        { label: 'harmful: mean compliance', color: '#E69F00', values: mean('harmful', (r) => r.meanCompliance), intervals: complianceInterval('harmful') },
        { label: 'harmless: refused (any)', color: '#56B4E9', values: mean('harmless', (r) => r.queriesAnyRefused / Math.max(1, r.queries)), intervals: wilson('harmless', (r) => r.queriesAnyRefused) },
        { label: 'harmless: mean refusal', color: HARMLESS_COLOR, values: mean('harmless', (r) => 1 - r.meanCompliance), intervals: refusalInterval('harmless') },
      ],
    }),
  );
  if (mine.some((r) => r.meanRefusalLogit !== null)) {
    charts.push(
      barChart({
        title: `${model}: mean refusal-boundary logit r(h)`,
        yLabel: 'r(h)  (higher = more compliant)',
        categories: conditions,
        yRange: extent(mine.map((r) => r.meanRefusalLogit ?? NaN).concat([0]), 0.1),
        series: [
          { label: 'harmful', color: HARMFUL_COLOR, values: mean('harmful', (r) => r.meanRefusalLogit ?? NaN) },
          { label: 'harmless', color: HARMLESS_COLOR, values: mean('harmless', (r) => r.meanRefusalLogit ?? NaN) },
        ],
      }),
    );
  }
  return charts.length ? `<div class="charts">${charts.join('')}</div>` : '';
}

/**
 * The boundary w·z + b = 0 seen in the plane of coordinates (i, j), with every other coordinate at 0
 * (the data mean, since z is centred by the PCA mean).
 */
function boundaryIn(view: PcaView, which: 'refusal' | 'harmfulness', i: number, j: number) {
  const bd = view[which];
  return { label: `${which} boundary`, wx: bd.w[i] ?? 0, wy: bd.w[j] ?? 0, b: bd.b, color: which === 'refusal' ? '#000' : '#777' };
}

function pcaSection(view: PcaView): string {
  const conditions = unique(view.points.map((p) => p.condition));
  const k = view.explainedVarianceRatio.length;
  const pairs: [number, number][] = k >= 3 ? [[0, 1], [0, 2], [1, 2]] : k === 2 ? [[0, 1]] : [];
  const out: string[] = [
    `<p>Explained variance ratio of the ${k} components: ${view.explainedVarianceRatio.map((v) => v.toFixed(3)).join(', ')}. ` +
      'Boundary lines are drawn with the other coordinates at 0 (the PCA mean); solid = refusal boundary, dashed = harmfulness boundary.</p>',
  ];
  for (const [i, j] of pairs) {
    const all = view.points.flatMap((p) => p.z);
    const xRange: Range = extent(all.map((z) => z[i]!));
    const yRange: Range = extent(all.map((z) => z[j]!));
    const charts = conditions.map((condition) => {
      const series = (['harmful', 'harmless'] as const).map((label) => {
        const pts = view.points.filter((p) => p.condition === condition && p.label === label);
        return {
          label,
          color: label === 'harmful' ? HARMFUL_COLOR : HARMLESS_COLOR,
          points: pts.flatMap((p) => p.z.map((z, n) => ({ x: z[i]!, y: z[j]!, title: p.titles?.[n] }))),
        };
      });
      return scatterChart({
        title: `${condition} (PC${i + 1} vs PC${j + 1})`,
        xLabel: `PC${i + 1}`,
        yLabel: `PC${j + 1}`,
        series,
        boundaries: [boundaryIn(view, 'refusal', i, j), boundaryIn(view, 'harmfulness', i, j)],
        xRange,
        yRange,
        width: 330,
        height: 280,
      });
    });
    out.push(`<div class="charts">${charts.join('')}</div>`);
  }
  return out.join('');
}

function curveChart(curve: TrainingCurve): string {
  const names = Object.keys(curve.terms);
  const allPositive = names.every((n) => curve.terms[n]!.every((v) => !Number.isFinite(v) || v > 0));
  return lineChart({
    title: `training curve: ${curve.name}`,
    xLabel: 'step',
    yLabel: 'loss',
    logY: allPositive,
    series: names.map((n, i) => ({ label: n, x: curve.step, y: curve.terms[n]!, color: PALETTE[i % PALETTE.length], dashed: n !== 'total' && names.includes('total') })),
    width: 430,
  });
}

function nearestTokensSection(data: ReportData): string {
  return data.nearestTokens
    .map((nt) => {
      const rows = nt.positions.map(
        (p) =>
          `<tr><td>${p.position}</td><td class="text"><code>${escapeHtml(JSON.stringify(p.initToken))}</code></td><td class="text">${p.nearest
            .map((n) => `<code>${escapeHtml(JSON.stringify(n.token))}</code> ${n.cosine.toFixed(2)}`)
            .join(', ')}</td></tr>`,
      );
      return (
        `<details><summary>${escapeHtml(nt.name)} (${nt.positions.length} positions)</summary>` +
        `<table><thead><tr><th>pos</th><th class="text">init token</th><th class="text">nearest tokens (cosine)</th></tr></thead>` +
        `<tbody>${rows.join('')}</tbody></table></details>`
      );
    })
    .join('');
}

/** Mean refusal logit r(h) of training queries, basic prompt vs soft prompt, and the shift, per label. */
function shiftSection(data: ReportData): string {
  if (data.trainingShifts.length === 0) return '';
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
  const rows = data.trainingShifts.flatMap((s) =>
    (['harmful', 'harmless'] as const).map((label) => {
      const sel = s.rows.filter((r) => r.label === label);
      const base = mean(sel.map((r) => r.baseRefusal));
      const soft = mean(sel.map((r) => r.softRefusal));
      const intended = sel.filter((r) => (label === 'harmful' ? r.softRefusal < r.baseRefusal : r.softRefusal > r.baseRefusal)).length;
      return `<tr><td class="text">${escapeHtml(s.name)}</td><td class="text">${label}</td><td>${sel.length}</td><td>${num(base)}</td><td>${num(soft)}</td><td>${num(soft - base)}</td><td>${intended}/${sel.length}</td></tr>`;
    }),
  );
  const charts = data.trainingShifts.map((s) =>
    scatterChart({
      title: `${s.name}: training queries, r(h) basic → soft`,
      xLabel: 'r(h) under the basic text prompt',
      yLabel: 'r(h) under the soft prompt',
      series: (['harmful', 'harmless'] as const).map((label) => ({
        label,
        color: label === 'harmful' ? HARMFUL_COLOR : HARMLESS_COLOR,
        points: s.rows.filter((r) => r.label === label).map((r) => ({ x: r.baseRefusal, y: r.softRefusal })),
      })),
      boundaries: [{ label: 'no change (y = x)', wx: 1, wy: -1, b: 0, color: '#999' }],
      width: 430,
    }),
  );
  return (
    '<h3>Refusal-logit shift on the training queries (soft vs basic prompt)</h3>' +
    '<table class="shift"><thead><tr><th class="text">run</th><th class="text">label</th><th>queries</th><th>mean r(h) basic</th><th>mean r(h) soft</th><th>mean shift</th><th>moved as intended (harmful: toward refusal, harmless: toward compliance)</th></tr></thead>' +
    `<tbody>${rows.join('')}</tbody></table><div class="charts">${charts.join('')}</div>`
  );
}

function examplesSection(data: ReportData): string {
  if (data.examples.length === 0) return '<p class="empty">No example responses.</p>';
  const out: string[] = [];
  for (const model of unique(data.examples.map((e) => e.model))) {
    for (const condition of unique(data.examples.filter((e) => e.model === model).map((e) => e.condition))) {
      const ex = data.examples.filter((e) => e.model === model && e.condition === condition);
      out.push(`<details class="examples"><summary>${escapeHtml(model)} · ${escapeHtml(condition)} (${ex.length})</summary>`);
      for (const e of ex) {
        out.push(
          `<div class="example"><b>[${escapeHtml(e.label)}]</b> ${escapeHtml(e.query)} — <i>${e.verdict}</i>` +
            `<pre class="${e.verdict === 'not judged' ? '' : e.verdict}">${escapeHtml(e.response)}</pre></div>`,
        );
      }
      out.push('</details>');
    }
  }
  return out.join('');
}

function unique<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

/** Which model a run key ("<model>.<run>") belongs to: the longest model id it starts with. */
function modelOfKey(key: string, models: string[]): string | undefined {
  return models.filter((m) => key.startsWith(`${m}.`)).sort((a, b) => b.length - a.length)[0];
}

/** The trained prompts' objectives: a warning for each that missed it, then one line per run. */
function objectivesSection(data: ReportData): string {
  if (data.objectives.length === 0) return '';
  const missed = data.objectives.filter((o) => !o.objective.met);
  const warnings = missed.map(
    (o) =>
      `<div class="warning"><b>DRO did not reach its training objective</b> (${escapeHtml(o.model)} · ${escapeHtml(o.condition)}): ` +
      `${escapeHtml(o.objective.shortfalls.join('; '))}. Its held-out numbers below are not a result of the method.</div>`,
  );
  const lines = data.objectives.map((o) => `<li>${escapeHtml(o.model)} · ${escapeHtml(o.condition)}: ${escapeHtml(formatObjective(o.objective))}</li>`);
  const verdict = missed.length === 0 ? '<div class="ok">Every trained prompt reached its training objective on its training queries.</div>' : '';
  return `<section id="objective-section"><h2>Training objective</h2>${warnings.join('')}${verdict}<ul>${lines.join('')}</ul></section>`;
}

/** One model's panel: its rate charts, PCA view, training curves, shifts, tokens and examples. */
function modelPanel(data: ReportData, model: string, models: string[]): string {
  const ofModel = <T extends { name: string }>(xs: T[]) => xs.filter((x) => modelOfKey(x.name, models) === model);
  const mine: ReportData = {
    ...data,
    curves: ofModel(data.curves),
    nearestTokens: ofModel(data.nearestTokens),
    trainingShifts: ofModel(data.trainingShifts),
    examples: data.examples.filter((e) => e.model === model),
  };
  const pca = data.pca.filter((v) => v.model === model);
  return [
    `<section class="model-panel" id="model-${escapeHtml(model)}"><h2>Model: ${escapeHtml(model)}</h2>`,
    rateCharts(data.summary, model),
    '<div class="pca-section"><h3>Hidden states in PCA space</h3>',
    pca.length ? pca.map(pcaSection).join('') : '<p class="empty">No PCA data.</p>',
    '</div>',
    '<h3>Training</h3>',
    mine.curves.length ? `<div class="charts">${mine.curves.map(curveChart).join('')}</div>` : '<p class="empty">No training runs.</p>',
    `<div class="shift-section">${shiftSection(mine)}</div>`,
    mine.nearestTokens.length ? `<h3>Nearest vocabulary tokens of the soft prompts</h3>${nearestTokensSection(mine)}` : '',
    '<h3>Example responses</h3>',
    examplesSection(mine),
    '</section>',
  ].join('');
}

export function renderReport(data: ReportData): string {
  const notes = data.notes.length ? `<ul class="notes">${data.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>` : '';
  const models = unique([...data.summary.map((r) => r.model), ...data.pca.map((v) => v.model), ...data.examples.map((e) => e.model)]);
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${escapeHtml(data.title)}</title>`,
    `<style>${CSS}</style></head><body>`,
    `<h1>${escapeHtml(data.title)}</h1>`,
    data.generatedAt ? `<p class="meta">generated ${escapeHtml(data.generatedAt)}</p>` : '',
    notes,
    objectivesSection(data),
    '<section id="summary-section"><h2>Summary</h2>',
    summaryTable(data.summary, data.objectives),
    '</section><section id="comparison-section"><h2>Trained prompt vs its text prompt, held-out queries</h2>',
    comparisonTable(data.comparisons, data.objectives),
    '</section>',
    ...models.map((m) => modelPanel(data, m, models)),
    '</body></html>',
  ].join('\n');
}
