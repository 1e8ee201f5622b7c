/**
 * Reading delivered messages from Kafka. Hourglass delivers at least once: a node that dies after
 * Kafka acknowledged a record but before it recorded the delivery makes the next owner produce
 * the record again. Records carry `hourglass-id`, `hourglass-app` and `hourglass-deliver-at`
 * headers, so consumers can recognise such duplicates; {@link RecentIds} does that in memory.
 *
 * Types here are structural, so any kafkajs version (or another client with the same record
 * shape) works without this package depending on kafkajs.
 */
import { InvalidDeliveryError } from './errors';

type HeaderValue = Buffer | string | ReadonlyArray<Buffer | string> | undefined;

/** The fields of a kafkajs `KafkaMessage` that are read. */
export interface KafkaRecord {
  key?: Buffer | null;
  value: Buffer | null;
  /** Epoch milliseconds as text, as kafkajs gives it. */
  timestamp: string;
  headers?: Readonly<Record<string, HeaderValue>>;
  offset?: string;
}

/** The argument of a kafkajs `eachMessage` handler. */
export interface KafkaRecordContext {
  topic: string;
  partition: number;
  message: KafkaRecord;
}

/** A fired message as read from its topic. */
export interface Delivery {
  /** The message id, unique per app. */
  readonly id: string;
  /** The app that scheduled it. */
  readonly app: string;
  /** The topic it was read from, when given to {@link decodeDelivery}. */
  readonly topic: string | undefined;
  readonly key: string | null;
  /** The due time it was scheduled for. */
  readonly deliverAt: Date;
  /** When it was produced (the record timestamp); `firedAt - deliverAt` is the lateness. */
  readonly firedAt: Date;
  /** The payload bytes: JSON text for JSON payloads, the bytes as sent otherwise. */
  readonly payload: Buffer;
  /** The headers the scheduler set, without the `hourglass-*` ones. */
  readonly headers: Readonly<Record<string, string>>;
  /** The payload parsed as JSON. @throws SyntaxError for a binary payload that is not JSON. */
  json<T = unknown>(): T;
}

const RESERVED_PREFIX = 'hourglass-';

function headerText(value: HeaderValue): string | undefined {
  if (value === undefined) return undefined;
  // Hourglass never repeats a header; for repeated user headers the last value wins.
  const values: ReadonlyArray<Buffer | string> =
    typeof value === 'string' || Buffer.isBuffer(value) ? [value] : value;
  const single = values[values.length - 1];
  if (single === undefined) return undefined;
  return typeof single === 'string' ? single : single.toString('utf8');
}

/**
 * Turns a Kafka record produced by Hourglass into a {@link Delivery}.
 * @param topic the topic the record was read from (kafkajs passes it next to the message).
 * @throws {@link InvalidDeliveryError} when the record lacks the `hourglass-*` headers, i.e. was
 *   not produced by Hourglass.
 */
export function decodeDelivery(record: KafkaRecord, topic?: string): Delivery {
  const raw = record.headers ?? {};
  const reserved = new Map<string, string>();
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    const text = headerText(value);
    if (text === undefined) continue;
    if (name.toLowerCase().startsWith(RESERVED_PREFIX)) reserved.set(name.toLowerCase(), text);
    else headers[name] = text;
  }
  const id = reserved.get('hourglass-id');
  const app = reserved.get('hourglass-app');
  const deliverAtMs = Number(reserved.get('hourglass-deliver-at'));
  if (!id || !app || !Number.isSafeInteger(deliverAtMs)) {
    throw new InvalidDeliveryError(
      `not an Hourglass delivery: headers hourglass-id, hourglass-app and hourglass-deliver-at are required${record.offset ? ` (offset ${record.offset})` : ''}`,
    );
  }
  const payload = record.value ?? Buffer.alloc(0);
  return {
    id,
    app,
    topic,
    key: record.key ? record.key.toString('utf8') : null,
    deliverAt: new Date(deliverAtMs),
    firedAt: new Date(Number(record.timestamp)),
    payload,
    headers,
    json<T>(): T {
      return JSON.parse(payload.toString('utf8')) as T;
    },
  };
}

