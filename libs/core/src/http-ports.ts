/**
 * The HTTP callback port: one outbound request per call. The engine builds the request (body,
 * headers, signatures); the adapter (libs/http-callbacks) connects, with the SSRF guard on the
 * addresses actually connected to, bounds concurrency per destination host and per app, and
 * classifies the answer.
 */

export interface HttpCallRequest {
  /** The calling app: outbound requests are bounded per app as well as per host. */
  readonly app: string;
  readonly url: string;
  readonly method: 'POST' | 'PUT';
  /** Every header to send, already built (signatures included). */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  /** From sending to the end of the response (at most 60 s). */
  readonly timeoutMs: number;
  /** When set, a 2xx counts as success only if the response body, trimmed, equals this. */
  readonly expectBody: string | null;
}

export interface HttpCallResult {
  /** A 2xx within the timeout (and the expected body, if one was asked for). */
  readonly ok: boolean;
  /** The response status, or null when there was no response (refused, timed out, guard). */
  readonly status: number | null;
  readonly durationMs: number;
  /** Why it failed (null on success): "HTTP 503", "timed out after 10000 ms", "… is a loopback address …". */
  readonly error: string | null;
  /** `Retry-After` of a 429 or 503, in milliseconds from now. */
  readonly retryAfterMs: number | null;
  /** 410 Gone: the receiver asks never to be called again for this message. */
  readonly gone: boolean;
  /** The first 1 KiB of the response body (of at most 64 KiB read), as UTF-8 text. */
  readonly responseSnippet: string | null;
}

/** Resolves (never throws): within the timeout once sent, after at most the timeout waiting for a free connection. */
export interface HttpCaller {
  call(request: HttpCallRequest): Promise<HttpCallResult>;
  /** Closes pooled connections; calls under way are aborted. */
  stop(): Promise<void>;
}
