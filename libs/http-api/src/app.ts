/**
 * The HTTP v1 exporter. It only translates: requests into {@link MessageService} calls and
 * {@link HourglassError}s into statuses through ERROR_TABLE, with one error body shape.
 */
import type { RequestListener, Server } from 'node:http';
import { createServer } from 'node:http';
import type { Logger } from '@hourglass/core';
import {
  BODY_DEPTH_ALLOWANCE,
  DEFAULT_MAX_PAYLOAD_DEPTH,
  HourglassError,
  messageEtag,
  parseIfMatch,
} from '@hourglass/core';
import type {
  AppAdmin,
  AppDirectory,
  AppIdentity,
  MessageSearch,
  MessageService,
  ScheduleService,
} from '@hourglass/engine';
import { bearerToken } from '@hourglass/engine';
import type { NextFunction, Request, Response } from 'express';
import express from 'express';
import type { Registry } from 'prom-client';
import {
  ROUTER_OPTIONS,
  adminGate,
  adminRouter,
  adminSearchRouter,
  refuseUnmatched,
} from './admin';
import { jsonBody, requireJson } from './body';
import { FastSchedule } from './fast-schedule';
import { schedulesRouter } from './schedules';
import type { ErrorReply } from './replies';
import { errorReply, hourglassErrorReply, scheduleBatchReply } from './replies';
import { OpenApiValidator, openApiDocument } from './openapi';

export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

export interface HttpApiOptions {
  service: MessageService;
  apps: AppDirectory;
  logger: Logger;
  metricsRegistry: Registry;
  readiness: readonly ReadinessCheck[];
  /** Largest request body in bytes. */
  maxRequestBytes: number;
  /** Extra routers mounted before the 404 handler (admin routes). */
  extraRoutes?: (app: express.Express) => void;
  /** The app admin operations; without them only the gate and the cluster routes exist under /v1/admin. */
  admin?: AppAdmin;
  /** Recurring schedules (/v1/schedules); without it those routes answer 404. */
  schedules?: ScheduleService;
  /** Search and bulk cancel (GET /v1/messages, POST /v1/messages/cancel, GET /v1/admin/messages). */
  search?: MessageSearch;
}

/** Compiled once per process: the document is static. */
let validator: OpenApiValidator | undefined;

export interface HttpApi {
  app: express.Express;
  /**
   * The server's request listener: the schedule routes directly (fast-schedule.ts), everything
   * else through {@link app}.
   */
  handler: RequestListener;
  /** While draining, every new request gets 503 `shutting_down`. */
  setDraining(draining: boolean): void;
}

function sendReply(res: Response, reply: ErrorReply): void {
  if (reply.retryAfterSeconds !== undefined)
    res.setHeader('Retry-After', String(reply.retryAfterSeconds));
  res.status(reply.status).json(reply.body);
}

function sendError(res: Response, error: HourglassError): void {
  sendReply(res, hourglassErrorReply(error));
}

type Authed = Request & { hourglassApp?: AppIdentity };

