/**
 * Slot math. A message's slot is a stable hash of (app, id) modulo the cluster's slot count, so
 * every node computes the same slot for the same message without coordination, and the slot count
 * never changes once a cluster is created (a node configured otherwise refuses to start).
 */

/** Default number of slots in a new cluster. */
export const DEFAULT_SLOT_COUNT = 256;

/**
 * FNV-1a, 32 bits, over the UTF-16 code units of the string. Chosen for being tiny, fast and
 * specified exactly (http://www.isthe.com/chongo/tech/comp/fnv/), so any SDK can reproduce it.
 */
export function fnv1a32(text: string, seed = 0x811c9dc5): number {
  let hash = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** The unique key of a message across apps: ids are unique per app only. */
export function messageKey(app: string, id: string): string {
  return `${app}\u0000${id}`;
}

export function slotOf(app: string, id: string, slotCount: number): number {
  // fnv1a32(messageKey(app, id)), streamed over the three parts (FNV-1a is a running hash, so
  // the value is the same) without building the key string.
  return fnv1a32(id, fnv1a32('\u0000', fnv1a32(app))) % slotCount;
}

/** All slot numbers of a cluster, 0..slotCount-1. */
export function allSlots(slotCount: number): number[] {
  return Array.from({ length: slotCount }, (_, slot) => slot);
}
