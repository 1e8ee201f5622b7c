/** `hourglass messages update`: argument mapping, usage text, rendering and the call, without a node. */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { USAGE, UsageError, parse } from '../../src/args';
import { run } from '../../src/main';
import { render } from '../../src/render';

function command(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const parsed = parse(argv, env);
  assert.equal(parsed.help, false);
  if (parsed.help) throw new Error('unreachable');
  return parsed.command;
}

const MESSAGE = {
  id: 'order-42',
  app: 'shop',
  topic: 'orders',
  key: 'k',
  slot: 7,
  deliverAt: '2030-01-01T11:00:00.000Z',
  state: 'scheduled',
  createdAt: '2029-12-31T00:00:00.000Z',
  attempts: 0,
  targets: [{ index: 0, type: 'kafka', topic: 'orders', key: 'k', state: 'pending', attempts: 0 }],
  version: 3,
};

describe('hourglass CLI: messages update', () => {
  it('sends PATCH /v1/messages/{id} as the app, with only the fields given and If-Match', () => {
    const c = command([
      'messages',
      'update',
      'order/42',
      '--app-token',
      'app-tok',
      '--if-version',
      '2',
      '--deliver-at',
      '2030-01-01T11:00:00Z',
      '--payload',
      '{"order":42,"extended":true}',
      '--header',
      'x-trace=t2',
      '--key',
      'k2',
    ]);
    assert.equal(c.name, 'messages update');
    assert.equal(c.method, 'PATCH');
    assert.equal(c.path, '/v1/messages/order%2F42');
    assert.equal(c.appToken, 'app-tok');
    assert.deepEqual(c.headers, { 'if-match': '"2"' });
    assert.equal(c.view, 'message');
    assert.deepEqual(c.body, {
      key: 'k2',
      headers: { 'x-trace': 't2' },
      payload: { order: 42, extended: true },
      deliverAt: '2030-01-01T11:00:00Z',
    });
  });

  it('maps the destination, bytes, delay and retry flags as messages schedule does', () => {
    const c = command(
      [
        'messages',
        'update',
        'm1',
        '--delay-ms',
        '0',
        '--payload-base64',
        'AAE=',
        '--topic',
        'orders',
        '--callback',
        'https://shop.example.com/h',
        '--method',
        'put',
        '--retry-attempts',
        '3',
        '--content-type',
        'text/plain',
      ],
      { HOURGLASS_APP_TOKEN: 'env-tok' },
    );
    assert.equal(c.appToken, 'env-tok');
    assert.equal(c.headers, undefined, 'no --if-version: unconditional');
    assert.deepEqual(c.body, {
      topic: 'orders',
      payloadBase64: 'AAE=',
      delayMs: 0,
      callback: { url: 'https://shop.example.com/h', method: 'PUT' },
      retry: { maxAttempts: 3 },
      contentType: 'text/plain',
    });
    const epoch = command(['messages', 'update', 'm1', '--deliver-at', '1900000000000'], {
      HOURGLASS_APP_TOKEN: 't',
    });
    assert.deepEqual(epoch.body, { deliverAt: 1_900_000_000_000 });
  });

  it('refuses bad usage with a message naming the problem', () => {
    const env = { HOURGLASS_APP_TOKEN: 't' };
    const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
      [['messages', 'update', 'm1', '--delay-ms', '1'], {}, /app token/],
      [['messages', 'update', 'm1'], env, /nothing to change/],
      [['messages', 'update', '--delay-ms', '1'], env, /expected <id>/],
      [['messages', 'update', 'a', 'b', '--delay-ms', '1'], env, /expected <id>/],
      [['messages', 'update', 'm1', '--id', 'x', '--delay-ms', '1'], env, /unexpected flag --id/],
      [['messages', 'update', 'm1', '--if-version', '0', '--delay-ms', '1'], env, /1 or more/],
      [['messages', 'update', 'm1', '--if-version', 'v2', '--delay-ms', '1'], env, /--if-version/],
      [
        ['messages', 'update', 'm1', '--delay-ms', '1', '--deliver-at', '1'],
        env,
        /messages update: give either --delay-ms or --deliver-at/,
      ],
      [
        ['messages', 'update', 'm1', '--payload', '1', '--payload-base64', 'AA=='],
        env,
        /messages update: give either --payload or --payload-base64/,
      ],
      [
        ['messages', 'update', 'm1', '--method', 'PUT'],
        env,
        /messages update: --method needs --callback/,
      ],
      [['messages', 'update', 'm1', '--payload', '{x'], env, /--payload expects JSON/],
      [['messages', 'schedule', '--if-version', '1', '--topic', 't'], env, /--if-version/],
    ];
    for (const [argv, environment, message] of cases)
      assert.throws(
        () => parse(argv, environment),
        (error) => error instanceof UsageError && message.test(error.message),
        argv.join(' '),
      );
  });

  it('is documented in the usage text with its flags', () => {
    for (const text of ['messages update <id>', '--if-version N', '--app-token TOKEN'])
      assert.ok(USAGE.includes(text), text);
  });

  it('renders the changed message like messages get, with its version', () => {
    const text = render('message', MESSAGE);
    assert.match(text, /^id:\s+order-42\n/);
    assert.match(text, /deliverAt:\s+2030-01-01T11:00:00\.000Z\n/);
    assert.match(text, /version:\s+3\n/);
    assert.match(text, /^0\s+kafka\s+orders \(key k\)\s+-\s+pending/m);
  });

  it('calls the node with If-Match, prints the message, and explains a 412', async () => {
    const seen: Array<Record<string, string | undefined>> = [];
    const server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const ifMatch = req.headers['if-match'];
        seen.push({
          method: req.method,
          path: req.url,
          auth: req.headers.authorization,
          ifMatch,
          body,
        });
        if (ifMatch === '"1"')
          res.writeHead(412, { 'content-type': 'application/json' }).end(
            JSON.stringify({
              error: {
                code: 'version_mismatch',
                message: 'message "order-42" is at version 3',
                details: [{ path: 'If-Match', message: 'current ETag: "3"' }],
              },
            }),
          );
        else
          res
            .writeHead(200, { 'content-type': 'application/json', etag: '"3"' })
            .end(JSON.stringify(MESSAGE));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const argv = ['messages', 'update', 'order-42', '--url', url, '--app-token', 'app-secret'];
      let out = '';
      const io = { out: (t: string) => (out += t), err: (t: string) => (out += t) };
      assert.equal(await run([...argv, '--if-version', '2', '--delay-ms', '5'], {}, io), 0, out);
      assert.match(out, /version:\s+3\n/);
      out = '';
      assert.equal(await run([...argv, '--if-version', '1', '--delay-ms', '5'], {}, io), 1);
      assert.match(out, /messages update failed: 412 version_mismatch/);
      assert.match(out, /If-Match: current ETag: "3"/);
      assert.deepEqual(
        seen.map((s) => [s.method, s.path, s.auth, s.ifMatch, s.body]),
        [
          ['PATCH', '/v1/messages/order-42', 'Bearer app-secret', '"2"', '{"delayMs":5}'],
          ['PATCH', '/v1/messages/order-42', 'Bearer app-secret', '"1"', '{"delayMs":5}'],
        ],
      );
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
