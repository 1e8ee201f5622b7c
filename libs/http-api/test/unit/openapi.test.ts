/**
 * One source of truth: the OpenAPI document's MessageRequest schema and libs/core
 * parseScheduleRequest must accept and refuse the same bodies (what the schema cannot say — the
 * payload's byte size, the maximum delay, the calendar validity of a date — is listed in the
 * schema's description and left out of the corpus). Admin request validation comes from the
 * document itself, so it is checked on a few bodies only.
 */
import assert from 'node:assert/strict';
import { AddressPolicy, ERROR_TABLE, parseScheduleRequest } from '@hourglass/core';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { OpenApiValidator, openApiDocument } from '../../src/openapi';

const LIMITS = {
  maxPayloadBytes: 1 << 20,
  maxDelayMs: 3650 * 86_400_000,
  maxBatchSize: 1000,
  // The defaults (callbacks.*, limits.maxTargets) the document's numbers are written for.
  targets: { maxTargets: 8, defaultTimeoutMs: 10_000, policy: new AddressPolicy([]) },
};

const HOOK = 'https://shop.example.com/hooks/hourglass';
/** A message body of each shape, to vary one field at a time. */
const due = { payload: 1, delayMs: 1 };
const withCallback = (callback: Record<string, unknown>) => ({
  ...due,
  callback: { url: HOOK, ...callback },
});
const withRetry = (retry: unknown) => ({ ...due, callback: { url: HOOK }, retry });

const valid: unknown[] = [
  { topic: 't', payload: 1, delayMs: 0 },
  { topic: 'a.b-c_D', payload: null, delayMs: 5 },
  { topic: 't', payload: { deep: [1, 'x'] }, deliverAt: '2030-01-01T10:00:00Z' },
  { topic: 't', payload: 'x', deliverAt: '2030-01-01T10:00+02:00' },
  { topic: 't', payload: 'x', deliverAt: '2030-01-01T10:00:00.123456789z' },
  { topic: 't', payload: 'x', deliverAt: 1_900_000_000_000 },
  { topic: 't', payloadBase64: 'AAEC', delayMs: 1 },
  { topic: 't', payloadBase64: '', delayMs: 1 },
  { topic: 't', payloadBase64: 'YQ==', delayMs: 1 },
  { id: 'order:42.v1_x-y', topic: 't', key: 'k', payload: 1, delayMs: 1 },
  { topic: 't', key: null, payload: 1, delayMs: 1, headers: { 'x-trace': 'abc', empty: '' } },
  { topic: 't', payload: 1, delayMs: 1, headers: {} },
  { topic: '...', payload: 'a\u0000b\ud800', delayMs: 1 },
  {
    topic: 't',
    key: 'emoji \ud83d\ude00',
    payload: 1,
    delayMs: 1,
    headers: { '\ud83d\ude00': 'ok' },
  },
  {
    id: '...',
    topic: '.a',
    key: 'k\u00e9',
    payload: 1,
    delayMs: 1,
    headers: { 'x-\u00e9': '\u00e9' },
  },
  // HTTP callbacks, fan-out, retries (docs/callbacks.md).
  {
    id: 'order-42-timeout',
    delayMs: 1_800_000,
    payload: { order: 42 },
    headers: { 'x-trace': 'abc' },
    callback: {
      url: HOOK,
      method: 'POST',
      headers: { authorization: 'Bearer x' },
      timeoutMs: 10_000,
      name: 'order.timeout',
      envelope: false,
      expectBody: 'ok',
    },
    retry: {
      strategy: 'exponential',
      initialDelayMs: 10_000,
      maxDelayMs: 86_400_000,
      maxAttempts: 10,
      jitter: true,
    },
    contentType: 'application/json',
  },
  withCallback({}),
  withCallback({ type: 'http', method: 'PUT', timeoutMs: 1, name: null, expectBody: null }),
  withCallback({ url: 'http://example.com' }),
  withCallback({ url: 'HTTPS://Example.COM:8443/a/b?c=d&e#f' }),
  withCallback({ url: 'https://example.com:65535/x' }),
  withCallback({ url: 'http://a_b.example:/' }),
  withCallback({ url: 'http://93.184.216.34/hook' }),
  withCallback({ url: 'http://[2606:4700::1111]:8080/hook' }),
  withCallback({
    timeoutMs: 60_000,
    envelope: true,
    name: 'a:b_c.d-E',
    expectBody: 'x'.repeat(1024),
  }),
  withCallback({ headers: { 'X-Custom_Header!': 'v', hostname: 'ok', 'content-type-x': '' } }),
  withCallback({ url: `https://example.com/${'p'.repeat(2048 - 'https://example.com/'.length)}` }),
  { ...due, topic: 't', key: 'k', callback: { url: HOOK } },
  { ...due, key: null, callback: { url: HOOK } },
  { payloadBase64: 'AA==', delayMs: 1, callback: { url: HOOK }, contentType: 'image/png' },
  { ...due, topic: 't', retry: {} },
  { ...due, topic: 't', contentType: 'text/plain; charset=utf-8' },
  { ...due, topic: 't', contentType: 'application/vnd.api+json;q="a b";x=y' },
  { ...due, targets: [{ topic: 't' }] },
  { ...due, targets: [{ topic: 't' }, { url: HOOK, method: 'PUT' }] },
  {
    ...due,
    headers: { 'x-all': '1' },
    targets: [
      { type: 'kafka', topic: 'a', key: null, headers: { 'x-k': 'v', 'x y': 'z' } },
      { type: 'kafka', topic: 'b', key: 'k' },
      { type: 'http', url: HOOK, headers: { authorization: 'Bearer x' }, envelope: true },
    ],
  },
  { ...due, targets: Array.from({ length: 8 }, (_, i) => ({ url: `${HOOK}/${i}` })) },
  withRetry({ strategy: 'fixed', initialDelayMs: 0, maxDelayMs: 0, maxAttempts: 1, jitter: false }),
  withRetry({ strategy: 'linear' }),
  withRetry({ maxAttempts: 100 }),
  withRetry({ initialDelayMs: 2_592_000_000, maxDelayMs: 2_592_000_000 }),
];