/**
 * The most recently seen message ids, for dropping duplicate deliveries. A bounded LRU: holds at
 * most `capacity` ids and forgets the least recently seen first, so a duplicate arriving after
 * `capacity` other messages passes (duplicates come within seconds of the original in practice:
 * they are re-sends by a node taking over a slot). Ids are scoped by app, as on the server.
 */
export class RecentIds {
  private readonly ids = new Map<string, true>();

  /** @param capacity ids held at most. @default 100000 (about 10 MB for UUID ids) */
  constructor(readonly capacity = 100_000) {
    if (!Number.isSafeInteger(capacity) || capacity < 1)
      throw new RangeError(`RecentIds capacity must be a positive integer, got ${capacity}`);
  }

  private static keyOf(app: string, id: string): string {
    // App names cannot contain a newline, so the pair is unambiguous.
    return `${app}\n${id}`;
  }

  /** Whether this app's id was remembered; counts as a use (moves it to the most recent end). */
  has(app: string, id: string): boolean {
    const key = RecentIds.keyOf(app, id);
    if (!this.ids.has(key)) return false;
    this.ids.delete(key);
    this.ids.set(key, true);
    return true;
  }

  /** Remembers an id, forgetting the least recently seen one when full. */
  add(app: string, id: string): void {
    const key = RecentIds.keyOf(app, id);
    this.ids.delete(key);
    this.ids.set(key, true);
    if (this.ids.size > this.capacity) {
      // A Map iterates in insertion order, so its first key is the least recently used one.
      const oldest = this.ids.keys().next();
      if (!oldest.done) this.ids.delete(oldest.value);
    }
  }

  get size(): number {
    return this.ids.size;
  }
}

export interface DeliveryHandlerOptions {
  /**
   * Drop deliveries whose id was handled recently. `true` keeps the last 100000 ids; pass a
   * {@link RecentIds} to choose the size or share it between consumers.
   * @default false
   */
  dedupe?: boolean | RecentIds;
  /** Called for a dropped duplicate (e.g. to count them). */
  onDuplicate?: (delivery: Delivery) => void;
  /**
   * Called for a record without Hourglass headers; by default such records are skipped. Throw
   * from it to make the consumer stop instead.
   */
  onInvalid?: (error: InvalidDeliveryError, context: KafkaRecordContext) => void;
}

/**
 * Wraps a handler of deliveries as a kafkajs `eachMessage` function:
 * `consumer.run({ eachMessage: handleDeliveries(async (delivery) => ..., { dedupe: true }) })`.
 *
 * An id is remembered only after the handler resolved, so a handler that throws (and makes kafkajs
 * redeliver) is called again for the same record. Records handled concurrently
 * (`partitionsConsumedConcurrently` > 1) may both pass before either is remembered.
 */
export function handleDeliveries(
  handler: (delivery: Delivery, context: KafkaRecordContext) => Promise<void> | void,
  options: DeliveryHandlerOptions = {},
): (context: KafkaRecordContext) => Promise<void> {
  const recent =
    options.dedupe instanceof RecentIds
      ? options.dedupe
      : options.dedupe
        ? new RecentIds()
        : undefined;
  return async (context) => {
    let delivery: Delivery;
    try {
      delivery = decodeDelivery(context.message, context.topic);
    } catch (error) {
      if (!(error instanceof InvalidDeliveryError)) throw error;
      options.onInvalid?.(error, context);
      return;
    }
    if (recent?.has(delivery.app, delivery.id)) {
      options.onDuplicate?.(delivery);
      return;
    }
    await handler(delivery, context);
    recent?.add(delivery.app, delivery.id);
  };
}
