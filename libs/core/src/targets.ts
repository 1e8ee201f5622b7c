/**
 * Delivery targets: where a message goes at its due time. A message has one or more targets
 * (`topic` for Kafka, `callback` for HTTP, or a `targets` list mixing both), and each target is
 * delivered, retried and recorded on its own. Pure: validation and state transitions only.
 *
 * A message with only `topic` is stored as before (no target list: the Kafka fast path). Any
 * other shape is stored with its target list and a state per target.
 */
import type { AddressPolicy } from './address-policy';
import type { RetryStrategy } from './retry-strategy';

export * from './target-input';

export interface KafkaTargetSpec {
  readonly type: 'kafka';
  readonly topic: string;
  readonly key: string | null;
  /** Added to the message's headers (and winning over them) for this target. */
  readonly headers: Readonly<Record<string, string>>;
}

export interface HttpTargetSpec {
  readonly type: 'http';
  readonly url: string;
  readonly method: 'POST' | 'PUT';
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  /** The handler's name on the receiving side; sent as `hourglass-callback-name`. */
  readonly name: string | null;
  /** Send `{topic, id, deliverAt, body}` instead of the payload bytes. */
  readonly envelope: boolean;
  /** A 2xx must also carry this body (trimmed), e.g. "ok". */
  readonly expectBody: string | null;
}

export type TargetSpec = KafkaTargetSpec | HttpTargetSpec;

export type TargetStatus = 'pending' | 'delivered' | 'failed';

/** Where one target of a message stands. Stored as JSON beside the message. */
export interface TargetState {
  readonly status: TargetStatus;
  /** Attempts that counted (a broker outage does not count). */
  readonly attempts: number;
  /** When the next attempt is due; null: at the message's due time. */
  readonly nextAttemptAtMs: number | null;
  readonly lastError: string | null;
  /** The HTTP status of the last answer, if any. */
  readonly lastStatus: number | null;
  readonly finishedAtMs: number | null;
  /** Whether the alert for `alerts.afterAttempts` was sent already. */
  readonly alerted?: boolean;
}

export const INITIAL_TARGET_STATE: TargetState = Object.freeze({
  status: 'pending',
  attempts: 0,
  nextAttemptAtMs: null,
  lastError: null,
  lastStatus: null,
  finishedAtMs: null,
});

export interface TargetLimits {
  /** @default 8 */
  readonly maxTargets: number;
  /** @default 10000 */
  readonly defaultTimeoutMs: number;
  /** The SSRF guard, for literal addresses (names are checked when connecting). */
  readonly policy: AddressPolicy;
}

/** The canonical JSON of targets and retry, for the request fingerprint. */
export function canonicalTargetsJson(
  targets: readonly TargetSpec[],
  retry: RetryStrategy | null,
  contentType: string | null,
): string {
  return JSON.stringify([
    targets.map((target) =>
      target.type === 'kafka'
        ? ['kafka', target.topic, target.key, sortedEntries(target.headers)]
        : [
            'http',
            target.url,
            target.method,
            sortedEntries(target.headers),
            target.timeoutMs,
            target.name,
            target.envelope,
            target.expectBody,
          ],
    ),
    retry && [
      retry.strategy,
      retry.initialDelayMs,
      retry.maxDelayMs,
      retry.maxAttempts,
      retry.jitter,
    ],
    contentType,
  ]);
}

function sortedEntries(headers: Readonly<Record<string, string>>): Array<[string, string]> {
  return Object.keys(headers)
    .sort()
    .map((name) => [name, headers[name] as string]);
}

/** A short name for a target in logs, metrics and the attempt log: the topic, or the URL's origin. */
export function targetLabel(target: TargetSpec): string {
  if (target.type === 'kafka') return `kafka:${target.topic}`;
  try {
    return `http:${new URL(target.url).host}`;
  } catch {
    return 'http:?';
  }
}

/** The host of an HTTP target's URL (lower case), for the per-app host allowlist. */
export function callbackHost(target: HttpTargetSpec): string {
  return new URL(target.url).hostname.toLowerCase();
}

/** Whether `host` matches an allowlist entry: `example.com` exactly, `*.example.com` any subdomain. */
export function hostAllowed(host: string, allowlist: readonly string[]): boolean {
  const lower = host.toLowerCase();
  return allowlist.some((entry) => {
    const pattern = entry.toLowerCase();
    if (pattern.startsWith('*.')) return lower.endsWith(pattern.slice(1));
    return lower === pattern;
  });
}

/** Targets that should be attempted when the message fires at `nowMs`. */
export function dueTargetIndexes(states: readonly TargetState[], nowMs: number): number[] {
  const due: number[] = [];
  states.forEach((state, index) => {
    if (
      state.status === 'pending' &&
      (state.nextAttemptAtMs === null || state.nextAttemptAtMs <= nowMs)
    )
      due.push(index);
  });
  return due;
}

export type MessageOutcome =
  | { readonly kind: 'pending'; readonly nextAtMs: number }
  | { readonly kind: 'delivered' }
  | { readonly kind: 'failed' };

/**
 * What the message is once its targets stand as `states`: delivered when every target is,
 * failed once every target finished with at least one failed, otherwise pending until the
 * earliest next attempt (`fallbackMs` for a pending target with no time of its own).
 */
export function messageOutcome(states: readonly TargetState[], fallbackMs: number): MessageOutcome {
  let next = Number.POSITIVE_INFINITY;
  let failed = false;
  for (const state of states) {
    if (state.status === 'pending') next = Math.min(next, state.nextAttemptAtMs ?? fallbackMs);
    else if (state.status === 'failed') failed = true;
  }
  if (next !== Number.POSITIVE_INFINITY) return { kind: 'pending', nextAtMs: next };
  return failed ? { kind: 'failed' } : { kind: 'delivered' };
}

/** Re-arms failed targets with a fresh attempt budget (POST …/retry); null if none failed. */
export function rearmFailed(states: readonly TargetState[]): TargetState[] | null {
  if (!states.some((state) => state.status === 'failed')) return null;
  return states.map((state) =>
    state.status === 'failed' ? { ...INITIAL_TARGET_STATE, lastError: state.lastError } : state,
  );
}
