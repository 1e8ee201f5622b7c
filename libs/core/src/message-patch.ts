/**
 * Changing a scheduled message (PATCH /v1/messages/{id}, issue 14). Pure: the patch is merged
 * into the stored message to give a whole schedule request, which {@link parseScheduleRequest}
 * then validates exactly like a new one, so a changed message obeys every rule a new one does.
 */
import { HourglassError } from './errors';
import type { ErrorDetail } from './errors';
import type { PayloadEncoding, StoredMessage } from './message';
import type { RetryStrategy } from './retry-strategy';
import type { TargetSpec, TargetState } from './targets';

/** The new content of a scheduled message, validated, as the store writes it. */
export interface MessageChange {
  readonly topic: string;
  readonly key: string | null;
  readonly payload: Buffer;
  readonly payloadEncoding: PayloadEncoding;
  readonly headers: Readonly<Record<string, string>>;
  readonly targets: readonly TargetSpec[] | null;
  readonly retry: RetryStrategy | null;
  readonly contentType: string | null;
  /** Fresh target states (new targets); null: keep the stored ones. */
  readonly targetStates: readonly TargetState[] | null;
  /** The new due time; null: keep it. */
  readonly deliverAtMs: number | null;
}

/** A change the store applied. */
export interface MessageUpdated {
  readonly seq: number;
  readonly slot: number;
  readonly deliverAtMs: number;
  /** The due time before the change (where copies of it may still be held in a wheel). */
  readonly previousDeliverAtMs: number;
  readonly version: number;
  /** This node holds the slot's current epoch: it wheels the message itself. */
  readonly wheelable: boolean;
}

/** What a patch may change; `id` and the idempotency fingerprint never change. */
export const PATCH_FIELDS: readonly string[] = [
  'deliverAt',
  'delayMs',
  'payload',
  'payloadBase64',
  'headers',
  'key',
  'topic',
  'callback',
  'targets',
  'retry',
  'contentType',
];
const PATCHABLE = new Set(PATCH_FIELDS);
/** The fields that together say where a message goes: a patch naming one replaces them all. */
const DESTINATION_FIELDS = ['topic', 'callback', 'targets'] as const;

