/**
 * The CLI's callback commands against an in-process node (real Postgres, Redis and Kafka) and a
 * real receiver on 127.0.0.1: an app created and given delivery settings, its signing secret
 * rotated, a message scheduled with a callback as the app, then read with its targets table, its
 * attempts listed, and a retry refused because it is not failed.
 */
import assert from 'node:assert/strict';
import type { TestDatabase } from '@hourglass/testkit';
import { createTestDatabase, redisPrefix, serviceUrls } from '@hourglass/testkit';
import type { RunningNode } from '../../../node/src/node';
import { startInProcess, testConfig } from '../../../node/test/support/harness';
import { CallbackSink, pollUntil } from '../../../../libs/client/test/support/callback-sink';
import { run } from '../../src/main';

const ADMIN = 'cli-callbacks-admin-0001';

describe('hourglass CLI: callbacks end to end', function () {
  const sink = new CallbackSink();
  let db: TestDatabase;
  let node: RunningNode;

  /** Runs one command line in process; resolves with its exit code and output. */
  const cli = async (...argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    const code = await run(
      argv,
      { HOURGLASS_URL: node.httpUrl, HOURGLASS_ADMIN_TOKEN: ADMIN },
      { out: (text) => (out += text), err: (text) => (err += text) },
    );
    return { code, out, err };
  };
  const ok = async (...argv: string[]): Promise<string> => {
    const result = await cli(...argv);
    assert.equal(result.code, 0, `${argv.join(' ')}: ${result.err}`);
    return result.out;
  };

  before(async () => {
    await sink.start();
    db = await createTestDatabase();
    const urls = serviceUrls();
    node = await startInProcess(
      testConfig({
        postgres: { url: db.connectionString },
        kafka: { brokers: urls.kafkaBrokers, createTopics: false, topicPartitions: 1 },
        redis: { url: urls.redis, keyPrefix: redisPrefix() },
        grpc: { port: 0 },
        core: { loaderIntervalMs: 200 },
        auth: { adminToken: ADMIN },
        callbacks: { allowNetworks: ['127.0.0.0/8'] },
        apps: [],
      }),
    );
  });

  after(async () => {
    await node?.stop();
    await sink.stop();
    await db?.drop();
  });

  it('configures delivery, rotates the secret, schedules a callback and shows its attempts', async () => {
    const created = JSON.parse(await ok('apps', 'create', 'hooks', '--json')) as {
      token: string;
      signingSecret?: string;
    };
    assert.match(String(created.signingSecret), /^whsec_/);

    const configured = await ok(
      'apps',
      'delivery',
      'hooks',
      '--callback-host',
      '127.0.0.1',
      '--alert-after',
      '3',
      '--alert-url',
      sink.url('/alerts'),
      '--retry-attempts',
      '4',
      '--no-jitter',
    );
    assert.match(configured, /callback hosts:\s+127\.0\.0\.1\n/);
    assert.match(configured, /alerts:\s+after 3 attempts to http:\/\/127\.0\.0\.1:\d+\/alerts\n/);
    assert.match(configured, /default retry:\s+\S+ \d+-\d+ ms, 4 attempts, no jitter\n/);

    const rotated = await ok('apps', 'rotate-secret', 'hooks', '--grace-seconds', '60');
    assert.match(rotated, /signing secret: whsec_\S+\n/);
    assert.match(rotated, /For 60 s callbacks carry two signatures/);
    const secret = /signing secret: (whsec_\S+)\n/.exec(rotated)?.[1];
    assert.notEqual(secret, created.signingSecret);

    const scheduled = JSON.parse(
      await ok(
        'messages',
        'schedule',
        '--app-token',
        created.token,
        '--id',
        'cli-cb-1',
        '--payload',
        '{"n":1}',
        '--delay-ms',
        '0',
        '--callback',
        sink.url('/hook'),
        '--callback-name',
        'cli.test',
        '--expect-body',
        'ok',
        '--json',
      ),
    ) as { id: string; retry?: { maxAttempts: number; jitter: boolean } };
    assert.equal(scheduled.id, 'cli-cb-1');
    assert.deepEqual(
      [scheduled.retry?.maxAttempts, scheduled.retry?.jitter],
      [4, false],
      "the app's default retry applies",
    );

    const received = await sink.waitForId('cli-cb-1');
    assert.equal(received.body, '{"n":1}');
    assert.equal(received.headers['hourglass-callback-name'], 'cli.test');
    // During the grace period the callback carries two signatures.
    assert.equal(String(received.headers['webhook-signature']).split(' ').length, 2);

    const shown = await pollUntil(
      () => ok('messages', 'get', 'hooks', 'cli-cb-1'),
      (text) => /state:\s+delivered/.test(text),
    );
    assert.match(shown, /state:\s+delivered/);
    assert.match(shown, /\ntargets\n#\s+TYPE\s+DESTINATION/);
    assert.match(
      shown,
      /\n0\s+http\s+POST http:\/\/127\.0\.0\.1:\d+\/hook\s+cli\.test\s+delivered\s+1\s+200/,
    );

    const attempts = await ok('messages', 'attempts', 'hooks', 'cli-cb-1');
    assert.match(attempts, /^TARGET\s+TYPE\s+ATTEMPT\s+AT\s+MS\s+STATUS\s+ERROR\s+RESPONSE\n/);
    assert.match(attempts, /\n\s+0\s+http\s+1\s+\S+Z\s+\d+\s+200\s+-\s+ok\n$/);

    const refused = await cli('messages', 'retry', 'hooks', 'cli-cb-1');
    assert.equal(refused.code, 1);
    assert.match(refused.err, /messages retry failed: 409 not_failed/);
  });

  it('refuses a callback to a host outside the app allowlist with callback_not_allowed', async () => {
    const created = JSON.parse(await ok('apps', 'create', 'fenced', '--json')) as { token: string };
    await ok('apps', 'delivery', 'fenced', '--callback-host', 'example.com');
    const refused = await cli(
      'messages',
      'schedule',
      '--app-token',
      created.token,
      '--payload',
      '1',
      '--delay-ms',
      '0',
      '--callback',
      sink.url('/hook'),
    );
    assert.equal(refused.code, 1);
    assert.match(refused.err, /messages schedule failed: 403 callback_not_allowed/);
    const cleared = await ok('apps', 'delivery', 'fenced', '--clear-callback-hosts');
    assert.match(cleared, /callback hosts:\s+any public host\n/);
  });
});
