/**
 * The wire mapping of `schedule({ debounce })`: the debounce is prepared once with the message,
 * then sent as the HTTP body's `debounce` or as a gRPC ScheduleRequest.debounce. The gRPC request
 * goes through the real protobuf encoding and the server's translation, which must reach the same
 * body as HTTP sends; `debounced` is read from both transports' answers.
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MethodDefinition } from '@grpc/proto-loader';
import { loadSync } from '@grpc/proto-loader';
import type { ErrorDetail } from '@hourglass/core';
import { HourglassError, parseDebounce } from '@hourglass/core';
import type { ScheduleRequestPb } from '@hourglass/grpc-api';
import { PROTO_LOADER_OPTIONS, toScheduleBody } from '@hourglass/grpc-api';
import type { Debounce, ScheduleMessage } from '../../src';
import { HourglassClient, HourglassClientError } from '../../src';
import { LOADER_OPTIONS, toScheduleRequestPb } from '../../src/grpc';
import { messageJson } from '../../src/http';
import { MESSAGES_PROTO, findProtoDir } from '../../src/proto';
import { prepareMessage } from '../../src/wire';

const load = (options: object) =>
  (
    loadSync(MESSAGES_PROTO, { ...options, includeDirs: [findProtoDir()] })[
      'hourglass.v1.Messages'
    ] as unknown as Record<string, MethodDefinition<unknown, unknown>>
  ).Schedule!;
/** Encoded as the SDK does, decoded as the server does (and the other way for answers). */
const clientSide = load(LOADER_OPTIONS);
const serverSide = load(PROTO_LOADER_OPTIONS);

/** The body each transport makes the server see for one message. */
function bothWays(message: ScheduleMessage) {
  const http = JSON.parse(messageJson(prepareMessage(message, 'http'))) as Record<string, unknown>;
  const bytes = clientSide.requestSerialize(toScheduleRequestPb(prepareMessage(message, 'grpc')));
  const grpc = toScheduleBody(serverSide.requestDeserialize(bytes) as ScheduleRequestPb);
  return { http, grpc };
}

function refusal(run: () => unknown): HourglassClientError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof HourglassClientError, String(error));
    return error;
  }
  assert.fail('expected a refusal');
}

function serverRefusal(body: Record<string, unknown>): ErrorDetail[] {
  try {
    parseDebounce(body, 86_400_000);
  } catch (error) {
    assert.ok(error instanceof HourglassError, String(error));
    return [...(error.details ?? [])];
  }
  assert.fail('expected the server to refuse');
}

