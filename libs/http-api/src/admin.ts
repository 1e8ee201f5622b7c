/**
 * The admin API under /v1/admin (admin token only): apps, tokens, topics, quotas, message lookup
 * and cancel by app and id, and statistics. The cluster routes (slots, nodes) live in
 * admin-cluster.ts; {@link adminGate} guards both.
 *
 * Responses never contain token hashes; a clear token appears exactly once, in the response that
 * issued it (create, rotate).
 */
import type { AppQuotas, AppRecord } from '@hourglass/core';
import { HourglassError } from '@hourglass/core';
import type { AppAdmin, AppDirectory } from '@hourglass/engine';
import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import express from 'express';
import type { OpenApiValidator } from './openapi';

/** Default grace of a rotation: the old token keeps working this long, so clients can roll over. */
export const DEFAULT_GRACE_SECONDS = 3600;

function bearer(req: Request): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return match?.[1] ?? null;
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
 * validated against the OpenAPI document: path parameters, content type and JSON body.
 */
export function adminGate(options: AdminGateOptions): RequestHandler[] {
  const { apps, validator } = options;
  const json = express.json({
    limit: options.maxBodyBytes ?? 65_536,
    type: ['application/json', 'application/*+json'],
  });
  const requireAdmin = async (req: Request, _res: Response, next: NextFunction): Promise<void> => {
    const token = bearer(req);
    if (!token) {
      next(
        new HourglassError(
          'unauthenticated',
          'send the admin token as "Authorization: Bearer <token>"',
        ),
      );
      return;
    }
    if (apps.isAdmin(token)) {
      next();
      return;
    }
    let app: { name: string } | null;
    try {
      app = await apps.authenticate(token);
    } catch (error) {
      // A disabled app's token is still an app token.
      if (!(error instanceof HourglassError && error.code === 'forbidden')) throw error;
      next(
        new HourglassError(
          'forbidden',
          'app tokens may not use admin endpoints; use the admin token',
        ),
      );
      return;
    }
    next(
      app
        ? new HourglassError(
            'forbidden',
            `app "${app.name}" may not use admin endpoints; use the admin token`,
          )
        : new HourglassError('unauthenticated', 'unknown token'),
    );
  };
  const validate = (req: Request, res: Response, next: NextFunction): void => {
    const path = `${req.baseUrl}${req.path}`;
    const op = validator.match(req.method, path);
    if (!op) {
      next();
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
    if (!hasBody && !op.bodyRequired) {
      next();
      return;
    }
    if (!req.is(['application/json', 'application/*+json'])) {
      next(
        new HourglassError(
          'unsupported_media_type',
          'send the body as JSON with Content-Type: application/json',
        ),
      );
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
  return [requireAdmin, validate];
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
}

export function toAppView(app: AppRecord): AppView {
  return {
    name: app.name,
    description: app.description,
    createdAt: new Date(app.createdAtMs).toISOString(),
    disabled: app.disabled,
    topics: app.topics,
    quotas: app.quotas,
    tokens: app.tokens.map((token) => ({
      createdAt: new Date(token.createdAtMs).toISOString(),
      expiresAt: token.expiresAtMs === null ? null : new Date(token.expiresAtMs).toISOString(),
    })),
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
  const router = express.Router();
  const name = (req: Request): string => String(req.params.app);

  router.get('/v1/admin/apps', async (_req, res) => {
    res.json({ apps: (await admin.listApps()).map(toAppView) });
  });
  router.post('/v1/admin/apps', async (req, res) => {
    const input = body(req);
    const { app, token } = await admin.createApp({
      name: String(input.name),
      description: typeof input.description === 'string' ? input.description : '',
      topics: Array.isArray(input.topics) ? (input.topics as string[]) : [],
      quotas:
        typeof input.quotas === 'object' && input.quotas !== null
          ? quotasFrom(input.quotas as Body)
          : undefined,
    });
    res.setHeader('Location', `/v1/admin/apps/${encodeURIComponent(app.name)}`);
    res.status(201).json({ app: toAppView(app), token });
  });
  router.get('/v1/admin/apps/:app', async (req, res) => {
    res.json(toAppView(await admin.getApp(name(req))));
  });
  router.patch('/v1/admin/apps/:app', async (req, res) => {
    const input = body(req);
    const app = await admin.updateApp(name(req), {
      ...(typeof input.description === 'string' ? { description: input.description } : {}),
      ...(typeof input.disabled === 'boolean' ? { disabled: input.disabled } : {}),
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
  router.get('/v1/admin/stats', async (_req, res) => {
    res.json(await admin.stats());
  });
  return router;
}
