/** The HTTP v1 transport, over Node's global fetch. */
import type { ErrorDetail, ServerErrorCode } from './errors';
import { HourglassClientError, RETRIABLE_SERVER_CODES, isServerErrorCode } from './errors';
import type { WirePatch } from './patch';
import type { Transport } from './transport';
import type { Attempt, BatchItemResult, CancelResult, Message, ScheduleResult } from './types';
import type { RawAttempt, RawMessage, WireContent, WireMessage } from './wire';
import { toAttempt, toMessage } from './wire';

interface ErrorBody {
  error: { code: string; message: string; details?: ErrorDetail[] };
}

function isErrorBody(value: unknown): value is ErrorBody {
  const error = (value as { error?: { code?: unknown } } | null)?.error;
  return typeof error?.code === 'string';
}

/** Proxies answer these when the node behind them is unreachable. */
const GATEWAY_STATUSES = new Set([502, 503, 504]);

/** The JSON text of one message. The payload's JSON text is spliced in as prepared, unchanged. */
export function messageJson(message: WireMessage): string {
  const fields: Record<string, unknown> = { id: message.id };
  if (message.debounce !== undefined) fields.debounce = message.debounce;
  return contentJson(fields, message);
}

/** The JSON body of PATCH /v1/messages/{id}: only the fields to change (`"key": null` removes it). */
export function patchJson(patch: WirePatch): string {
  return contentJson({}, patch);
}

/** `fields`, then the content fields that are set, as JSON text. */
function contentJson(fields: Record<string, unknown>, message: WireContent | WirePatch): string {
  if (message.topic !== undefined) fields.topic = message.topic;
  if (message.key !== undefined) fields.key = message.key;
  if (message.headers !== undefined) fields.headers = message.headers;
  if (message.callback !== undefined) fields.callback = message.callback;
  if (message.targets !== undefined) fields.targets = message.targets;
  if (message.retry !== undefined) fields.retry = message.retry;
  if (message.contentType !== undefined) fields.contentType = message.contentType;
  if (message.payload && 'bytes' in message.payload)
    fields.payloadBase64 = message.payload.bytes.toString('base64');
  if (message.due) {
    if ('deliverAtMs' in message.due) fields.deliverAt = message.due.deliverAtMs;
    else Object.assign(fields, message.due);
  }
  const text = JSON.stringify(fields);
  if (!message.payload || !('json' in message.payload)) return text;
  const payload = `"payload":${message.payload.json}`;
  return text === '{}' ? `{${payload}}` : `${text.slice(0, -1)},${payload}}`;
}

function errorFromResponse(
  status: number,
  body: unknown,
  retryAfter: string | null,
): HourglassClientError {
  if (isErrorBody(body)) {
    const code = body.error.code;
    const seconds = retryAfter === null ? Number.NaN : Number(retryAfter);
    return new HourglassClientError({
      // A server newer than this SDK may send a code not in the list; it is passed on as sent.
      code: code as ServerErrorCode,
      message: body.error.message,
      transport: 'http',
      status,
      retriable:
        status === 503 ||
        status === 429 ||
        (isServerErrorCode(code) && RETRIABLE_SERVER_CODES.has(code)),
      details: body.error.details ?? [],
      ...(Number.isFinite(seconds) && seconds >= 0 ? { retryAfterMs: seconds * 1000 } : {}),
    });
  }
  return new HourglassClientError({
    code: 'unexpected_response',
    message: `HTTP ${status} without an Hourglass error body`,
    transport: 'http',
    status,
    retriable: GATEWAY_STATUSES.has(status),
  });
}

function errorFromException(error: unknown): HourglassClientError {
  const name = (error as { name?: unknown } | null)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new HourglassClientError({
      code: 'timeout',
      message: 'no answer in time',
      transport: 'http',
      retriable: true,
      cause: error,
    });
  }
  if (error instanceof HourglassClientError) return error;
  // fetch rejects with a TypeError for refused, reset and dropped connections.
  const cause = (error as { cause?: { message?: unknown; code?: unknown } } | null)?.cause;
  const reason =
    typeof cause?.code === 'string'
      ? cause.code
      : typeof cause?.message === 'string'
        ? cause.message
        : String(error);
  return new HourglassClientError({
    code: 'network_error',
    message: `request failed: ${reason}`,
    transport: 'http',
    retriable: true,
    cause: error,
  });
}

