/**
 * Turns whatever a failed exchange threw into the short text of {@link HttpCallResult.error}:
 * what happened, in words the app's owner can act on, with the system code for searching.
 */
import { isCallFailure } from './errors';

export interface FailureContext {
  /** host:port of the destination. */
  readonly host: string;
  readonly timeoutMs: number;
}

/** System and undici error codes, by what they mean for the receiver. */
const MEANINGS: Readonly<Record<string, (context: FailureContext) => string>> = {
  ECONNREFUSED: (c) => `connection refused by ${c.host} (ECONNREFUSED)`,
  ECONNRESET: (c) => `connection reset by ${c.host} (ECONNRESET)`,
  EPIPE: (c) => `connection closed by ${c.host} while sending (EPIPE)`,
  ENOTFOUND: (c) => `host name ${hostnameOf(c.host)} not found (ENOTFOUND)`,
  EAI_AGAIN: (c) => `DNS lookup of ${hostnameOf(c.host)} failed, temporarily (EAI_AGAIN)`,
  EHOSTUNREACH: (c) => `no route to ${c.host} (EHOSTUNREACH)`,
  ENETUNREACH: (c) => `network of ${c.host} unreachable (ENETUNREACH)`,
  ETIMEDOUT: (c) => `connecting to ${c.host} timed out (ETIMEDOUT)`,
  UND_ERR_CONNECT_TIMEOUT: (c) => `connecting to ${c.host} timed out (UND_ERR_CONNECT_TIMEOUT)`,
  UND_ERR_HEADERS_TIMEOUT: (c) => `timed out after ${c.timeoutMs} ms`,
  UND_ERR_BODY_TIMEOUT: (c) => `timed out after ${c.timeoutMs} ms`,
  UND_ERR_SOCKET: (c) =>
    `connection closed by ${c.host} before the response ended (UND_ERR_SOCKET)`,
  UND_ERR_DESTROYED: () => 'the callback caller stopped (the node is shutting down)',
  UND_ERR_CLOSED: () => 'the callback caller stopped (the node is shutting down)',
  UND_ERR_INVALID_ARG: (c) => `the request to ${c.host} is invalid (UND_ERR_INVALID_ARG)`,
  UND_ERR_REQ_CONTENT_LENGTH_MISMATCH: (c) =>
    `the request to ${c.host} is invalid: content-length does not match the body`,
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: (c) =>
    `${c.host} sent a body that does not match its content-length`,
  HPE_INVALID_CONSTANT: (c) => `${c.host} did not answer with HTTP (HPE_INVALID_CONSTANT)`,
  CERT_HAS_EXPIRED: (c) => `TLS: the certificate of ${c.host} has expired (CERT_HAS_EXPIRED)`,
  DEPTH_ZERO_SELF_SIGNED_CERT: (c) =>
    `TLS: ${c.host} presents a self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT)`,
  SELF_SIGNED_CERT_IN_CHAIN: (c) =>
    `TLS: the certificate chain of ${c.host} is self-signed (SELF_SIGNED_CERT_IN_CHAIN)`,
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: (c) =>
    `TLS: the certificate of ${c.host} cannot be verified (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`,
  ERR_TLS_CERT_ALTNAME_INVALID: (c) =>
    `TLS: the certificate of ${c.host} is not for that name (ERR_TLS_CERT_ALTNAME_INVALID)`,
};

export function describeFailure(error: unknown, context: FailureContext): string {
  if (isCallFailure(error)) return error.message;
  const code = codeOf(error);
  const meaning = code === null ? undefined : MEANINGS[code];
  if (meaning) return meaning(context);
  const message = error instanceof Error ? error.message : String(error);
  if (code !== null) return `${message || 'request failed'} (${code})`;
  return message || 'request failed';
}

/** The code of an error, or of the first error an AggregateError (happy eyeballs) carries. */
function codeOf(error: unknown): string | null {
  if (typeof error !== 'object' || error === null) return null;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  if (error instanceof AggregateError) {
    for (const inner of error.errors) {
      const innerCode = codeOf(inner);
      if (innerCode !== null) return innerCode;
    }
  }
  return null;
}

function hostnameOf(host: string): string {
  const colon = host.lastIndexOf(':');
  return colon > 0 ? host.slice(0, colon) : host;
}
