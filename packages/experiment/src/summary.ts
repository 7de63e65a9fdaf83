/** The summary table `dro run` prints at the end: held-out results per model × condition. */
import { EVAL_METRICS_SCHEMA, columnValues, type ArtifactRef, type ArtifactStore } from '@dro/artifacts';

export interface SummaryRow {
  model: string;
  condition: string;
  set: string;
  /** Harmful queries complied with by any sample (the paper's protocol), of all harmful queries. */
  harmfulComplied: number;
  harmfulQueries: number;
  /** Mean per-sample compliance on harmful queries. */
  harmfulMeanCompliance: number | null;
  /** Harmless queries refused by any sample, of all harmless queries. */
  harmlessRefused: number;
  harmlessQueries: number;
  harmlessMeanRefusal: number | null;
  /** Mean refusal-boundary logit (positive = toward compliance) per label. */
  harmfulRefusalLogit: number | null;
  harmlessRefusalLogit: number | null;
  capability: number | null;
}

/** Reads every eval-metrics/v1 artifact among `refs` (any other schema is skipped). */
export async function summarize(store: ArtifactStore, refs: ArtifactRef[]): Promise<SummaryRow[]> {
  const rows = new Map<string, SummaryRow>();
  for (const ref of refs) {
    if (ref.schema !== EVAL_METRICS_SCHEMA.name) continue;
    const t = await store.getTable(ref);
    const col = (name: string) => columnValues(t, name, `metrics ${ref.digest.slice(0, 12)}`);
    const [model, condition, set, label] = [col('model'), col('condition'), col('set'), col('label')];
    const [queries, complied, refused] = [col('queries'), col('queries_any_complied'), col('queries_any_refused')];
    const [meanCompliance, refusalLogit, capability] = [col('mean_compliance'), col('mean_refusal_logit'), col('capability')];
    for (let i = 0; i < t.numRows; i++) {
      const key = `${model[i]}\u0000${condition[i]}\u0000${set[i]}`;
      const row = rows.get(key) ?? {
        model: String(model[i]), condition: String(condition[i]), set: String(set[i]),
        harmfulComplied: 0, harmfulQueries: 0, harmfulMeanCompliance: null,
        harmlessRefused: 0, harmlessQueries: 0, harmlessMeanRefusal: null,
        harmfulRefusalLogit: null, harmlessRefusalLogit: null, capability: null,
      };
      if (label[i] === 'harmful') {
        row.harmfulComplied += Number(complied[i]);
        row.harmfulQueries += Number(queries[i]);
        row.harmfulMeanCompliance = Number(meanCompliance[i]);
        row.harmfulRefusalLogit = refusalLogit[i] == null ? null : Number(refusalLogit[i]);
      } else {
        row.harmlessRefused += Number(refused[i]);
        row.harmlessQueries += Number(queries[i]);
        row.harmlessMeanRefusal = 1 - Number(meanCompliance[i]);
        row.harmlessRefusalLogit = refusalLogit[i] == null ? null : Number(refusalLogit[i]);
        row.capability = capability[i] == null ? null : Number(capability[i]);
      }
      rows.set(key, row);
    }
  }
  return [...rows.values()];
}

const pct = (n: number, d: number) => (d === 0 ? '-' : `${n}/${d} (${((100 * n) / d).toFixed(0)}%)`);
const num = (v: number | null, digits = 2) => (v === null ? '-' : v.toFixed(digits));

export function formatSummary(rows: SummaryRow[]): string {
  const header = ['model', 'condition', 'set', 'harmful complied', 'harmful mean compl.', 'harmless refused', 'refusal logit harmful/harmless', 'capability'];
  const body = rows.map((r) => [
    r.model, r.condition, r.set,
    pct(r.harmfulComplied, r.harmfulQueries), num(r.harmfulMeanCompliance),
    pct(r.harmlessRefused, r.harmlessQueries),
    `${num(r.harmfulRefusalLogit)} / ${num(r.harmlessRefusalLogit)}`, num(r.capability, 3),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n') + '\n';
}
