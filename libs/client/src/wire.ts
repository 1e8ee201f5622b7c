/**
 * The transport-neutral form of a request, prepared once per call before the first attempt so
 * every retry sends exactly the same bytes (same id, same payload text, same due time as sent),
 * which is what the server compares to recognise a re-send.
 */
import type { WireDebounce } from './debounce';
import { prepareDebounce } from './debounce';
import { HourglassClientError } from './errors';
import type {
  Attempt,
  CallbackMethod,
  CallbackTarget,
  Message,
  MessageState,
  RetryStrategy,
  ScheduleMessage,
  Target,
  TargetState,
  TargetStatus,
} from './types';
import { uuidv7 } from './uuid';

export type WirePayload = { readonly json: string } | { readonly bytes: Buffer };
export type WireDue =
  { readonly deliverAtMs: number } | { readonly deliverAt: string } | { readonly delayMs: number };

/** An HTTP target with only the fields given (HTTP JSON names, as the gRPC camelCase ones). */
export interface WireHttpTarget {
  readonly url: string;
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  readonly name?: string;
  readonly envelope?: boolean;
  readonly expectBody?: string;
}

export interface WireKafkaTarget {
  readonly topic: string;
  readonly key?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** A `targets` entry with its kind decided, so gRPC can pick the oneof member. */
export type WireTarget =
  ({ readonly type: 'http' } & WireHttpTarget) | ({ readonly type: 'kafka' } & WireKafkaTarget);

/**
 * A message's content as both transports send it (all of a {@link WireMessage} but its id and
 * debounce, which a patch cannot have).
 */
export type WireContent = Omit<WireMessage, 'id' | 'debounce'>;

export interface WireMessage {
  readonly id: string;
  readonly topic?: string;
  readonly key?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Absent when the caller gave none; the server then refuses the message. */
  readonly payload?: WirePayload;
  readonly due?: WireDue;
  readonly callback?: WireHttpTarget;
  readonly targets?: readonly WireTarget[];
  readonly retry?: RetryStrategy;
  readonly contentType?: string;
  readonly debounce?: WireDebounce;
}

/** One target as both transports answer it (gRPC leaves absent fields out, HTTP may send null). */
export interface RawTarget {
  index: number;
  type: string;
  topic?: string | null;
  key?: string | null;
  url?: string | null;
  method?: string | null;
  name?: string | null;
  state: string;
  attempts: number;
  lastError?: string | null;
  lastStatus?: number | null;
  nextAttemptAt?: string | null;
  finishedAt?: string | null;
}

/** Shared response shape of both transports (HTTP JSON, and gRPC decoded with camelCase names). */
export interface RawMessage {
  id: string;
  app: string;
  /** HTTP: null without a Kafka target; gRPC: absent (or "" from a decoder without presence). */
  topic?: string | null;
  key?: string | null;
  slot: number;
  deliverAt: string;
  state: string;
  createdAt: string;
  deliveredAt?: string | null;
  finishedAt?: string | null;
  attempts: number;
  lastError?: string | null;
  nextAttemptAt?: string | null;
  /** Absent from servers older than callbacks. */
  targets?: RawTarget[];
  /** gRPC decodes an unset message field as null. */
  retry?: Required<RetryStrategy> | null;
  /** Absent (HTTP) or 0 (gRPC) from servers older than updates, whose messages never change. */
  version?: number;
}

export interface RawAttempt {
  target: number;
  type: string;
  attempt: number;
  at: string;
  durationMs: number;
  status?: number | null;
  error?: string | null;
  response?: string | null;
}

type Problems = Array<{ path: string; message: string }>;

/** Only the fields that are set, so both transports send exactly the same ones. */
function defined<T extends object>(fields: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(fields)) if (value !== undefined) out[name] = value;
  return out as T;
}

function copyHeaders(
  headers: Readonly<Record<string, string>> | undefined,
): Record<string, string> | undefined {
  return headers === undefined ? undefined : { ...headers };
}

