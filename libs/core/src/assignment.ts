/**
 * Slot assignment: which live node owns which slot. Every node computes it from the same inputs
 * (membership, drains, pins and the current owners), so the result must depend on those inputs
 * only, never on their order, and must move as few slots as possible when membership changes,
 * since every moved slot costs a hand-off (fence, reload from the store, rebuild of its wheel).
 *
 * The technique is a sticky, balanced rendezvous assignment:
 *   1. Quotas. Pins are fixed first and count toward their node's load. The slot count is then
 *      water-filled: a node whose pins alone exceed the mean load of the nodes still in play keeps
 *      just its pins and leaves play; the slots left are shared by the nodes in play, each getting
 *      floor or ceil of their mean. The ceil goes first to the nodes that held the most slots
 *      (so it keeps a slot there instead of moving one), then by a hash of the node id.
 *      Result: every node's load is within one of every other's, except nodes that carry only
 *      their pins, which may be above it (never below).
 *   2. Stickiness. Each node keeps its previous slots up to its quota; if it held more, it keeps
 *      those it ranks highest by rendezvous weight, so it lets go of the ones new nodes want.
 *   3. The rest. Each remaining slot, in slot order, goes to the node with the highest
 *      rendezvous weight hash(slot, node) among the nodes still under quota.
 * Without `previous` this is rendezvous (highest-random-weight) hashing (Thaler & Ravishankar,
 * "Using Name-Based Mappings to Increase Hit Rates", IEEE/ACM ToN 1998) with bounded loads in the
 * spirit of Mirrokni, Thorup & Zadimoghaddam, "Consistent Hashing with Bounded Loads", SODA 2018.
 * From a balanced previous assignment, adding a node moves only the new node's quota of slots, all
 * to it; removing or draining a node moves only its slots; no slot moves between two nodes that
 * stayed.
 *
 * Cost: O(slotCount * nodes) hash evaluations, plus a sort per node of its previous slots.
 */

export interface AssignmentInput {
  /** Slots are 0..slotCount-1. */
  slotCount: number;
  /** Live node ids, in any order; duplicates are ignored. */
  nodes: readonly string[];
  /** Live nodes that must own nothing (being drained for shutdown or maintenance). */
  drained?: ReadonlySet<string>;
  /** slot -> node. Honoured only if that node is live and not drained; out-of-range slots ignored. */
  pins?: ReadonlyMap<number, string>;
  /** The current owners, for stickiness. Owners that are gone or drained are ignored. */
  previous?: ReadonlyMap<number, string>;
}

/** One slot whose owner differs; `from`/`to` are absent when the slot had / gets no owner. */
export interface AssignmentChange {
  slot: number;
  from?: string;
  to?: string;
}

export interface AssignmentDiff {
  /** Number of slots whose owner differs (including slots gaining or losing an owner). */
  moved: number;
  /** The differing slots, in slot order. */
  changes: AssignmentChange[];
}

/**
 * Assigns every slot 0..slotCount-1 to an eligible (live, not drained) node. Slots are absent
 * from the result only when there is no eligible node.
 * @throws RangeError if slotCount is not a non-negative safe integer.
 */
export function assignSlots(input: AssignmentInput): Map<number, string> {
  const { slotCount } = input;
  if (!Number.isSafeInteger(slotCount) || slotCount < 0) {
    throw new RangeError(`slotCount must be a non-negative integer, got ${slotCount}`);
  }
  const drained = input.drained;
  // Sorted so that nothing below depends on the caller's order; ties are broken by id.
  const eligible = [...new Set(input.nodes)]
    .filter((node) => drained === undefined || !drained.has(node))
    .sort(compareIds);
  const assignment = new Map<number, string>();
  if (eligible.length === 0 || slotCount === 0) return assignment;

  const nodes: NodeState[] = eligible.map((id) => ({
    id,
    hash: hash32(id),
    pinned: 0,
    previous: 0,
    quota: 0,
    load: 0,
  }));
  const byId = new Map<string, NodeState>(nodes.map((n) => [n.id, n]));
  const owner: Array<NodeState | undefined> = new Array<NodeState | undefined>(slotCount);

  for (const [slot, id] of input.pins ?? []) {
    const node = byId.get(id);
    if (node === undefined || !isSlot(slot, slotCount)) continue;
    owner[slot] = node;
    node.pinned++;
  }

  // Previous slots each node could keep (not pinned elsewhere, owner still eligible).
  const kept = new Map<NodeState, number[]>();
  for (const [slot, id] of input.previous ?? []) {
    const node = byId.get(id);
    if (node === undefined || !isSlot(slot, slotCount) || owner[slot] !== undefined) continue;
    node.previous++;
    const list = kept.get(node);
    if (list === undefined) kept.set(node, [slot]);
    else list.push(slot);
  }

  setQuotas(nodes, slotCount);

  for (const node of nodes) node.load = node.pinned;
  for (const [node, slots] of kept) {
    const room = node.quota - node.pinned;
    if (slots.length > room) {
      slots.sort((a, b) => weight(b, node.hash) - weight(a, node.hash) || a - b);
      slots.length = room;
    }
    for (const slot of slots) owner[slot] = node;
    node.load += slots.length;
  }

  const open = nodes.filter((n) => n.load < n.quota);
  for (let slot = 0; slot < slotCount; slot++) {
    if (owner[slot] !== undefined) continue;
    let best: NodeState | undefined;
    let bestWeight = -1;
    for (const node of open) {
      if (node.load >= node.quota) continue;
      const w = weight(slot, node.hash);
      // `open` is sorted by id, so on equal weights the first (smallest id) wins.
      if (w > bestWeight) {
        best = node;
        bestWeight = w;
      }
    }
    // Quotas sum to slotCount, so some node is always under quota here.
    if (best === undefined) throw new Error('slot assignment: quotas do not cover every slot');
    owner[slot] = best;
    best.load++;
  }

  for (let slot = 0; slot < slotCount; slot++) assignment.set(slot, owner[slot]!.id);
  return assignment;
}

