/**
 * Receiving Hourglass HTTP callbacks (docs/callbacks.md): handlers registered by the callback's
 * `name`, behind signature verification, for Node's `http` and for express.
 *
 * Hourglass retries an attempt that is not answered 2xx within the callback's `timeoutMs`, and
 * delivers at least once (a node that dies mid-call leaves the message to the next owner, which
 * sends it again). So a handler may run more than once for one message, even concurrently when an
 * attempt outlives its timeout: make it idempotent, keyed by `message.webhookId` (and `name`).
 *
 * The express types are structural, so this package does not depend on express.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CallbackMessage } from './callback-message';
import { readCallbackMessage } from './callback-message';
import type { HeadersLike } from './signature';
import { VerificationError, secretKey, verifyWithKeys } from './signature';

export type CallbackHandler = (message: CallbackMessage) => unknown;

/** Why the receiver answered without a handler having run. */
export type RefusalCode =
  | VerificationError['code']
  | 'no_handler'
  | 'method_not_allowed'
  | 'body_too_large'
  | 'body_already_read';

/** The one table of the receiver's refusals. `no_handler` is 404, which Hourglass retries. */
const REFUSAL_STATUS: Readonly<Record<RefusalCode, number>> = {
  missing_headers: 401,
  bad_signature: 401,
  stale_timestamp: 401,
  no_handler: 404,
  method_not_allowed: 405,
  body_too_large: 413,
  body_already_read: 500,
};

/** A request answered without running a handler, as passed to `onRefused`. */
export interface Refusal {
  readonly code: RefusalCode;
  readonly status: number;
  /** The answer's body. */
  readonly message: string;
}

export interface ReceiverOptions {
  /**
   * The app's signing secret (`whsec_…`). During a rotation give both, new and old, or deploy
   * the new one within the grace period: Hourglass signs with both meanwhile.
   */
  secret: string | readonly string[];
  /** How far `webhook-timestamp` may be from the receiver's clock. @default 300 */
  toleranceSeconds?: number;
  /**
   * Largest body read; a longer one is answered 413. The default fits the largest payload the
   * server accepts by default (1 MiB) also as the base64 text of an envelope.
   * @default 2097152
   */
  maxBodyBytes?: number;
  /** Called when a handler throws (the request is answered 500 and Hourglass retries). */
  onError?: (error: unknown, message: CallbackMessage) => void;
  /** Called for every request answered 4xx or 500 without a handler running, e.g. to log 401s. */
  onRefused?: (refusal: Refusal) => void;
  /** Epoch milliseconds, for tests. @default Date.now */
  now?: () => number;
}

/** What `express()` returns: an express `RequestHandler`, typed structurally. */
export type ExpressHandler = (
  req: IncomingMessage & { body?: unknown },
  res: ServerResponse,
  next?: (error?: unknown) => void,
) => void;

const NAME_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
const ERROR_TEXT_LIMIT = 200;

class Refused extends Error {
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message);
  }
}

/** The caller hung up before the body was read. */
class Aborted extends Error {}

/**
 * Receives Hourglass callbacks and runs the handler registered for each callback's `name`:
 *
 * ```ts
 * const receiver = new CallbackReceiver({ secret: process.env.HOURGLASS_SIGNING_SECRET! })
 *   .on('order.timeout', async (message) => cancelOrder(message.json<{ orderId: string }>().orderId));
 * http.createServer(receiver.handler).listen(3000);   // or: app.post('/hooks', receiver.express())
 * ```
 *
 * Answers: 200 `ok` when the handler resolves (so `expectBody: "ok"` callbacks pass too); 500 with
 * the error's message (its first 200 characters) when it throws; 401 for a missing or wrong
 * signature or a timestamp outside the tolerance; 404 when no handler is registered for the name
 * (and none by {@link otherwise}); 405 for methods other than POST and PUT; 413 for a body over
 * `maxBodyBytes`. Every answer but 2xx makes Hourglass retry, within the message's retry policy:
 * a 404 while a deploy lacks the handler heals once it is out.
 *
 * The signature covers `webhook-id`, `webhook-timestamp` and the body, not the `hourglass-*`
 * headers: base decisions on the body (and `webhookId`), not on headers alone.
 */
export class CallbackReceiver {
  private readonly keys: Buffer[];
  private readonly handlers = new Map<string, CallbackHandler>();
  private fallback: CallbackHandler | undefined;
  private readonly maxBodyBytes: number;

  constructor(private readonly options: ReceiverOptions) {
    const secrets = typeof options.secret === 'string' ? [options.secret] : [...options.secret];
    if (secrets.length === 0) throw new TypeError('CallbackReceiver needs at least one secret');
    this.keys = secrets.map(secretKey);
    this.maxBodyBytes = options.maxBodyBytes ?? 2 * 1024 * 1024;
    if (!Number.isSafeInteger(this.maxBodyBytes) || this.maxBodyBytes < 0)
      throw new RangeError(`maxBodyBytes must be a non-negative integer, got ${this.maxBodyBytes}`);
  }

  /**
   * Runs `handler` for callbacks scheduled with this `name`. One handler per name.
   * @throws TypeError for a name callbacks cannot have (1-128 of `A-Z a-z 0-9 . _ : -`) or one
   *   already registered.
   */
  on(name: string, handler: CallbackHandler): this {
    if (!NAME_PATTERN.test(name))
      throw new TypeError(
        `a callback name is 1-128 of A-Z a-z 0-9 . _ : -, got ${JSON.stringify(name)}`,
      );
    if (this.handlers.has(name))
      throw new TypeError(`a handler for "${name}" is already registered`);
    this.handlers.set(name, handler);
    return this;
  }

