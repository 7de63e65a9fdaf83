/** @dro/workflows: the DRO DAG on Temporal — workflows, stage activities, worker, client, a real test server. */
export * from './shared.ts';
export { createActivities, toActivityFailure, type ActivityDeps, type DroActivities, type NodeExecutor, type NodeExecutionRequest } from './activities.ts';
export { createNodeExecutor } from './executor.ts';
export { planDag } from './plan.ts';
export {
  installQuietRuntime,
  startWorker,
  workflowBundle,
  type DroWorker,
  type StartWorkerOptions,
} from './worker.ts';
export {
  DagRunFailedError,
  cancelTemporalRun,
  connectClient,
  getTemporalRunStatus,
  queryDagStatus,
  runDagOnTemporal,
  runExperimentOnTemporal,
  startDagRun,
  startExperimentRun,
  unwrapWorkflowError,
  type RunDagOnTemporalOptions,
  type StartDagOptions,
  type TemporalTarget,
  type WaitSettings,
} from './client.ts';
export {
  TemporalConnectError,
  isServerUnreachable,
  resolveTarget,
  targetOf,
  unreachableMessage,
} from './connect.ts';
export { RunCancelledError, TemporalWaitError, waitForWorkflow, DEFAULT_SERVER_TIMEOUT_MS, DEFAULT_WORKER_TIMEOUT_MS, type WaitOptions, type WorkflowOutcome } from './wait.ts';
export { formatTemporalStatus } from './status-format.ts';
export { runRecordFromStatus, saveTemporalRunRecord } from './run-record.ts';
export { findTemporalServerBinary, startTemporalServer, freeLoopbackPort, type StartTemporalServerOptions, type TemporalServerHandle } from './testing/server.ts';
