/**
 * The timing wheel: holds the messages of this node's slots that are due within the horizon and
 * hands them out exactly when due. It is a hashed timing wheel (Varghese & Lauck, "Hashed and
 * Hierarchical Timing Wheels", SOSP 1987, scheme 6) with one bucket per millisecond, so firing
 * never needs a sort and a bucket holds only items of a single due time.
 *
 * Time is passed in (`advance(nowMs)`); the wheel never reads a clock, so tests drive it with
 * plain numbers and the engine decides when to tick (it sleeps until {@link TimingWheel.nextDueMs}).
 *
 * Items are three numbers: the message's `seq` (its store-wide sequence number, opaque to the
 * wheel), its slot and its due time. The wheel keeps no strings and no object per item, and no
 * index by seq: it does not deduplicate (an item inserted twice is held, and fired, twice), and
 * {@link TimingWheel.cancel} finds an item only by looking where an item of its due time can be.
 * The engine relies on the store for correctness: a claim only takes messages that are still
 * scheduled, so a duplicate, or a cancelled message the wheel still holds, fires to nothing.
 *
 * Layout. Items live in a struct-of-arrays store indexed by a small integer handle (seq, due time,
 * slot, next/prev links, location), with a free list, grown by 1.5x. Every held item is in exactly
 * one of three places, and these invariants hold between public calls (the `cursor` is the first
 * millisecond whose bucket has not been emptied):
 *   - late:     dueMs <  cursor              a min-heap on (dueMs, insertion order)
 *   - buckets:  cursor <= dueMs < cursor + B  bucket dueMs mod B, a FIFO doubly linked list
 *   - overflow: dueMs >= cursor + B           a min-heap on (dueMs, insertion order)
 * where B is the bucket count, the next power of two >= spanMs. Because an overflow item moves into
 * its bucket as soon as the cursor brings it within B (before any later insert can land there) and
 * heaps pop in insertion order on ties, every bucket lists its items in insertion order, so firing
 * order is (dueMs, insertion order) without storing an insertion number per bucketed item.
 *
 * Never early: advance(nowMs) only takes late items (due < cursor <= nowMs + 1), buckets of
 * milliseconds <= nowMs, and overflow items with dueMs <= nowMs; due times are whole milliseconds.
 *
 * Costs. insert O(1) for items within the span; O(log n) for items beyond it or already overdue
 * (the heaps, expected to be small: the engine loads only up to the horizon). advance is
 * O(fired + milliseconds moved), capped at O(B + fired * log n) for a jump longer than the span
 * (one pass over the buckets, then the overflow heap directly); empty milliseconds already
 * scanned by nextDueMs are skipped, so sleep-until-next-due then advance scans each ms once.
 * dropSlot and dropSlots (any number of slots) are one pass, O(high-water mark).
 * cancel(seq, dueMs) looks only where an item due at dueMs can be (the layout invariants above
 * fix that place from dueMs and the cursor): within the span, that millisecond's bucket, O(k) for
 * the k items due in that same millisecond; before the cursor or beyond the span, the late or the
 * overflow heap, searched depth-first only through entries due no later than dueMs (an entry's
 * children are never due earlier), so O(m) for the m entries of that heap due at or before dueMs
 * (O(n) in the worst case, when all are), plus O(log n) per removal. It keeps no index, so it
 * costs no memory per item; a call allocates only its search stack.
 *
 * Capacity and memory. Sized and measured for 1-2 million items; handles are 31-bit.
 * Per held item, 27 bytes in typed arrays (8 seq + 8 due + 2 slot + 4 + 4 links + 1 location),
 * plus the slack of growing by 1.5x (0-50 %, so 27-41 bytes). Nothing else is allocated per item.
 *   Measured (node 20, `--expose-gc`, heapUsed + arrayBuffers after gc, before/after creating a
 *   wheel with a 7-minute span and inserting N items, so the fixed bucket arrays are included):
 *   31.5 bytes/item at 1M, 30.1 at 1.5M, 32.7 at 2M; worst 44.5 just after a growth step (1.01M).
 *   The earlier design (a key string per item, a keys array and a key -> handle Map) measured
 *   56-64 bytes/item the same way without the key strings, and 119-128 with the engine's
 *   `app + NUL + id` keys. The product target of 100 bytes per held message holds.
 *   Overdue and beyond-span items cost 12-24 bytes more each (heap entry).
 *   Fixed: 8 bytes per bucket (head + tail), 4 MiB for a 7-minute span (42 bytes/item at 100k).
 * Memory is not returned when the wheel empties; it stays at its high-water mark.
 * Firing allocates only the returned items: 20-35 million items/s from a 1M-item wheel (node 20,
 * advancing 10 ms at a time, 5000 per call; the Map design managed 1.5 million/s, bound by its
 * deletes). Slots must fit 16 bits (< 65536).
 */