export class HttpTransport implements Transport {
  readonly name = 'http';
  private readonly base: string;

  constructor(
    baseUrl: string,
    private readonly token: string,
  ) {
    this.base = baseUrl.replace(/\/+$/, '');
  }

  private async request(
    method: string,
    path: string,
    timeoutMs: number,
    body?: string,
    extraHeaders: Record<string, string> = {},
  ): Promise<{ status: number; body: unknown }> {
    let response: Response;
    let text: string;
    try {
      response = await fetch(`${this.base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...extraHeaders,
        },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      throw errorFromException(error);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (response.status >= 400)
      throw errorFromResponse(response.status, parsed, response.headers.get('retry-after'));
    if (parsed === undefined) throw errorFromResponse(response.status, undefined, null);
    return { status: response.status, body: parsed };
  }

  async schedule(message: WireMessage, timeoutMs: number): Promise<ScheduleResult> {
    const { status, body } = await this.request(
      'POST',
      '/v1/messages',
      timeoutMs,
      messageJson(message),
    );
    const { debounced } = body as { debounced?: unknown };
    return {
      created: status === 201,
      message: toMessage(body as RawMessage),
      // In the message JSON over HTTP, beside it in the result (as gRPC's ScheduleResponse has it).
      ...(typeof debounced === 'boolean' ? { debounced } : {}),
    };
  }

  async scheduleBatch(
    messages: readonly WireMessage[],
    timeoutMs: number,
  ): Promise<BatchItemResult[]> {
    const json = `{"messages":[${messages.map(messageJson).join(',')}]}`;
    const { body } = await this.request('POST', '/v1/messages/batch', timeoutMs, json);
    const results = (
      body as { results: Array<{ status: number; message?: RawMessage } & Partial<ErrorBody>> }
    ).results;
    return results.map((result): BatchItemResult => {
      if (result.message)
        return { ok: true, created: result.status === 201, message: toMessage(result.message) };
      return { ok: false, error: errorFromResponse(result.status, result, null) };
    });
  }

  async get(id: string, timeoutMs: number): Promise<Message> {
    const { body } = await this.request('GET', `/v1/messages/${encodeURIComponent(id)}`, timeoutMs);
    return toMessage(body as RawMessage);
  }

  async cancel(id: string, timeoutMs: number): Promise<CancelResult> {
    const { body } = await this.request(
      'DELETE',
      `/v1/messages/${encodeURIComponent(id)}`,
      timeoutMs,
    );
    return body as CancelResult;
  }

  async attempts(id: string, timeoutMs: number): Promise<Attempt[]> {
    const { body } = await this.request(
      'GET',
      `/v1/messages/${encodeURIComponent(id)}/attempts`,
      timeoutMs,
    );
    return ((body as { attempts?: RawAttempt[] }).attempts ?? []).map(toAttempt);
  }

  async retry(id: string, timeoutMs: number): Promise<Message> {
    const { body } = await this.request(
      'POST',
      `/v1/messages/${encodeURIComponent(id)}/retry`,
      timeoutMs,
    );
    return toMessage(body as RawMessage);
  }

  async update(
    id: string,
    patch: WirePatch,
    ifVersion: number | undefined,
    timeoutMs: number,
  ): Promise<Message> {
    const { body } = await this.request(
      'PATCH',
      `/v1/messages/${encodeURIComponent(id)}`,
      timeoutMs,
      patchJson(patch),
      // The ETag of a version is its quoted number.
      ifVersion === undefined ? {} : { 'if-match': `"${ifVersion}"` },
    );
    return toMessage(body as RawMessage);
  }

  close(): void {
    // fetch pools connections globally; there is nothing of ours to release.
  }
}
