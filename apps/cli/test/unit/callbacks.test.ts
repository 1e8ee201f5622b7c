/** The CLI's callback commands (schedule, attempts, retry, signing secret, delivery), without a server. */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UsageError, USAGE, parse } from '../../src/args';
import { run } from '../../src/main';
import { render } from '../../src/render';

function command(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const parsed = parse(argv, env);
  assert.equal(parsed.help, false);
  if (parsed.help) throw new Error('unreachable');
  return parsed.command;
}

describe('hourglass CLI: callbacks, arguments', () => {
  it('schedules with a callback and a retry strategy as the app, not the admin', () => {
    const c = command(
      [
        'messages',
        'schedule',
        '--app-token',
        'app-tok',
        '--id',
        'order-42',
        '--payload',
        '{"order":42}',
        '--delay-ms',
        '1800000',
        '--header',
        'x-trace=a=b',
        '--callback',
        'https://shop.example.com/hook',
        '--callback-name',
        'order.timeout',
        '--method',
        'put',
        '--timeout-ms',
        '5000',
        '--expect-body',
        'ok',
        '--callback-header',
        'authorization=Bearer x',
        '--envelope',
        '--retry-strategy',
        'linear',
        '--retry-initial-ms',
        '1000',
        '--retry-max-ms',
        '60000',
        '--retry-attempts',
        '5',
        '--no-jitter',
        '--content-type',
        'application/json',
      ],
      { HOURGLASS_APP_TOKEN: 'ignored-when-the-flag-is-given' },
    );
    assert.equal(c.method, 'POST');
    assert.equal(c.path, '/v1/messages');
    assert.equal(c.appToken, 'app-tok');
    assert.equal(c.view, 'message');
    assert.deepEqual(c.body, {
      id: 'order-42',
      headers: { 'x-trace': 'a=b' },
      payload: { order: 42 },
      delayMs: 1_800_000,
      callback: {
        url: 'https://shop.example.com/hook',
        method: 'PUT',
        headers: { authorization: 'Bearer x' },
        timeoutMs: 5000,
        name: 'order.timeout',
        envelope: true,
        expectBody: 'ok',
      },
      retry: {
        strategy: 'linear',
        initialDelayMs: 1000,
        maxDelayMs: 60_000,
        maxAttempts: 5,
        jitter: false,
      },
      contentType: 'application/json',
    });
  });

  it('schedules to a topic (and a callback) with the app token from the environment', () => {
    const c = command(
      [
        'messages',
        'schedule',
        '--topic',
        'orders',
        '--key',
        'k',
        '--payload-base64',
        'AAE=',
        '--deliver-at',
        '1900000000000',
        '--callback',
        'http://127.0.0.1:9000/h',
      ],
      { HOURGLASS_APP_TOKEN: 'env-tok' },
    );
    assert.equal(c.appToken, 'env-tok');
    assert.deepEqual(c.body, {
      topic: 'orders',
      key: 'k',
      payloadBase64: 'AAE=',
      deliverAt: 1_900_000_000_000,
      callback: { url: 'http://127.0.0.1:9000/h' },
    });
    const iso = command(
      [
        'messages',
        'schedule',
        '--topic',
        't',
        '--payload',
        '"x"',
        '--deliver-at',
        '2030-01-01T00:00:00Z',
      ],
      { HOURGLASS_APP_TOKEN: 'e' },
    );
    assert.deepEqual(iso.body, { topic: 't', payload: 'x', deliverAt: '2030-01-01T00:00:00Z' });
  });

  it('maps attempts, retry, rotate-secret and delivery to their admin calls', () => {
    const cases: Array<[string[], string, string, unknown]> = [
      [
        ['messages', 'attempts', 'shop', 'a/b'],
        'GET',
        '/v1/admin/messages/shop/a%2Fb/attempts',
        undefined,
      ],
      [['messages', 'retry', 'shop', 'm1'], 'POST', '/v1/admin/messages/shop/m1/retry', undefined],
      [['apps', 'rotate-secret', 'shop'], 'POST', '/v1/admin/apps/shop/signing-secret', {}],
      [
        ['apps', 'rotate-secret', 'shop', '--grace-seconds', '0'],
        'POST',
        '/v1/admin/apps/shop/signing-secret',
        { graceSeconds: 0 },
      ],
      [
        [
          'apps',
          'delivery',
          'shop',
          '--callback-host',
          'example.com',
          '--callback-host',
          '*.example.com',
          '--callback-host',
          'example.com',
          '--dead-letter-topic',
          'shop.dead',
          '--alert-after',
          '5',
          '--alert-url',
          'https://ops.example.com/alerts',
          '--alert-topic',
          'shop.alerts',
          '--retry-attempts',
          '3',
        ],
        'PATCH',
        '/v1/admin/apps/shop',
        {
          delivery: {
            callbackHosts: ['example.com', '*.example.com'],
            deadLetterTopic: 'shop.dead',
            alerts: {
              afterAttempts: 5,
              url: 'https://ops.example.com/alerts',
              topic: 'shop.alerts',
            },
            retry: { maxAttempts: 3 },
          },
        },
      ],
      [
        [
          'apps',
          'delivery',
          'shop',
          '--clear-callback-hosts',
          '--clear-dead-letter-topic',
          '--clear-alerts',
          '--clear-retry',
        ],
        'PATCH',
        '/v1/admin/apps/shop',
        { delivery: { callbackHosts: null, deadLetterTopic: null, alerts: null, retry: null } },
      ],
      [
        ['apps', 'delivery', 'shop', '--no-jitter'],
        'PATCH',
        '/v1/admin/apps/shop',
        { delivery: { retry: { jitter: false } } },
      ],
    ];
    for (const [argv, method, path, body] of cases) {
      const c = command(argv);
      assert.deepEqual([c.method, c.path, c.body], [method, path, body], argv.join(' '));
      assert.equal(c.appToken, undefined, 'admin calls send the admin token');
    }
  });

  it('refuses bad callback usage with a message naming the problem', () => {
    const token = { HOURGLASS_APP_TOKEN: 't' };
    const bad: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
      [['messages', 'schedule', '--topic', 't', '--payload', '1'], {}, /app token/],
      [
        ['messages', 'schedule', '--payload', '1', '--delay-ms', '0'],
        token,
        /--topic TOPIC, --callback URL/,
      ],
      [
        ['messages', 'schedule', '--topic', 't', '--payload', '{oops'],
        token,
        /--payload expects JSON/,
      ],
      [['messages', 'schedule', '--topic', 'a', '--topic', 'b'], token, /--topic once/],
      [
        ['messages', 'schedule', '--topic', 't', '--callback-name', 'n'],
        token,
        /--callback-name needs --callback/,
      ],
      [
        ['messages', 'schedule', '--topic', 't', '--header', 'novalue'],
        token,
        /--header expects NAME=VALUE/,
      ],
      [
        ['messages', 'schedule', '--topic', 't', '--payload', '1', '--payload-base64', 'AA=='],
        token,
        /either --payload or --payload-base64/,
      ],
      [
        ['messages', 'schedule', '--topic', 't', '--delay-ms', '1', '--deliver-at', '5'],
        token,
        /either --delay-ms or --deliver-at/,
      ],
      [
        ['messages', 'schedule', '--callback', 'http://x/', '--timeout-ms', 'soon'],
        token,
        /--timeout-ms expects a non-negative integer/,
      ],
      [['messages', 'schedule', 'extra', '--topic', 't'], token, /expected no arguments/],
      [['messages', 'attempts', 'shop'], {}, /expected <app> <id>/],
      [['messages', 'retry', 'shop', 'id', '--callback', 'x'], {}, /unexpected flag --callback/],
      [['apps', 'delivery', 'shop'], {}, /nothing to change/],
      [
        ['apps', 'delivery', 'shop', '--callback-host', 'a.com', '--clear-callback-hosts'],
        {},
        /--clear-callback-hosts with --callback-host/,
      ],
      [
        ['apps', 'delivery', 'shop', '--alert-url', 'https://x/'],
        {},
        /--alert-after N is required/,
      ],
      [
        ['apps', 'delivery', 'shop', '--retry-attempts', '2', '--clear-retry'],
        {},
        /--clear-retry with retry flags/,
      ],
      [['apps', 'delivery', 'shop', '--callback', 'x'], {}, /unexpected flag --callback/],
      [
        ['apps', 'rotate-secret', 'shop', '--grace-seconds', '1.5'],
        {},
        /--grace-seconds expects a non-negative integer/,
      ],
    ];
    for (const [argv, env, message] of bad)
      assert.throws(
        () => parse(argv, env),
        (error) => error instanceof UsageError && message.test(error.message),
        argv.join(' '),
      );
  });

  it('documents every new command and flag in the usage text', () => {
    for (const text of [
      'messages schedule',
      'messages attempts <app> <id>',
      'messages retry <app> <id>',
      'apps rotate-secret <app>',
      'apps delivery <app>',
      '--callback URL',
      '--callback-name',
      '--method',
      '--timeout-ms',
      '--expect-body',
      '--retry-strategy',
      '--retry-initial-ms',
      '--retry-max-ms',
      '--retry-attempts',
      '--no-jitter',
      '--callback-host',
      '--dead-letter-topic',
      '--alert-after',
      '--alert-url',
      '--alert-topic',
      '--clear-alerts',
    ])
      assert.ok(USAGE.includes(text), text);
  });
});

