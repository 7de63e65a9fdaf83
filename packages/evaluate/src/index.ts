/** @dro/evaluate: held-out evaluation (the model pass and metrics per model × condition), reference answers, and the HTML report. */
export * from './metrics.ts';
export * from './params.ts';
export { evaluateStage } from './evaluate-stage.ts';
export { evalForwardStage } from './eval-forward-stage.ts';
export { referenceAnswersStage } from './references-stage.ts';
export { reportStage, reportHtmlPath, buildReportData } from './report-stage.ts';
export { renderReport } from './report/html.ts';
export type * from './report/model.ts';
export { barChart, lineChart, scatterChart } from './report/svg.ts';
export { escapeHtml } from './report/escape.ts';
export { lastHiddenStates } from './model-pass.ts';
export { project, promptedInput } from './inputs.ts';
export * from './stats.ts';
export * from './comparison.ts';
