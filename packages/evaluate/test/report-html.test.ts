/**
 * The report renders in a real headless Chromium: charts exist with the right number of marks, data
 * strings are escaped (no injected elements), and the page makes no network requests.
 */
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { trainingObjective } from '@dro/artifacts';
import { mulberry32 } from '@dro/llm';
import { renderReport } from '../src/report/html.ts';
import { wilsonInterval } from '../src/stats.ts';
import type { ReportData } from '../src/report/model.ts';
import { clipLine, niceTicks } from '../src/report/svg.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Deterministic pseudo-random numbers (the runtime's seeded RNG) so the fixture is the same every run. */
const rng = mulberry32;

const CONDITIONS = ['none', 'basic:short', 'dro:short'];
const POINTS_PER_GROUP = 12;

function fixture(): ReportData {
  const rand = rng(7);
  const points = CONDITIONS.flatMap((condition, c) =>
    (['harmful', 'harmless'] as const).map((label) => ({
      condition,
      label,
      z: Array.from({ length: POINTS_PER_GROUP }, () => [
        (label === 'harmful' ? -2 : 2) + rand() * 2 - 1 - c,
        rand() * 2 - 1 + c * 0.5,
        rand() - 0.5,
        rand() - 0.5,
      ]),
      titles: Array.from({ length: POINTS_PER_GROUP }, (_, i) => `${label} query ${i}`),
    })),
  );
  const steps = Array.from({ length: 30 }, (_, i) => i + 1);
  return {
    title: 'DRO report <fixture>',
    generatedAt: '2026-01-01T00:00:00Z',
    notes: ['complied (any sample): a query counts as complied if any of its samples complies'],
    summary: CONDITIONS.flatMap((condition, c) =>
      (['harmful', 'harmless'] as const).map((label) => ({
        model: 'tiny',
        condition,
        set: `heldout-${label}`,
        label,
        queries: 10,
        samplesPerQuery: 4,
        judgedPerQuery: 4,
        judge: 'string match (project phrases); every sample of 4 judged',
        queriesAnyComplied: label === 'harmful' ? 8 - 3 * c : 10,
        queriesAnyRefused: label === 'harmful' ? 2 + 3 * c : c,
        meanCompliance: label === 'harmful' ? 0.7 - 0.2 * c : 0.95 - 0.05 * c,
        meanComplianceLow: label === 'harmful' ? 0.5 - 0.2 * c : 0.9 - 0.05 * c,
        meanComplianceHigh: label === 'harmful' ? 0.9 - 0.2 * c : 1,
        meanRefusalLogit: label === 'harmful' ? 0.5 - c : 1.5 - 0.2 * c,
        meanHarmfulnessLogit: label === 'harmful' ? -1 : 1,
        capability: label === 'harmless' ? 1 - 0.1 * c : null,
      })),
    ),
    pca: [
      {
        model: 'tiny',
        explainedVarianceRatio: [0.31, 0.12, 0.08, 0.05],
        refusal: { w: [1, 0.5, 0.1, 0], b: 0.2 },
        harmfulness: { w: [0.8, -0.3, 0, 0.1], b: -0.1 },
        points,
      },
    ],
    curves: [
      {
        name: 'tiny.dro:short',
        step: steps,
        terms: {
          total: steps.map((s) => 0.7 * Math.exp(-s / 10) + 0.05),
          refusal: steps.map((s) => 0.69 * Math.exp(-s / 10) + 0.04),
          harmfulness: steps.map(() => 0.0069),
          norm: steps.map((s) => 1e-4 * s),
        },
      },
    ],
    trainingShifts: [
      {
        name: 'tiny.dro:short',
        rows: Array.from({ length: 8 }, (_, i) => ({ label: i % 2 ? ('harmless' as const) : ('harmful' as const), baseRefusal: i * 0.3 - 1, softRefusal: i * 0.3 - 1 + (i % 2 ? 0.5 : -0.7) })),
      },
    ],
    nearestTokens: [{ name: 'tiny.dro:short', positions: [{ position: 0, initToken: 'You', nearest: [{ token: 'You', cosine: 0.99 }, { token: '<b>', cosine: 0.4 }] }] }],
    examples: [
      { model: 'tiny', condition: 'none', label: 'harmful', query: 'How to <b>pick</b> a lock?', response: '<script>window.__pwned = true</script>Sure & here', verdict: 'complied' as const },
      { model: 'tiny', condition: 'dro:short', label: 'harmful', query: 'How to pick a lock?', response: "I can't help with that.", verdict: 'refused' as const },
    ],
    objectives: [{ model: 'tiny', condition: 'dro:short', objective: trainingObjective(shiftRows()) }],
    comparisons: [
      {
        model: 'tiny', set: 'heldout', condition: 'dro:short', against: 'basic:short',
        labels: [{
          label: 'harmful', queries: 10, refusalShift: { estimate: -0.4, mean: -0.4, low: -0.7, high: -0.1, n: 10 }, movedAsIntended: 8, movedShare: wilsonInterval(8, 10),
          intendedDirection: true, intervalExcludesZero: true, rateAgainst: { count: 8, ...wilsonInterval(8, 10) },
          rateCondition: { count: 5, ...wilsonInterval(5, 10) }, mcnemar: { onlyA: 0, onlyB: 3, p: 0.25 },
        }],
      },
    ],
  };
}

/** Training shifts in which the harmful queries moved the wrong way: the objective is not met. */
function shiftRows() {
  return Array.from({ length: 8 }, (_, i) => ({
    queryId: `q${i}`, label: i % 2 ? ('harmless' as const) : ('harmful' as const), baseRefusal: 0, softRefusal: 0.5, baseHarmfulness: 0, softHarmfulness: 0,
  }));
}