  /** Runs `handler` for callbacks without a name, or with a name no handler is registered for. */
  otherwise(handler: CallbackHandler): this {
    this.fallback = handler;
    return this;
  }

  /**
   * Authenticates a request and reads it as a {@link CallbackMessage}, for frameworks other than
   * Node's `http` and express. `rawBody` must be the bytes as received, before any parsing.
   * @throws {@link VerificationError}
   */
  verify(headers: HeadersLike, rawBody: Buffer | string): CallbackMessage {
    const body = typeof rawBody === 'string' ? Buffer.from(rawBody, 'utf8') : rawBody;
    const { webhookId, timestamp } = verifyWithKeys(this.keys, headers, body, {
      toleranceSeconds: this.options.toleranceSeconds,
      now: this.options.now,
    });
    return readCallbackMessage(headers, body, { webhookId, timestamp });
  }

  /** A request listener for Node's `http`/`https`: `http.createServer(receiver.handler)`. */
  readonly handler = (req: IncomingMessage, res: ServerResponse): void => {
    void this.serve(req, res, undefined);
  };

  /**
   * An express handler: `app.post('/hooks/hourglass', receiver.express())`. It reads the raw body
   * itself, so mount it before `express.json()` (or on a path that parser does not cover). A body
   * already read by `express.raw({ type: '*\/*' })` (a Buffer) is used as it is; one parsed into
   * anything else cannot be verified and is answered 500 saying so.
   */
  express(): ExpressHandler {
    return (req, res) => {
      void this.serve(req, res, req.body);
    };
  }

  private async serve(
    req: IncomingMessage,
    res: ServerResponse,
    parsedBody: unknown,
  ): Promise<void> {
    let message: CallbackMessage;
    let handler: CallbackHandler | undefined;
    try {
      if (req.method !== 'POST' && req.method !== 'PUT') {
        res.setHeader('allow', 'POST, PUT');
        throw new Refused(
          'method_not_allowed',
          `method ${req.method} not allowed: use POST or PUT`,
        );
      }
      const body = Buffer.isBuffer(parsedBody) ? parsedBody : await this.readBody(req, parsedBody);
      message = this.verify(req.headers, body);
      handler =
        (message.name === undefined ? undefined : this.handlers.get(message.name)) ?? this.fallback;
      if (!handler)
        throw new Refused(
          'no_handler',
          message.name === undefined
            ? 'no handler for callbacks without a name (register one with otherwise())'
            : `no handler for callback "${message.name}"`,
        );
    } catch (error) {
      if (error instanceof Aborted) return; // the caller hung up: nobody to answer
      if (!(error instanceof Refused || error instanceof VerificationError)) {
        answer(res, 500, `receiver error: ${String(error)}`.slice(0, ERROR_TEXT_LIMIT));
        return;
      }
      const refusal: Refusal = {
        code: error.code,
        status: REFUSAL_STATUS[error.code],
        message: error.message,
      };
      hook(() => this.options.onRefused?.(refusal));
      answer(res, refusal.status, refusal.message, refusal.code === 'body_too_large');
      return;
    }
    try {
      await handler(message);
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error);
      hook(() => this.options.onError?.(error, message));
      answer(res, 500, text.slice(0, ERROR_TEXT_LIMIT) || 'handler failed');
      return;
    }
    answer(res, 200, 'ok');
  }

  /** The raw body, at most `maxBodyBytes`. */
  private readBody(req: IncomingMessage, parsedBody: unknown): Promise<Buffer> {
    if (parsedBody !== undefined || req.readableEnded)
      return Promise.reject(
        new Refused(
          'body_already_read',
          'the request body was already read or parsed (by express.json()?): mount the receiver before body parsers, or use express.raw({ type: "*/*" })',
        ),
      );
    const limit = this.maxBodyBytes;
    const tooLarge = new Refused('body_too_large', `body over ${limit} bytes`);
    if (Number(req.headers['content-length'] ?? 0) > limit) return Promise.reject(tooLarge);
    // Events rather than `for await`: leaving that loop early destroys the request, and with it
    // the socket the 413 is to be sent on.
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const onData = (chunk: Buffer): void => {
        size += chunk.length;
        if (size <= limit) {
          chunks.push(chunk);
          return;
        }
        // Answered now; the rest is read and dropped until the connection closes.
        req.off('data', onData);
        req.resume();
        reject(tooLarge);
      };
      req.on('data', onData);
      req.once('end', () => resolve(Buffer.concat(chunks)));
      req.once('error', () => reject(new Aborted()));
      req.once('close', () => {
        if (!req.complete) reject(new Aborted());
      });
    });
  }
}

/** Runs a user hook; a hook that throws must not keep the request from being answered. */
function hook(call: () => void): void {
  try {
    call();
  } catch {
    // Deliberately ignored: the hooks are for logging, and the answer matters more.
  }
}

function answer(res: ServerResponse, status: number, text: string, close = false): void {
  if (res.headersSent || res.destroyed) return;
  res.statusCode = status;
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  // The rest of a refused body is not read; closing the connection spares reading it.
  if (close) res.setHeader('connection', 'close');
  res.end(text);
}