import {
  DueHeap,
  FREE,
  INITIAL_CAPACITY,
  IN_BUCKET,
  IN_LATE,
  IN_OVERFLOW,
  NIL,
  WheelStore,
} from './wheel-store';

/**
 * An item held by the wheel: the message's store sequence number (a non-negative integer below
 * 2^53, opaque to the wheel), its slot and its due time.
 */
export interface WheelItem {
  seq: number;
  slot: number;
  dueMs: number;
}

export interface TimingWheelOptions {
  /**
   * How far ahead of the position the buckets reach, in ms. Items due further out wait in an
   * overflow heap and move into buckets as the wheel turns. Rounded up to a power of two; at most
   * 2^24 (about 4.6 hours), since the bucket arrays cost 8 bytes per millisecond of span.
   */
  spanMs: number;
  /** The initial position (epoch ms): items due at or before it fire on the first advance. */
  startMs: number;
}

/** Largest span accepted: 2^24 buckets cost 128 MiB of heads and tails. */
const MAX_SPAN_MS = 1 << 24;
const MAX_SLOT = 0xffff;

export class TimingWheel {
  private readonly store: WheelStore;
  private readonly bucketCount: number;
  private readonly mask: number;
  private readonly heads: Int32Array;
  private readonly tails: Int32Array;
  private readonly late: DueHeap;
  private readonly overflow: DueHeap;
  /** Insertion number for heap tie-breaks; a double stays exact for 2^53 inserts. */
  private order = 0;
  /** First millisecond whose bucket has not been emptied; see the invariants above. */
  private cursor: number;
  private pos: number;
  /** Lower bound of the earliest non-empty bucket's time: buckets in [cursor, hint) are empty. */
  private hint: number;
  private inBuckets = 0;

  constructor(opts: TimingWheelOptions) {
    const { spanMs, startMs } = opts;
    if (!Number.isInteger(spanMs) || spanMs < 1 || spanMs > MAX_SPAN_MS) {
      throw new RangeError(`spanMs must be an integer in [1, ${MAX_SPAN_MS}], got ${spanMs}`);
    }
    if (!Number.isSafeInteger(startMs)) {
      throw new RangeError(`startMs must be a whole number of milliseconds, got ${startMs}`);
    }
    let buckets = 1;
    while (buckets < spanMs) buckets *= 2;
    this.bucketCount = buckets;
    this.mask = buckets - 1;
    this.heads = new Int32Array(buckets).fill(NIL);
    this.tails = new Int32Array(buckets).fill(NIL);
    this.store = new WheelStore(INITIAL_CAPACITY);
    this.late = new DueHeap(this.store);
    this.overflow = new DueHeap(this.store);
    this.pos = startMs;
    this.cursor = startMs + 1;
    this.hint = this.cursor;
  }

  /** Number of items held (an item inserted twice counts twice). */
  get size(): number {
    return this.store.held;
  }

  /** The time (epoch ms) the wheel has advanced to. */
  get position(): number {
    return this.pos;
  }

  /**
   * Adds the item. Nothing is deduplicated: an item inserted twice is held and fired twice. Items
   * due at or before the position fire on the next advance. O(1) within the span, O(log n) beyond
   * it or in the past.
   * @throws RangeError if seq is not a safe non-negative integer, dueMs is not a safe integer or
   * slot is not an integer in [0, 65535].
   */
  insert(item: WheelItem): void {
    const { seq, slot, dueMs } = item;
    if (!Number.isSafeInteger(seq) || seq < 0) {
      throw new RangeError(`seq must be a safe non-negative integer, got ${seq}`);
    }
    if (!Number.isSafeInteger(dueMs)) {
      throw new RangeError(`dueMs must be a whole number of milliseconds, got ${dueMs}`);
    }
    if (!Number.isInteger(slot) || slot < 0 || slot > MAX_SLOT) {
      throw new RangeError(`slot must be an integer in [0, ${MAX_SLOT}], got ${slot}`);
    }
    const store = this.store;
    const i = store.alloc();
    store.seq[i] = seq;
    store.due[i] = dueMs;
    store.slot[i] = slot;
    if (dueMs < this.cursor) {
      store.where[i] = IN_LATE;
      this.late.push(i, this.order++);
    } else if (dueMs < this.cursor + this.bucketCount) {
      this.linkBucket(i, dueMs);
    } else {
      store.where[i] = IN_OVERFLOW;
      this.overflow.push(i, this.order++);
    }
  }

