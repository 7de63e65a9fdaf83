/**
 * The report's comparison table: every model's trained prompts against their text prompts on the same
 * held-out queries, side by side, and the check that flags prompts that missed their training objective.
 */
import type { ConditionComparison } from '../comparison.ts';
import { escapeHtml } from './escape.ts';
import type { ObjectiveView } from './model.ts';

/** Whether `condition` of `model` is a trained prompt that did not reach its training objective. */
export function objectiveNotMet(objectives: ObjectiveView[], model: string, condition: string): boolean {
  return objectives.some((o) => o.model === model && o.condition === condition && !o.objective.met);
}

const signed = (v: number) => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(3)}`;

function rate(i: { count: number; estimate: number; low: number; high: number }, n: number): string {
  return `${i.count}/${n} (${(100 * i.estimate).toFixed(0)}%) [${(100 * i.low).toFixed(0)}, ${(100 * i.high).toFixed(0)}]`;
}

export function comparisonTable(comparisons: ConditionComparison[], objectives: ObjectiveView[]): string {
  if (comparisons.length === 0) return '<p class="empty">No trained prompt to compare.</p>';
  const head = [
    'model', 'set', 'trained vs text prompt', 'label', 'queries', 'Δ r(h) mean [95% CI]', 'moved as intended [95% CI]',
    'outcome', 'text prompt [95% CI]', 'trained prompt [95% CI]', 'McNemar p',
  ];
  const text = new Set(['model', 'set', 'trained vs text prompt', 'label', 'outcome']);
  const out = ['<table id="comparison"><thead><tr>', ...head.map((h) => `<th class="${text.has(h) ? 'text' : ''}">${escapeHtml(h)}</th>`), '</tr></thead><tbody>'];
  for (const c of comparisons) {
    const flagged = objectiveNotMet(objectives, c.model, c.condition);
    for (const l of c.labels) {
      const direction = l.intendedDirection ? '' : ' <span class="flag">(moved the wrong way)</span>';
      out.push(
        '<tr>' +
          [
            `<td class="text">${escapeHtml(c.model)}</td>`,
            `<td class="text">${escapeHtml(c.set)}</td>`,
            `<td class="text${flagged ? ' flag' : ''}">${escapeHtml(`${c.condition} vs ${c.against}`)}${flagged ? ' ⚠ objective not met' : ''}</td>`,
            `<td class="text">${l.label} (${l.label === 'harmful' ? 'should move toward refusal: Δ < 0' : 'should move toward compliance: Δ > 0'})</td>`,
            `<td>${l.queries}</td>`,
            `<td>${signed(l.refusalShift.mean)} [${signed(l.refusalShift.low)}, ${signed(l.refusalShift.high)}]${direction}</td>`,
            `<td>${l.movedAsIntended}/${l.queries} [${(100 * l.movedShare.low).toFixed(0)}, ${(100 * l.movedShare.high).toFixed(0)}]</td>`,
            `<td class="text">${l.label === 'harmful' ? 'complied (any sample)' : 'refused (any sample)'}</td>`,
            `<td>${rate(l.rateAgainst, l.queries)}</td>`,
            `<td>${rate(l.rateCondition, l.queries)}</td>`,
            `<td>${l.mcnemar.p.toFixed(3)}</td>`,
          ].join('') +
          '</tr>',
      );
    }
  }
  out.push('</tbody></table>');
  return out.join('');
}
