/** The CLI's argument parsing and rendering, without a server. */
import assert from 'node:assert/strict';
import { DEFAULT_ADMIN_TOKEN, DEFAULT_URL, UsageError, parse } from '../../src/args';
import { run } from '../../src/main';
import { render } from '../../src/render';
import { renderRecord, renderTable } from '../../src/table';

function command(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const parsed = parse(argv, env);
  assert.equal(parsed.help, false);
  if (parsed.help) throw new Error('unreachable');
  return parsed;
}

describe('hourglass CLI: arguments', () => {
  it('defaults to the local cluster and reads $HOURGLASS_URL and $HOURGLASS_ADMIN_TOKEN; flags win', () => {
    assert.deepEqual(command(['apps', 'list']).globals, {
      url: DEFAULT_URL,
      token: DEFAULT_ADMIN_TOKEN,
      json: false,
    });
    const env = { HOURGLASS_URL: 'http://h:1/', HOURGLASS_ADMIN_TOKEN: 'from-env' };
    assert.deepEqual(command(['apps', 'list'], env).globals, {
      url: 'http://h:1',
      token: 'from-env',
      json: false,
    });
    assert.deepEqual(
      command(['apps', 'list', '--url', 'http://x:2', '--token', 't', '--json'], env).globals,
      { url: 'http://x:2', token: 't', json: true },
    );
  });

  it('maps every command to one admin API call', () => {
    const cases: Array<[string[], string, string, unknown]> = [
      [['apps', 'list'], 'GET', '/v1/admin/apps', undefined],
      [['apps', 'get', 'shop'], 'GET', '/v1/admin/apps/shop', undefined],
      [
        [
          'apps',
          'create',
          'shop',
          '--description',
          'the shop',
          '--topic',
          'a',
          '--topic',
          'b',
          '--rate',
          '2.5',
          '--max-pending',
          '100',
        ],
        'POST',
        '/v1/admin/apps',
        {
          name: 'shop',
          description: 'the shop',
          topics: ['a', 'b'],
          quotas: { ratePerSecond: 2.5, maxPending: 100 },
        },
      ],
      [['apps', 'create', 'shop'], 'POST', '/v1/admin/apps', { name: 'shop' }],
      [
        ['apps', 'update', 'shop', '--description', 'd'],
        'PATCH',
        '/v1/admin/apps/shop',
        { description: 'd' },
      ],
      [['apps', 'delete', 'shop'], 'DELETE', '/v1/admin/apps/shop', undefined],
      [['apps', 'disable', 'shop'], 'PATCH', '/v1/admin/apps/shop', { disabled: true }],
      [['apps', 'enable', 'shop'], 'PATCH', '/v1/admin/apps/shop', { disabled: false }],
      [
        ['tokens', 'rotate', 'shop', '--grace-seconds', '60'],
        'POST',
        '/v1/admin/apps/shop/tokens',
        { graceSeconds: 60 },
      ],
      [['tokens', 'rotate', 'shop'], 'POST', '/v1/admin/apps/shop/tokens', {}],
      [
        ['topics', 'add', 'shop', 'orders', '--partitions', '3', '--replication-factor', '1'],
        'POST',
        '/v1/admin/apps/shop/topics',
        { topic: 'orders', partitions: 3, replicationFactor: 1 },
      ],
      [
        ['topics', 'remove', 'shop', 'orders'],
        'DELETE',
        '/v1/admin/apps/shop/topics/orders',
        undefined,
      ],
      [
        [
          'quotas',
          'set',
          'shop',
          '--rate',
          '10',
          '--burst',
          '20',
          '--max-payload-bytes',
          '1024',
          '--max-delay-ms',
          '0',
        ],
        'PUT',
        '/v1/admin/apps/shop/quotas',
        { ratePerSecond: 10, burst: 20, maxPayloadBytes: 1024, maxDelayMs: 0 },
      ],
      [['quotas', 'set', 'shop'], 'PUT', '/v1/admin/apps/shop/quotas', {}],
      [['slots', 'list'], 'GET', '/v1/admin/cluster', undefined],
      [['slots', 'pin', '7', 'node-1'], 'PUT', '/v1/admin/slots/7/pin', { node: 'node-1' }],
      [['slots', 'unpin', '7'], 'DELETE', '/v1/admin/slots/7/pin', undefined],
      [['nodes', 'list'], 'GET', '/v1/admin/cluster', undefined],
      [['nodes', 'drain', 'node-1'], 'POST', '/v1/admin/nodes/node-1/drain', undefined],
      [['nodes', 'undrain', 'node-1'], 'POST', '/v1/admin/nodes/node-1/undrain', undefined],
      [['messages', 'get', 'shop', 'a/b'], 'GET', '/v1/admin/messages/shop/a%2Fb', undefined],
      [['messages', 'cancel', 'shop', 'm1'], 'DELETE', '/v1/admin/messages/shop/m1', undefined],
      [['stats'], 'GET', '/v1/admin/stats', undefined],
    ];
    for (const [argv, method, path, body] of cases) {
      const { command: c } = command(argv);
      assert.deepEqual([c.method, c.path, c.body], [method, path, body], argv.join(' '));
    }
  });

  it('refuses bad usage with a message naming the problem', () => {
    const bad: Array<[string[], RegExp]> = [
      [['apps', 'frob'], /unknown command "apps frob"/],
      [['apps', 'get'], /expected <app>/],
      [['apps', 'get', 'a', 'b'], /expected <app>/],
      [['apps', 'list', '--rate', '1'], /unexpected flag --rate/],
      [['apps', 'create', 'a', '--rate', 'fast'], /--rate expects a non-negative number/],
      [
        ['apps', 'create', 'a', '--max-pending', '1.5'],
        /--max-pending expects a non-negative integer/,
      ],
      [['apps', 'update', 'a'], /nothing to change/],
      [['apps', 'list', '--colour'], /Unknown option '--colour'/],
      [['stats', 'now'], /no arguments/],
    ];
    for (const [argv, message] of bad)
      assert.throws(
        () => parse(argv),
        (error) => error instanceof UsageError && message.test(error.message),
        argv.join(' '),
      );
    assert.deepEqual(parse([]), { help: true });
    assert.deepEqual(parse(['apps', 'list', '--help']), { help: true });
  });

  it('exits 2 on bad usage and 1 when the node cannot be reached', async () => {
    const io = {
      text: '',
      out(t: string) {
        this.text += t;
      },
      err(t: string) {
        this.text += t;
      },
    };
    assert.equal(await run(['apps', 'frob'], {}, io), 2);
    assert.match(io.text, /unknown command/);
    assert.equal(await run(['apps', 'list', '--url', 'http://127.0.0.1:1'], {}, io), 1);
    assert.match(io.text, /cannot reach http:\/\/127\.0\.0\.1:1/);
    assert.equal(await run(['--help'], {}, io), 0);
  });
});