function wireHttpTarget(target: CallbackTarget): WireHttpTarget {
  return defined({
    url: target.url,
    method: target.method,
    headers: copyHeaders(target.headers),
    timeoutMs: target.timeoutMs,
    name: target.name,
    envelope: target.envelope,
    expectBody: target.expectBody,
  });
}

/**
 * A target's kind, by the server's rule (`type`, else `url` means HTTP and `topic` Kafka). A
 * target of no known kind cannot be put in gRPC's oneof, so it is refused on both transports.
 */
function wireTarget(target: Target, path: string, problems: Problems): WireTarget | undefined {
  const raw = target as unknown as Record<string, unknown> | null;
  if (typeof raw !== 'object' || raw === null) {
    problems.push({ path: path.replace(/\/$/, ''), message: 'must be an object' });
    return undefined;
  }
  const type =
    raw.type ?? (raw.url !== undefined ? 'http' : raw.topic !== undefined ? 'kafka' : undefined);
  if (type === 'http') return { type: 'http', ...wireHttpTarget(target as CallbackTarget) };
  if (type === 'kafka') {
    const kafka = target as Extract<Target, { topic: string }>;
    return defined({
      type: 'kafka' as const,
      topic: kafka.topic,
      key: kafka.key ?? undefined,
      headers: copyHeaders(kafka.headers),
    });
  }
  problems.push({
    path: `${path}type`,
    message:
      'a target is {"topic": …} (Kafka) or {"url": …} (HTTP), or says "type": "kafka" | "http"',
  });
  return undefined;
}

function wireTargets(
  targets: readonly Target[],
  path: string,
  problems: Problems,
): WireTarget[] | undefined {
  // A JS caller may pass anything; checked through `given` so `targets` keeps its type.
  const given: unknown = targets;
  if (!Array.isArray(given) || targets.length === 0) {
    // gRPC cannot tell an empty list from none.
    problems.push({ path: `${path}targets`, message: 'must be an array of at least one target' });
    return undefined;
  }
  const out: WireTarget[] = [];
  targets.forEach((target, index) => {
    const wire = wireTarget(target, `${path}targets/${index}/`, problems);
    if (wire) out.push(wire);
  });
  return out.length === targets.length ? out : undefined;
}

/**
 * Checks only what one of the transports could not express (both `payload` and `payloadBytes`,
 * both `deliverAt` and `delayMs`), so both refuse it with the same code; the server validates the
 * rest. `path` prefixes detail paths in batches.
 */
export function prepareMessage(
  message: ScheduleMessage,
  transport: 'http' | 'grpc',
  path = '',
): WireMessage {
  const id = message.id ?? uuidv7();
  const content = prepareContent(message, transport, path, 'message');
  if (message.debounce === undefined) return { id, ...content };
  return { id, ...content, debounce: prepareDebounce(message.debounce, transport, path) };
}

/**
 * The content fields of a message or a patch (everything but the id), checked as
 * {@link prepareMessage} describes. `key: null` is left out: for a new message that is no key.
 */