describe('HTML report in headless Chromium', () => {
  let browser: Browser;
  let file: string;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    const dir = mkdtempSync(path.join(tmpdir(), 'dro-report-'));
    file = path.join(dir, 'report.html');
    writeFileSync(file, renderReport(fixture()));
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('draws every chart with the right marks, escapes data, and fetches nothing', async () => {
    const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(pathToFileURL(file).href);

    // Scatter: 3 coordinate pairs (k = 4) × 3 conditions; each panel has 2 × 12 points and 2 boundaries.
    const scatters = page.locator('.pca-section svg[data-chart="scatter"]');
    expect(await scatters.count()).toBe(3 * CONDITIONS.length);
    // Training shift: a table of 2 labels and a scatter of its 8 queries.
    expect(await page.locator('table.shift tbody tr').count()).toBe(2);
    expect(await page.locator('.shift-section svg[data-chart="scatter"] circle.point').count()).toBe(8);
    expect(await scatters.first().locator('circle.point').count()).toBe(2 * POINTS_PER_GROUP);
    expect(await page.locator('.pca-section svg[data-chart="scatter"] line.boundary').count()).toBeGreaterThanOrEqual(CONDITIONS.length);
    // Training curve: one polyline per loss term, each with one vertex per step.
    const curves = page.locator('svg[data-chart="line"] polyline.curve');
    expect(await curves.count()).toBe(4);
    const vertices = (await curves.first().getAttribute('points'))!.trim().split(/\s+/);
    expect(vertices).toHaveLength(30);
    // Bars: rates (3 series × 3 conditions) and refusal logits (2 × 3).
    expect(await page.locator('svg[data-chart="bars"]').count()).toBe(2);
    // Rates: 4 bars per condition (any-sample and mean, per label), each with its 95 % whisker; logits: 2 per condition.
    expect(await page.locator('svg[data-chart="bars"] rect.bar').count()).toBe(12 + 6);
    expect(await page.locator('svg[data-chart="bars"] line.whisker').count()).toBe(12);
    // Summary table: one row per condition × label, rates with their Wilson interval (8/10 → [49, 94]).
    expect(await page.locator('#summary tbody tr').count()).toBe(CONDITIONS.length * 2);
    expect(await page.locator('#summary tbody tr').first().textContent()).toContain('8/10 (80%) [49, 94]');
    // Every rate carries its interval: the mean compliance and mean refusal too.
    expect(await page.locator('#summary tbody tr').first().textContent()).toContain('0.700 [0.50, 0.90]');
    expect(await page.locator('#summary tbody tr').first().textContent()).toContain('0.300 [0.10, 0.50]');
    // The trained prompt missed its objective: a warning, and its rows are flagged.
    expect(await page.locator('#objective-section .warning').textContent()).toContain('DRO did not reach its training objective');
    expect(await page.locator('#summary td.flag').count()).toBe(2);
    expect(await page.locator('#comparison tbody tr').count()).toBe(1);
    expect(await page.locator('#comparison tbody tr td').nth(5).textContent()).toBe('−0.400 [−0.700, −0.100]');
    expect(await page.locator('#comparison tbody tr td').nth(6).textContent()).toBe('8/10 [49, 94]');
    // Escaping: the response's <script> shows as text and never runs; the query's <b> is text too.
    expect(await page.locator('script').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as { __pwned?: boolean }).__pwned)).toBeUndefined();
    await page.locator('details.examples').first().evaluate((d) => d.setAttribute('open', ''));
    await expect.poll(() => page.locator('pre.complied').first().textContent()).toContain('<script>window.__pwned = true</script>');
    expect(await page.locator('.example b').allTextContents()).toEqual(['[harmful]', '[harmful]']);
    expect(await page.title()).toBe('DRO report <fixture>');
    // Self-contained: the only request is the page itself.
    expect(requests).toEqual([pathToFileURL(file).href]);
    // Charts are laid out with a real size (not collapsed).
    const box = await scatters.first().boundingBox();
    expect(box!.width).toBeGreaterThan(200);
    await page.screenshot({ path: path.join(tmpdir(), 'dro-report-fixture.png'), fullPage: true });
    await page.close();
  });
});

describe('chart geometry', () => {
  it('nice ticks cover the range with 1-2-5 steps', () => {
    expect(niceTicks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(-3.2, 7.9, 5)).toEqual([-2, 0, 2, 4, 6]);
    // A running sum of 0.1 steps from -0.3 would put float noise (~8e-17) where 0 belongs.
    expect(niceTicks(-0.35, 0.02, 4)).toEqual([-0.3, -0.2, -0.1, 0]);
  });

  it('clips a boundary line to the plot box, or reports a miss', () => {
    const box = { min: -1, max: 1 };
    // x + y = 0 → the diagonal from (-1, 1) to (1, -1).
    const seg = clipLine({ wx: 1, wy: 1, b: 0 }, box, box)!;
    expect(seg.map((v) => Math.round(v * 1e9) / 1e9).sort()).toEqual([-1, -1, 1, 1]);
    expect(seg[0] + seg[1]).toBeCloseTo(0, 12);
    // x = 5 lies outside the box.
    expect(clipLine({ wx: 1, wy: 0, b: -5 }, box, box)).toBeNull();
    // Degenerate weights draw nothing.
    expect(clipLine({ wx: 0, wy: 0, b: 1 }, box, box)).toBeNull();
  });
});