const invalid: unknown[] = [
  null,
  [],
  'text',
  42,
  {},
  { payload: 1, delayMs: 1 },
  { topic: 42, payload: 1, delayMs: 1 },
  { topic: '', payload: 1, delayMs: 1 },
  { topic: 'bad topic', payload: 1, delayMs: 1 },
  { topic: 't'.repeat(250), payload: 1, delayMs: 1 },
  { topic: 't', delayMs: 1 },
  { topic: 't', payload: 1, payloadBase64: 'AA==', delayMs: 1 },
  { topic: 't', payloadBase64: 'not base64!', delayMs: 1 },
  { topic: 't', payloadBase64: 'YQ', delayMs: 1 },
  { topic: 't', payloadBase64: 5, delayMs: 1 },
  { topic: 't', payload: 1 },
  { topic: 't', payload: 1, delayMs: 1, deliverAt: 5 },
  { topic: 't', payload: 1, delayMs: -1 },
  { topic: 't', payload: 1, delayMs: 1.5 },
  { topic: 't', payload: 1, delayMs: '5' },
  { topic: 't', payload: 1, delayMs: 2 ** 53 },
  { topic: 't', payload: 1, deliverAt: '2030-01-01T10:00:00' },
  { topic: 't', payload: 1, deliverAt: '2030-01-01' },
  { topic: 't', payload: 1, deliverAt: -1 },
  { topic: 't', payload: 1, deliverAt: true },
  { id: '', topic: 't', payload: 1, delayMs: 1 },
  { id: 'a b', topic: 't', payload: 1, delayMs: 1 },
  { id: 'x'.repeat(129), topic: 't', payload: 1, delayMs: 1 },
  { id: 7, topic: 't', payload: 1, delayMs: 1 },
  { topic: 't', key: 5, payload: 1, delayMs: 1 },
  { topic: 't', key: 'k'.repeat(4097), payload: 1, delayMs: 1 },
  { topic: 't', payload: 1, delayMs: 1, headers: [] },
  { topic: 't', payload: 1, delayMs: 1, headers: { a: 1 } },
  { topic: 't', payload: 1, delayMs: 1, headers: { 'hourglass-id': 'x' } },
  { topic: 't', payload: 1, delayMs: 1, headers: { 'HourGlass-App': 'x' } },
  { topic: 't', payload: 1, delayMs: 1, headers: { '': 'x' } },
  { topic: 't', payload: 1, delayMs: 1, headers: { a: 'v'.repeat(8193) } },
  {
    topic: 't',
    payload: 1,
    delayMs: 1,
    headers: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`h${i}`, 'v'])),
  },
  { topic: 't', payload: 1, delayMs: 1, delay: 5 },
  // What Postgres cannot store, and names Kafka or URLs cannot take.
  { topic: 't', key: 'a\u0000b', payload: 1, delayMs: 1 },
  { topic: 't', payload: 1, delayMs: 1, headers: { 'x-foo': 'v\u0000' } },
  { topic: 't', payload: 1, delayMs: 1, headers: { 'x\u0000': 'v' } },
  { topic: 't', key: 'a\ud800', payload: 1, delayMs: 1 },
  { topic: 't', key: '\udc00a', payload: 1, delayMs: 1 },
  { topic: 't', payload: 1, delayMs: 1, headers: { 'x-foo': '\ud83d' } },
  { topic: '.', payload: 1, delayMs: 1 },
  { topic: '..', payload: 1, delayMs: 1 },
  { id: '.', topic: 't', payload: 1, delayMs: 1 },
  { id: '..', topic: 't', payload: 1, delayMs: 1 },
  // Where it goes: topic, callback or targets, and targets alone.
  { ...due, topic: null },
  { ...due, topic: 't', targets: [{ topic: 't' }] },
  { ...due, key: 'k', targets: [{ topic: 't' }] },
  { ...due, key: null, targets: [{ topic: 't' }] },
  { ...due, callback: { url: HOOK }, targets: [{ topic: 't' }] },
  { ...due, key: 'k', callback: { url: HOOK } },
  { ...due, key: 'k' },
  { ...due, retry: {} },
  { ...due, contentType: 'text/plain' },
  // callback
  { ...due, callback: null },
  { ...due, callback: HOOK },
  { ...due, callback: [] },
  { ...due, callback: {} },
  withCallback({ type: 'kafka' }),
  withCallback({ topic: 't' }),
  withCallback({ retries: 3 }),
  withCallback({ url: 5 }),
  withCallback({ url: '' }),
  withCallback({ url: 'shop.example.com/hooks' }),
  withCallback({ url: 'ftp://shop.example.com/' }),
  withCallback({ url: 'file:///etc/passwd' }),
  withCallback({ url: 'https://user:secret@shop.example.com/' }),
  withCallback({ url: 'https://user@shop.example.com/' }),
  withCallback({ url: 'https://' }),
  withCallback({ url: 'https://exa mple.com/' }),
  withCallback({ url: 'https://example.com:65536/' }),
  withCallback({ url: 'https://exa^mple.com/' }),
  withCallback({ url: 'https://exa|mple.com/' }),
  withCallback({ url: 'https://[example.com]/' }),
  withCallback({ url: `https://example.com/${'p'.repeat(2049 - 'https://example.com/'.length)}` }),
  withCallback({ method: 'GET' }),
  withCallback({ method: 'post' }),
  withCallback({ timeoutMs: 0 }),
  withCallback({ timeoutMs: 60_001 }),
  withCallback({ timeoutMs: 1.5 }),
  withCallback({ timeoutMs: '100' }),
  withCallback({ name: '' }),
  withCallback({ name: 'a b' }),
  withCallback({ name: 'n'.repeat(129) }),
  withCallback({ name: 5 }),
  withCallback({ envelope: 'yes' }),
  withCallback({ expectBody: '' }),
  withCallback({ expectBody: 'x'.repeat(1025) }),
  withCallback({ expectBody: 1 }),
  withCallback({ headers: [] }),
  withCallback({ headers: { host: 'evil.example' } }),
  withCallback({ headers: { 'Content-Length': '5' } }),
  withCallback({ headers: { 'transfer-encoding': 'chunked' } }),
  withCallback({ headers: { Connection: 'close' } }),
  withCallback({ headers: { 'webhook-signature': 'v1,x' } }),
  withCallback({ headers: { 'Webhook-Id': 'x' } }),
  withCallback({ headers: { 'hourglass-attempt': '1' } }),
  withCallback({ headers: { 'bad name': 'x' } }),
  withCallback({ headers: { 'x(y)': 'x' } }),
  withCallback({ headers: { '': 'x' } }),
  withCallback({ headers: { 'x-a': 1 } }),
  withCallback({ headers: { 'x-a': 'a\u0000b' } }),
  withCallback({ headers: { 'x-a': 'v'.repeat(8193) } }),
  withCallback({
    headers: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`h${i}`, 'v'])),
  }),
  // targets
  { ...due, targets: null },
  { ...due, targets: {} },
  { ...due, targets: [] },
  { ...due, targets: Array.from({ length: 9 }, (_, i) => ({ url: `${HOOK}/${i}` })) },
  { ...due, targets: [{}] },
  { ...due, targets: ['t'] },
  { ...due, targets: [{ type: 'smtp', url: HOOK }] },
  { ...due, targets: [{ topic: 't', url: HOOK }] },
  { ...due, targets: [{ type: 'kafka', url: HOOK }] },
  { ...due, targets: [{ type: 'http', topic: 't' }] },
  { ...due, targets: [{ topic: 'bad topic' }] },
  { ...due, targets: [{ topic: '..' }] },
  { ...due, targets: [{ topic: 't', key: 5 }] },
  { ...due, targets: [{ topic: 't', key: 'a\u0000' }] },
  { ...due, targets: [{ topic: 't', key: 'k'.repeat(4097) }] },
  { ...due, targets: [{ topic: 't', headers: { 'hourglass-id': 'x' } }] },
  { ...due, targets: [{ topic: 't', headers: { a: 1 } }] },
  { ...due, targets: [{ topic: 't', method: 'POST' }] },
  { ...due, targets: [{ topic: 't' }, { url: 'ftp://x.example/' }] },
  // retry
  withRetry(null),
  withRetry([]),
  withRetry({ strategy: 'random' }),
  withRetry({ maxAttempts: 0 }),
  withRetry({ maxAttempts: 101 }),
  withRetry({ maxAttempts: 1.5 }),
  withRetry({ initialDelayMs: -1 }),
  withRetry({ maxDelayMs: 2_592_000_001 }),
  withRetry({ jitter: 'no' }),
  withRetry({ backoff: 2 }),
  // contentType
  { ...due, callback: { url: HOOK }, contentType: '' },
  { ...due, callback: { url: HOOK }, contentType: 'json' },
  { ...due, callback: { url: HOOK }, contentType: 5 },
  { ...due, callback: { url: HOOK }, contentType: 'text/plain; charset' },
  { ...due, callback: { url: HOOK }, contentType: 'text/plain\u0000' },
  { ...due, callback: { url: HOOK }, contentType: `text/${'p'.repeat(252)}` },
];

