/**
 * Reading a receiver's response within bounds, and judging it into an {@link HttpCallResult}.
 */
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { HttpCallResult } from '@hourglass/core';
import { parseRetryAfter } from '@hourglass/core';

/** Most characters of an unexpected body quoted in an error. */
const QUOTED_BODY_CHARS = 100;

/**
 * At most `maxBytes` of `body`. Reading stops there and the body is destroyed, which closes that
 * connection instead of draining a large or endless response into a pooled one.
 */
export async function readBoundedBody(body: Readable, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      const room = maxBytes - size;
      if (chunk.length > room) {
        chunks.push(chunk.subarray(0, room));
        size += room;
        break;
      }
      chunks.push(chunk);
      size += chunk.length;
    }
  } finally {
    // Idempotent: a no-op after a full read; after `break` it stops the transfer.
    body.destroy();
  }
  return Buffer.concat(chunks, size);
}

/** The first `maxBytes` of `bytes` as UTF-8, without a character cut in half at the end. */
export function utf8Prefix(bytes: Buffer, maxBytes: number): string {
  return new StringDecoder('utf8').write(bytes.subarray(0, maxBytes));
}

export interface ReceivedResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The body as read, at most maxResponseBytes. */
  readonly body: Buffer;
  readonly durationMs: number;
}

export interface Judgement {
  readonly expectBody: string | null;
  readonly snippetBytes: number;
  readonly nowMs: number;
}

export function judgeResponse(response: ReceivedResponse, judgement: Judgement): HttpCallResult {
  const { status, body, durationMs } = response;
  const snippet = utf8Prefix(body, judgement.snippetBytes);
  const retryAfterMs =
    status === 429 || status === 503
      ? parseRetryAfter(firstHeader(response.headers['retry-after']), judgement.nowMs)
      : null;
  const error = statusProblem(status, body, judgement.expectBody);
  return {
    ok: error === null,
    status,
    durationMs,
    error,
    retryAfterMs,
    gone: status === 410,
    responseSnippet: snippet,
  };
}

/** Why the response counts as a failure, or null when it is a success. */
function statusProblem(status: number, body: Buffer, expectBody: string | null): string | null {
  if (status >= 300 && status < 400) return `HTTP ${status} (redirects are not followed)`;
  if (status < 200 || status >= 300) return `HTTP ${status}`;
  if (expectBody === null) return null;
  const got = body.toString('utf8').trim();
  if (got === expectBody) return null;
  const quoted = got.length > QUOTED_BODY_CHARS ? `${got.slice(0, QUOTED_BODY_CHARS)}…` : got;
  return `expected body ${JSON.stringify(expectBody)}, got ${JSON.stringify(quoted)}`;
}

function firstHeader(value: string | readonly string[] | undefined): string | null {
  if (value === undefined) return null;
  return typeof value === 'string' ? value : (value[0] ?? null);
}

/** The result of a call that got no response. */
export function failedCall(error: string, durationMs: number): HttpCallResult {
  return {
    ok: false,
    status: null,
    durationMs,
    error,
    retryAfterMs: null,
    gone: false,
    responseSnippet: null,
  };
}