describe('client.schedule with debounce: the wire mapping', () => {
  it('sends a trailing debounce without a due time, the same on both transports', () => {
    const { http, grpc } = bothWays({
      id: 'cart-42',
      topic: 'carts',
      payload: { items: 3 },
      debounce: { key: 'cart:42', windowMs: 8000 },
    });
    assert.deepEqual(http, {
      id: 'cart-42',
      debounce: { key: 'cart:42', windowMs: 8000 },
      topic: 'carts',
      payload: { items: 3 },
    });
    assert.deepEqual(grpc, http);
  });

  it('sends a leading debounce with its due time, max wait and mode', () => {
    const { http, grpc } = bothWays({
      id: 'a',
      topic: 'carts',
      payloadBytes: Buffer.from([7]),
      deliverAt: new Date('2030-01-01T10:00:00.000Z'),
      debounce: { key: 'k', windowMs: 30_000, maxWaitMs: 60_000, mode: 'leading' },
    });
    assert.deepEqual(http, {
      id: 'a',
      debounce: { key: 'k', windowMs: 30_000, maxWaitMs: 60_000, mode: 'leading' },
      topic: 'carts',
      payloadBase64: 'Bw==',
      deliverAt: '2030-01-01T10:00:00.000Z',
    });
    assert.deepEqual(grpc, http);
  });

  it('sends no debounce for a plain message', () => {
    const { http, grpc } = bothWays({ id: 'a', topic: 't', payload: 1, delayMs: 5 });
    assert.equal('debounce' in http, false);
    assert.equal('debounce' in grpc, false);
  });

  it('leaves ranges and the mode rules to the server, refused alike on both transports', () => {
    // "" and 0 cannot be told from unset in proto3; the server has the same words for both.
    const bad: Debounce = { key: '', windowMs: 0, maxWaitMs: -1, mode: 'middle' as 'leading' };
    const { http, grpc } = bothWays({ id: 'a', topic: 't', payload: 1, debounce: bad });
    assert.deepEqual(http.debounce, bad);
    assert.deepEqual(serverRefusal(grpc), serverRefusal(http));
    const trailingWithDue = bothWays({
      id: 'a',
      topic: 't',
      payload: 1,
      delayMs: 500,
      debounce: { key: 'k', windowMs: 1000 },
    });
    assert.deepEqual(trailingWithDue.grpc, trailingWithDue.http);
    assert.deepEqual(
      serverRefusal(trailingWithDue.http).map((d) => d.path),
      ['delayMs'],
    );
  });

  it('refuses what gRPC could not carry as sent, the same on both transports', () => {
    const cases: Array<[unknown, string[]]> = [
      [null, ['debounce']],
      ['cart', ['debounce']],
      [{ key: 'k', windowMs: 1000, delay: 5 }, ['debounce/delay']],
      [{ key: 42, windowMs: 1000 }, ['debounce/key']],
      [{ key: 'k', windowMs: 1.5 }, ['debounce/windowMs']],
      [{ key: 'k' }, ['debounce/windowMs']],
      [{ key: 'k', windowMs: 1000, maxWaitMs: '2000' }, ['debounce/maxWaitMs']],
      [{ key: 'k', windowMs: 1000, mode: 1 }, ['debounce/mode']],
    ];
    for (const transport of ['http', 'grpc'] as const)
      for (const [debounce, paths] of cases) {
        const message = { topic: 't', payload: 1, debounce } as unknown as ScheduleMessage;
        const error = refusal(() => prepareMessage(message, transport));
        assert.equal(error.code, 'invalid_request');
        assert.equal(error.transport, transport);
        assert.equal(error.retriable, false);
        assert.deepEqual(
          error.details.map((d) => d.path),
          paths,
          JSON.stringify(debounce),
        );
      }
    const inBatch = refusal(() =>
      prepareMessage(
        { topic: 't', payload: 1, debounce: { key: 'k', windowMs: 0.5 } },
        'http',
        'messages/2/',
      ),
    );
    assert.deepEqual(
      inBatch.details.map((d) => d.path),
      ['messages/2/debounce/windowMs'],
    );
  });

  it('reads debounced from a gRPC answer: true, false, or absent for a plain schedule', () => {
    const message = {
      id: 'm',
      app: 'a',
      slot: 1,
      deliverAt: '2030-01-01T00:00:00.000Z',
      state: 'scheduled',
      createdAt: '2030-01-01T00:00:00.000Z',
      attempts: 0,
      version: 1,
    };
    const decode = (response: Record<string, unknown>) =>
      clientSide.responseDeserialize(serverSide.responseSerialize(response)) as {
        created: boolean;
        debounced?: boolean;
      };
    assert.equal(decode({ created: false, message, debounced: true }).debounced, true);
    assert.equal(decode({ created: true, message, debounced: false }).debounced, false);
    // The SDK decodes with defaults; a proto3 `optional` field stays absent all the same.
    const plain = decode({ created: true, message });
    assert.equal('debounced' in plain, false);
    assert.equal(plain.created, true);
  });
});

describe('client.schedule with debounce over HTTP (scripted server)', () => {
  let server: Server;
  let url: string;
  let answers: Array<{ status: number; body: Record<string, unknown> }> = [];
  const bodies: string[] = [];
  const VIEW = {
    id: 'cart-42',
    app: 'a',
    topic: 'carts',
    key: null,
    slot: 3,
    deliverAt: '2030-01-01T00:00:08.000Z',
    state: 'scheduled',
    createdAt: '2030-01-01T00:00:00.000Z',
    attempts: 0,
    version: 2,
  };

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        bodies.push(body);
        const answer = answers.shift() ?? { status: 500, body: {} };
        res
          .writeHead(answer.status, { 'content-type': 'application/json' })
          .end(JSON.stringify(answer.body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('returns debounced from the answer, and leaves it out when the server sent none', async () => {
    const client = new HourglassClient({ http: url }, { token: 't', retries: 0 });
    answers = [
      { status: 200, body: { ...VIEW, debounced: true } },
      { status: 201, body: { ...VIEW, debounced: false } },
      { status: 201, body: VIEW },
    ];
    const merged = await client.schedule({
      topic: 'carts',
      payload: 1,
      debounce: { key: 'cart:42', windowMs: 8000 },
    });
    assert.equal(merged.created, false);
    assert.equal(merged.debounced, true);
    assert.equal(merged.message.id, 'cart-42');
    assert.equal('debounced' in merged.message, false, 'on the result, not the message');
    const created = await client.schedule({
      topic: 'carts',
      payload: 2,
      debounce: { key: 'cart:42', windowMs: 8000, mode: 'trailing' },
    });
    assert.equal(created.created, true);
    assert.equal(created.debounced, false);
    const plain = await client.schedule({ topic: 'carts', payload: 3, delayMs: 5 });
    assert.equal('debounced' in plain, false);
    const sent = bodies.map((body) => JSON.parse(body) as { debounce?: unknown });
    assert.deepEqual(sent[0]!.debounce, { key: 'cart:42', windowMs: 8000 });
    assert.deepEqual(sent[1]!.debounce, {
      key: 'cart:42',
      windowMs: 8000,
      mode: 'trailing',
    });
    client.close();
  });
});
