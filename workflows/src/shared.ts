/**
 * Names and message types shared by the workflow (sandboxed, deterministic), the activities, the worker
 * and the client. Pure data only: this file is bundled into the workflow sandbox, so it must not import
 * anything with side effects (type-only imports are erased).
 */
import type { ArtifactRef } from '@dro/artifacts';
import type { Dag, DagNode, RetryPolicy, StageNeeds } from '@dro/pipeline';

/** Activity task queue per stage resource class. */
export const TASK_QUEUES: Record<StageNeeds, string> = { cpu: 'dro-cpu', model: 'dro-model' };
/**
 * Workflow tasks (cheap, deterministic orchestration) have their own queue that every worker process
 * serves, so a machine serving only dro-model can still drive a run.
 */
export const WORKFLOW_TASK_QUEUE = 'dro-workflows';
/** Error type name of input errors; the retry policy lists it as non-retryable. */
export const BAD_INPUT_ERROR_TYPE = 'BadInputError';

/** Where a worker or client connects when not told (a local dev server). */
export const DEFAULT_ADDRESS = 'localhost:7233';
export const DEFAULT_NAMESPACE = 'default';

export type QueueName = keyof typeof TASK_QUEUES;

export interface DagWorkflowInput {
  /** Run id recorded in progress/status; defaults to the workflow id. */
  runId?: string;
  dag: Dag;
  /** Nodes running at once (across both queues). */
  concurrency?: number;
  /** A worker that has not heartbeated for this long is presumed dead and the node is retried elsewhere. */
  heartbeatTimeoutMs?: number;
  /** Upper bound on one attempt of one node (training can take hours). */
  startToCloseTimeoutMs?: number;
  /** Per node, as for the local runner (@dro/pipeline's RetryPolicy); bad input is never retried. */
  retry?: Partial<RetryPolicy>;
}

/** What runStageActivity receives: one node with every input already resolved to an artifact ref. */
export interface RunStageInput {
  runId: string;
  node: DagNode;
  inputs: Record<string, ArtifactRef>;
}

export interface RunStageResult {
  outputs: Record<string, ArtifactRef>;
  cacheHit: boolean;
  /** The spine's cache key of the node (stage, version, params, input digests, model digest). */
  cacheKey: string;
  stageVersion: string;
  /** Temporal attempt number that produced the result (1 = first try). */
  attempt: number;
  /** Wall time of the attempt on the worker, ms. */
  durationMs: number;
  /** Worker identity that ran it (host:pid), for status views. */
  worker: string;
}

/** Result of the planning activity: the resource class of every node, after validating the DAG. */
export interface DagPlan {
  needs: Record<string, StageNeeds>;
  /** Nodes that run as shards plus a merge (a row-parallel stage and a shardSize); absent in older plans. */
  sharded?: Record<string, boolean>;
  /** A topological order of node ids (dependencies first). */
  order: string[];
}

/** Heartbeat details of runStageActivity: the stage's last progress event plus the node it belongs to. */
export interface StageHeartbeat {
  nodeId: string;
  done: number;
  total?: number;
  message?: string;
}

export type NodeState = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'skipped';

export interface NodeStatus {
  id: string;
  stage: string;
  queue: string | null;
  state: NodeState;
  cacheHit?: boolean;
  cacheKey?: string;
  stageVersion?: string;
  outputs?: Record<string, ArtifactRef>;
  error?: string;
  /** Error type of a failed node ("BadInputError" for input errors). */
  errorType?: string;
  /** Workflow time (deterministic clock) when the node was scheduled / finished, ISO strings. */
  startedAt?: string;
  finishedAt?: string;
  durationMs?: number;
  worker?: string;
  /** Filled by the client from the pending activity's last heartbeat; the workflow cannot see heartbeats. */
  progress?: StageHeartbeat;
  attempt?: number;
  /**
   * For a running node, the server's view: "scheduled" = waiting for a worker of its queue to pick it up
   * (none free, or none alive), "started" = a worker runs it. Filled by the client.
   */
  activityState?: 'scheduled' | 'started' | 'cancel-requested';
  /** For a node run as shards: its shard counts (each shard is its own activity, "<node>#<k>/<n>"). */
  shards?: ShardProgress;
}

/** What planShardsActivity decided for a sharded node. */
export type ShardPlanResult =
  | { kind: 'cached'; result: RunStageResult }
  | { kind: 'whole' }
  /** cost: the shard's estimated relative cost (absent in plans from before it was recorded). */
  | { kind: 'sharded'; shards: Array<{ node: DagNode; inputs: Record<string, ArtifactRef>; cost?: number }> };

/** What mergeShardsActivity receives: the node and every shard's outputs, in shard order. */
export interface MergeShardsInput extends RunStageInput {
  shardOutputs: Array<Record<string, ArtifactRef>>;
}

/** A sharded node's shards: how many, how many finished, how many of those were cache hits. */
export interface ShardProgress {
  total: number;
  done: number;
  cacheHits: number;
}

export interface DagRunStatus {
  runId: string;
  dag: string;
  state: 'running' | 'succeeded' | 'failed' | 'cancelled';
  nodes: NodeStatus[];
  done: number;
  total: number;
  error?: string;
}

export interface DagWorkflowResult {
  runId: string;
  /** Output refs by node id, then output name. */
  outputs: Record<string, Record<string, ArtifactRef>>;
  nodes: NodeStatus[];
}

/** One model's DAG inside a multi-model experiment. */
export interface ExperimentInput {
  runId?: string;
  models: { name: string; dag: Dag }[];
  /** Options applied to every per-model child workflow. */
  child?: Omit<DagWorkflowInput, 'dag' | 'runId'>;
}

export interface ExperimentStatus {
  runId: string;
  models: { name: string; workflowId: string; state: DagRunStatus['state'] | 'pending'; error?: string }[];
}

export interface ExperimentResult {
  runId: string;
  models: Record<string, DagWorkflowResult>;
}

/**
 * The local runner's policy type with more attempts and a longer cap than its default (3, 30 s): on Temporal
 * a failed attempt is often a lost worker or server, which takes longer to come back than a local hiccup.
 * (A literal, not built from pipeline's DEFAULT_RETRY_POLICY: this file is bundled into the workflow sandbox.)
 */
export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 5,
  initialDelayMs: 1_000,
  maxDelayMs: 60_000,
  backoffCoefficient: 2,
};
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 120_000;
export const DEFAULT_START_TO_CLOSE_TIMEOUT_MS = 24 * 3600_000;
export const DEFAULT_CONCURRENCY = 4;
