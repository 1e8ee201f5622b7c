/**
 * The admin API under /v1/admin (admin token only): apps, tokens, topics, quotas, delivery
 * settings and signing secrets, message lookup, cancel, retry and attempts by app and id, and
 * statistics. The cluster routes (slots, nodes) live in
 * admin-cluster.ts; {@link adminGate} guards both.
 *
 * Responses never contain token hashes; a clear token appears exactly once, in the response that
 * issued it (create, rotate), and so does a signing secret (create, signing-secret rotation).
 */
import type { AppAlerts, AppQuotas, AppRecord, RetryStrategy } from '@hourglass/core';
import { BODY_DEPTH_ALLOWANCE, DEFAULT_MAX_PAYLOAD_DEPTH, HourglassError } from '@hourglass/core';
import type { AppAdmin, AppDirectory, AppRetentionView, MessageSearch } from '@hourglass/engine';
import { bearerToken, requireAdminToken, retentionView } from '@hourglass/engine';
import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import express from 'express';
import { isJsonRequest, jsonBody, unsupportedMediaType } from './body';
import type { OpenApiValidator } from './openapi';

/**
 * Routes match exactly: a differently cased path or a trailing slash would otherwise reach a
 * router that the gate's document lookup did not match, and skip validation.
 */
export const ROUTER_OPTIONS = { caseSensitive: true, strict: true } as const;

/** Default grace of a rotation: the old token keeps working this long, so clients can roll over. */
export const DEFAULT_GRACE_SECONDS = 3600;

/** Default grace of a signing secret rotation: callbacks carry both signatures for a day. */
export const DEFAULT_SECRET_GRACE_SECONDS = 86_400;

/**
 * The admin token check of every admin route (the rule is {@link requireAdminToken}: the admin
 * token passes, a missing or unknown token gets 401, any app's token, a disabled app's included,
 * 403 `forbidden`).
 */
export function requireAdmin(apps: AppDirectory): RequestHandler {
  return async (req: Request, _res: Response, next: NextFunction): Promise<void> => {
    await requireAdminToken(apps, bearerToken(req.headers.authorization));
    next();
  };
}

export interface AdminGateOptions {
  apps: AppDirectory;
  validator: OpenApiValidator;
  /** Largest admin request body. @default 65536 */
  maxBodyBytes?: number;
}

/**
 * Mounted at /v1/admin before every admin router: the admin token is required on every admin
 * path (known or not, so probing paths with an app token learns nothing), then the request is
 * validated against the OpenAPI document: the path must be one of its operations (404, or 405
 * with `Allow` for another method), then path parameters, content type and JSON body. Nothing
 * reaches an admin router unvalidated.
 */