describe('OpenAPI document', () => {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  addFormats(ajv);
  ajv.addSchema({ ...openApiDocument, $id: 'doc' });
  const schema = ajv.compile({ $ref: 'doc#/components/schemas/MessageRequest' });
  const core = (body: unknown): boolean => {
    try {
      parseScheduleRequest(body, LIMITS, 1_800_000_000_000);
      return true;
    } catch {
      return false;
    }
  };

  it('is OpenAPI 3.1 and describes the whole HTTP API', () => {
    assert.equal(openApiDocument.openapi, '3.1.0');
    const paths = Object.keys(openApiDocument.paths as object);
    for (const path of [
      '/v1/messages',
      '/v1/messages/batch',
      '/v1/messages/cancel',
      '/v1/messages/{id}',
      '/v1/messages/{id}/attempts',
      '/v1/messages/{id}/retry',
      '/healthz',
      '/readyz',
      '/metrics',
      '/v1/openapi.json',
      '/v1/admin/apps',
      '/v1/admin/apps/{app}',
      '/v1/admin/apps/{app}/tokens',
      '/v1/admin/apps/{app}/signing-secret',
      '/v1/admin/apps/{app}/topics',
      '/v1/admin/apps/{app}/topics/{topic}',
      '/v1/admin/apps/{app}/quotas',
      '/v1/admin/messages',
      '/v1/admin/messages/{app}/{id}',
      '/v1/admin/messages/{app}/{id}/attempts',
      '/v1/admin/messages/{app}/{id}/retry',
      '/v1/admin/stats',
      '/v1/admin/cluster',
      '/v1/admin/slots/{slot}/pin',
      '/v1/admin/nodes/{id}/drain',
      '/v1/admin/nodes/{id}/undrain',
    ]) {
      assert.ok(paths.includes(path), `missing ${path}`);
    }
  });

  it('agrees with parseScheduleRequest on which message bodies are valid', () => {
    for (const body of valid) {
      assert.equal(core(body), true, `core refuses ${JSON.stringify(body)}`);
      assert.equal(
        schema(body),
        true,
        `schema refuses ${JSON.stringify(body)}: ${ajv.errorsText(schema.errors)}`,
      );
    }
    for (const body of invalid) {
      assert.equal(core(body), false, `core accepts ${JSON.stringify(body)}`);
      assert.equal(schema(body), false, `schema accepts ${JSON.stringify(body)}`);
    }
  });

  it('lists every error code of ERROR_TABLE in the Error schema', () => {
    const schemas = (openApiDocument.components as { schemas: Record<string, unknown> }).schemas;
    const error = schemas.Error as {
      properties: { error: { properties: { code: { enum: string[] } } } };
    };
    assert.deepEqual(
      [...error.properties.error.properties.code.enum].sort(),
      Object.keys(ERROR_TABLE).sort(),
    );
  });

  it('documents the statuses every operation can answer', () => {
    const paths = openApiDocument.paths as Record<
      string,
      Record<string, { responses?: Record<string, unknown>; requestBody?: unknown }>
    >;
    for (const [path, item] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(item)) {
        if (!op.responses) continue;
        const statuses = Object.keys(op.responses);
        const where = `${method.toUpperCase()} ${path}`;
        // Every route but the liveness probe refuses requests while the node shuts down.
        if (path !== '/healthz') assert.ok(statuses.includes('503'), `${where}: 503`);
        const secured = path.startsWith('/v1/messages') || path.startsWith('/v1/admin');
        if (secured) {
          for (const status of ['400', '401', '403'])
            assert.ok(statuses.includes(status), `${where}: ${status}`);
        }
        if (op.requestBody) {
          for (const status of ['400', '413', '415'])
            assert.ok(statuses.includes(status), `${where}: ${status}`);
        } else {
          assert.ok(!statuses.includes('415'), `${where}: 415 without a body`);
        }
      }
    }
  });

  it('knows the methods of each path, for 405 and OPTIONS', () => {
    const validator = new OpenApiValidator();
    assert.deepEqual(validator.allowedMethods('/v1/admin/apps/shop').sort(), [
      'DELETE',
      'GET',
      'PATCH',
    ]);
    assert.deepEqual(validator.allowedMethods('/v1/messages').sort(), ['GET', 'POST']);
    // Like /batch: the bulk cancel's own path, not a message id.
    assert.deepEqual(validator.allowedMethods('/v1/messages/cancel'), ['POST']);
    // The concrete path wins over /v1/messages/{id}, as in OpenAPI path matching.
    assert.deepEqual(validator.allowedMethods('/v1/messages/batch'), ['POST']);
    assert.deepEqual(validator.allowedMethods('/v1/messages/m-1').sort(), [
      'DELETE',
      'GET',
      'PATCH',
    ]);
    assert.deepEqual(validator.allowedMethods('/v1/nowhere'), []);
    assert.equal(validator.match('HEAD', '/v1/admin/stats')?.template, '/v1/admin/stats');
  });

  it('validates admin bodies and path parameters with details naming each field', () => {
    const validator = new OpenApiValidator();
    const create = validator.match('POST', '/v1/admin/apps');
    assert.ok(create);
    create.checkBody({
      name: 'shop',
      topics: ['a'],
      quotas: { ratePerSecond: 1.5, maxPending: null },
    });
    assert.throws(
      () => create.checkBody({ name: 'Shop!', topics: ['a', 'a'], quotas: { burst: 0 }, extra: 1 }),
      (error: { code: string; details: Array<{ path: string }> }) =>
        error.code === 'invalid_request' &&
        JSON.stringify(error.details.map((d) => d.path).sort()) ===
          JSON.stringify(['extra', 'name', 'quotas/burst', 'topics']),
    );
    assert.throws(
      () => validator.match('PATCH', '/v1/admin/apps/shop')!.checkBody({}),
      /invalid request body/,
    );
    assert.throws(
      () =>
        validator.match('GET', '/v1/admin/apps/NOT%20OK')!.checkParams('/v1/admin/apps/NOT%20OK'),
      /app/,
    );
    validator.match('DELETE', '/v1/admin/slots/3/pin')!.checkParams('/v1/admin/slots/3/pin');
    // Text Postgres cannot store, and topic names Kafka refuses, are refused by the document.
    assert.throws(
      () => create.checkBody({ name: 'shop', description: 'a\u0000b' }),
      (error: { details: Array<{ path: string }> }) => error.details[0]?.path === 'description',
    );
    assert.throws(
      () => validator.match('PATCH', '/v1/admin/apps/shop')!.checkBody({ description: '\u0000' }),
      /description/,
    );
    const grant = validator.match('POST', '/v1/admin/apps/shop/topics')!;
    for (const topic of ['.', '..', ''])
      assert.throws(() => grant.checkBody({ topic }), /topic/, JSON.stringify(topic));
    grant.checkBody({ topic: 'a.b', partitions: 4, replicationFactor: 1 });
    assert.throws(() => create.checkBody({ name: 'shop', topics: ['..'] }), /topics/);
    const revoke = '/v1/admin/apps/shop/topics/..';
    assert.throws(() => validator.match('DELETE', revoke)!.checkParams(revoke), /topic/);
    assert.equal(validator.match('GET', '/v1/admin/nowhere'), undefined);
  });

  it('validates delivery settings and signing secret rotations', () => {
    const validator = new OpenApiValidator();
    const patch = validator.match('PATCH', '/v1/admin/apps/shop')!;
    const paths = (body: unknown): string[] => {
      try {
        patch.checkBody(body);
        return [];
      } catch (error) {
        return (error as { details: Array<{ path: string }> }).details.map((d) => d.path).sort();
      }
    };
    for (const delivery of [
      {},
      {
        callbackHosts: ['example.com', '*.Example.com', 'a_b.c-d.example', '203.0.113.7'],
        deadLetterTopic: 'shop.dead',
        alerts: { afterAttempts: 5, url: 'https://alerts.example.com/x', topic: null },
        retry: { strategy: 'linear', maxAttempts: 3 },
      },
      { callbackHosts: [], alerts: { afterAttempts: 1, topic: 'shop.alerts' } },
      { callbackHosts: null, deadLetterTopic: null, alerts: null, retry: null },
    ])
      assert.deepEqual(paths({ delivery }), [], JSON.stringify(delivery));
    assert.deepEqual(paths({ description: 'x', delivery: { retry: {} } }), []);
    const refusals: Array<[unknown, string]> = [
      [{ callbackHosts: 'example.com' }, 'delivery/callbackHosts'],
      [{ callbackHosts: ['exa mple.com'] }, 'delivery/callbackHosts/0'],
      [{ callbackHosts: ['https://example.com'] }, 'delivery/callbackHosts/0'],
      [{ callbackHosts: ['example.com', '*'] }, 'delivery/callbackHosts/1'],
      [{ callbackHosts: ['-a.example'] }, 'delivery/callbackHosts/0'],
      [{ callbackHosts: [`${'a'.repeat(64)}.example`] }, 'delivery/callbackHosts/0'],
      [{ callbackHosts: [`${'a.'.repeat(126)}ab`] }, 'delivery/callbackHosts/0'],
      [
        { callbackHosts: Array.from({ length: 101 }, (_, i) => `h${i}.example`) },
        'delivery/callbackHosts',
      ],
      [{ deadLetterTopic: 'bad topic' }, 'delivery/deadLetterTopic'],
      [{ deadLetterTopic: '..' }, 'delivery/deadLetterTopic'],
      [{ alerts: { url: 'https://a.example' } }, 'delivery/alerts/afterAttempts'],
      [{ alerts: { afterAttempts: 0, topic: 't' } }, 'delivery/alerts/afterAttempts'],
      [{ alerts: { afterAttempts: 101, topic: 't' } }, 'delivery/alerts/afterAttempts'],
      [{ alerts: { afterAttempts: 1, url: 'ftp://a.example' } }, 'delivery/alerts/url'],
      [{ alerts: { afterAttempts: 1, topic: '.' } }, 'delivery/alerts/topic'],
      [{ alerts: { afterAttempts: 1, topic: 't', extra: 1 } }, 'delivery/alerts/extra'],
      [{ retry: { maxAttempts: 0 } }, 'delivery/retry/maxAttempts'],
      [{ retry: { strategy: 'random' } }, 'delivery/retry/strategy'],
      [{ retries: 3 }, 'delivery/retries'],
    ];
    for (const [delivery, path] of refusals)
      assert.ok(
        paths({ delivery }).includes(path),
        `${JSON.stringify(delivery)}: ${paths({ delivery }).join(', ')}`,
      );
    // An alert needs somewhere to go.
    assert.notDeepEqual(paths({ delivery: { alerts: { afterAttempts: 1 } } }), []);
    assert.notDeepEqual(
      paths({ delivery: { alerts: { afterAttempts: 1, url: null, topic: null } } }),
      [],
    );
    assert.notDeepEqual(paths({ delivery: null }), []);

    const rotate = validator.match('POST', '/v1/admin/apps/shop/signing-secret')!;
    assert.equal(rotate.bodyRequired, false);
    rotate.checkBody({});
    rotate.checkBody({ graceSeconds: 0 });
    rotate.checkBody({ graceSeconds: 2_592_000 });
    for (const body of [
      { graceSeconds: -1 },
      { graceSeconds: 2_592_001 },
      { graceSeconds: 1.5 },
      { grace: 1 },
    ])
      assert.throws(() => rotate.checkBody(body), /invalid request body/, JSON.stringify(body));
    for (const path of [
      '/v1/admin/messages/shop/m-1/retry',
      '/v1/admin/messages/shop/m-1/attempts',
    ]) {
      const op = validator.match(path.endsWith('retry') ? 'POST' : 'GET', path)!;
      op.checkParams(path);
      assert.equal(op.hasBody, false);
      assert.throws(() => op.checkParams(path.replace('m-1', '..')), /id/);
    }
  });
});