export function createHttpApi(options: HttpApiOptions): HttpApi {
  const { service, apps, logger } = options;
  const app = express();
  let draining = false;
  // Before the first route: the app's router is created with these (see ROUTER_OPTIONS).
  app.set('case sensitive routing', ROUTER_OPTIONS.caseSensitive);
  app.set('strict routing', ROUTER_OPTIONS.strict);
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      // Never log headers: they carry tokens.
      logger.debug(
        {
          method: req.method,
          path: req.path,
          status: res.statusCode,
          ms: Number(process.hrtime.bigint() - started) / 1e6,
        },
        'request',
      );
    });
    if (draining) {
      // Clients that keep a connection busy would otherwise hold the server's close forever.
      res.setHeader('Connection', 'close');
    }
    if (draining && !req.path.startsWith('/healthz')) {
      sendError(
        res,
        new HourglassError('shutting_down', 'this node is shutting down; send to another node'),
      );
      return;
    }
    next();
  });

  const documented = (validator ??= new OpenApiValidator());
  // OPTIONS is answered from the document (204 with Allow), before Express would answer it from
  // its routes (GET /v1/messages/{id} also matches /v1/messages/batch). Admin paths are left to
  // the admin gate: their methods are for the admin token only.
  app.use((req, res, next) => {
    if (req.method !== 'OPTIONS' || req.path === '/v1/admin' || req.path.startsWith('/v1/admin/')) {
      next();
      return;
    }
    refuseUnmatched(documented, req, res, next, req.path);
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', async (_req, res) => {
    const checks = await Promise.all(
      options.readiness.map(async (probe) => {
        const name = probe.name;
        try {
          await Promise.race([
            probe.check(),
            new Promise((_resolve, reject) =>
              setTimeout(() => reject(new Error('timed out after 3 s')), 3000).unref(),
            ),
          ]);
          return { name, ok: true };
        } catch (error) {
          return { name, ok: false, error: (error as Error).message };
        }
      }),
    );
    const ready = !draining && checks.every((check) => check.ok);
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', draining, checks });
  });

  app.get('/metrics', async (_req, res) => {
    res.setHeader('Content-Type', options.metricsRegistry.contentType);
    res.send(await options.metricsRegistry.metrics());
  });

  // Deep enough for any payload the core accepts inside a batch; see BODY_DEPTH_ALLOWANCE.
  const bodyDepth =
    (service.limits.maxPayloadDepth ?? DEFAULT_MAX_PAYLOAD_DEPTH) + BODY_DEPTH_ALLOWANCE;
  const json = jsonBody({ limit: options.maxRequestBytes, maxDepth: bodyDepth });

  const authenticate = async (req: Authed, _res: Response, next: NextFunction): Promise<void> => {
    const token = bearerToken(req.headers.authorization);
    if (!token) {
      next(
        new HourglassError(
          'unauthenticated',
          'send an app token as "Authorization: Bearer <token>"',
        ),
      );
      return;
    }
    const identity = await apps.authenticate(token);
    if (!identity) {
      next(
        new HourglassError(
          'unauthenticated',
          apps.isAdmin(token)
            ? 'the admin token cannot publish; use an app token'
            : 'unknown token',
        ),
      );
      return;
    }
    req.hourglassApp = identity;
    next();
  };

  const caller = (req: Authed): AppIdentity => {
    if (!req.hourglassApp) throw new HourglassError('unauthenticated', 'not authenticated');
    return req.hourglassApp;
  };

  const v1 = express.Router(ROUTER_OPTIONS);
  v1.post('/messages/batch', authenticate, requireJson, json, async (req: Authed, res) => {
    res.status(200).json(scheduleBatchReply(await service.scheduleBatch(caller(req), req.body)));
  });
  const search = options.search;
  if (search) {
    // Before the /messages/:id routes. POST /v1/messages itself is served by fast-schedule.ts
    // (exactly that path), so /messages/cancel always reaches Express.
    v1.get('/messages', authenticate, async (req: Authed, res) => {
      res.json(await search.list(caller(req), req.query));
    });
    v1.post('/messages/cancel', authenticate, requireJson, json, async (req: Authed, res) => {
      res.json(await search.cancel(caller(req), req.body));
    });
  }
  v1.post('/messages', authenticate, requireJson, json, async (req: Authed, res) => {
    const { created, message } = await service.schedule(caller(req), req.body);
    if (created) res.setHeader('Location', `/v1/messages/${encodeURIComponent(message.id)}`);
    res.setHeader('ETag', messageEtag(message.version));
    res.status(created ? 201 : 200).json(message);
  });
  v1.get('/messages/:id', authenticate, async (req: Authed, res) => {
    const message = await service.get(caller(req), String(req.params.id));
    res.setHeader('ETag', messageEtag(message.version));
    res.json(message);
  });
  v1.patch('/messages/:id', authenticate, requireJson, json, async (req: Authed, res) => {
    const ifMatch = parseIfMatch(req.get('if-match'));
    const message = await service.update(caller(req), String(req.params.id), req.body, ifMatch);
    res.setHeader('ETag', messageEtag(message.version));
    res.json(message);
  });
  v1.delete('/messages/:id', authenticate, async (req: Authed, res) => {
    res.json(await service.cancel(caller(req), String(req.params.id)));
  });
  v1.get('/messages/:id/attempts', authenticate, async (req: Authed, res) => {
    res.json({ attempts: await service.attempts(caller(req), String(req.params.id)) });
  });
  v1.post('/messages/:id/retry', authenticate, async (req: Authed, res) => {
    res.json(await service.retry(caller(req), String(req.params.id)));
  });
  if (options.schedules) v1.use(schedulesRouter(options.schedules, authenticate, json));
  app.use('/v1', v1);
  app.get('/v1/openapi.json', (_req, res) => {
    res.json(openApiDocument);
  });
  // Every /v1/admin route, ours and extraRoutes' alike: admin token, then the OpenAPI document.
  app.use('/v1/admin', ...adminGate({ apps, validator: documented }));
  if (options.admin) app.use(adminRouter(options.admin));
  if (options.search) app.use(adminSearchRouter(options.search));
  options.extraRoutes?.(app);

  // 405 (with Allow) for a documented path and another method, 404 for anything else.
  app.use((req, res, next) => refuseUnmatched(documented, req, res, next, req.path));

  // Express recognises error handlers by their four parameters.
  app.use((error: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) return;
    sendReply(res, errorReply(error, logger, req.method, req.path));
  });

  const direct = new FastSchedule({
    service,
    apps,
    logger,
    maxRequestBytes: options.maxRequestBytes,
    maxDepth: bodyDepth,
  });
  return {
    app,
    handler: (req, res) => {
      const route = draining ? null : direct.route(req);
      if (route) direct.handle(req, res, route);
      else app(req, res);
    },
    setDraining(value: boolean) {
      draining = value;
    },
  };
}

/**
 * Room for the request line and headers. Node's default (16 KiB) answers 431 before any route
 * sees a search whose documented parameters are all at their longest (a 4096-character `key`
 * percent-encodes to up to 36 KiB).
 */
const MAX_HEADER_BYTES = 64 * 1024;

/** Listens and resolves once bound. */
export function listen(handler: RequestListener, host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, handler).listen(port, host);
    server.once('listening', () => resolve(server));
    server.once('error', reject);
    server.keepAliveTimeout = 65_000;
  });
}

/** Stops accepting connections and resolves when in-flight requests finished. */
/** Connections still open this long after close() (a request in flight, a client that keeps a
 * connection busy) are cut, so a graceful stop cannot hang on them. */
const CLOSE_GRACE_MS = 5_000;

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}