  /** Removes every item of a slot (its ownership moved away). O(high-water mark of handles). */
  dropSlot(slot: number): number {
    return this.dropSlots(new Set([slot]));
  }

  /**
   * Removes every held item of these slots, in one pass over the items: a node handing off (or
   * stopping with) all its 256 slots must not scan a million items 256 times.
   */
  dropSlots(slots: ReadonlySet<number>): number {
    if (slots.size === 0) return 0;
    const store = this.store;
    let removed = 0;
    for (let i = 0; i < store.highWater; i++) {
      if (store.where[i] !== FREE && slots.has(store.slot[i]!)) {
        this.unlink(i);
        store.release(i);
        removed++;
      }
    }
    return removed;
  }

  /**
   * Removes every held item with this seq and due time (every copy of it, since nothing is
   * deduplicated) and returns how many it removed. Looks only where an item due at dueMs can be:
   * that millisecond's bucket, O(k) for its k items, or for a due time before the cursor or beyond
   * the span the late or overflow heap, O(entries of that heap due at or before dueMs) plus
   * O(log n) per removal. Copies of the seq held under another due time (a message re-wheeled for
   * a retry) stay. A dueMs that is not a safe integer matches nothing (no item can be due then).
   */
  cancel(seq: number, dueMs: number): number {
    if (!Number.isSafeInteger(dueMs)) return 0;
    if (dueMs < this.cursor) return this.cancelInHeap(this.late, seq, dueMs);
    if (dueMs >= this.cursor + this.bucketCount) {
      return this.cancelInHeap(this.overflow, seq, dueMs);
    }
    // Within the span, bucket dueMs mod B holds exactly the items due at dueMs.
    const store = this.store;
    let removed = 0;
    let i = this.heads[this.bucketOf(dueMs)]!;
    while (i !== NIL) {
      const following = store.next[i]!;
      if (store.seq[i] === seq) {
        this.unlink(i);
        store.release(i);
        removed++;
      }
      i = following;
    }
    return removed;
  }

  /**
   * Moves the wheel to nowMs and removes and returns the items due at or before it, in (due,
   * insertion) order, at most `limit` of them; the rest stay and come out first on the next call.
   * A nowMs below the position is a no-op returning []. Fractional nowMs is rounded down.
   * @throws RangeError if nowMs is not finite or limit is negative or NaN.
   */
  advance(nowMs: number, limit: number = Number.POSITIVE_INFINITY): WheelItem[] {
    if (!Number.isFinite(nowMs)) throw new RangeError(`nowMs must be finite, got ${nowMs}`);
    if (!(limit >= 0)) throw new RangeError(`limit must be >= 0, got ${limit}`);
    const now = Math.floor(nowMs);
    const max = Math.floor(limit);
    const fired: WheelItem[] = [];
    if (now < this.pos) return fired;
    this.pos = now;

    while (this.late.length > 0 && fired.length < max) this.fire(this.late.pop(), fired);
    if (fired.length >= max) return fired;

    if (now - this.cursor >= this.bucketCount) this.sweep(now, max, fired);
    else this.step(now, max, fired);
    return fired;
  }

  /**
   * Due time of the earliest held item (possibly before the position, if overdue), or undefined.
   * Amortised O(1): a scan for the next non-empty bucket resumes where the previous one stopped,
   * so its total cost is bounded by the milliseconds the wheel turns (each scan at most B).
   */
  nextDueMs(): number | undefined {
    const store = this.store;
    const lateTop = this.late.peek();
    if (lateTop !== NIL) return store.due[lateTop];
    if (this.inBuckets > 0) {
      let t = Math.max(this.hint, this.cursor);
      let b = this.bucketOf(t);
      // Terminates within B steps: some bucket in [cursor, cursor + B) is non-empty.
      while (this.heads[b] === NIL) {
        b = (b + 1) & this.mask;
        t++;
      }
      this.hint = t;
      return t;
    }
    const overflowTop = this.overflow.peek();
    return overflowTop === NIL ? undefined : store.due[overflowTop];
  }

  /** Turns the wheel one millisecond at a time: used when nowMs is within one span of the cursor. */
  private step(now: number, limit: number, fired: WheelItem[]): void {
    if (this.hint > this.cursor) {
      // Buckets before the hint are known empty (a nextDueMs scan found them so): skip them. The
      // overflow items this brings within the span land in exactly those skipped, empty buckets.
      this.cursor = Math.min(this.hint, now + 1);
      this.migrate();
    }
    let b = this.bucketOf(this.cursor);
    while (this.cursor <= now) {
      if (this.inBuckets === 0) {
        // Nothing within the span: jump. Overflow items are due >= cursor + B > now.
        this.cursor = now + 1;
        this.migrate();
        return;
      }
      if (this.heads[b] !== NIL && !this.drainBucket(b, limit, fired)) return;
      this.cursor++;
      b = (b + 1) & this.mask;
      this.migrate();
    }
  }

