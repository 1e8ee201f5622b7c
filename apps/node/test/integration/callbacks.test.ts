/**
 * Issue 12 end to end on one node: HTTP callbacks to real local receivers, their retry
 * strategies, success rules, signatures, fan-out, cancel during a backoff, replay and the attempt
 * log, against the real services.
 */
import assert from 'node:assert/strict';
import { webhookSignature } from '@hourglass/core';
import {
  collectKafka,
  createTestDatabase,
  createTopics,
  randomTopicName,
  serviceUrls,
  pollUntil,
  startReceiver,
} from '@hourglass/testkit';
import type { TestReceiver } from '@hourglass/testkit';
import type { RunningNode } from '../../src/node';
import { api, startInProcess, testConfig } from '../support/harness';

const TOKEN = 'hooks-token-0001';
const ADMIN = 'admin-token-0001';

interface View {
  id: string;
  state: string;
  attempts: number;
  deliverAt: string;
  nextAttemptAt?: string;
  lastError?: string;
  targets: Array<{
    type: string;
    state: string;
    attempts: number;
    lastError?: string;
    lastStatus?: number;
  }>;
}

describe('HTTP callbacks on one node', function () {
  const urls = serviceUrls();
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let node: RunningNode;
  let topic: string;
  const receivers: TestReceiver[] = [];

  const receiver = async (...args: Parameters<typeof startReceiver>): Promise<TestReceiver> => {
    const started = await startReceiver(...args);
    receivers.push(started);
    return started;
  };

  before(async () => {
    db = await createTestDatabase();
    topic = randomTopicName('callbacks');
    await createTopics(urls.kafkaBrokers, [topic], 1);
    node = await startInProcess(
      testConfig({
        postgres: { url: db.connectionString },
        kafka: { brokers: urls.kafkaBrokers, createTopics: false },
        core: { horizonMinutes: 0.1, loaderIntervalMs: 200 },
        callbacks: { allowNetworks: ['127.0.0.0/8'] },
        auth: { adminToken: ADMIN },
        apps: [{ name: 'hooks', token: TOKEN, topics: [topic] }],
      }),
    );
  });

  after(async () => {
    await node?.stop();
    for (const started of receivers) await started.stop();
    await db?.drop();
  });

  const schedule = (body: Record<string, unknown>) =>
    api<View>(node.httpUrl, 'POST', '/v1/messages', TOKEN, body);
  const get = (id: string) => api<View>(node.httpUrl, 'GET', `/v1/messages/${id}`, TOKEN);

  /** Polls the message until `done` holds (state changes have no event to await from outside). */
  /** The message once `done` holds (state changes in Postgres have no event to await). */
  async function until(
    id: string,
    done: (view: View) => boolean,
    timeoutMs = 20_000,
  ): Promise<View> {
    const { body } = await pollUntil(
      () => get(id),
      (response) => done(response.body),
      timeoutMs,
    );
    assert.ok(done(body), `message ${id} never got there: ${JSON.stringify(body)}`);
    return body;
  }

  it('calls back at the due time, never early, with the payload, headers and a valid signature', async () => {
    const hook = await receiver();
    const id = `ok-${Date.now()}`;
    const response = await schedule({
      id,
      delayMs: 300,
      payload: { order: 42 },
      headers: { 'x-trace': 't-1' },
      callback: {
        url: `${hook.url}/hooks/order`,
        name: 'order.timeout',
        headers: { 'x-cb': 'yes' },
      },
    });
    assert.equal(response.status, 201, JSON.stringify(response.body));
    const due = Date.parse(response.body.deliverAt);
    const [request] = await hook.waitFor(1, 10_000);
    assert.ok(request);
    assert.ok(request.receivedAtMs >= due, `arrived ${due - request.receivedAtMs} ms early`);
    assert.equal(request.method, 'POST');
    assert.equal(request.path, '/hooks/order');
    assert.equal(request.body.toString(), '{"order":42}');
    assert.equal(request.headers['content-type'], 'application/json');
    assert.equal(request.headers['x-trace'], 't-1');
    assert.equal(request.headers['x-cb'], 'yes');
    assert.equal(request.headers['hourglass-id'], id);
    assert.equal(request.headers['hourglass-app'], 'hooks');
    assert.equal(request.headers['hourglass-attempt'], '1');
    assert.equal(request.headers['hourglass-callback-name'], 'order.timeout');
    assert.equal(Date.parse(String(request.headers['hourglass-deliver-at'])), due);
    assert.equal(request.headers['webhook-id'], id);
    const view = await until(id, (v) => v.state === 'delivered');
    assert.equal(view.targets[0]?.state, 'delivered');
    assert.equal(view.attempts, 1);
  });

  it('signs with the app secret, and with both during a rotation grace period', async () => {
    const rotate = (graceSeconds: number) =>
      api<{ signingSecret: string }>(
        node.httpUrl,
        'POST',
        '/v1/admin/apps/hooks/signing-secret',
        ADMIN,
        { graceSeconds },
      );
    const first = await rotate(0);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const hook = await receiver();
    const id = `signed-${Date.now()}`;
    await schedule({ id, delayMs: 0, payload: { a: 1 }, callback: { url: hook.url } });
    const [one] = await hook.waitFor(1, 10_000);
    const ts = Number(one?.headers['webhook-timestamp']);
    assert.ok(Math.abs(ts - Date.now() / 1000) < 10, 'webhook-timestamp is Unix seconds');
    assert.equal(
      one?.headers['webhook-signature'],
      webhookSignature(first.body.signingSecret, id, ts, one!.body),
    );
    const second = await rotate(3600);
    const id2 = `rotated-${Date.now()}`;
    await schedule({ id: id2, delayMs: 0, payload: 'x', callback: { url: hook.url } });
    const [, two] = await hook.waitFor(2, 10_000);
    const ts2 = Number(two?.headers['webhook-timestamp']);
    assert.deepEqual(String(two?.headers['webhook-signature']).split(' '), [
      webhookSignature(second.body.signingSecret, id2, ts2, two!.body),
      webhookSignature(first.body.signingSecret, id2, ts2, two!.body),
    ]);
  });

  for (const [strategy, expected] of [
    ['fixed', [300, 300, 300]],
    ['linear', [300, 600, 900]],
    ['exponential', [300, 600, 1200]],
  ] as const) {
    it(`spaces retries by the ${strategy} strategy, then stays failed`, async () => {
      const hook = await receiver(() => ({ status: 500, body: 'nope' }));
      const id = `${strategy}-${Date.now()}`;
      const response = await schedule({
        id,
        delayMs: 0,
        payload: {},
        callback: { url: hook.url },
        retry: { strategy, initialDelayMs: 300, maxDelayMs: 10_000, maxAttempts: 4, jitter: false },
      });
      assert.equal(response.status, 201, JSON.stringify(response.body));
      const requests = await hook.waitFor(4, 20_000);
      const gaps = requests.slice(1).map((r, i) => r.receivedAtMs - requests[i]!.receivedAtMs);
      gaps.forEach((gap, i) => {
        assert.ok(
          gap >= expected[i]!,
          `gap ${i + 1} was ${gap} ms, expected at least ${expected[i]}`,
        );
        assert.ok(
          gap < expected[i]! + 400,
          `gap ${i + 1} was ${gap} ms, expected about ${expected[i]}`,
        );
      });
      assert.deepEqual(
        requests.map((r) => r.headers['hourglass-attempt']),
        ['1', '2', '3', '4'],
      );
      const view = await until(id, (v) => v.state === 'failed');
      assert.equal(view.targets[0]?.state, 'failed');
      assert.equal(view.targets[0]?.attempts, 4);
      assert.equal(view.targets[0]?.lastStatus, 500);
      const log = await api<{
        attempts: Array<{ attempt: number; status: number; response: string }>;
      }>(node.httpUrl, 'GET', `/v1/messages/${id}/attempts`, TOKEN);
      assert.equal(log.status, 200);
      assert.deepEqual(
        log.body.attempts.map((a) => a.attempt),
        [1, 2, 3, 4],
      );
      assert.ok(log.body.attempts.every((a) => a.status === 500 && a.response === 'nope'));
    });
  }

  it('stops at once on 410 Gone', async () => {
    const hook = await receiver(() => ({ status: 410 }));
    const id = `gone-${Date.now()}`;
    await schedule({
      id,
      delayMs: 0,
      payload: {},
      callback: { url: hook.url },
      retry: { initialDelayMs: 100, jitter: false },
    });
    const view = await until(id, (v) => v.state === 'failed');
    assert.equal(view.targets[0]?.attempts, 1);
    assert.match(view.targets[0]?.lastError ?? '', /gone/);
    assert.equal(hook.requests.length, 1);
  });

  it('honours Retry-After of a 503 over the strategy', async () => {
    const hook = await receiver((_r, index) =>
      index === 0 ? { status: 503, headers: { 'retry-after': '2' } } : { status: 200 },
    );
    const id = `retry-after-${Date.now()}`;
    await schedule({
      id,
      delayMs: 0,
      payload: {},
      callback: { url: hook.url },
      retry: { initialDelayMs: 100, jitter: false },
    });
    const [first, second] = await hook.waitFor(2, 15_000);
    const gap = second!.receivedAtMs - first!.receivedAtMs;
    assert.ok(gap >= 2000 && gap < 2600, `retried after ${gap} ms, Retry-After said 2 s`);
    await until(id, (v) => v.state === 'delivered');
  });

  it('with expectBody "ok", a 2xx with another body is a failure', async () => {
    const hook = await receiver((_r, index) => ({
      status: 200,
      body: index === 0 ? 'fine' : 'ok\n',
    }));
    const id = `expect-${Date.now()}`;
    await schedule({
      id,
      delayMs: 0,
      payload: {},
      callback: { url: hook.url, expectBody: 'ok', method: 'PUT' },
      retry: { initialDelayMs: 200, jitter: false },
    });
    const view = await until(id, (v) => v.state === 'delivered');
    assert.equal(view.targets[0]?.attempts, 2);
    assert.equal(hook.requests[0]?.method, 'PUT');
  });

  it('a receiver that does not answer within the timeout is retried', async () => {
    const hook = await receiver((_r, index) => (index === 0 ? 'hang' : { status: 204 }));
    const id = `timeout-${Date.now()}`;
    await schedule({
      id,
      delayMs: 0,
      payload: {},
      callback: { url: hook.url, timeoutMs: 500 },
      retry: { initialDelayMs: 100, jitter: false },
    });
    const view = await until(id, (v) => v.state === 'delivered');
    assert.equal(view.targets[0]?.attempts, 2);
    const log = await api<{ attempts: Array<{ error?: string }> }>(
      node.httpUrl,
      'GET',
      `/v1/messages/${id}/attempts`,
      TOKEN,
    );
    assert.match(log.body.attempts[0]?.error ?? '', /timed out/);
  });

  it('a cancel during a retry backoff means no further attempt', async () => {
    const hook = await receiver(() => ({ status: 500 }));
    const id = `cancel-${Date.now()}`;
    await schedule({
      id,
      delayMs: 0,
      payload: {},
      callback: { url: hook.url },
      retry: { strategy: 'fixed', initialDelayMs: 1500, jitter: false },
    });
    await hook.waitFor(1, 10_000);
    const pending = await until(id, (v) => v.state === 'scheduled' && v.attempts === 1);
    assert.ok(pending.nextAttemptAt, 'a retry is pending');
    const cancel = await api(node.httpUrl, 'DELETE', `/v1/messages/${id}`, TOKEN);
    assert.equal(cancel.status, 200, JSON.stringify(cancel.body));
    // A probe callback scheduled after the would-be retry shows the node went past it.
    const probe = await receiver();
    await schedule({ id: `${id}-probe`, delayMs: 2500, payload: {}, callback: { url: probe.url } });
    await probe.waitFor(1, 10_000);
    assert.equal(hook.requests.length, 1, 'no attempt after the cancel');
  });

  it('fans out to Kafka and two receivers, each recorded on its own', async () => {
    const collector = await collectKafka(urls.kafkaBrokers, topic);
    try {
      const good = await receiver();
      const bad = await receiver(() => ({ status: 500 }));
      const id = `fan-${Date.now()}`;
      const response = await schedule({
        id,
        delayMs: 200,
        payload: { fan: true },
        targets: [{ topic, key: 'k' }, { url: good.url }, { url: bad.url }],
        retry: { maxAttempts: 2, initialDelayMs: 100, jitter: false },
      });
      assert.equal(response.status, 201, JSON.stringify(response.body));
      const view = await until(id, (v) => v.state === 'failed');
      assert.deepEqual(
        view.targets.map((t) => t.state),
        ['delivered', 'delivered', 'failed'],
      );
      assert.equal(good.requests.length, 1, 'the delivered receiver is not called again');
      assert.equal(bad.requests.length, 2);
      await collector.waitFor(1, 10_000);
      assert.equal(collector.records.filter((r) => r.headers['hourglass-id'] === id).length, 1);
      // Replay re-arms only the failed target, with a fresh budget.
      bad.respond(() => ({ status: 200 }));
      const replay = await api<View>(node.httpUrl, 'POST', `/v1/messages/${id}/retry`, TOKEN);
      assert.equal(replay.status, 200, JSON.stringify(replay.body));
      const after = await until(id, (v) => v.state === 'delivered');
      assert.deepEqual(
        after.targets.map((t) => t.state),
        ['delivered', 'delivered', 'delivered'],
      );
      assert.equal(good.requests.length, 1);
      assert.equal(bad.requests.length, 3);
      const again = await api(node.httpUrl, 'POST', `/v1/messages/${id}/retry`, TOKEN);
      assert.equal(again.status, 409);
    } finally {
      await collector.stop();
    }
  });

  it('a receiver that hangs delays no callback to another host', async () => {
    const stuck = await receiver(() => 'hang');
    const quick = await receiver();
    const stuckIds = Array.from({ length: 20 }, (_, i) => `stuck-${i}-${Date.now()}`);
    for (const id of stuckIds)
      await schedule({
        id,
        delayMs: 100,
        payload: {},
        callback: { url: stuck.url, timeoutMs: 5000 },
        retry: { maxAttempts: 1 },
      });
    await stuck.waitFor(20, 10_000);
    const quickIds = Array.from({ length: 5 }, (_, i) => `quick-${i}-${Date.now()}`);
    const dues = new Map<string, number>();
    for (const id of quickIds) {
      const response = await schedule({
        id,
        delayMs: 100,
        payload: {},
        callback: { url: quick.url },
      });
      dues.set(id, Date.parse(response.body.deliverAt));
    }
    const requests = await quick.waitFor(5, 4000);
    // Answered while every request to the stuck receiver still hangs (5 s timeout).
    assert.ok(stuck.requests.length === 20);
    for (const request of requests) {
      const due = dues.get(String(request.headers['hourglass-id']))!;
      assert.ok(
        request.receivedAtMs - due < 1000,
        `a quick callback came ${request.receivedAtMs - due} ms late`,
      );
    }
  });

  it('sends a finally failed target to the dead-letter topic, and alerts after N attempts and on failure', async () => {
    const dlq = randomTopicName('dlq');
    await createTopics(urls.kafkaBrokers, [dlq], 1);
    const collector = await collectKafka(urls.kafkaBrokers, dlq);
    const alerts = await receiver();
    try {
      const patch = await api(node.httpUrl, 'PATCH', '/v1/admin/apps/hooks', ADMIN, {
        delivery: {
          deadLetterTopic: dlq,
          alerts: { afterAttempts: 2, url: `${alerts.url}/alerts` },
        },
      });
      assert.equal(patch.status, 200, JSON.stringify(patch.body));
      const hook = await receiver(() => ({ status: 500, body: 'down' }));
      const id = `dead-${Date.now()}`;
      await schedule({
        id,
        delayMs: 0,
        payload: { dead: 1 },
        callback: { url: hook.url },
        retry: { maxAttempts: 3, initialDelayMs: 100, jitter: false },
      });
      await until(id, (v) => v.state === 'failed');
      await collector.waitFor(1, 15_000);
      const record = collector.records[0];
      assert.equal(record?.headers['hourglass-id'], id);
      assert.equal(record?.headers['hourglass-attempts'], '3');
      assert.match(record?.headers['hourglass-error'] ?? '', /HTTP 500/);
      assert.match(record?.headers['hourglass-failed-target'] ?? '', /^http:127\.0\.0\.1:/);
      assert.equal(record?.value.toString(), '{"dead":1}');
      const events = await alerts.waitFor(2, 10_000);
      const types = events.map(
        (event) => (JSON.parse(event.body.toString()) as { type: string }).type,
      );
      assert.deepEqual(types.sort(), ['callback.failed', 'callback.retrying']);
      assert.ok(
        events.every((event) => String(event.headers['webhook-signature']).startsWith('v1,')),
      );
    } finally {
      await api(node.httpUrl, 'PATCH', '/v1/admin/apps/hooks', ADMIN, {
        delivery: { deadLetterTopic: null, alerts: null },
      });
      await collector.stop();
    }
  });

  it('refuses callback URLs the SSRF guard denies at accept time', async () => {
    for (const url of [
      'http://10.0.0.1/',
      'http://169.254.169.254/latest',
      'http://[::1]/',
      'http://0x0a000001/',
      'ftp://example.com/',
      'http://user:pw@example.com/',
    ]) {
      const response = await api<{ error: { code: string; details: Array<{ path: string }> } }>(
        node.httpUrl,
        'POST',
        '/v1/messages',
        TOKEN,
        { delayMs: 0, payload: {}, callback: { url } },
      );
      assert.equal(response.status, 400, `${url}: ${JSON.stringify(response.body)}`);
      assert.equal(response.body.error.code, 'invalid_request');
      assert.equal(response.body.error.details[0]?.path, 'callback/url');
    }
  });
});

