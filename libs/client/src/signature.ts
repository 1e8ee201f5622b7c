/**
 * Verifying the Standard Webhooks signature (https://www.standardwebhooks.com) of an HTTP
 * callback: `webhook-signature` holds space-separated `v1,<base64 HMAC-SHA256>` signatures of
 * `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed with the bytes of the app's signing secret
 * (the base64 after `whsec_`). During a secret rotation's grace period Hourglass sends one
 * signature per secret, so a receiver that knows either secret accepts the request.
 *
 * Written out with node:crypto because this package depends on nothing of the server's; a unit
 * test checks it against `@hourglass/core`'s signer and the `standardwebhooks` package.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Why a request's signature was not accepted. */
export type VerificationErrorCode =
  /** `webhook-id`, `webhook-timestamp` or `webhook-signature` is missing or malformed, or a `hourglass-*` header a callback always carries is. */
  | 'missing_headers'
  /** No `v1` signature matches any of the receiver's secrets: a wrong secret, or a changed body. */
  | 'bad_signature'
  /** The signature is right but `webhook-timestamp` is further from now than the tolerance: a replay, or a skewed clock. */
  | 'stale_timestamp';

/**
 * Thrown by `CallbackReceiver.verify` (and {@link verifySignature}) for a request that is not
 * an authentic, fresh Hourglass callback; the receiver answers it with 401 and
 * {@link VerificationError.message} as the body.
 */
export class VerificationError extends Error {
  override readonly name = 'VerificationError';
  constructor(
    readonly code: VerificationErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

/** Request headers: Node's `req.headers` (lower-case names), a plain object, or a fetch `Headers`. */
export type HeadersLike =
  | Readonly<Record<string, string | readonly string[] | undefined>>
  | {
      get(name: string): string | null;
      forEach(callback: (value: string, name: string) => void): void;
    };

/** One header's value by its lower-case name; repeated values are joined with `, ` as Node does. */
export function headerValue(headers: HeadersLike, name: string): string | undefined {
  if (typeof headers.get === 'function') return headers.get(name) ?? undefined;
  const record = headers as Readonly<Record<string, string | readonly string[] | undefined>>;
  let value = record[name];
  if (value === undefined) {
    // A plain object may spell names in any case; Node's req.headers is already lower-case.
    const key = Object.keys(record).find((k) => k.toLowerCase() === name);
    value = key === undefined ? undefined : record[key];
  }
  return typeof value === 'string' ? value : value?.join(', ');
}

const SECRET_PREFIX = 'whsec_';

/**
 * The HMAC key of a `whsec_…` secret (the prefix is optional, as in the Standard Webhooks
 * libraries). @throws TypeError for a secret that holds no base64 key.
 */
export function secretKey(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  const key = Buffer.from(encoded, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || key.length === 0)
    throw new TypeError(
      'a signing secret is "whsec_" followed by base64 (as shown when the app was created or its secret rotated)',
    );
  return key;
}

/** What a valid signature vouches for: the signature covers these and the body, nothing else. */
export interface VerifiedSignature {
  /** `webhook-id`: the message id for callbacks, stable across retries; the key to deduplicate on. */
  readonly webhookId: string;
  /** `webhook-timestamp`: when this attempt was signed. */
  readonly timestamp: Date;
}

export interface VerifySignatureOptions {
  /** How far `webhook-timestamp` may be from now, either way. @default 300 */
  toleranceSeconds?: number;
  /** Epoch milliseconds. @default Date.now */
  now?: () => number;
}

/**
 * Checks the Standard Webhooks headers of a request against its raw body, without reading any
 * `hourglass-*` header: for signed requests that are not callbacks (alert events), or to verify
 * outside a `CallbackReceiver`.
 * @param secret the app's signing secret(s), `whsec_…`.
 * @param body the bytes as received, before any parsing.
 * @throws {@link VerificationError}; TypeError for a malformed secret.
 */
export function verifySignature(
  secret: string | readonly string[],
  headers: HeadersLike,
  body: Buffer | string,
  options: VerifySignatureOptions = {},
): VerifiedSignature {
  const secrets = typeof secret === 'string' ? [secret] : secret;
  return verifyWithKeys(
    secrets.map(secretKey),
    headers,
    typeof body === 'string' ? Buffer.from(body, 'utf8') : body,
    options,
  );
}

/**
 * {@link verifySignature} with the keys decoded once. The signature is checked before the
 * timestamp, so `stale_timestamp` is only ever reported for an authentic request (pointing at
 * clock skew or a replay rather than a wrong secret).
 * @param keys from {@link secretKey}, one per secret accepted.
 */
export function verifyWithKeys(
  keys: readonly Buffer[],
  headers: HeadersLike,
  body: Buffer,
  options: VerifySignatureOptions = {},
): VerifiedSignature {
  const id = headerValue(headers, 'webhook-id');
  const timestampText = headerValue(headers, 'webhook-timestamp');
  const signature = headerValue(headers, 'webhook-signature');
  if (!id || !timestampText || !signature) {
    const missing = Object.entries({ id, timestamp: timestampText, signature })
      .filter(([, value]) => !value)
      .map(([name]) => `webhook-${name}`);
    throw new VerificationError('missing_headers', `missing header ${missing.join(', ')}`);
  }
  if (!/^\d{1,15}$/.test(timestampText))
    throw new VerificationError('missing_headers', 'webhook-timestamp is not Unix seconds');

  const offered = signature
    .split(' ')
    .filter((part) => part.startsWith('v1,'))
    .map((part) => Buffer.from(part.slice(3), 'base64'));
  let matched = false;
  for (const key of keys) {
    const expected = createHmac('sha256', key)
      .update(`${id}.${timestampText}.`)
      .update(body)
      .digest();
    for (const candidate of offered)
      if (candidate.length === expected.length && timingSafeEqual(candidate, expected))
        matched = true;
  }
  if (!matched)
    throw new VerificationError(
      'bad_signature',
      offered.length === 0
        ? 'webhook-signature holds no v1 signature'
        : "no signature matches the receiver's secrets (wrong secret, or the body was changed)",
    );

  const toleranceSeconds = options.toleranceSeconds ?? 300;
  const nowSeconds = Math.floor((options.now ?? Date.now)() / 1000);
  const timestampSeconds = Number(timestampText);
  if (Math.abs(nowSeconds - timestampSeconds) > toleranceSeconds)
    throw new VerificationError(
      'stale_timestamp',
      `webhook-timestamp ${timestampSeconds} is ${nowSeconds - timestampSeconds} s from the receiver's clock (tolerance ${toleranceSeconds} s)`,
    );
  return { webhookId: id, timestamp: new Date(timestampSeconds * 1000) };
}
