/**
 * The client's retry loop over HTTP against a scripted local server (no Hourglass node): which
 * answers are retried, how often, and that every attempt sends the same id.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HourglassClient, HourglassClientError } from '../../src';

type Script = Array<(req: IncomingMessage, res: ServerResponse, body: string) => void>;

const VIEW = {
  id: 'x',
  app: 'a',
  topic: 't',
  key: null,
  slot: 3,
  deliverAt: '2030-01-01T00:00:00.000Z',
  state: 'scheduled',
  createdAt: '2029-01-01T00:00:00.000Z',
  attempts: 0,
};
const json =
  (status: number, body: unknown, headers: Record<string, string> = {}) =>
  (_req: IncomingMessage, res: ServerResponse) => {
    res
      .writeHead(status, { 'content-type': 'application/json', ...headers })
      .end(JSON.stringify(body));
  };
const failure = (status: number, code: string, headers: Record<string, string> = {}) =>
  json(status, { error: { code, message: code } }, headers);

describe('HourglassClient retries (HTTP, scripted server)', () => {
  let server: Server;
  let url: string;
  let script: Script = [];
  let bodies: string[] = [];

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        bodies.push(body);
        const step = script.shift();
        if (step) step(req, res, body);
        else res.writeHead(500).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  beforeEach(() => {
    bodies = [];
  });

  const client = (retries = 4) =>
    new HourglassClient(
      { http: url },
      { token: 'tok', retries, initialBackoffMs: 10, maxBackoffMs: 20, timeoutMs: 500 },
    );

  it('retries 503 and 502 with the same id and returns the eventual answer', async () => {
    script = [
      failure(503, 'unavailable'),
      (_req, res) =>
        void res.writeHead(502, { 'content-type': 'text/html' }).end('<html>bad gateway</html>'),
      json(200, VIEW),
    ];
    const result = await client().schedule({ topic: 't', payload: 1, delayMs: 5 });
    assert.equal(result.created, false);
    assert.equal(bodies.length, 3);
    const ids = bodies.map((body) => (JSON.parse(body) as { id: string }).id);
    assert.equal(new Set(ids).size, 1, 'every attempt must carry the same id');
    assert.equal(new Set(bodies).size, 1, 'every attempt must send the same bytes');
  });

  it('never retries a 4xx refusal, and reports its code, status and details', async () => {
    script = [
      (_req, res) =>
        void res.writeHead(400, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            error: {
              code: 'invalid_request',
              message: 'bad',
              details: [{ path: 'topic', message: 'no' }],
            },
          }),
        ),
    ];
    await assert.rejects(
      client().schedule({ topic: 't', payload: 1, delayMs: 5 }),
      (error: unknown) => {
        assert.ok(error instanceof HourglassClientError);
        assert.equal(error.code, 'invalid_request');
        assert.equal(error.status, 400);
        assert.equal(error.retriable, false);
        assert.deepEqual(error.details, [{ path: 'topic', message: 'no' }]);
        return true;
      },
    );
    assert.equal(bodies.length, 1);
  });

  it('waits the Retry-After of a 429 before retrying', async () => {
    script = [failure(429, 'rate_limited', { 'retry-after': '1' }), json(201, VIEW)];
    const started = Date.now();
    const result = await client().schedule({ topic: 't', payload: 1, delayMs: 5 });
    assert.ok(Date.now() - started >= 990, `retried after ${Date.now() - started} ms`);
    assert.equal(result.created, true);
  });

  it('gives up after the configured retries with the last error', async () => {
    script = [
      failure(503, 'shutting_down'),
      failure(503, 'shutting_down'),
      failure(503, 'unavailable'),
    ];
    await assert.rejects(
      client(2).get('x'),
      (error: unknown) =>
        error instanceof HourglassClientError && error.code === 'unavailable' && error.retriable,
    );
    assert.equal(bodies.length, 3);
  });

  it('retries a timed-out attempt', async () => {
    script = [() => undefined /* never answers */, json(200, VIEW)];
    const result = await client().get('x');
    assert.equal(result.id, 'x');
    assert.equal(bodies.length, 2);
  });

  it('retries network errors (connection refused) and then reports network_error', async () => {
    const refused = new HourglassClient(
      { http: 'http://127.0.0.1:1' },
      { token: 'tok', retries: 2, initialBackoffMs: 1 },
    );
    await assert.rejects(
      refused.get('x'),
      (error: unknown) =>
        error instanceof HourglassClientError && error.code === 'network_error' && error.retriable,
    );
  });

  it('checks its options', () => {
    assert.throws(() => new HourglassClient({ http: url }, { token: '' }), TypeError);
    assert.throws(
      () => new HourglassClient({ http: url }, { token: 't', retries: -1 }),
      RangeError,
    );
  });
});
