/**
 * The schedule routes (`POST /v1/messages` and `POST /v1/messages/batch`) without Express.
 *
 * Why: a single schedule is a small request, and the node is CPU-bound on it long before
 * Postgres is (issue 13's profile: Express's router, body-parser, `res.json` and their stream
 * plumbing were over a third of the node's CPU per request; the schedule itself under a tenth).
 * This handler does the same work directly on node:http and answers exactly what the Express
 * routes answer: the same statuses, error codes and bodies (tests/http-api.test.ts runs against
 * it).
 *
 * It takes a request only when its headers say the plain case: not draining, the exact path
 * (no query string), a JSON content type in UTF-8 and no Content-Encoding. Anything else (a
 * compressed body, another charset, a missing Content-Type, OPTIONS, any other route) goes to
 * Express untouched, whose body parser and error handler know every odd case; the decision is
 * made before a byte of the body is read.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '@hourglass/core';
import { HourglassError, jsonTextDepthExceeds, messageEtag } from '@hourglass/core';
import type { AppDirectory, AppIdentity, MessageService } from '@hourglass/engine';
import { bearerToken } from '@hourglass/engine';
import type { ErrorReply } from './replies';
import { errorReply, scheduleBatchReply } from './replies';

export interface FastScheduleOptions {
  service: MessageService;
  apps: AppDirectory;
  logger: Logger;
  /** Largest request body in bytes. */
  maxRequestBytes: number;
  /** Most levels of nesting of the body (see body.ts). */
  maxDepth: number;
}

type Route = 'single' | 'batch';

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** `application/json` or `application/*+json`, with no charset or a UTF-8 one. */
function isPlainJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const [type = '', ...params] = contentType.toLowerCase().split(';');
  const media = type.trim();
  if (media !== 'application/json' && !/^application\/[a-z0-9.!#$&^_-]+\+json$/.test(media))
    return false;
  for (const param of params) {
    const [name = '', value = ''] = param.split('=');
    if (name.trim() !== 'charset') continue;
    const charset = value.trim().replace(/^"|"$/g, '');
    if (charset !== 'utf-8' && charset !== 'utf8') return false;
  }
  return true;
}

export class FastSchedule {
  constructor(private readonly options: FastScheduleOptions) {}

  /** The route this request is for, when this handler takes it (headers only). */
  route(req: IncomingMessage): Route | null {
    if (req.method !== 'POST') return null;
    const route =
      req.url === '/v1/messages' ? 'single' : req.url === '/v1/messages/batch' ? 'batch' : null;
    if (route === null) return null;
    const encoding = req.headers['content-encoding'];
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') return null;
    return isPlainJson(req.headers['content-type']) ? route : null;
  }

  handle(req: IncomingMessage, res: ServerResponse, route: Route): void {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      // Never log headers: they carry tokens.
      this.options.logger.debug(
        {
          method: req.method,
          path: req.url,
          status: res.statusCode,
          ms: Number(process.hrtime.bigint() - started) / 1e6,
        },
        'request',
      );
    });
    this.serve(req, res, route).catch((error: unknown) => this.fail(req, res, error));
  }

  private async serve(req: IncomingMessage, res: ServerResponse, route: Route): Promise<void> {
    // Authenticated first, like the Express route, but the body is read meanwhile.
    const [app, body] = await Promise.all([this.authenticate(req), this.readJson(req)]);
    if (route === 'batch') {
      send(res, 200, scheduleBatchReply(await this.options.service.scheduleBatch(app, body)));
      return;
    }
    const { created, message } = await this.options.service.schedule(app, body);
    if (created) res.setHeader('Location', `/v1/messages/${encodeURIComponent(message.id)}`);
    res.setHeader('ETag', messageEtag(message.version));
    send(res, created ? 201 : 200, message);
  }

  private async authenticate(req: IncomingMessage): Promise<AppIdentity> {
    const token = bearerToken(req.headers.authorization);
    if (!token)
      throw new HourglassError(
        'unauthenticated',
        'send an app token as "Authorization: Bearer <token>"',
      );
    const identity = await this.options.apps.authenticate(token);
    if (identity) return identity;
    throw new HourglassError(
      'unauthenticated',
      this.options.apps.isAdmin(token)
        ? 'the admin token cannot publish; use an app token'
        : 'unknown token',
    );
  }

  /** The body, parsed like body.ts's jsonBody (strict: an object or an array; empty is `{}`). */
  private readJson(req: IncomingMessage): Promise<unknown> {
    const { maxRequestBytes: limit, maxDepth } = this.options;
    const tooLarge = (): HourglassError =>
      new HourglassError('payload_too_large', `the request body is larger than ${limit} bytes`);
    const declared = Number(req.headers['content-length']);
    if (declared > limit) {
      // Not read: the connection cannot be reused for the next request.
      req.resume();
      return Promise.reject(tooLarge());
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let length = 0;
      let refused = false;
      req.on('data', (chunk: Buffer) => {
        if (refused) return;
        length += chunk.length;
        if (length > limit) {
          refused = true;
          reject(tooLarge());
          return;
        }
        chunks.push(chunk);
      });
      req.on('error', (error: Error) => {
        refused = true;
        reject(error);
      });
      req.on('end', () => {
        if (refused) return;
        const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length);
        try {
          resolve(parseBody(bytes, maxDepth));
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    });
  }

  private fail(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    if (res.headersSent) return;
    const reply = errorReply(error, this.options.logger, req.method ?? 'POST', req.url ?? '');
    sendError(res, reply);
  }
}

function parseBody(bytes: Buffer, maxDepth: number): unknown {
  const text = bytes.toString('utf8');
  const first = /\S/.exec(text)?.[0];
  if (first === undefined) return {};
  if (first !== '{' && first !== '[')
    throw new HourglassError(
      'malformed_json',
      `the body is not valid JSON: Unexpected token ${JSON.stringify(first)}, a body must be an object or an array`,
    );
  if (jsonTextDepthExceeds(bytes, maxDepth))
    throw new HourglassError(
      'invalid_request',
      `the JSON body nests more than ${maxDepth} levels deep`,
      [{ path: '/', message: `at most ${maxDepth} levels of nesting` }],
    );
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new HourglassError(
      'malformed_json',
      `the body is not valid JSON: ${(error as Error).message}`,
    );
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', JSON_CONTENT_TYPE);
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

function sendError(res: ServerResponse, reply: ErrorReply): void {
  if (reply.retryAfterSeconds !== undefined)
    res.setHeader('Retry-After', String(reply.retryAfterSeconds));
  send(res, reply.status, reply.body);
}