describe('hourglass CLI: callbacks, rendering', () => {
  it('renders a message with its retry strategy and a targets table', () => {
    const text = render('message', {
      id: 'order-42',
      app: 'shop',
      topic: null,
      state: 'scheduled',
      attempts: 2,
      targets: [
        {
          index: 0,
          type: 'http',
          url: 'https://shop.example.com/h',
          method: 'POST',
          name: 'order.timeout',
          state: 'pending',
          attempts: 2,
          lastError: 'HTTP 503',
          lastStatus: 503,
          nextAttemptAt: '2030-01-01T00:00:20.000Z',
        },
        { index: 1, type: 'kafka', topic: 'orders', key: 'k', state: 'delivered', attempts: 1 },
      ],
      retry: {
        strategy: 'exponential',
        initialDelayMs: 10000,
        maxDelayMs: 86400000,
        maxAttempts: 10,
        jitter: true,
      },
    });
    assert.match(text, /^id:\s+order-42\n/);
    assert.match(text, /topic:\s+-\n/);
    assert.match(text, /retry:\s+exponential 10000-86400000 ms, 10 attempts, jitter\n/);
    const lines = text.split('\n');
    const header = lines.findIndex((line) => line.startsWith('#  TYPE'));
    assert.ok(header > 0, text);
    assert.match(
      lines[header]!,
      /#\s+TYPE\s+DESTINATION\s+NAME\s+STATE\s+ATTEMPTS\s+STATUS\s+NEXT ATTEMPT\s+FINISHED\s+LAST ERROR/,
    );
    assert.match(
      lines[header + 1]!,
      /^0\s+http\s+POST https:\/\/shop\.example\.com\/h\s+order\.timeout\s+pending\s+2\s+503\s+2030-01-01T00:00:20\.000Z\s+-\s+HTTP 503$/,
    );
    assert.match(lines[header + 2]!, /^1\s+kafka\s+orders \(key k\)\s+-\s+delivered\s+1\s+-/);
  });

  it('renders attempts as a table, and says so when there are none', () => {
    const text = render('attempts', {
      attempts: [
        {
          target: 0,
          type: 'http',
          attempt: 1,
          at: 'T1',
          durationMs: 12,
          status: 503,
          error: 'HTTP 503',
          response: 'busy\n  now',
        },
        { target: 0, type: 'http', attempt: 2, at: 'T2', durationMs: 10000, error: 'timeout' },
      ],
    });
    assert.equal(
      text,
      'TARGET  TYPE  ATTEMPT  AT     MS  STATUS  ERROR     RESPONSE\n' +
        '     0  http        1  T1     12     503  HTTP 503  busy now\n' +
        '     0  http        2  T2  10000       -  timeout   -\n',
    );
    assert.match(render('attempts', { attempts: [] }), /no attempts/);
  });

  it('shows a signing secret once, with its grace period, and the app delivery settings', () => {
    const app = {
      name: 'shop',
      description: '',
      createdAt: 'T',
      disabled: false,
      topics: [],
      quotas: {},
      tokens: [],
      delivery: {
        callbackHosts: ['example.com'],
        deadLetterTopic: 'shop.dead',
        alerts: { afterAttempts: 5, url: 'https://ops.example.com/a', topic: null },
        retry: null,
        signingSecretCreatedAt: 'T2',
        previousSecretExpiresAt: 'T3',
      },
    };
    const rotated = render('secret', { app, signingSecret: 'whsec_abc', graceSeconds: 86400 });
    assert.match(rotated, /signing secret: whsec_abc\n/);
    assert.match(rotated, /shown only once/);
    assert.match(rotated, /For 86400 s callbacks carry two signatures/);
    assert.match(rotated, /callback hosts:\s+example\.com\n/);
    assert.match(rotated, /dead letters:\s+shop\.dead\n/);
    assert.match(rotated, /alerts:\s+after 5 attempts to https:\/\/ops\.example\.com\/a\n/);
    assert.match(rotated, /default retry:\s+the node default\n/);
    assert.match(rotated, /signing secret:\s+created T2 \(previous one still signs until T3\)\n/);
    assert.match(
      render('secret', { app, signingSecret: 's', graceSeconds: 0 }),
      /old secret no longer signs/,
    );
    const created = render('issued', { app, token: 'hg_t', signingSecret: 'whsec_new' });
    assert.match(created, /token: hg_t\n/);
    assert.match(created, /signing secret: whsec_new\n/);
  });
});

