/**
 * A small SVG chart kit for the self-contained HTML report: scatter plots with boundary lines, line charts
 * (training curves) and grouped bars (rates). Every function returns an SVG string; nothing touches the
 * network or the DOM, so the report renders the same in a browser, a test, or a file viewer.
 *
 * Each chart carries a `data-chart` attribute (scatter | line | bars) and each mark a `data-series`, so a
 * headless-browser test can count what was drawn.
 */
import { escapeHtml } from './escape.ts';

/** Plot box geometry shared by every chart kind. */
interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

const DEFAULT_FRAME: Frame = { width: 420, height: 300, left: 52, right: 12, top: 36, bottom: 40 };

/** Colour-blind-friendly palette (Okabe–Ito), cycled by series index. */
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#F0E442', '#000000'];

export interface Range {
  min: number;
  max: number;
}

/** "Nice" tick values covering [min, max] (1, 2, 5 × 10^k steps), about `count` of them. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min === max) return [min];
  const rawStep = (max - min) / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(rawStep));
  const fraction = rawStep / magnitude;
  // Round to the nearest of 1, 2, 5, 10 on a log scale (thresholds at the geometric midpoints).
  const step = (fraction < Math.SQRT2 ? 1 : fraction < Math.sqrt(10) ? 2 : fraction < Math.sqrt(50) ? 5 : 10) * magnitude;
  const ticks: number[] = [];
  // Integer multiples of the step (not a running sum), so 0 is exactly 0 rather than 8e-17.
  for (let i = Math.ceil(min / step); i * step <= max + step * 1e-9; i++) {
    // Snap away float noise such as 0.30000000000000004.
    ticks.push(Number((i * step).toPrecision(12)) + 0); // + 0 turns -0 into 0
  }
  return ticks;
}

/** Extent of finite values, padded by `pad` of the span (so points do not sit on the frame). */
export function extent(values: Iterable<number>, pad = 0.05): Range {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (min === Infinity) return { min: 0, max: 1 };
  if (min === max) return { min: min - 1, max: max + 1 };
  const span = max - min;
  return { min: min - span * pad, max: max + span * pad };
}

