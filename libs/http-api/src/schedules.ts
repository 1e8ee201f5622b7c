/**
 * The recurring-schedule routes (/v1/schedules), behind the same app authentication as
 * /v1/messages. They only translate: requests into {@link ScheduleService} calls; errors travel to
 * the app's error handler, which maps codes to statuses through ERROR_TABLE.
 */
import { HourglassError } from '@hourglass/core';
import type { AppIdentity, ScheduleService } from '@hourglass/engine';
import type { Request, RequestHandler } from 'express';
import express from 'express';
import { ROUTER_OPTIONS } from './admin';
import { requireJson } from './body';

type Authed = Request & { hourglassApp?: AppIdentity };

function caller(req: Authed): AppIdentity {
  if (!req.hourglassApp) throw new HourglassError('unauthenticated', 'not authenticated');
  return req.hourglassApp;
}

/** An optional positive integer query parameter; `invalid_request` naming it otherwise. */
function integerQuery(req: Request, name: string): number | undefined {
  const value = req.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^\d{1,6}$/.test(value))
    throw new HourglassError('invalid_request', `${name} must be a positive integer`, [
      { path: name, message: 'a positive integer' },
    ]);
  return Number(value);
}

function stringQuery(req: Request, name: string): string | undefined {
  const value = req.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > 200)
    throw new HourglassError('invalid_request', `${name} must be given once, as text`, [
      { path: name, message: 'one non-empty value' },
    ]);
  return value;
}

export function schedulesRouter(
  schedules: ScheduleService,
  authenticate: RequestHandler,
  json: RequestHandler,
): express.Router {
  const router = express.Router(ROUTER_OPTIONS);
  router.post('/schedules', authenticate, requireJson, json, async (req: Authed, res) => {
    const { created, schedule } = await schedules.create(caller(req), req.body);
    if (created) res.setHeader('Location', `/v1/schedules/${encodeURIComponent(schedule.id)}`);
    res.status(created ? 201 : 200).json(schedule);
  });
  router.get('/schedules', authenticate, async (req: Authed, res) => {
    const app = caller(req);
    res.json(await schedules.list(app, stringQuery(req, 'cursor'), integerQuery(req, 'limit')));
  });
  router.get('/schedules/:id', authenticate, async (req: Authed, res) => {
    res.json(await schedules.get(caller(req), String(req.params.id)));
  });
  router.patch('/schedules/:id', authenticate, requireJson, json, async (req: Authed, res) => {
    res.json(await schedules.patch(caller(req), String(req.params.id), req.body));
  });
  router.delete('/schedules/:id', authenticate, async (req: Authed, res) => {
    res.json(await schedules.delete(caller(req), String(req.params.id)));
  });
  router.get('/schedules/:id/next', authenticate, async (req: Authed, res) => {
    const app = caller(req);
    res.json(await schedules.next(app, String(req.params.id), integerQuery(req, 'count')));
  });
  return router;
}