export function prepareContent(
  message: Omit<ScheduleMessage, 'id'>,
  transport: 'http' | 'grpc',
  path: string,
  what: 'message' | 'patch',
): WireContent {
  const problems: Array<{ path: string; message: string }> = [];
  let payload: WirePayload | undefined;
  if (message.payload !== undefined && message.payloadBytes !== undefined) {
    problems.push({
      path: `${path}payload`,
      message: 'give either payload or payloadBytes, not both',
    });
  } else if (message.payloadBytes !== undefined) {
    payload = { bytes: Buffer.from(message.payloadBytes) };
  } else if (message.payload !== undefined) {
    let json: string | undefined;
    try {
      // undefined for a function or symbol, whatever its declared type says.
      json = JSON.stringify(message.payload);
    } catch (error) {
      problems.push({
        path: `${path}payload`,
        message: `cannot be serialised as JSON: ${(error as Error).message}`,
      });
    }
    if (json !== undefined) payload = { json };
  }
  let due: WireDue | undefined;
  if (message.deliverAt !== undefined && message.delayMs !== undefined) {
    problems.push({
      path: `${path}deliverAt`,
      message: 'give either deliverAt or delayMs, not both',
    });
  } else if (message.delayMs !== undefined) {
    due = { delayMs: message.delayMs };
  } else if (message.deliverAt instanceof Date) {
    if (Number.isNaN(message.deliverAt.getTime()))
      problems.push({ path: `${path}deliverAt`, message: 'is an invalid Date' });
    else due = { deliverAt: message.deliverAt.toISOString() };
  } else if (typeof message.deliverAt === 'number') {
    due = { deliverAtMs: message.deliverAt };
  } else if (typeof message.deliverAt === 'string') {
    due = { deliverAt: message.deliverAt };
  }
  const targets =
    message.targets !== undefined ? wireTargets(message.targets, path, problems) : undefined;
  if (problems.length > 0) {
    throw new HourglassClientError({
      code: 'invalid_request',
      message: `invalid ${what}: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
      transport,
      retriable: false,
      details: problems,
    });
  }
  return defined<WireContent>({
    topic: message.topic,
    key: message.key ?? undefined,
    headers: copyHeaders(message.headers),
    payload,
    due,
    callback: message.callback !== undefined ? wireHttpTarget(message.callback) : undefined,
    targets,
    retry: message.retry !== undefined ? defined({ ...message.retry }) : undefined,
    contentType: message.contentType,
  });
}

/** A time the server may leave out (gRPC) or send as null (HTTP). */
function optionalDate<K extends string>(
  name: K,
  value: string | null | undefined,
): { [P in K]?: Date } {
  return (value === undefined || value === null ? {} : { [name]: new Date(value) }) as {
    [P in K]?: Date;
  };
}

function optional<K extends string, V>(name: K, value: V | null | undefined): { [P in K]?: V } {
  return (value === undefined || value === null ? {} : { [name]: value }) as { [P in K]?: V };
}

export function toTargetStatus(raw: RawTarget): TargetStatus {
  const common = {
    index: raw.index,
    state: raw.state as TargetState,
    attempts: raw.attempts,
    ...optional('lastError', raw.lastError),
    ...optional('lastStatus', raw.lastStatus),
    ...optionalDate('nextAttemptAt', raw.nextAttemptAt),
    ...optionalDate('finishedAt', raw.finishedAt),
  };
  if (raw.type === 'http')
    return {
      ...common,
      type: 'http',
      url: raw.url ?? '',
      method: (raw.method ?? 'POST') as CallbackMethod,
      ...optional('name', raw.name),
    };
  // A server newer than this SDK may report another type; it is passed on as sent.
  return {
    ...common,
    type: raw.type as 'kafka',
    topic: raw.topic ?? '',
    key: raw.key ?? null,
  };
}

export function toMessage(raw: RawMessage): Message {
  return {
    id: raw.id,
    app: raw.app,
    // "" only from a decoder without proto3 presence: topic names are never empty.
    topic: raw.topic === undefined || raw.topic === null || raw.topic === '' ? null : raw.topic,
    key: raw.key ?? null,
    slot: raw.slot,
    deliverAt: new Date(raw.deliverAt),
    state: raw.state as MessageState,
    // Versions start at 1; gRPC's defaults decode one an older server never sent as 0.
    version: raw.version !== undefined && raw.version > 0 ? raw.version : 1,
    createdAt: new Date(raw.createdAt),
    ...optionalDate('deliveredAt', raw.deliveredAt),
    ...optionalDate('finishedAt', raw.finishedAt),
    attempts: raw.attempts,
    ...optional('lastError', raw.lastError),
    ...optionalDate('nextAttemptAt', raw.nextAttemptAt),
    targets: (raw.targets ?? []).map(toTargetStatus),
    ...(raw.retry ? { retry: { ...raw.retry } } : {}),
  };
}

export function toAttempt(raw: RawAttempt): Attempt {
  return {
    target: raw.target,
    type: raw.type as Attempt['type'],
    attempt: raw.attempt,
    at: new Date(raw.at),
    durationMs: raw.durationMs,
    ...optional('status', raw.status),
    ...optional('error', raw.error),
    ...optional('response', raw.response),
  };
}