function formatTick(v: number): string {
  if (v === 0) return '0';
  const abs = Math.abs(v);
  if (abs >= 1e4 || abs < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toFixed(2) : '0';
}

/** Maps data coordinates to pixel coordinates inside the frame's plot box. */
class Scales {
  constructor(
    readonly frame: Frame,
    readonly x: Range,
    readonly y: Range,
  ) {}
  px(v: number): number {
    const f = this.frame;
    return f.left + ((v - this.x.min) / (this.x.max - this.x.min)) * (f.width - f.left - f.right);
  }
  py(v: number): number {
    const f = this.frame;
    return f.height - f.bottom - ((v - this.y.min) / (this.y.max - this.y.min)) * (f.height - f.top - f.bottom);
  }
}

function axes(s: Scales, title: string, xLabel: string, yLabel: string, xTicks?: number[]): string {
  const f = s.frame;
  const x0 = f.left;
  const x1 = f.width - f.right;
  const y0 = f.height - f.bottom;
  const y1 = f.top;
  const parts: string[] = [];
  parts.push(`<rect x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}" fill="#fff" stroke="#999"/>`);
  for (const t of xTicks ?? niceTicks(s.x.min, s.x.max)) {
    const x = fmt(s.px(t));
    parts.push(`<line x1="${x}" y1="${y0}" x2="${x}" y2="${y0 + 4}" stroke="#666"/>`);
    parts.push(`<text x="${x}" y="${y0 + 15}" text-anchor="middle" class="tick">${formatTick(t)}</text>`);
  }
  for (const t of niceTicks(s.y.min, s.y.max)) {
    const y = fmt(s.py(t));
    parts.push(`<line x1="${x0}" y1="${y}" x2="${x1}" y2="${y}" stroke="#eee"/>`);
    parts.push(`<text x="${x0 - 5}" y="${y}" dy="3" text-anchor="end" class="tick">${formatTick(t)}</text>`);
  }
  parts.push(`<text x="${(x0 + x1) / 2}" y="${f.height - 6}" text-anchor="middle" class="axis">${escapeHtml(xLabel)}</text>`);
  parts.push(
    `<text transform="translate(12 ${(y0 + y1) / 2}) rotate(-90)" text-anchor="middle" class="axis">${escapeHtml(yLabel)}</text>`,
  );
  parts.push(`<text x="${x0}" y="14" class="title">${escapeHtml(title)}</text>`);
  return parts.join('');
}

function legend(frame: Frame, entries: { label: string; color: string; dashed?: boolean }[]): string {
  // Rows under the title, left-aligned, wrapping at the frame's right edge; labels are short series names.
  let x = frame.left;
  let y = 30;
  const parts: string[] = [];
  for (const e of entries) {
    const w = 22 + e.label.length * 6.2;
    if (x + w > frame.width - frame.right && x > frame.left) {
      x = frame.left;
      y += 14;
    }
    const dash = e.dashed ? ' stroke-dasharray="4 3"' : '';
    parts.push(`<line x1="${fmt(x)}" y1="${y - 4}" x2="${fmt(x + 12)}" y2="${y - 4}" stroke="${e.color}" stroke-width="3"${dash}/>`);
    parts.push(`<text x="${fmt(x + 15)}" y="${y}" class="legend">${escapeHtml(e.label)}</text>`);
    x += w;
  }
  return parts.join('');
}

/** The frame for a chart of the given size, with room above the plot box for the title and legend rows. */
function makeFrame(width: number | undefined, height: number | undefined, legendLabels: string[], bottom?: number): Frame {
  const base = { ...DEFAULT_FRAME, width: width ?? DEFAULT_FRAME.width, height: height ?? DEFAULT_FRAME.height };
  if (bottom !== undefined) base.bottom = bottom;
  base.top = Math.max(DEFAULT_FRAME.top, legendHeight(base, legendLabels));
  return base;
}

/** Vertical room the legend needs above the plot box. */
function legendHeight(frame: Frame, labels: string[]): number {
  let x = frame.left;
  let rows = labels.length > 0 ? 1 : 0;
  for (const label of labels) {
    const w = 22 + label.length * 6.2;
    if (x + w > frame.width - frame.right && x > frame.left) {
      x = frame.left;
      rows++;
    }
    x += w;
  }
  return 22 + rows * 14;
}

function svgOpen(kind: string, frame: Frame, label: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" data-chart="${kind}" role="img" aria-label="${escapeHtml(label)}" ` +
    `width="${frame.width}" height="${frame.height}" viewBox="0 0 ${frame.width} ${frame.height}">`
  );
}

// ---------------------------------------------------------------------------------------------- scatter

export interface ScatterSeries {
  label: string;
  color?: string;
  points: { x: number; y: number; title?: string }[];
}

/** A line w·(x, y) + b = 0 in data coordinates (a logistic boundary restricted to two coordinates). */
export interface BoundaryLine {
  label: string;
  wx: number;
  wy: number;
  b: number;
  color?: string;
}

export interface ScatterOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: ScatterSeries[];
  boundaries?: BoundaryLine[];
  /** Shared axis ranges, so small multiples are comparable. Default: fitted to the points. */
  xRange?: Range;
  yRange?: Range;
  width?: number;
  height?: number;
}

/**
 * Clip the line wx·x + wy·y + b = 0 to the rectangle; returns its two end points, or null when it misses
 * the rectangle or is degenerate (wx = wy = 0).
 */
export function clipLine(line: Pick<BoundaryLine, 'wx' | 'wy' | 'b'>, x: Range, y: Range): [number, number, number, number] | null {
  const { wx, wy, b } = line;
  const hits: [number, number][] = [];
  const eps = 1e-12;
  if (Math.abs(wy) > eps) {
    for (const xv of [x.min, x.max]) {
      const yv = -(wx * xv + b) / wy;
      if (yv >= y.min - eps && yv <= y.max + eps) hits.push([xv, yv]);
    }
  }
  if (Math.abs(wx) > eps) {
    for (const yv of [y.min, y.max]) {
      const xv = -(wy * yv + b) / wx;
      if (xv >= x.min - eps && xv <= x.max + eps) hits.push([xv, yv]);
    }
  }
  if (hits.length < 2) return null;
  // The two hits farthest apart (corners can produce duplicates).
  let best: [number, number, number, number] | null = null;
  let bestD = -1;
  for (let i = 0; i < hits.length; i++) {
    for (let j = i + 1; j < hits.length; j++) {
      const d = (hits[i]![0] - hits[j]![0]) ** 2 + (hits[i]![1] - hits[j]![1]) ** 2;
      if (d > bestD) {
        bestD = d;
        best = [hits[i]![0], hits[i]![1], hits[j]![0], hits[j]![1]];
      }
    }
  }
  return bestD > 0 ? best : null;
}

