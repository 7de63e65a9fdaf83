/**
 * The order a sharded node's shards are handed out: costliest first by their estimated cost (Shard.cost,
 * from the stage's RowParallel.rowCost), ties in shard order. Shards of equal rows are not equal work —
 * rows are grouped by prompt variant and a chunk pads to its longest row; bench:scale on SmolLM2 (README
 * "Scaling out") measured six refusal-logprob shards of 32 rows at 6.4–12.5 s — and in shard order the
 * costliest can start last and leave one worker running it alone. Largest-first bounds a node's time on W
 * workers at 4/3 of the best split (Graham's LPT bound).
 *
 * The local runner's slots are first come first served, so there shards start in exactly this order. On
 * Temporal the workflow schedules them in this order and the server picks which waiting shard a free worker
 * gets: with one partition per task queue its backlog goes out close to that order, but shards scheduled in
 * one workflow task reach the queue in no fixed order (a one-worker test run took shards 1, 3, 4, 2 of a
 * schedule 3, 4, 1, 2). There it is a hint, which is why presets use several shards per worker.
 *
 * Dependency-free: the Temporal workflow (sandboxed, deterministic) imports it as well as the local runner.
 */
export function shardDispatchOrder(costs: readonly number[]): number[] {
  return costs.map((_, i) => i).sort((a, b) => costs[b]! - costs[a]! || a - b);
}
