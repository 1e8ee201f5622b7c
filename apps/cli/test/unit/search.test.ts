/** `hourglass messages list` and the bulk `messages cancel`: arguments, follow-ups, rendering. */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { USAGE, UsageError, parse } from '../../src/args';
import { run } from '../../src/main';
import { render } from '../../src/render';
import { followUp, mergeAnswers } from '../../src/search';

function command(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const parsed = parse(argv, env);
  if (parsed.help) throw new Error('help instead of a command');
  return parsed.command;
}

describe('hourglass CLI: messages list and bulk cancel', () => {
  it('maps list flags to the admin search query', () => {
    const list = command([
      'messages',
      'list',
      '--app',
      'shop',
      '--state',
      'scheduled',
      '--key',
      'customer 7',
      '--topic',
      'orders',
      '--due-after',
      '2030-01-01T00:00:00Z',
      '--due-before',
      '2030-01-02T00:00:00Z',
      '--created-after',
      '2029-12-01T00:00:00Z',
      '--target',
      'kafka',
      '--limit',
      '50',
    ]);
    assert.equal(list.method, 'GET');
    const [path, query] = list.path.split('?');
    assert.equal(path, '/v1/admin/messages');
    assert.deepEqual(Object.fromEntries(new URLSearchParams(query)), {
      app: 'shop',
      state: 'scheduled',
      key: 'customer 7',
      topic: 'orders',
      dueAfter: '2030-01-01T00:00:00Z',
      dueBefore: '2030-01-02T00:00:00Z',
      createdAfter: '2029-12-01T00:00:00Z',
      target: 'kafka',
      limit: '50',
    });
    assert.equal(list.view, 'messages');
    assert.equal(list.follow, undefined);
    assert.equal(list.appToken, undefined, 'an admin call');
    assert.equal(command(['messages', 'list']).path, '/v1/admin/messages');
    assert.equal(command(['messages', 'list', '--all']).follow, 'pages');
    assert.equal(
      command(['messages', 'list', '--cursor', 'abc']).path,
      '/v1/admin/messages?cursor=abc',
    );
    for (const argv of [
      ['messages', 'list', '--limit', '0'],
      ['messages', 'list', '--limit', '1001'],
      ['messages', 'list', '--all', '--cursor', 'abc'],
      ['messages', 'list', '--topic', 'a', '--topic', 'b'],
      ['messages', 'list', 'extra'],
      ['messages', 'list', '--payload', '1'],
    ])
      assert.throws(() => parse(argv), UsageError, argv.join(' '));
  });

  it('maps the bulk cancel by ids and by filter, and keeps the admin single cancel', () => {
    const ids = command(['messages', 'cancel', '--app-token', 'tok', 'a', 'b']);
    assert.deepEqual(
      { method: ids.method, path: ids.path, body: ids.body, appToken: ids.appToken },
      { method: 'POST', path: '/v1/messages/cancel', body: { ids: ['a', 'b'] }, appToken: 'tok' },
    );
    assert.equal(ids.follow, undefined);
    assert.equal(ids.view, 'bulk-cancelled');
    const byKey = command(['messages', 'cancel', '--key', 'K', '--state', 'scheduled'], {
      HOURGLASS_APP_TOKEN: 'env-token',
    });
    assert.deepEqual(byKey.body, { filter: { key: 'K', state: 'scheduled' } });
    assert.equal(byKey.appToken, 'env-token');
    assert.equal(byKey.follow, 'more');
    const single = command(['messages', 'cancel', 'shop', 'm-1'], {
      HOURGLASS_APP_TOKEN: 'env-token',
    });
    assert.deepEqual(
      { method: single.method, path: single.path, appToken: single.appToken },
      { method: 'DELETE', path: '/v1/admin/messages/shop/m-1', appToken: undefined },
    );
    for (const [argv, message] of [
      [['messages', 'cancel', '--key', 'K'], /app token/],
      [['messages', 'cancel', '--app-token', 't'], /either ids or filter/],
      [['messages', 'cancel', '--app-token', 't', '--key', 'K', 'a'], /either ids or filter/],
      [['messages', 'cancel', '--app-token', 't', '--key', 'K', '--state', 'failed'], /scheduled/],
      [['messages', 'cancel', '--app-token', 't', '--key', 'K', '--limit', '5'], /--limit/],
    ] as Array<[string[], RegExp]>)
      assert.throws(() => parse(argv), message, argv.join(' '));
  });

  it('continues with the cursor the answer gives, and merges the answers', () => {
    const list = command(['messages', 'list', '--key', 'k', '--all']);
    const next = followUp(list, { messages: [], nextCursor: 'c2' });
    assert.ok(next);
    assert.deepEqual(Object.fromEntries(new URLSearchParams(next.path.split('?')[1])), {
      key: 'k',
      cursor: 'c2',
    });
    assert.equal(followUp(next, { messages: [], nextCursor: null }), null);
    assert.equal(followUp(command(['messages', 'list']), { nextCursor: 'c2' }), null);
    const cancel = command(['messages', 'cancel', '--app-token', 't', '--key', 'K']);
    const again = followUp(cancel, { cancelled: 3, notCancellable: 0, more: true, cursor: 'r1' });
    assert.deepEqual(again?.body, { filter: { key: 'K' }, cursor: 'r1' });
    assert.equal(followUp(cancel, { cancelled: 3, notCancellable: 0, more: false }), null);
    assert.deepEqual(
      mergeAnswers(
        { cancelled: 3, notCancellable: 1, more: true, cursor: 'r1', budgetMs: 2000 },
        { cancelled: 2, notCancellable: 0, more: false },
      ),
      { cancelled: 5, notCancellable: 1, more: false },
    );
    assert.deepEqual(
      mergeAnswers({ messages: [1, 2], nextCursor: 'c' }, { messages: [3], nextCursor: null }),
      { messages: [1, 2, 3], nextCursor: null },
    );
  });

  it('renders messages as a table, and the counts', () => {
    const text = render('messages', {
      messages: [
        {
          app: 'shop',
          id: 'order-42',
          state: 'scheduled',
          deliverAt: '2030-01-01T10:00:00.000Z',
          topic: 'orders',
          key: 'customer-7',
          attempts: 0,
          targets: [{ type: 'kafka' }, { type: 'http' }],
        },
        {
          app: 'other',
          id: 'x',
          state: 'delivered',
          deliverAt: '2030-01-01T09:00:00.000Z',
          topic: null,
          key: null,
          attempts: 1,
          targets: [{ type: 'http' }],
        },
      ],
      nextCursor: 'CUR',
    });
    assert.equal(
      text,
      [
        'APP    ID        STATE      DUE                       TOPIC   KEY         TARGETS     ATTEMPTS',
        'shop   order-42  scheduled  2030-01-01T10:00:00.000Z  orders  customer-7  kafka,http         0',
        'other  x         delivered  2030-01-01T09:00:00.000Z  -       -           http               1',
        'more: add --cursor CUR for the next page, or --all for every page',
        '',
      ].join('\n'),
    );
    assert.equal(render('messages', { messages: [], nextCursor: null }), 'no messages\n');
    assert.match(
      render('bulk-cancelled', {
        cancelled: 2,
        alreadyFinished: 1,
        deliveryInProgress: 0,
        notFound: 3,
      }),
      /cancelled:\s+2\nalready finished:\s+1\nbeing delivered:\s+0\nnot found:\s+3\n/,
    );
    assert.match(
      render('bulk-cancelled', { cancelled: 7, notCancellable: 1, more: false }),
      /cancelled:\s+7\nnot cancellable \(being delivered\):\s+1\n/,
    );
  });

  it('documents both commands and every flag they take', () => {
    for (const text of [
      'messages list',
      'messages cancel --app-token TOKEN <id>...',
      'messages cancel --app-token TOKEN [filter flags]',
      '--app APP',
      '--state',
      '--key',
      '--topic',
      '--target',
      '--due-after',
      '--due-before',
      '--created-after',
      '--limit N',
      '--all',
      '--cursor',
      '--json',
    ])
      assert.ok(USAGE.includes(text), text);
  });

  it('follows every page with --all and prints them as one table, or as one JSON answer', async () => {
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization}`);
      const cursor = new URL(req.url ?? '/', 'http://x').searchParams.get('cursor');
      const page =
        cursor === null
          ? { messages: [{ app: 'a', id: 'm2', state: 'scheduled' }], nextCursor: 'c1' }
          : { messages: [{ app: 'a', id: 'm1', state: 'scheduled' }], nextCursor: null };
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(page));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      let out = '';
      const io = { out: (text: string) => (out += text), err: (text: string) => (out += text) };
      const argv = ['messages', 'list', '--key', 'k', '--all', '--url', url, '--token', 'adm'];
      assert.equal(await run(argv, {}, io), 0);
      assert.deepEqual(seen, [
        'GET /v1/admin/messages?key=k Bearer adm',
        'GET /v1/admin/messages?key=k&cursor=c1 Bearer adm',
      ]);
      assert.match(out, /m2[^\n]*\n[^\n]*m1/);
      assert.doesNotMatch(out, /more:/);
      out = '';
      assert.equal(await run([...argv, '--json'], {}, io), 0);
      const answer = JSON.parse(out) as { messages: Array<{ id: string }>; nextCursor: null };
      assert.deepEqual(
        answer.messages.map((m) => m.id),
        ['m2', 'm1'],
      );
      assert.equal(answer.nextCursor, null);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