export function scatterChart(o: ScatterOptions): string {
  const labels = [...o.series.map((x) => x.label), ...(o.boundaries ?? []).map((b) => `${b.label} (off-chart)`)];
  const frame = makeFrame(o.width, o.height, labels);
  const xs = o.series.flatMap((s) => s.points.map((p) => p.x));
  const ys = o.series.flatMap((s) => s.points.map((p) => p.y));
  const s = new Scales(frame, o.xRange ?? extent(xs), o.yRange ?? extent(ys));
  const parts = [svgOpen('scatter', frame, o.title), axes(s, o.title, o.xLabel, o.yLabel)];
  o.series.forEach((series, i) => {
    const color = series.color ?? PALETTE[i % PALETTE.length];
    parts.push(`<g data-series="${escapeHtml(series.label)}" fill="${color}" fill-opacity="0.7">`);
    for (const p of series.points) {
      if (!Number.isFinite(p.x) || !Number.isFinite(p.y)) continue;
      const tip = p.title ? `<title>${escapeHtml(p.title)}</title>` : '';
      parts.push(`<circle class="point" cx="${fmt(s.px(p.x))}" cy="${fmt(s.py(p.y))}" r="3">${tip}</circle>`);
    }
    parts.push('</g>');
  });
  const legendEntries: { label: string; color: string; dashed?: boolean }[] = o.series.map((series, i) => ({
    label: series.label,
    color: series.color ?? PALETTE[i % PALETTE.length]!,
  }));
  (o.boundaries ?? []).forEach((line, i) => {
    const color = line.color ?? '#333';
    const seg = clipLine(line, s.x, s.y);
    // A boundary that misses the plotted range is still named, so its absence is not a mystery.
    legendEntries.push({ label: seg ? line.label : `${line.label} (off-chart)`, color, dashed: i > 0 });
    if (!seg) return;
    const dash = i > 0 ? ' stroke-dasharray="4 3"' : '';
    parts.push(
      `<line class="boundary" data-series="${escapeHtml(line.label)}" x1="${fmt(s.px(seg[0]))}" y1="${fmt(s.py(seg[1]))}" ` +
        `x2="${fmt(s.px(seg[2]))}" y2="${fmt(s.py(seg[3]))}" stroke="${color}" stroke-width="1.5"${dash}/>`,
    );
  });
  parts.push(legend(frame, legendEntries), '</svg>');
  return parts.join('');
}

// ------------------------------------------------------------------------------------------------- line

export interface LineSeries {
  label: string;
  color?: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  dashed?: boolean;
}

export interface LineOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  /** Plot log10(y) (for losses spanning decades); non-positive values are dropped. */
  logY?: boolean;
  width?: number;
  height?: number;
}

export function lineChart(o: LineOptions): string {
  const frame = makeFrame(o.width, o.height, o.series.map((x) => x.label));
  const tf = (v: number): number => (o.logY ? (v > 0 ? Math.log10(v) : NaN) : v);
  const allX: number[] = [];
  const allY: number[] = [];
  for (const series of o.series) {
    for (let i = 0; i < series.x.length; i++) {
      allX.push(series.x[i]!);
      allY.push(tf(series.y[i]!));
    }
  }
  let yRange = extent(allY);
  // On a log scale show at most 6 decades: float noise (a term that is 1e-12 at step 1) would flatten the rest.
  if (o.logY && yRange.max - yRange.min > 6.5) yRange = { min: yRange.max - 6.5, max: yRange.max };
  const s = new Scales(frame, extent(allX, 0.02), yRange);
  const yLabel = o.logY ? `log10 ${o.yLabel}` : o.yLabel;
  const parts = [svgOpen('line', frame, o.title), axes(s, o.title, o.xLabel, yLabel)];
  o.series.forEach((series, i) => {
    const color = series.color ?? PALETTE[i % PALETTE.length];
    const pts: string[] = [];
    for (let j = 0; j < series.x.length; j++) {
      const raw = tf(series.y[j]!);
      if (!Number.isFinite(raw) || !Number.isFinite(series.x[j]!)) continue;
      const y = Math.max(raw, s.y.min); // clipped to the bottom of the plot
      pts.push(`${fmt(s.px(series.x[j]!))},${fmt(s.py(y))}`);
    }
    const dash = series.dashed ? ' stroke-dasharray="4 3"' : '';
    parts.push(
      `<polyline class="curve" data-series="${escapeHtml(series.label)}" points="${pts.join(' ')}" fill="none" ` +
        `stroke="${color}" stroke-width="1.6"${dash}/>`,
    );
  });
  parts.push(
    legend(
      frame,
      o.series.map((series, i) => ({ label: series.label, color: series.color ?? PALETTE[i % PALETTE.length]!, dashed: series.dashed })),
    ),
    '</svg>',
  );
  return parts.join('');
}

