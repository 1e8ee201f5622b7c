/**
 * The two ways the coordinator talks to etcd's key space: one range read of the whole prefix (a
 * consistent snapshot), and transactions guarded by the create revision of each key they touch.
 */
import type { IOperation, Namespace } from 'etcd3';
import { parseClusterState } from './state';
import type { ClusterState } from './state';

/** etcd transactions in flight at once when keys are tried one by one. */
const TXN_CONCURRENCY = 32;
/** Keys per transaction; etcd refuses more than 128 operations per list (`--max-txn-ops`). */
const TXN_MAX_KEYS = 64;

/** Reads every key of the cluster at one revision. */
export async function readState(ns: Namespace, slotCount: number): Promise<ClusterState> {
  const response = await ns.getAll().exec();
  return parseClusterState(
    Number(response.header.revision),
    response.kvs.map((kv) => ({
      key: kv.key.toString(),
      value: kv.value.toString(),
      createRevision: Number(kv.create_revision),
      modRevision: Number(kv.mod_revision),
      lease: String(kv.lease),
    })),
    slotCount,
  );
}

export interface GuardedResult<T> {
  /** Item → revision of the transaction that committed it. */
  readonly committed: Map<T, number>;
  /** Items that met an error (etcd unreachable, ...), as opposed to a failed guard. */
  readonly errored: Set<T>;
  readonly errors: unknown[];
}

/**
 * Commits `op` for each item whose key still has the given create revision (0: absent), in one
 * transaction per {@link TXN_MAX_KEYS} items: a chunk commits as a whole, so other nodes see it in
 * one watch event. When a guard fails the chunk's items are tried one by one.
 */
export async function guardedTxns<T>(
  ns: Namespace,
  items: readonly T[],
  guard: (item: T) => { key: string; createRevision: number },
  op: (item: T) => IOperation,
): Promise<GuardedResult<T>> {
  const committed = new Map<T, number>();
  const errored = new Set<T>();
  const errors: unknown[] = [];
  const commit = async (chunk: readonly T[]): Promise<boolean> => {
    const [first, ...rest] = chunk.map(guard);
    if (!first) return true;
    const txn = ns.if(first.key, 'Create', '==', first.createRevision);
    for (const more of rest) txn.and(more.key, 'Create', '==', more.createRevision);
    const result = await txn.then(...chunk.map(op)).commit();
    if (result.succeeded)
      for (const item of chunk) committed.set(item, Number(result.header.revision));
    return result.succeeded;
  };
  for (let i = 0; i < items.length; i += TXN_MAX_KEYS) {
    const chunk = items.slice(i, i + TXN_MAX_KEYS);
    try {
      if ((await commit(chunk)) || chunk.length === 1) continue;
    } catch (error) {
      // etcd unreachable or refusing: one by one would fail the same way.
      errors.push(error);
      for (const item of chunk) errored.add(item);
      continue;
    }
    await settleAll(chunk, TXN_CONCURRENCY, async (item) => {
      try {
        await commit([item]);
      } catch (error) {
        errors.push(error);
        errored.add(item);
      }
    });
  }
  return { committed, errored, errors };
}

/** Runs `work` over `items` with at most `limit` in flight. */
async function settleAll<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
