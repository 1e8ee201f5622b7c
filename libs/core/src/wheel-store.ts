/**
 * The timing wheel's storage (see ./wheel.ts for the design): held items as struct-of-arrays
 * with a free list, and the binary min-heaps of handles that hold late and far-future items.
 * Internal to the wheel; no I/O.
 */
/** Handles index Int32Arrays (links, heaps) and -1 is NIL. */
export const MAX_HANDLES = 0x7fffffff;
export const INITIAL_CAPACITY = 1024;
export const NIL = -1;

// Where a handle currently is.
export const FREE = 0;
export const IN_BUCKET = 1;
export const IN_LATE = 2;
export const IN_OVERFLOW = 3;

/**
 * Struct-of-arrays storage of the held items. A handle's `prev` is its list predecessor while in a
 * bucket and its heap position while in a heap; `next` doubles as the free-list link.
 */
export class WheelStore {
  seq: Float64Array;
  due: Float64Array;
  slot: Uint16Array;
  next: Int32Array;
  prev: Int32Array;
  where: Uint8Array;
  /** Handles ever handed out; every handle below it is either held or on the free list. */
  highWater = 0;
  /** Handles held (allocated and not released). */
  held = 0;
  private freeHead = NIL;

  constructor(capacity: number) {
    this.seq = new Float64Array(capacity);
    this.due = new Float64Array(capacity);
    this.slot = new Uint16Array(capacity);
    this.next = new Int32Array(capacity);
    this.prev = new Int32Array(capacity);
    this.where = new Uint8Array(capacity);
  }

  alloc(): number {
    this.held++;
    const reused = this.freeHead;
    if (reused !== NIL) {
      this.freeHead = this.next[reused]!;
      return reused;
    }
    if (this.highWater === this.due.length) this.grow();
    return this.highWater++;
  }

  release(i: number): void {
    this.held--;
    this.where[i] = FREE;
    this.next[i] = this.freeHead;
    this.freeHead = i;
  }

  private grow(): void {
    if (this.due.length >= MAX_HANDLES) throw new RangeError('timing wheel is full');
    const capacity = Math.min(MAX_HANDLES, Math.ceil(this.due.length * 1.5));
    this.seq = copyInto(new Float64Array(capacity), this.seq);
    this.due = copyInto(new Float64Array(capacity), this.due);
    this.slot = copyInto(new Uint16Array(capacity), this.slot);
    this.next = copyInto(new Int32Array(capacity), this.next);
    this.prev = copyInto(new Int32Array(capacity), this.prev);
    this.where = copyInto(new Uint8Array(capacity), this.where);
  }
}

function copyInto<T extends Float64Array | Int32Array | Uint16Array | Uint8Array>(
  target: T,
  source: T,
): T {
  target.set(source);
  return target;
}

/**
 * A binary min-heap of handles ordered by (due, order), where order is the insertion number, so
 * equal due times pop in insertion order. Keeps each handle's heap position in `store.prev` for
 * O(log n) removal.
 */
export class DueHeap {
  private items = new Int32Array(16);
  private orders = new Float64Array(16);
  length = 0;

  constructor(private readonly store: WheelStore) {}

  /** The handle with the smallest (due, order), or NIL. */
  peek(): number {
    return this.length === 0 ? NIL : this.items[0]!;
  }

  push(i: number, order: number): void {
    if (this.length === this.items.length) {
      this.items = copyInto(new Int32Array(this.length * 2), this.items);
      this.orders = copyInto(new Float64Array(this.length * 2), this.orders);
    }
    this.siftUp(this.length++, i, order);
  }

  pop(): number {
    const top = this.items[0]!;
    this.removeAt(0);
    return top;
  }

  /**
   * The handles of the entries with this seq and due time. Depth-first from the root, skipping the
   * subtree of every entry due later than dueMs (no descendant of an entry is due earlier), so it
   * visits only the entries due at or before dueMs and their children.
   */
  find(seq: number, dueMs: number): number[] {
    const found: number[] = [];
    const { due, seq: seqs } = this.store;
    const stack: number[] = this.length > 0 ? [0] : [];
    for (let p = stack.pop(); p !== undefined; p = stack.pop()) {
      const i = this.items[p]!;
      const d = due[i]!;
      if (d > dueMs) continue;
      if (d === dueMs && seqs[i] === seq) found.push(i);
      const child = 2 * p + 1;
      if (child < this.length) stack.push(child);
      if (child + 1 < this.length) stack.push(child + 1);
    }
    return found;
  }

  remove(i: number): void {
    this.removeAt(this.store.prev[i]!);
  }

  private removeAt(p: number): void {
    const lastPos = --this.length;
    if (p === lastPos) return;
    const last = this.items[lastPos]!;
    const lastOrder = this.orders[lastPos]!;
    if (p > 0 && this.before(last, lastOrder, (p - 1) >> 1)) this.siftUp(p, last, lastOrder);
    else this.siftDown(p, last, lastOrder);
  }

  /** Whether handle i with insertion number o orders before the entry at heap position p. */
  private before(i: number, o: number, p: number): boolean {
    const due = this.store.due;
    const d = due[i]!;
    const other = due[this.items[p]!]!;
    return d < other || (d === other && o < this.orders[p]!);
  }

  private siftUp(p: number, i: number, o: number): void {
    while (p > 0) {
      const parent = (p - 1) >> 1;
      if (!this.before(i, o, parent)) break;
      this.put(p, this.items[parent]!, this.orders[parent]!);
      p = parent;
    }
    this.put(p, i, o);
  }

  private siftDown(p: number, i: number, o: number): void {
    const n = this.length;
    for (;;) {
      let child = 2 * p + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && this.before(this.items[right]!, this.orders[right]!, child)) child = right;
      if (this.before(i, o, child)) break;
      this.put(p, this.items[child]!, this.orders[child]!);
      p = child;
    }
    this.put(p, i, o);
  }

  private put(p: number, i: number, o: number): void {
    this.items[p] = i;
    this.orders[p] = o;
    this.store.prev[i] = p;
  }
}