/** The slots whose owner differs between two assignments, in slot order. */
export function diffAssignment(
  before: ReadonlyMap<number, string>,
  after: ReadonlyMap<number, string>,
): AssignmentDiff {
  const slots = new Set<number>([...before.keys(), ...after.keys()]);
  const changes: AssignmentChange[] = [];
  for (const slot of [...slots].sort((a, b) => a - b)) {
    const from = before.get(slot);
    const to = after.get(slot);
    if (from === to) continue;
    const change: AssignmentChange = { slot };
    if (from !== undefined) change.from = from;
    if (to !== undefined) change.to = to;
    changes.push(change);
  }
  return { moved: changes.length, changes };
}

/** An eligible node while assigning. */
interface NodeState {
  readonly id: string;
  /** hash32(id), the node's half of every rendezvous weight. */
  readonly hash: number;
  /** Slots pinned to it. */
  pinned: number;
  /** Unpinned slots it owned before and may keep. */
  previous: number;
  /** Slots it ends with, pins included. */
  quota: number;
  /** Slots given to it so far. */
  load: number;
}

/**
 * Water-filling (step 1 above). A node leaves play when pinned * inPlay > remaining, i.e. its pins
 * exceed the mean; at the fixpoint every node in play has pinned <= floor(mean), so floor/ceil
 * quotas never fall below its pins. Play never empties: the pins of the nodes in play sum to at
 * most `remaining`, so they cannot all exceed the mean.
 */
function setQuotas(nodes: readonly NodeState[], slotCount: number): void {
  let inPlay = [...nodes];
  let remaining = slotCount;
  for (;;) {
    const count = inPlay.length;
    const over = inPlay.filter((n) => n.pinned * count > remaining);
    if (over.length === 0) break;
    for (const node of over) {
      node.quota = node.pinned;
      remaining -= node.pinned;
    }
    inPlay = inPlay.filter((n) => !over.includes(n));
  }
  const base = Math.floor(remaining / inPlay.length);
  let extra = remaining - base * inPlay.length;
  // The ceil goes where it saves a move: nodes whose pins plus keepable previous slots reach it.
  const ranked = [...inPlay].sort(
    (a, b) =>
      b.pinned + b.previous - (a.pinned + a.previous) || b.hash - a.hash || compareIds(a.id, b.id),
  );
  for (const node of ranked) {
    node.quota = base + (extra > 0 ? 1 : 0);
    if (extra > 0) extra--;
  }
}

function isSlot(slot: number, slotCount: number): boolean {
  return Number.isInteger(slot) && slot >= 0 && slot < slotCount;
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * FNV-1a, 32 bits, over UTF-16 code units (equal to the byte-wise FNV-1a of ASCII ids), then the
 * MurmurHash3 finaliser, whose avalanche FNV-1a lacks on short, similar ids like "node-1", "node-2".
 */
function hash32(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return fmix32(hash);
}

/** The rendezvous weight of a node for a slot: unsigned 32 bits, stable across versions. */
function weight(slot: number, nodeHash: number): number {
  return fmix32(nodeHash ^ Math.imul(slot + 1, 0x9e3779b1));
}

/** MurmurHash3's 32-bit finaliser (Appleby, public domain): a bijection with full avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