describe('HTTP callbacks with the default SSRF guard (loopback not allowed)', function () {
  const urls = serviceUrls();
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let node: RunningNode;
  let hook: TestReceiver;

  before(async () => {
    db = await createTestDatabase();
    hook = await startReceiver();
    node = await startInProcess(
      testConfig({
        postgres: { url: db.connectionString },
        kafka: { brokers: urls.kafkaBrokers, createTopics: false },
        apps: [{ name: 'guarded', token: TOKEN, topics: [] }],
      }),
    );
  });

  after(async () => {
    await node?.stop();
    await hook?.stop();
    await db?.drop();
  });

  it('refuses literal private addresses at once, and a name resolving to 127.0.0.1 when connecting', async () => {
    for (const url of [
      'http://10.0.0.1/',
      'http://169.254.169.254/',
      'http://[::1]/',
      'http://0x7f000001/',
      `http://127.0.0.1:${hook.port}/`,
    ]) {
      const response = await api(node.httpUrl, 'POST', '/v1/messages', TOKEN, {
        delayMs: 0,
        payload: {},
        callback: { url },
      });
      assert.equal(response.status, 400, `${url} was accepted`);
    }
    const id = `rebind-${Date.now()}`;
    const accepted = await api(node.httpUrl, 'POST', '/v1/messages', TOKEN, {
      id,
      delayMs: 0,
      payload: {},
      callback: { url: `http://localhost:${hook.port}/` },
      retry: { maxAttempts: 1 },
    });
    assert.equal(accepted.status, 201, JSON.stringify(accepted.body));
    const { body: view } = await pollUntil(
      () => api<View>(node.httpUrl, 'GET', `/v1/messages/${id}`, TOKEN),
      (response) => response.body.state === 'failed',
      10_000,
    );
    assert.equal(view?.state, 'failed');
    assert.match(view?.targets[0]?.lastError ?? '', /loopback/);
    assert.equal(hook.requests.length, 0, 'the receiver on loopback was never called');
  });
});
