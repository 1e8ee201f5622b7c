/**
 * The admin routes of issue 12 over HTTP, behind the real admin gate (token, then the OpenAPI
 * document), on the real AppAdmin, Postgres app store and Kafka publisher: signing secrets shown
 * once and rotated with a grace, the delivery settings (PATCH) and their refusals, and the admin
 * message retry and attempts routes. The message side of those two routes is the engine's
 * MessageService; here a stand-in records what the routes ask of it, so that this file tests the
 * routes and not the delivery path. Time is a test clock.
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock } from '@hourglass/core';
import { AddressPolicy, HourglassError, isHourglassError, silentLogger } from '@hourglass/core';
import type { AdminMessageOps, AppIdentity, AttemptView, MessageView } from '@hourglass/engine';
import { AppAdmin, DbAppDirectory } from '@hourglass/engine';
import { KafkaPublisher } from '@hourglass/kafka';
import { PgAppStore, PgMessageStore } from '@hourglass/postgres';
import type { TestDatabase } from '@hourglass/testkit';
import {
  createTestDatabase,
  deleteTopics,
  kafkaClient,
  randomTopicName,
  serviceUrls,
} from '@hourglass/testkit';
import type { NextFunction, Request, Response } from 'express';
import express from 'express';
import { ROUTER_OPTIONS, OpenApiValidator, adminGate, adminRouter } from '../../src';
import { bodyParserError } from '../../src/body';

const ADMIN = 'admin-token-delivery';
const T0 = 1_900_000_000_000;
const DAY_MS = 86_400_000;

type Json = Record<string, unknown>;
type ErrorBody = { error: { code: string; details?: Array<{ path: string; message: string }> } };
interface DeliveryView {
  callbackHosts: string[] | null;
  deadLetterTopic: string | null;
  alerts: { afterAttempts: number; url: string | null; topic: string | null } | null;
  retry: Json | null;
  signingSecretCreatedAt: string | null;
  previousSecretExpiresAt: string | null;
}
interface AppBody {
  name: string;
  description: string;
  delivery: DeliveryView;
}

/** What the admin message routes ask of the service, and canned answers. */
class RecordingMessages implements AdminMessageOps {
  readonly calls: Array<{ op: string; app: string; topics: number; id: string }> = [];
  readonly view: MessageView = {
    id: 'm-1',
    version: 1,
    app: 'shop',
    topic: null,
    key: null,
    slot: 3,
    deliverAt: new Date(T0).toISOString(),
    state: 'scheduled',
    createdAt: new Date(T0).toISOString(),
    attempts: 0,
    targets: [
      {
        index: 0,
        type: 'http',
        url: 'https://shop.example.com/hook',
        method: 'POST',
        state: 'pending',
        attempts: 0,
      },
    ],
  };
  readonly attemptLog: AttemptView[] = [
    {
      target: 0,
      type: 'http',
      attempt: 1,
      at: new Date(T0).toISOString(),
      durationMs: 12,
      status: 503,
      error: 'HTTP 503',
    },
  ];

  /** Records the call; only message "m-1" exists. */
  private answer<T>(op: string, app: AppIdentity, id: string, value: T): Promise<T> {
    this.calls.push({ op, app: app.name, topics: app.topics.size, id });
    return id === 'm-1'
      ? Promise.resolve(value)
      : Promise.reject(new HourglassError('not_found', `no message "${id}"`));
  }
  get(app: AppIdentity, id: string): Promise<MessageView> {
    return this.answer('get', app, id, this.view);
  }
  cancel(app: AppIdentity, id: string): Promise<{ id: string; state: 'cancelled' }> {
    return this.answer('cancel', app, id, { id, state: 'cancelled' as const });
  }
  retry(app: AppIdentity, id: string): Promise<MessageView> {
    return this.answer('retry', app, id, this.view);
  }
  attempts(app: AppIdentity, id: string): Promise<AttemptView[]> {
    return this.answer('attempts', app, id, this.attemptLog);
  }
}

/** The exporter's error mapping (libs/http-api app.ts): known errors by ERROR_TABLE, else 500. */
function errors(error: unknown, _req: Request, res: Response, _next: NextFunction): void {
  const known = isHourglassError(error) ? error : bodyParserError(error);
  if (known) {
    res.status(known.spec.http).json(known.toBody());
    return;
  }
  res.status(500).json({ error: { code: 'internal', message: String(error) } });
}

