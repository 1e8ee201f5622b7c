/**
 * The request fingerprint: two sends of the same id are the same message when their fingerprints
 * match (idempotent re-sends), and a conflict otherwise. Pure: hashing only.
 */
import * as crypto from 'node:crypto'; // hashing only: no I/O
import type { PayloadEncoding } from './message';

/** One-shot hashing: Node >= 20.12; undefined before. */
const oneShotHash = (crypto as { hash?: typeof crypto.hash }).hash;

/**
 * Two sends of the same id are "identical" when their fingerprints match. The due time enters as it
 * was sent (`delayMs: 5000`, not the computed instant), so a client retrying a relative delay a
 * second later is recognised as a re-send and not as a conflict.
 */
export function requestFingerprint(
  topic: string,
  key: string | null,
  payload: Buffer,
  payloadEncoding: PayloadEncoding,
  headers: Readonly<Record<string, string>>,
  dueAsSent: unknown,
): string {
  return fingerprintOf(
    fingerprintHead(
      JSON.stringify(topic),
      key,
      payloadEncoding,
      headers,
      JSON.stringify(dueAsSent) ?? 'null',
    ),
    payload,
  );
}

/**
 * Everything but the payload, as the JSON text the fingerprint hashes first: exactly
 * `JSON.stringify([topic, key, payloadEncoding, sortedHeaders, dueAsSent])`, assembled from the
 * parts' JSON texts (the caller passes the topic's and the due time's; one JSON.stringify per
 * message part cost more than the hash itself).
 */
export function fingerprintHead(
  topicJson: string,
  key: string | null,
  payloadEncoding: PayloadEncoding,
  headers: Readonly<Record<string, string>>,
  dueJson: string,
): string {
  const names = Object.keys(headers);
  const sortedHeaders =
    names.length === 0 ? '[]' : JSON.stringify(names.sort().map((name) => [name, headers[name]]));
  const keyJson = key === null ? 'null' : JSON.stringify(key);
  return `[${topicJson},${keyJson},"${payloadEncoding}",${sortedHeaders},${dueJson}]`;
}

/**
 * sha256(UTF-8(head) ‖ 0x00 ‖ payload bytes), base64url. Stored fingerprints were computed this
 * way, so the value must never change. A JSON payload may be passed as its text: the UTF-8 of
 * `head + "\u0000" + text` is byte for byte that concatenation (the NUL keeps a surrogate pair
 * from straddling a boundary), and one-shot hashing of one string saves a Hash object and three
 * native calls per message. `crypto.hash` exists from Node 20.12; earlier 20.x hash the same
 * bytes with `createHash`.
 */
export function fingerprintOf(head: string, payload: Buffer | string): string {
  if (oneShotHash) {
    return oneShotHash(
      'sha256',
      typeof payload === 'string'
        ? `${head}\u0000${payload}`
        : Buffer.concat([Buffer.from(`${head}\u0000`, 'utf8'), payload]),
      'base64url',
    );
  }
  return crypto
    .createHash('sha256')
    .update(head)
    .update('\u0000')
    .update(payload)
    .digest('base64url');
}
