/**
 * The etcd key layout of one cluster, under its prefix (`cluster.etcdPrefix`, e.g. `/hourglass`):
 *
 * | key                    | value                                   | bound to        |
 * | ---------------------- | --------------------------------------- | --------------- |
 * | `<prefix>/nodes/<id>`   | JSON {@link NodeInfo}                   | the node's lease |
 * | `<prefix>/owners/<slot>`| JSON `{"node", "epoch"?}` (see below)    | the owner's lease |
 * | `<prefix>/pins/<slot>`  | node id the slot is pinned to           | nothing (admin) |
 * | `<prefix>/drained/<id>` | JSON `{ "since": <ISO time> }`          | nothing (admin) |
 *
 * An owner key is created as `{"node": id}` when a node wins the slot; its create revision is the
 * epoch floor the engine acquires the slot with. Once the engine has acquired it (fenced and
 * loading, firing from now on) the owner rewrites it as `{"node": id, "epoch": <Postgres epoch>}`,
 * so the admin view tells a slot being taken over from one being fired.
 *
 * Everything a node needs to compute the assignment is under the prefix, so one range read is a
 * consistent snapshot of the cluster (see {@link parseClusterState}).
 */

/** What a node publishes about itself under `nodes/<id>`. */
export interface NodeInfo {
  readonly id: string;
  readonly httpUrl: string;
  readonly grpcAddress: string;
  /** ISO-8601 time this registration was made (a rejoin after a lost lease makes a new one). */
  readonly startedAt: string;
}

/** `/hourglass` → `/hourglass/`; `/` stays `/`. Every key below is relative to this. */
export function keyBase(prefix: string): string {
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}

export const NODES = 'nodes/';
export const OWNERS = 'owners/';
export const PINS = 'pins/';
export const DRAINED = 'drained/';

export const nodeKey = (id: string): string => `${NODES}${id}`;
export const ownerKey = (slot: number): string => `${OWNERS}${slot}`;
export const pinKey = (slot: number): string => `${PINS}${slot}`;
export const drainedKey = (id: string): string => `${DRAINED}${id}`;

/** Node ids as config accepts them (`node.id`), non-empty. Keeps ids from smuggling `/` into keys. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** Decimal slot numbers without leading zeros, so `owners/07` never aliases `owners/7`. */
export function parseSlot(text: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,8})$/.test(text)) return undefined;
  return Number(text);
}