describe('admin delivery routes (issue 12)', function () {
  const urls = serviceUrls();
  const createdTopics: string[] = [];
  let now = T0;
  const clock: Clock = { now: () => now };
  let db: TestDatabase;
  let messages: PgMessageStore;
  let store: PgAppStore;
  let directory: DbAppDirectory;
  let publisher: KafkaPublisher;
  let server: Server;
  let base: string;
  const service = new RecordingMessages();

  const call = async <T = Json>(
    method: string,
    path: string,
    body?: unknown,
    token = ADMIN,
  ): Promise<{ status: number; body: T }> => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as T };
  };
  const detailPaths = (body: ErrorBody): string[] =>
    (body.error.details ?? []).map((detail) => detail.path).sort();
  const createApp = async (
    name: string,
  ): Promise<{ app: AppBody; token: string; signingSecret: string }> => {
    const created = await call<{ app: AppBody; token: string; signingSecret: string }>(
      'POST',
      '/v1/admin/apps',
      { name },
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return created.body;
  };

  before(async () => {
    db = await createTestDatabase();
    messages = new PgMessageStore({ connectionString: db.connectionString });
    await messages.migrate(8);
    store = new PgAppStore({ connectionString: db.connectionString, now: clock.now });
    await store.start();
    directory = new DbAppDirectory({ store, adminToken: ADMIN, clock, logger: silentLogger });
    publisher = new KafkaPublisher({
      brokers: urls.kafkaBrokers,
      clientId: 'admin-delivery-test',
      topicPartitions: 1,
    });
    await publisher.start();
    const admin = new AppAdmin({
      store,
      directory,
      publisher,
      service,
      clock,
      callbackPolicy: new AddressPolicy([]),
    });
    const app = express();
    app.set('case sensitive routing', ROUTER_OPTIONS.caseSensitive);
    app.set('strict routing', ROUTER_OPTIONS.strict);
    app.use('/v1/admin', ...adminGate({ apps: directory, validator: new OpenApiValidator() }));
    app.use(adminRouter(admin));
    app.use(errors);
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await publisher?.stop();
    await deleteTopics(urls.kafkaBrokers, createdTopics).catch(() => undefined);
    await store?.stop();
    await messages?.stop();
    await db?.drop();
  });

  afterEach(() => {
    now = T0;
  });

  it('creates an app with a signing secret, shown once; the app view never shows it', async () => {
    const { app, signingSecret } = await createApp('shop');
    assert.match(signingSecret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    assert.equal(Buffer.from(signingSecret.slice('whsec_'.length), 'base64').length, 32);
    assert.deepEqual(app.delivery, {
      callbackHosts: null,
      deadLetterTopic: null,
      alerts: null,
      retry: null,
      signingSecretCreatedAt: new Date(T0).toISOString(),
      previousSecretExpiresAt: null,
    });
    assert.deepEqual(await store.signingSecrets('shop', T0, () => 'whsec_never'), [signingSecret]);
    const read = await call('GET', '/v1/admin/apps/shop');
    assert.equal(read.status, 200);
    const list = await call('GET', '/v1/admin/apps');
    for (const body of [read.body, list.body])
      assert.ok(!JSON.stringify(body).includes(signingSecret), 'the secret is shown once');
    const other = await createApp('shop-2');
    assert.notEqual(other.signingSecret, signingSecret);
  });

  it('rotates the signing secret: both are sent during the grace, then only the new one', async () => {
    const { signingSecret: first } = await createApp('rot');
    now = T0 + 1000;
    const rotated = await call<{ app: AppBody; signingSecret: string; graceSeconds: number }>(
      'POST',
      '/v1/admin/apps/rot/signing-secret',
      { graceSeconds: 60 },
    );
    assert.equal(rotated.status, 201, JSON.stringify(rotated.body));
    const second = rotated.body.signingSecret;
    assert.match(second, /^whsec_/);
    assert.notEqual(second, first);
    assert.equal(rotated.body.graceSeconds, 60);
    assert.equal(rotated.body.app.name, 'rot');
    assert.equal(
      rotated.body.app.delivery.signingSecretCreatedAt,
      new Date(T0 + 1000).toISOString(),
    );
    assert.equal(
      rotated.body.app.delivery.previousSecretExpiresAt,
      new Date(T0 + 61_000).toISOString(),
    );
    const never = () => 'whsec_never';
    assert.deepEqual(await store.signingSecrets('rot', T0 + 60_999, never), [second, first]);
    assert.deepEqual(await store.signingSecrets('rot', T0 + 61_000, never), [second]);

    // No body: a day's grace.
    now = T0 + 2000;
    const daily = await call<{ app: AppBody; signingSecret: string; graceSeconds: number }>(
      'POST',
      '/v1/admin/apps/rot/signing-secret',
    );
    assert.equal(daily.status, 201, JSON.stringify(daily.body));
    assert.equal(daily.body.graceSeconds, 86_400);
    assert.equal(
      daily.body.app.delivery.previousSecretExpiresAt,
      new Date(T0 + 2000 + DAY_MS).toISOString(),
    );
    assert.deepEqual(await store.signingSecrets('rot', T0 + 2000, never), [
      daily.body.signingSecret,
      second,
    ]);

    // Grace 0: the old one stops at once.
    const abrupt = await call<{ app: AppBody; signingSecret: string; graceSeconds: number }>(
      'POST',
      '/v1/admin/apps/rot/signing-secret',
      { graceSeconds: 0 },
    );
    assert.equal(abrupt.status, 201);
    assert.equal(abrupt.body.graceSeconds, 0);
    assert.equal(abrupt.body.app.delivery.previousSecretExpiresAt, null);
    assert.deepEqual(await store.signingSecrets('rot', T0 + 2000, never), [
      abrupt.body.signingSecret,
    ]);
  });

  it('refuses a bad grace with details, and an unknown app with 404', async () => {
    for (const body of [{ graceSeconds: -1 }, { graceSeconds: 2_592_001 }, { graceSeconds: 'x' }]) {
      const refused = await call<ErrorBody>('POST', '/v1/admin/apps/shop/signing-secret', body);
      assert.equal(refused.status, 400, JSON.stringify(body));
      assert.deepEqual(detailPaths(refused.body), ['graceSeconds']);
    }
    const unknown = await call<ErrorBody>('POST', '/v1/admin/apps/nobody/signing-secret', {});
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'not_found');
  });

  it('sets the delivery settings: hosts lower-cased, retry completed, topics created in Kafka', async () => {
    const { token } = await createApp('deliv');
    const dead = randomTopicName('deliv-dead');
    const alertTopic = randomTopicName('deliv-alerts');
    createdTopics.push(dead, alertTopic);
    // Cached before the change: the change must reach the directory's copy.
    assert.equal((await directory.authenticate(token))?.delivery?.deadLetterTopic, null);

    const set = await call<AppBody>('PATCH', '/v1/admin/apps/deliv', {
      delivery: {
        callbackHosts: ['Shop.Example.com', '*.hooks.example.com', 'shop.example.com'],
        deadLetterTopic: dead,
        alerts: {
          afterAttempts: 5,
          url: 'https://alerts.example.com/hourglass',
          topic: alertTopic,
        },
        retry: { strategy: 'linear', maxAttempts: 3 },
      },
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const expected: DeliveryView = {
      callbackHosts: ['shop.example.com', '*.hooks.example.com'],
      deadLetterTopic: dead,
      alerts: { afterAttempts: 5, url: 'https://alerts.example.com/hourglass', topic: alertTopic },
      retry: {
        strategy: 'linear',
        initialDelayMs: 10_000,
        maxDelayMs: DAY_MS,
        maxAttempts: 3,
        jitter: true,
      },
      signingSecretCreatedAt: new Date(T0).toISOString(),
      previousSecretExpiresAt: null,
    };
    assert.deepEqual(set.body.delivery, expected);
    assert.deepEqual((await call<AppBody>('GET', '/v1/admin/apps/deliv')).body.delivery, expected);
    const identity = await directory.authenticate(token);
    assert.deepEqual(identity?.delivery?.callbackHosts, expected.callbackHosts);
    assert.equal(identity?.delivery?.deadLetterTopic, dead);

    const admin = kafkaClient(urls.kafkaBrokers).admin();
    await admin.connect();
    try {
      const topics = await admin.listTopics();
      assert.ok(topics.includes(dead), 'the dead-letter topic exists');
      assert.ok(topics.includes(alertTopic), 'the alert topic exists');
    } finally {
      await admin.disconnect();
    }

    // Absent fields stay; null clears; description and delivery in one PATCH.
    const partial = await call<AppBody>('PATCH', '/v1/admin/apps/deliv', {
      description: 'the shop',
      delivery: { callbackHosts: null, retry: null },
    });
    assert.equal(partial.status, 200, JSON.stringify(partial.body));
    assert.equal(partial.body.description, 'the shop');
    assert.deepEqual(partial.body.delivery, { ...expected, callbackHosts: null, retry: null });
    assert.equal((await directory.authenticate(token))?.delivery?.callbackHosts, null);

    const cleared = await call<AppBody>('PATCH', '/v1/admin/apps/deliv', {
      delivery: { deadLetterTopic: null, alerts: null },
    });
    assert.equal(cleared.status, 200);
    assert.deepEqual(cleared.body.delivery, {
      ...expected,
      callbackHosts: null,
      retry: null,
      deadLetterTopic: null,
      alerts: null,
    });
  });

  it('refuses bad delivery settings with a detail per field, and writes nothing', async () => {
    await createApp('strict');
    const refusals: Array<[Json, string[]]> = [
      // The document's rules (the admin gate).
      [
        { callbackHosts: ['exa mple.com', 'ok.example', '*'] },
        ['delivery/callbackHosts/0', 'delivery/callbackHosts/2'],
      ],
      [
        { callbackHosts: Array.from({ length: 101 }, (_, i) => `h${i}.example`) },
        ['delivery/callbackHosts'],
      ],
      [{ deadLetterTopic: 'bad topic' }, ['delivery/deadLetterTopic']],
      [
        { alerts: { afterAttempts: 0, topic: 't' } },
        ['delivery/alerts', 'delivery/alerts/afterAttempts'],
      ],
      [{ retry: { maxAttempts: 101 } }, ['delivery/retry', 'delivery/retry/maxAttempts']],
      [{ unknown: 1 }, ['delivery/unknown']],
      // AppAdmin's, which the document cannot say.
      [{ alerts: { afterAttempts: 3, url: 'http://10.0.0.1/alerts' } }, ['delivery/alerts/url']],
      [{ alerts: { afterAttempts: 3, url: 'http://[::1]:8080/' } }, ['delivery/alerts/url']],
      [{ retry: { initialDelayMs: 100_000_000 } }, ['delivery/retry/maxDelayMs']],
    ];
    for (const [delivery, paths] of refusals) {
      const refused = await call<ErrorBody>('PATCH', '/v1/admin/apps/strict', {
        description: 'changed',
        delivery,
      });
      assert.equal(refused.status, 400, JSON.stringify(delivery));
      assert.equal(refused.body.error.code, 'invalid_request');
      for (const path of paths)
        assert.ok(
          detailPaths(refused.body).includes(path),
          `${JSON.stringify(delivery)}: ${detailPaths(refused.body).join(', ')}`,
        );
    }
    const unchanged = await call<AppBody>('GET', '/v1/admin/apps/strict');
    assert.equal(unchanged.body.description, '');
    assert.deepEqual(unchanged.body.delivery.alerts, null);
    assert.deepEqual(unchanged.body.delivery.retry, null);
  });

  it('answers 404 for the delivery settings of an unknown app, before Kafka is asked', async () => {
    const topic = randomTopicName('never-created');
    const unknown = await call<ErrorBody>('PATCH', '/v1/admin/apps/nobody', {
      delivery: { deadLetterTopic: topic },
    });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'not_found');
    const admin = kafkaClient(urls.kafkaBrokers).admin();
    await admin.connect();
    try {
      assert.ok(!(await admin.listTopics()).includes(topic));
    } finally {
      await admin.disconnect();
    }
  });

  it('retries any app message and lists its attempts through the service, as the admin', async () => {
    const retried = await call<MessageView>('POST', '/v1/admin/messages/shop/m-1/retry');
    assert.equal(retried.status, 200, JSON.stringify(retried.body));
    assert.deepEqual(retried.body, service.view);
    const attempts = await call<{ attempts: AttemptView[] }>(
      'GET',
      '/v1/admin/messages/shop/m-1/attempts',
    );
    assert.equal(attempts.status, 200);
    assert.deepEqual(attempts.body, { attempts: service.attemptLog });
    assert.deepEqual(service.calls.slice(-2), [
      { op: 'retry', app: 'shop', topics: 0, id: 'm-1' },
      { op: 'attempts', app: 'shop', topics: 0, id: 'm-1' },
    ]);
    const missing = await call<ErrorBody>('POST', '/v1/admin/messages/shop/m-2/retry');
    assert.equal(missing.status, 404);
    const badId = await call<ErrorBody>('GET', '/v1/admin/messages/shop/a%20b/attempts');
    assert.equal(badId.status, 400);
    assert.deepEqual(detailPaths(badId.body), ['id']);
  });

  it('keeps the new routes for the admin token', async () => {
    const { token } = await createApp('intruder');
    for (const [method, path] of [
      ['POST', '/v1/admin/apps/intruder/signing-secret'],
      ['POST', '/v1/admin/messages/intruder/m-1/retry'],
      ['GET', '/v1/admin/messages/intruder/m-1/attempts'],
    ] as const) {
      const refused = await call<ErrorBody>(method, path, undefined, token);
      assert.equal(refused.status, 403, `${method} ${path}`);
      assert.equal(refused.body.error.code, 'forbidden');
    }
  });
});