describe('hourglass CLI: callbacks, calls', () => {
  it('sends messages schedule with the app token and prints the message', async () => {
    const seen: Array<{ auth: string | undefined; path: string | undefined; body: string }> = [];
    const server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        seen.push({ auth: req.headers.authorization, path: req.url, body });
        res.writeHead(201, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            id: 'm1',
            app: 'shop',
            topic: null,
            state: 'scheduled',
            attempts: 0,
            targets: [
              {
                index: 0,
                type: 'http',
                url: 'http://r/h',
                method: 'POST',
                state: 'pending',
                attempts: 0,
              },
            ],
          }),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      let out = '';
      const code = await run(
        [
          'messages',
          'schedule',
          '--url',
          url,
          '--app-token',
          'app-secret',
          '--payload',
          '1',
          '--callback',
          'http://r/h',
        ],
        {},
        { out: (t) => (out += t), err: (t) => (out += t) },
      );
      assert.equal(code, 0, out);
      assert.deepEqual(seen, [
        {
          auth: 'Bearer app-secret',
          path: '/v1/messages',
          body: '{"payload":1,"callback":{"url":"http://r/h"}}',
        },
      ]);
      assert.match(out, /targets\n/);
      assert.match(out, /0\s+http\s+POST http:\/\/r\/h\s+-\s+pending/);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
