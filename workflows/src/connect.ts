/**
 * Connecting to a Temporal server, and telling the user what is wrong when that fails. The SDK's own
 * message ("Failed to connect before the deadline") names neither the address nor what to check.
 */
import { Client, Connection } from '@temporalio/client';
import { DEFAULT_ADDRESS, DEFAULT_NAMESPACE } from './shared.ts';

export interface TemporalTarget {
  /** host:port of the Temporal frontend (default $TEMPORAL_ADDRESS, else localhost:7233). */
  address?: string;
  /** Default $TEMPORAL_NAMESPACE, else "default". */
  namespace?: string;
}

/** The address and namespace a target means, with the defaults filled in (the same ones `dro worker` uses). */
export function resolveTarget(target: TemporalTarget = {}): { address: string; namespace: string } {
  return {
    address: target.address ?? process.env.TEMPORAL_ADDRESS ?? DEFAULT_ADDRESS,
    namespace: target.namespace ?? process.env.TEMPORAL_NAMESPACE ?? DEFAULT_NAMESPACE,
  };
}

/** The address and namespace an open client talks to (for messages). */
export function targetOf(client: Client): { address: string; namespace: string } {
  const connection = client.connection as Partial<Connection>;
  return { address: connection.options?.address ?? DEFAULT_ADDRESS, namespace: client.options.namespace };
}

/** The server cannot be reached, or does not have the namespace: the message says which and what to check. */
export class TemporalConnectError extends Error {
  override name = 'TemporalConnectError';
}

/** How long connecting may take before the address is reported unreachable (the SDK's default). */
const CONNECT_TIMEOUT_MS = 10_000;

export function unreachableMessage(address: string, namespace: string, err: unknown): string {
  return (
    `cannot reach the Temporal server at ${address} (${(err as Error)?.message ?? String(err)}). Check that the server is running ` +
    `and listening there (for a local one: \`temporal server start-dev --port ${address.split(':').at(-1)}\`), that --address ` +
    `HOST:PORT (or $TEMPORAL_ADDRESS) names its frontend, and that namespace "${namespace}" (--namespace) is the one to use`
  );
}

/** gRPC status codes of a server that is down or not answering (UNAVAILABLE, DEADLINE_EXCEEDED). */
const UNREACHABLE_CODES = new Set([14, 4]);

/** Whether an error from a Temporal call means the server could not be reached (rather than it answering no). */
export function isServerUnreachable(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown; message?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'number' && UNREACHABLE_CODES.has(e.code)) return true;
    if (typeof e.message === 'string' && /Failed to connect before the deadline|UNAVAILABLE|ECONNREFUSED/.test(e.message)) return true;
  }
  return false;
}

/** A client for the target; a TemporalConnectError names the address and what to check when there is none. */
export async function connectClient(target: TemporalTarget = {}): Promise<Client> {
  const { address, namespace } = resolveTarget(target);
  let connection: Connection;
  try {
    connection = await Connection.connect({ address, connectTimeout: CONNECT_TIMEOUT_MS });
  } catch (err) {
    throw new TemporalConnectError(unreachableMessage(address, namespace, err), { cause: err });
  }
  try {
    await connection.withDeadline(Date.now() + CONNECT_TIMEOUT_MS, () => connection.workflowService.describeNamespace({ namespace }));
  } catch (err) {
    await connection.close().catch(() => undefined);
    if ((err as { code?: number }).code === 5) {
      throw new TemporalConnectError(
        `namespace "${namespace}" does not exist on the Temporal server at ${address}: pass --namespace NS (or set $TEMPORAL_NAMESPACE), ` +
          `or create it (\`temporal operator namespace create --namespace ${namespace} --address ${address}\`)`,
        { cause: err },
      );
    }
    throw new TemporalConnectError(unreachableMessage(address, namespace, err), { cause: err });
  }
  return new Client({ connection, namespace });
}