/** A validated patch: which parts it replaces, and the whole request to re-validate. */
export interface MergedPatch {
  /** The stored message with the patch applied, as a `POST /v1/messages` body (without `id`). */
  readonly body: Record<string, unknown>;
  /** The due time is replaced (a retry's backoff is then forgotten). */
  readonly timeChanged: boolean;
  /** `topic`, `callback` or `targets` is replaced (their delivery states start afresh). */
  readonly targetsChanged: boolean;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function present(body: Record<string, unknown>, field: string): boolean {
  return Object.hasOwn(body, field) && body[field] !== undefined;
}

/**
 * Merges `patch` into `stored`. Throws `invalid_request` for a patch that is not an object, names
 * an unknown or unchangeable field, or changes nothing.
 */
export function mergeMessagePatch(stored: StoredMessage, patch: unknown): MergedPatch {
  if (!isPlainObject(patch))
    throw new HourglassError('invalid_request', 'the patch must be a JSON object', [
      { path: '/', message: 'expected an object of the fields to change' },
    ]);
  const problems: ErrorDetail[] = [];
  for (const field of Object.keys(patch)) {
    if (field === 'id')
      problems.push({ path: 'id', message: 'a message keeps its id; schedule a new one instead' });
    else if (!PATCHABLE.has(field))
      problems.push({ path: field, message: `unknown field; allowed: ${PATCH_FIELDS.join(', ')}` });
  }
  const named = PATCH_FIELDS.filter((field) => present(patch, field));
  if (problems.length === 0 && named.length === 0)
    problems.push({ path: '/', message: `name at least one of ${PATCH_FIELDS.join(', ')}` });
  if (problems.length > 0)
    throw new HourglassError(
      'invalid_request',
      `invalid patch: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
      problems,
    );

  const body = storedAsRequest(stored);
  const timeChanged = present(patch, 'deliverAt') || present(patch, 'delayMs');
  if (timeChanged) {
    delete body.deliverAt;
    delete body.delayMs;
  }
  if (present(patch, 'payload') || present(patch, 'payloadBase64')) {
    delete body.payload;
    delete body.payloadBase64;
  }
  const destinationChanged = DESTINATION_FIELDS.some((field) => present(patch, field));
  if (destinationChanged) {
    for (const field of DESTINATION_FIELDS) delete body[field];
    // The key belongs to the old Kafka target; a new destination brings its own (or none).
    delete body.key;
  }
  if (present(patch, 'key') && !destinationChanged && Array.isArray(body.targets)) {
    // A list of targets keeps each key on its Kafka target: change it there.
    throw new HourglassError(
      'invalid_request',
      'invalid patch: key: this message lists its targets; send "targets" with the key on its Kafka target',
      [{ path: 'key', message: 'not with a target list; change "targets" instead' }],
    );
  }
  for (const field of named) body[field] = patch[field];
  return { body, timeChanged, targetsChanged: destinationChanged };
}

/** The stored message as the request that would schedule it as it is now (without `id`). */
function storedAsRequest(stored: StoredMessage): Record<string, unknown> {
  const body: Record<string, unknown> = {
    // Epoch ms: exact, and accepted whatever the due time (past ones fire at once).
    deliverAt: stored.firstDeliverAtMs ?? stored.deliverAtMs,
    headers: { ...stored.headers },
  };
  if (stored.payloadEncoding === 'json')
    body.payload = JSON.parse(stored.payload.toString('utf8')) as unknown;
  else body.payloadBase64 = stored.payload.toString('base64');
  if (!stored.targets) {
    body.topic = stored.topic;
    if (stored.key !== null) body.key = stored.key;
    return body;
  }
  body.targets = stored.targets.map(targetAsRequest);
  if (stored.retry) body.retry = { ...stored.retry };
  if (stored.contentType) body.contentType = stored.contentType;
  return body;
}

function targetAsRequest(target: TargetSpec): Record<string, unknown> {
  if (target.type === 'kafka')
    return {
      type: 'kafka',
      topic: target.topic,
      key: target.key,
      headers: { ...target.headers },
    };
  return {
    type: 'http',
    url: target.url,
    method: target.method,
    headers: { ...target.headers },
    timeoutMs: target.timeoutMs,
    name: target.name,
    envelope: target.envelope,
    expectBody: target.expectBody,
  };
}

/** The ETag of a message version: `"<version>"` (strong: a version is one exact content). */
export function messageEtag(version: number): string {
  return `"${version}"`;
}

/**
 * `If-Match` as versions: null when absent, `'any'` for `*`, else the listed versions (strong or
 * weak ETags alike). Throws `invalid_request` for anything else.
 */
export function parseIfMatch(header: string | undefined): 'any' | number[] | null {
  if (header === undefined) return null;
  const trimmed = header.trim();
  if (trimmed === '*') return 'any';
  const versions: number[] = [];
  for (const part of trimmed.split(',')) {
    const match = /^\s*(?:W\/)?"([1-9][0-9]{0,9})"\s*$/.exec(part);
    const version = match ? Number(match[1]) : Number.NaN;
    if (!Number.isSafeInteger(version))
      throw new HourglassError(
        'invalid_request',
        'If-Match must be "*" or ETags as sent in the ETag header, e.g. If-Match: "3"',
        [{ path: 'If-Match', message: `cannot read ${JSON.stringify(part.trim())}` }],
      );
    versions.push(version);
  }
  return versions;
}

/** Whether the stored version satisfies an `If-Match` (see {@link parseIfMatch}). */
export function ifMatchAllows(ifMatch: 'any' | readonly number[] | null, version: number): boolean {
  return ifMatch === null || ifMatch === 'any' || ifMatch.includes(version);
}