export function adminGate(options: AdminGateOptions): RequestHandler[] {
  const { apps, validator } = options;
  const json = jsonBody({
    limit: options.maxBodyBytes ?? 65_536,
    maxDepth: DEFAULT_MAX_PAYLOAD_DEPTH + BODY_DEPTH_ALLOWANCE,
  });
  const validate = (req: Request, res: Response, next: NextFunction): void => {
    const path = `${req.baseUrl}${req.path}`;
    const op = validator.match(req.method, path);
    if (!op) {
      refuseUnmatched(validator, req, res, next, path);
      return;
    }
    op.checkParams(path);
    if (!op.hasBody) {
      next();
      return;
    }
    const hasBody =
      (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') ||
      req.headers['transfer-encoding'] !== undefined;
    if (!hasBody) {
      next(
        op.bodyRequired
          ? new HourglassError('invalid_request', 'this request needs a JSON body', [
              { path: '/', message: 'required' },
            ])
          : undefined,
      );
      return;
    }
    if (!isJsonRequest(req)) {
      next(unsupportedMediaType());
      return;
    }
    json(req, res, (error?: unknown) => {
      if (error) {
        next(error);
        return;
      }
      try {
        op.checkBody(req.body);
        next();
      } catch (invalid) {
        next(invalid);
      }
    });
  };
  return [requireAdmin(apps), validate];
}

/**
 * Answers a request no operation of the document matches: when the path is one of the document's
 * with other methods, OPTIONS gets 204 and any other method 405, both with `Allow`; an unknown
 * path gets 404 `route_not_found`.
 */
export function refuseUnmatched(
  validator: OpenApiValidator,
  req: Request,
  res: Response,
  next: NextFunction,
  path: string,
): void {
  const methods = validator.allowedMethods(path);
  if (methods.length === 0) {
    next(new HourglassError('route_not_found', `no route ${req.method} ${path}`));
    return;
  }
  // Express answers HEAD wherever GET is served.
  const allow = [...methods, ...(methods.includes('GET') ? ['HEAD'] : []), 'OPTIONS'].join(', ');
  res.setHeader('Allow', allow);
  if (req.method === 'OPTIONS') {
    res.status(204).end();
    return;
  }
  next(
    new HourglassError(
      'method_not_allowed',
      `${req.method} is not allowed on ${path}; allowed: ${allow}`,
    ),
  );
}

/** What clients see of an app. */
export interface AppView {
  name: string;
  description: string;
  createdAt: string;
  disabled: boolean;
  topics: readonly string[];
  quotas: AppQuotas;
  tokens: Array<{ createdAt: string; expiresAt: string | null }>;
  delivery: {
    callbackHosts: readonly string[] | null;
    deadLetterTopic: string | null;
    alerts: AppAlerts | null;
    retry: RetryStrategy | null;
    signingSecretCreatedAt: string | null;
    previousSecretExpiresAt: string | null;
  };
  /** Days finished messages are kept where the app differs from the configured retention. */
  retention: AppRetentionView;
}

function isoOrNull(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

export function toAppView(app: AppRecord): AppView {
  const delivery = app.delivery;
  return {
    name: app.name,
    description: app.description,
    createdAt: new Date(app.createdAtMs).toISOString(),
    disabled: app.disabled,
    topics: app.topics,
    quotas: app.quotas,
    tokens: app.tokens.map((token) => ({
      createdAt: new Date(token.createdAtMs).toISOString(),
      expiresAt: isoOrNull(token.expiresAtMs),
    })),
    delivery: {
      callbackHosts: delivery.callbackHosts,
      deadLetterTopic: delivery.deadLetterTopic,
      alerts: delivery.alerts,
      retry: delivery.retry,
      signingSecretCreatedAt: isoOrNull(delivery.signingSecretCreatedAtMs),
      previousSecretExpiresAt: isoOrNull(delivery.previousSecretExpiresAtMs),
    },
    retention: retentionView(app.retention),
  };
}

type Body = Record<string, unknown>;

function body(req: Request): Body {
  // The gate validated it against the document; an absent optional body is {}.
  return (req.body ?? {}) as Body;
}

function quotasFrom(value: Body): AppQuotas {
  const pick = (key: string): number | null => (typeof value[key] === 'number' ? value[key] : null);
  return {
    ratePerSecond: pick('ratePerSecond'),
    burst: pick('burst'),
    maxPending: pick('maxPending'),
    maxPayloadBytes: pick('maxPayloadBytes'),
    maxDelayMs: pick('maxDelayMs'),
  };
}

/** The app admin routes, full paths, for a router mounted at the root. */
export function adminRouter(admin: AppAdmin): Router {
  const router = express.Router(ROUTER_OPTIONS);
  const name = (req: Request): string => String(req.params.app);

  router.get('/v1/admin/apps', async (_req, res) => {
    res.json({ apps: (await admin.listApps()).map(toAppView) });
  });
  router.post('/v1/admin/apps', async (req, res) => {
    const input = body(req);
    const { app, token, signingSecret } = await admin.createApp({
      name: String(input.name),
      description: typeof input.description === 'string' ? input.description : '',
      topics: Array.isArray(input.topics) ? (input.topics as string[]) : [],
      quotas:
        typeof input.quotas === 'object' && input.quotas !== null
          ? quotasFrom(input.quotas as Body)
          : undefined,
    });
    res.setHeader('Location', `/v1/admin/apps/${encodeURIComponent(app.name)}`);
    res.status(201).json({ app: toAppView(app), token, signingSecret });
  });
  router.get('/v1/admin/apps/:app', async (req, res) => {
    res.json(toAppView(await admin.getApp(name(req))));
  });
  router.patch('/v1/admin/apps/:app', async (req, res) => {
    const input = body(req);
    const app = await admin.updateApp(name(req), {
      ...(typeof input.description === 'string' ? { description: input.description } : {}),
      ...(typeof input.disabled === 'boolean' ? { disabled: input.disabled } : {}),
      // The document checked its shape; AppAdmin checks the rest (URLs, host names, retry bounds).
      ...(typeof input.delivery === 'object' && input.delivery !== null
        ? { delivery: input.delivery }
        : {}),
      ...(typeof input.retention === 'object' && input.retention !== null
        ? { retention: input.retention }
        : {}),
    });
    res.json(toAppView(app));
  });
  router.delete('/v1/admin/apps/:app', async (req, res) => {
    await admin.deleteApp(name(req));
    res.json({ name: name(req), deleted: true });
  });
  router.post('/v1/admin/apps/:app/tokens', async (req, res) => {
    const input = body(req);
    const graceSeconds =
      typeof input.graceSeconds === 'number' ? input.graceSeconds : DEFAULT_GRACE_SECONDS;
    const { app, token } = await admin.rotateToken(name(req), graceSeconds * 1000);
    res.status(201).json({ app: toAppView(app), token, graceSeconds });
  });
  router.post('/v1/admin/apps/:app/signing-secret', async (req, res) => {
    const input = body(req);
    const graceSeconds =
      typeof input.graceSeconds === 'number' ? input.graceSeconds : DEFAULT_SECRET_GRACE_SECONDS;
    const { app, signingSecret } = await admin.rotateSigningSecret(name(req), graceSeconds * 1000);
    res.status(201).json({ app: toAppView(app), signingSecret, graceSeconds });
  });
  router.post('/v1/admin/apps/:app/topics', async (req, res) => {
    const input = body(req);
    const app = await admin.addTopic(name(req), String(input.topic), {
      ...(typeof input.partitions === 'number' ? { partitions: input.partitions } : {}),
      ...(typeof input.replicationFactor === 'number'
        ? { replicationFactor: input.replicationFactor }
        : {}),
    });
    res.json(toAppView(app));
  });
  router.delete('/v1/admin/apps/:app/topics/:topic', async (req, res) => {
    res.json(toAppView(await admin.removeTopic(name(req), String(req.params.topic))));
  });
  router.put('/v1/admin/apps/:app/quotas', async (req, res) => {
    res.json(toAppView(await admin.setQuotas(name(req), quotasFrom(body(req)))));
  });
  router.get('/v1/admin/messages/:app/:id', async (req, res) => {
    res.json(await admin.getMessage(name(req), String(req.params.id)));
  });
  router.delete('/v1/admin/messages/:app/:id', async (req, res) => {
    res.json(await admin.cancelMessage(name(req), String(req.params.id)));
  });
  router.post('/v1/admin/messages/:app/:id/retry', async (req, res) => {
    res.json(await admin.retryMessage(name(req), String(req.params.id)));
  });
  router.get('/v1/admin/messages/:app/:id/attempts', async (req, res) => {
    res.json({ attempts: await admin.messageAttempts(name(req), String(req.params.id)) });
  });
  router.get('/v1/admin/stats', async (_req, res) => {
    res.json(await admin.stats());
  });
  return router;
}

/**
 * GET /v1/admin/messages: the search across apps (`app` narrows it to one), for a router mounted
 * at the root behind {@link adminGate}. The gate checks the path; the query is checked by the
 * search itself (the document's validator covers path parameters and bodies only).
 */
export function adminSearchRouter(search: MessageSearch): Router {
  const router = express.Router(ROUTER_OPTIONS);
  router.get('/v1/admin/messages', async (req, res) => {
    res.json(await search.listAll(req.query));
  });
  return router;
}
