/** `hourglass messages schedule` with debounce flags: mapping, usage, rendering and the call, without a node. */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { USAGE, UsageError, parse } from '../../src/args';
import { run } from '../../src/main';
import { render } from '../../src/render';

function command(argv: string[], env: NodeJS.ProcessEnv = { HOURGLASS_APP_TOKEN: 'app-tok' }) {
  const parsed = parse(argv, env);
  assert.equal(parsed.help, false);
  if (parsed.help) throw new Error('unreachable');
  return parsed.command;
}

const MESSAGE = {
  id: 'cart-42',
  app: 'shop',
  topic: 'carts',
  key: null,
  slot: 7,
  deliverAt: '2030-01-01T00:00:08.000Z',
  state: 'scheduled',
  createdAt: '2030-01-01T00:00:00.000Z',
  attempts: 0,
  targets: [{ index: 0, type: 'kafka', topic: 'carts', key: null, state: 'pending', attempts: 0 }],
  version: 4,
};

describe('hourglass CLI: messages schedule with debounce', () => {
  it('sends a trailing debounce as the body’s debounce, with no due time', () => {
    const c = command([
      'messages',
      'schedule',
      '--topic',
      'carts',
      '--payload',
      '{"items":3}',
      '--debounce-key',
      'cart:42',
      '--debounce-window',
      '8000',
    ]);
    assert.equal(c.method, 'POST');
    assert.equal(c.path, '/v1/messages');
    assert.equal(c.appToken, 'app-tok');
    assert.deepEqual(c.body, {
      topic: 'carts',
      payload: { items: 3 },
      debounce: { key: 'cart:42', windowMs: 8000 },
    });
  });

  it('sends a leading debounce with max wait and mode beside the due time', () => {
    const c = command([
      'messages',
      'schedule',
      '--topic',
      'carts',
      '--payload',
      '1',
      '--delay-ms',
      '500',
      '--debounce-key',
      'k',
      '--debounce-window',
      '60000',
      '--debounce-max-wait',
      '120000',
      '--debounce-mode',
      'leading',
    ]);
    assert.deepEqual(c.body, {
      topic: 'carts',
      payload: 1,
      delayMs: 500,
      debounce: { key: 'k', windowMs: 60_000, maxWaitMs: 120_000, mode: 'leading' },
    });
    const plain = command(['messages', 'schedule', '--topic', 't', '--payload', '1']);
    assert.equal('debounce' in (plain.body ?? {}), false, 'no debounce flags: no debounce');
  });

  it('refuses incomplete or malformed debounce flags, and debounce on messages update', () => {
    const env = { HOURGLASS_APP_TOKEN: 't' };
    const base = ['messages', 'schedule', '--topic', 't', '--payload', '1'];
    const cases: Array<[string[], RegExp]> = [
      [[...base, '--debounce-key', 'k'], /needs both --debounce-key K and --debounce-window MS/],
      [[...base, '--debounce-window', '5'], /needs both --debounce-key/],
      [[...base, '--debounce-mode', 'leading'], /needs both --debounce-key/],
      [
        [...base, '--debounce-key', 'k', '--debounce-window', '1.5'],
        /--debounce-window expects a non-negative integer/,
      ],
      [
        [...base, '--debounce-key', 'k', '--debounce-window', '5', '--debounce-max-wait', 'soon'],
        /--debounce-max-wait expects a non-negative integer/,
      ],
      [
        ['messages', 'update', 'm1', '--delay-ms', '1', '--debounce-key', 'k'],
        /unexpected flag --debounce-key/,
      ],
      [['apps', 'list', '--debounce-window', '5'], /unexpected flag --debounce-window/],
    ];
    for (const [argv, message] of cases)
      assert.throws(
        () => parse(argv, env),
        (error) => error instanceof UsageError && message.test(error.message),
        argv.join(' '),
      );
  });

  it('is documented in the usage text with its flags', () => {
    for (const text of [
      '[debounce flags]',
      '--debounce-key K',
      '--debounce-window MS',
      '--debounce-max-wait MS',
      '--debounce-mode trailing|leading',
      'debounced into <id>',
    ])
      assert.ok(USAGE.includes(text), text);
  });

  it('renders "debounced into <id>" only when the answer says debounced', () => {
    const merged = render('message', { ...MESSAGE, debounced: true });
    assert.match(merged, /^debounced into cart-42\nid:\s+cart-42\n/);
    assert.match(merged, /version:\s+4\n/);
    const created = render('message', { ...MESSAGE, debounced: false });
    assert.doesNotMatch(created, /debounced into/);
    assert.match(created, /^id:\s+cart-42\n/);
    assert.doesNotMatch(render('message', MESSAGE), /debounced into/);
  });

  it('calls the node with the debounce and prints the surviving message', async () => {
    const seen: Array<[string | undefined, string | undefined, string]> = [];
    const server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        seen.push([req.method, req.url, body]);
        const first = seen.length === 1;
        res
          .writeHead(first ? 201 : 200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ ...MESSAGE, debounced: !first }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const argv = [
        'messages',
        'schedule',
        '--url',
        url,
        '--app-token',
        'app-secret',
        '--topic',
        'carts',
        '--payload',
        '1',
        '--debounce-key',
        'cart:42',
        '--debounce-window',
        '8000',
      ];
      let out = '';
      const io = { out: (t: string) => (out += t), err: (t: string) => (out += t) };
      assert.equal(await run(argv, {}, io), 0, out);
      assert.doesNotMatch(out, /debounced into/);
      out = '';
      assert.equal(await run(argv, {}, io), 0, out);
      assert.match(out, /^debounced into cart-42\n/);
      const body = '{"topic":"carts","payload":1,"debounce":{"key":"cart:42","windowMs":8000}}';
      assert.deepEqual(seen, [
        ['POST', '/v1/messages', body],
        ['POST', '/v1/messages', body],
      ]);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