  /**
   * A jump of at least one span (a paused process, a burst held back by `limit`): every bucketed
   * item is due, so one pass over the buckets in time order fires them without migrating, then the
   * overflow heap gives the rest in order. Overflow items are all due >= the end of that pass.
   */
  private sweep(now: number, limit: number, fired: WheelItem[]): void {
    const end = this.cursor + this.bucketCount;
    let b = this.bucketOf(this.cursor);
    while (this.cursor < end) {
      if (this.inBuckets === 0) {
        this.cursor = end;
        break;
      }
      if (this.heads[b] !== NIL && !this.drainBucket(b, limit, fired)) {
        this.migrate();
        return;
      }
      this.cursor++;
      b = (b + 1) & this.mask;
    }
    for (let top = this.overflow.peek(); top !== NIL; top = this.overflow.peek()) {
      const due = this.store.due[top]!;
      if (due > now) break;
      if (fired.length >= limit) {
        // Buckets and the late heap are empty, so the cursor may move up to the next item.
        this.cursor = due;
        this.migrate();
        return;
      }
      this.fire(this.overflow.pop(), fired);
    }
    this.cursor = now + 1;
    this.migrate();
  }

  /** Fires bucket b's items in list order up to the limit; true if it is now empty. */
  private drainBucket(b: number, limit: number, fired: WheelItem[]): boolean {
    const next = this.store.next;
    let i = this.heads[b]!;
    while (i !== NIL && fired.length < limit) {
      const following = next[i]!;
      this.fire(i, fired);
      this.inBuckets--;
      i = following;
    }
    this.heads[b] = i;
    if (i === NIL) {
      this.tails[b] = NIL;
      return true;
    }
    this.store.prev[i] = NIL;
    return false;
  }

  /** Restores the overflow invariant after the cursor moved: items due < cursor + B go to buckets. */
  private migrate(): void {
    const horizon = this.cursor + this.bucketCount;
    const due = this.store.due;
    for (let top = this.overflow.peek(); top !== NIL; top = this.overflow.peek()) {
      const d = due[top]!;
      if (d >= horizon) return;
      this.overflow.pop();
      this.linkBucket(top, d);
    }
  }

  /** Appends at the tail, so a bucket keeps insertion order. */
  private linkBucket(i: number, dueMs: number): void {
    const store = this.store;
    const b = this.bucketOf(dueMs);
    const tail = this.tails[b]!;
    store.where[i] = IN_BUCKET;
    store.next[i] = NIL;
    store.prev[i] = tail;
    if (tail === NIL) this.heads[b] = i;
    else store.next[tail] = i;
    this.tails[b] = i;
    this.inBuckets++;
    if (dueMs < this.hint) this.hint = dueMs;
  }

  private cancelInHeap(heap: DueHeap, seq: number, dueMs: number): number {
    const found = heap.find(seq, dueMs);
    for (const i of found) {
      heap.remove(i);
      this.store.release(i);
    }
    return found.length;
  }

  /** Takes a held item out of its bucket or heap (its handle stays allocated). */
  private unlink(i: number): void {
    const store = this.store;
    switch (store.where[i]) {
      case IN_LATE:
        this.late.remove(i);
        return;
      case IN_OVERFLOW:
        this.overflow.remove(i);
        return;
      case IN_BUCKET: {
        const b = this.bucketOf(store.due[i]!);
        const prev = store.prev[i]!;
        const next = store.next[i]!;
        if (prev === NIL) this.heads[b] = next;
        else store.next[prev] = next;
        if (next === NIL) this.tails[b] = prev;
        else store.prev[next] = prev;
        this.inBuckets--;
        return;
      }
      default:
        throw new Error(`timing wheel: handle ${i} is not held`);
    }
  }

  private fire(i: number, fired: WheelItem[]): void {
    const store = this.store;
    fired.push({ seq: store.seq[i]!, slot: store.slot[i]!, dueMs: store.due[i]! });
    store.release(i);
  }

  /** dueMs mod B, non-negative; `%` is exact on doubles, unlike `&` which truncates to 32 bits. */
  private bucketOf(dueMs: number): number {
    const b = dueMs % this.bucketCount;
    return b < 0 ? b + this.bucketCount : b;
  }
}
