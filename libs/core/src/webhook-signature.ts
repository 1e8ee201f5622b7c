/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com): `webhook-signature` is
 * `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed with the secret's bytes (the base64
 * after `whsec_`). Several secrets (a rotation's grace period) give space-separated signatures.
 * Pure: hashing only.
 */
import * as crypto from 'node:crypto'; // hashing only: no I/O

export const SIGNING_SECRET_PREFIX = 'whsec_';

/** A new signing secret: `whsec_` and 32 random bytes in base64. */
export function newSigningSecret(randomBytes: (size: number) => Buffer): string {
  return `${SIGNING_SECRET_PREFIX}${randomBytes(32).toString('base64')}`;
}

function secretKey(secret: string): Buffer {
  const encoded = secret.startsWith(SIGNING_SECRET_PREFIX)
    ? secret.slice(SIGNING_SECRET_PREFIX.length)
    : secret;
  return Buffer.from(encoded, 'base64');
}

/** `v1,<signature>` for one secret. */
export function webhookSignature(
  secret: string,
  id: string,
  timestampSeconds: number,
  body: Buffer | string,
): string {
  const mac = crypto.createHmac('sha256', secretKey(secret));
  mac.update(`${id}.${timestampSeconds}.`);
  mac.update(body);
  return `v1,${mac.digest('base64')}`;
}

/** The three Standard Webhooks headers, signed with every secret given (newest first). */
export function webhookHeaders(
  secrets: readonly string[],
  id: string,
  timestampSeconds: number,
  body: Buffer | string,
): Record<string, string> {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': secrets
      .map((secret) => webhookSignature(secret, id, timestampSeconds, body))
      .join(' '),
  };
}

/**
 * Whether `header` (space-separated `v1,…` signatures) holds a valid signature of the message for
 * one of `secrets`. Comparison is constant-time per candidate.
 */
export function verifyWebhookSignature(
  secrets: readonly string[],
  id: string,
  timestampSeconds: number,
  body: Buffer | string,
  header: string,
): boolean {
  const offered = header
    .split(' ')
    .filter((part) => part.startsWith('v1,'))
    .map((part) => Buffer.from(part.slice(3), 'base64'));
  for (const secret of secrets) {
    const expected = Buffer.from(
      webhookSignature(secret, id, timestampSeconds, body).slice(3),
      'base64',
    );
    for (const candidate of offered)
      if (candidate.length === expected.length && crypto.timingSafeEqual(candidate, expected))
        return true;
  }
  return false;
}