describe('hourglass CLI: rendering', () => {
  it('pads columns to the widest cell, right-aligns numbers and shows missing values as -', () => {
    const text = renderTable(
      [
        { name: 'shop', n: 5, topics: ['a', 'b'] },
        { name: 'x', n: 120, topics: [] },
      ],
      [
        { header: 'NAME', value: (r) => r.name },
        { header: 'N', value: (r) => r.n, right: true },
        { header: 'TOPICS', value: (r) => r.topics },
      ],
    );
    assert.equal(text, 'NAME    N  TOPICS\nshop    5  a,b\nx     120  -\n');
    assert.equal(
      renderRecord([
        ['a', 1],
        ['long', null],
      ]),
      'a:     1\nlong:  -\n',
    );
  });

  it('shows an issued token once, with a warning', () => {
    const app = {
      name: 'shop',
      description: '',
      createdAt: 'T',
      disabled: false,
      topics: ['t'],
      quotas: { ratePerSecond: 2, maxPending: null },
      tokens: [],
    };
    const text = render('issued', { app, token: 'hg_abc' });
    assert.match(text, /token: hg_abc\n/);
    assert.match(text, /shown only once/);
    assert.match(text, /quotas:\s+ratePerSecond=2\n/);
  });

  it('renders stats as two tables', () => {
    const text = render('stats', {
      apps: 2,
      byState: { scheduled: 3, delivered: 1 },
      byApp: [{ app: 'shop', byState: { scheduled: 3 } }],
      pendingByApp: [{ app: 'shop', buckets: { overdue: 0, later: 3 } }],
      buckets: [{ label: 'overdue' }, { label: 'later' }],
    });
    assert.match(text, /^apps: 2\n/);
    assert.match(text, /APP\s+SCHEDULED\s+DELIVERED\nTOTAL\s+3\s+1\nshop\s+3\s+0/);
    assert.match(text, /APP\s+OVERDUE\s+LATER\nshop\s+0\s+3/);
  });
});
