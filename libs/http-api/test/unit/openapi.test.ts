/**
 * One source of truth: the OpenAPI document's MessageRequest schema and libs/core
 * parseScheduleRequest must accept and refuse the same bodies (what the schema cannot say — the
 * payload's byte size, the maximum delay, the calendar validity of a date — is listed in the
 * schema's description and left out of the corpus). Admin request validation comes from the
 * document itself, so it is checked on a few bodies only.
 */
import assert from 'node:assert/strict';
import { ERROR_TABLE, parseScheduleRequest } from '@hourglass/core';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { OpenApiValidator, openApiDocument } from '../../src/openapi';

const LIMITS = { maxPayloadBytes: 1 << 20, maxDelayMs: 3650 * 86_400_000, maxBatchSize: 1000 };

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
      '/v1/messages/{id}',
      '/healthz',
      '/readyz',
      '/metrics',
      '/v1/openapi.json',
      '/v1/admin/apps',
      '/v1/admin/apps/{app}',
      '/v1/admin/apps/{app}/tokens',
      '/v1/admin/apps/{app}/topics',
      '/v1/admin/apps/{app}/topics/{topic}',
      '/v1/admin/apps/{app}/quotas',
      '/v1/admin/messages/{app}/{id}',
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
    assert.deepEqual(validator.allowedMethods('/v1/messages'), ['POST']);
    // The concrete path wins over /v1/messages/{id}, as in OpenAPI path matching.
    assert.deepEqual(validator.allowedMethods('/v1/messages/batch'), ['POST']);
    assert.deepEqual(validator.allowedMethods('/v1/messages/m-1').sort(), ['DELETE', 'GET']);
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
});