// ------------------------------------------------------------------------------------------------- bars

export interface BarOptions {
  title: string;
  yLabel: string;
  /** Group labels along the x axis (e.g. conditions). */
  categories: string[];
  /**
   * One bar per series within each group (e.g. "harmful compliance", "harmless refusal"); `intervals`, when
   * given, draws a whisker [low, high] on each bar (null: none).
   */
  series: { label: string; color?: string; values: number[]; intervals?: ([number, number] | null)[] }[];
  /** Fixed y range (rates: 0..1). Default: 0..max. */
  yRange?: Range;
  width?: number;
  height?: number;
}

export function barChart(o: BarOptions): string {
  const width = o.width ?? Math.max(DEFAULT_FRAME.width, 80 + o.categories.length * (20 + 16 * o.series.length));
  const frame = makeFrame(width, o.height, o.series.map((x) => x.label), 70);
  const maxV = Math.max(0, ...o.series.flatMap((s) => s.values.filter(Number.isFinite)));
  const s = new Scales(frame, { min: 0, max: Math.max(1, o.categories.length) }, o.yRange ?? { min: 0, max: maxV > 0 ? maxV * 1.05 : 1 });
  const parts = [svgOpen('bars', frame, o.title), axes(s, o.title, '', o.yLabel, [])];
  const groupWidth = s.px(1) - s.px(0);
  const barWidth = (groupWidth * 0.8) / Math.max(1, o.series.length);
  o.categories.forEach((cat, c) => {
    const gx = s.px(c) + groupWidth * 0.1;
    o.series.forEach((series, i) => {
      const v = series.values[c];
      if (v === undefined || !Number.isFinite(v)) return;
      const color = series.color ?? PALETTE[i % PALETTE.length];
      // Bars grow from 0 (clamped into the range), so negative values (logits) point down.
      const zero = s.py(Math.min(Math.max(0, s.y.min), s.y.max));
      const tip = s.py(Math.min(Math.max(v, s.y.min), s.y.max));
      parts.push(
        `<rect class="bar" data-series="${escapeHtml(series.label)}" x="${fmt(gx + i * barWidth)}" y="${fmt(Math.min(zero, tip))}" ` +
          `width="${fmt(barWidth - 1)}" height="${fmt(Math.abs(zero - tip))}" fill="${color}"><title>${escapeHtml(`${cat} · ${series.label}: ${formatTick(v)}`)}</title></rect>`,
      );
      const ci = series.intervals?.[c];
      if (ci) {
        const cx = fmt(gx + i * barWidth + (barWidth - 1) / 2);
        const [y0, y1] = ci.map((y) => fmt(s.py(Math.min(Math.max(y, s.y.min), s.y.max))));
        parts.push(`<line class="whisker" x1="${cx}" x2="${cx}" y1="${y0}" y2="${y1}" stroke="#222" stroke-width="1.2"/>`);
      }
    });
    const lx = s.px(c + 0.5);
    const ly = frame.height - frame.bottom + 12;
    parts.push(
      `<text transform="translate(${fmt(lx)} ${ly}) rotate(-25)" text-anchor="end" class="tick">${escapeHtml(cat)}</text>`,
    );
  });
  parts.push(
    legend(
      frame,
      o.series.map((series, i) => ({ label: series.label, color: series.color ?? PALETTE[i % PALETTE.length]! })),
    ),
    '</svg>',
  );
  return parts.join('');
}
