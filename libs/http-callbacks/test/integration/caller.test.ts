/**
 * UndiciHttpCaller against real receivers (node:http servers on 127.0.0.1): what is sent, how
 * each kind of response is judged, timeouts and their isolation, the per-host bound, keep-alive.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import { AddressPolicy } from '@hourglass/core';
import type { HttpCallResult } from '@hourglass/core';
import { UndiciHttpCaller } from '@hourglass/http-callbacks';
import { Receiver, callbackRequest, closedPort } from '../support/receiver';

const LOCAL = new AddressPolicy(['127.0.0.0/8']);

describe('UndiciHttpCaller', () => {
  const receivers: Receiver[] = [];
  const callers: UndiciHttpCaller[] = [];

  async function receiver(respond: Parameters<typeof Receiver.start>[0]): Promise<Receiver> {
    const started = await Receiver.start(respond);
    receivers.push(started);
    return started;
  }

  function caller(
    options: Partial<ConstructorParameters<typeof UndiciHttpCaller>[0]> = {},
  ): UndiciHttpCaller {
    const made = new UndiciHttpCaller({ policy: LOCAL, ...options });
    callers.push(made);
    return made;
  }

  /** A receiver answering every request with `status`, `body` and `headers`. */
  function answering(
    status: number,
    body = '',
    headers: http.OutgoingHttpHeaders = {},
  ): Promise<Receiver> {
    return receiver((_request, response) => {
      response.writeHead(status, headers);
      response.end(body);
    });
  }

  afterEach(async () => {
    await Promise.all(callers.splice(0).map((made) => made.stop()));
    await Promise.all(receivers.splice(0).map((started) => started.close()));
  });

  describe('what is sent', () => {
    for (const method of ['POST', 'PUT'] as const) {
      it(`delivers a ${method} with its headers and body as sent`, async () => {
        const target = await answering(200, 'thanks');
        const body = Buffer.from(JSON.stringify({ order: 42, note: 'ünïcode' }));
        const result = await caller().call(
          callbackRequest(target.url('/hooks/orders?tenant=7'), {
            method,
            body,
            headers: { 'content-type': 'application/json', 'webhook-signature': 'v1,abc=' },
          }),
        );

        assert.equal(result.ok, true, result.error ?? '');
        assert.equal(result.status, 200);
        assert.equal(result.error, null);
        assert.equal(result.responseSnippet, 'thanks');
        assert.equal(target.requests.length, 1);
        const [received] = target.requests;
        assert.equal(received?.method, method);
        assert.equal(received?.path, '/hooks/orders?tenant=7');
        assert.equal(received?.headers['content-type'], 'application/json');
        assert.equal(received?.headers['webhook-signature'], 'v1,abc=');
        assert.equal(received?.headers['content-length'], String(body.length));
        assert.deepEqual(received?.body, body);
      });
    }

    it('counts a 204 without a body as success', async () => {
      const target = await answering(204);
      const result = await caller().call(callbackRequest(target.url()));
      assert.deepEqual(
        {
          ok: result.ok,
          status: result.status,
          error: result.error,
          snippet: result.responseSnippet,
        },
        { ok: true, status: 204, error: null, snippet: '' },
      );
    });
  });

  describe('how a response is judged', () => {
    it('fails a 500 with "HTTP 500" and keeps the body as the snippet', async () => {
      const target = await answering(500, 'database down');
      const result = await caller().call(callbackRequest(target.url()));
      assert.deepEqual(result, {
        ok: false,
        status: 500,
        durationMs: result.durationMs,
        error: 'HTTP 500',
        retryAfterMs: null,
        gone: false,
        responseSnippet: 'database down',
      });
    });

    it('marks a 410 as gone', async () => {
      const target = await answering(410);
      const result = await caller().call(callbackRequest(target.url()));
      assert.equal(result.ok, false);
      assert.equal(result.gone, true);
      assert.equal(result.status, 410);
      assert.equal(result.error, 'HTTP 410');
    });

    for (const status of [429, 503]) {
      it(`reads Retry-After in seconds on a ${status}`, async () => {
        const target = await answering(status, '', { 'retry-after': '3' });
        const result = await caller().call(callbackRequest(target.url()));
        assert.equal(result.ok, false);
        assert.equal(result.error, `HTTP ${status}`);
        assert.equal(result.retryAfterMs, 3000);
      });
    }

    it('reads an HTTP-date Retry-After against the injected clock', async () => {
      const nowMs = Date.UTC(2030, 0, 2, 3, 4, 5);
      const target = await answering(503, '', {
        'retry-after': new Date(nowMs + 120_000).toUTCString(),
      });
      const result = await caller({ now: () => nowMs }).call(callbackRequest(target.url()));
      assert.equal(result.retryAfterMs, 120_000);
    });

    it('ignores Retry-After on other statuses', async () => {
      const target = await answering(500, '', { 'retry-after': '3' });
      const result = await caller().call(callbackRequest(target.url()));
      assert.equal(result.retryAfterMs, null);
    });

    it('fails a 302 and does not follow it', async () => {
      const redirectTarget = await answering(200, 'ok');
      const target = await answering(302, '', { location: redirectTarget.url('/elsewhere') });
      const result = await caller().call(callbackRequest(target.url()));
      assert.equal(result.ok, false);
      assert.equal(result.status, 302);
      assert.equal(result.error, 'HTTP 302 (redirects are not followed)');
      assert.equal(target.requests.length, 1);
      assert.equal(redirectTarget.requests.length, 0);
      assert.equal(redirectTarget.connections, 0);
    });

    it('with expectBody, passes on the trimmed body and fails on another', async () => {
      const answers = ['ok\n', 'nope'];
      const target = await receiver((_request, response) => response.end(answers.shift()));
      const made = caller();
      const passed = await made.call(callbackRequest(target.url(), { expectBody: 'ok' }));
      const failed = await made.call(callbackRequest(target.url(), { expectBody: 'ok' }));
      assert.equal(passed.ok, true, passed.error ?? '');
      assert.equal(passed.error, null);
      assert.equal(failed.ok, false);
      assert.equal(failed.status, 200);
      assert.equal(failed.error, 'expected body "ok", got "nope"');
    });

    it('reads at most 64 KiB of a large response and keeps a 1 KiB snippet', async () => {
      const large = 'x'.repeat(1024 * 1024);
      const target = await answering(200, large);
      const result = await caller().call(callbackRequest(target.url()));
      assert.equal(result.ok, true, result.error ?? '');
      assert.equal(result.responseSnippet, 'x'.repeat(1024));
    });

    it('does not cut a UTF-8 character in half in the snippet', async () => {
      // 1023 ASCII bytes, then a 2-byte character across the 1024-byte edge.
      const target = await answering(200, `${'a'.repeat(1023)}é and more`);
      const result = await caller().call(callbackRequest(target.url()));
      assert.equal(result.responseSnippet, 'a'.repeat(1023));
    });
  });

  describe('failures without a response', () => {
    it('reports a refused connection clearly', async () => {
      const port = await closedPort();
      const result = await caller().call(callbackRequest(`http://127.0.0.1:${port}/hook`));
      assert.equal(result.ok, false);
      assert.equal(result.status, null);
      assert.equal(result.error, `connection refused by 127.0.0.1:${port} (ECONNREFUSED)`);
      assert.equal(result.responseSnippet, null);
    });

    it('refuses a URL that is not http or https', async () => {
      const result = await caller().call(callbackRequest('ftp://127.0.0.1/hook'));
      assert.equal(result.ok, false);
      assert.equal(result.error, 'ftp: URLs cannot be called; use http or https');
    });

    it('fails a call whose request undici rejects instead of throwing', async () => {
      const target = await answering(200);
      const result = await caller().call(
        callbackRequest(target.url(), { headers: { 'transfer-encoding': 'chunked' } }),
      );
      assert.equal(result.ok, false);
      assert.match(result.error ?? '', /invalid/);
      assert.equal(target.requests.length, 0);
    });
  });

  describe('timeouts', () => {
    it('times out a receiver that never answers, without delaying calls to other hosts', async () => {
      const hanging = await receiver(() => undefined);
      const prompt = await answering(200, 'ok');
      const made = caller();
      const events: string[] = [];
      const timeoutMs = 1500;

      const hung = made.call(callbackRequest(hanging.url(), { timeoutMs })).then((result) => {
        events.push('hanging call ended');
        return result;
      });
      await hanging.waitForRequests(1);
      const prompts = await Promise.all(
        [1, 2, 3].map(async () => {
          const result = await made.call(callbackRequest(prompt.url()));
          events.push('prompt call ended');
          return result;
        }),
      );
      const hungResult = await hung;

      assert.deepEqual(events, [
        'prompt call ended',
        'prompt call ended',
        'prompt call ended',
        'hanging call ended',
      ]);
      assert.ok(prompts.every((result) => result.ok));
      assert.equal(hungResult.ok, false);
      assert.equal(hungResult.status, null);
      assert.equal(hungResult.error, `timed out after ${timeoutMs} ms`);
      assert.ok(hungResult.durationMs >= timeoutMs, `durationMs ${hungResult.durationMs}`);
    });

    it('times out a receiver that sends headers and then stalls in the body', async () => {
      const stalling = await receiver((_request, response) => {
        response.writeHead(200, { 'content-length': '100' });
        response.write('partial');
      });
      const result = await caller().call(callbackRequest(stalling.url(), { timeoutMs: 800 }));
      assert.equal(result.ok, false);
      assert.equal(result.error, 'timed out after 800 ms');
      assert.ok(result.durationMs >= 800, `durationMs ${result.durationMs}`);
    });
  });

  describe('bounds and pooling', () => {
    it('keeps at most maxInFlightPerHost requests at a receiver and completes the rest later', async () => {
      const held: http.ServerResponse[] = [];
      let releasing = false;
      let atReceiver = 0;
      let mostAtReceiver = 0;
      const answer = (response: http.ServerResponse): void => {
        atReceiver -= 1;
        response.end('ok');
      };
      const target = await receiver((_request, response) => {
        atReceiver += 1;
        mostAtReceiver = Math.max(mostAtReceiver, atReceiver);
        if (releasing) answer(response);
        else held.push(response);
      });
      const made = caller({ maxInFlightPerHost: 2, maxQueuedPerHost: 3 });

      const calls = Array.from({ length: 5 }, () => made.call(callbackRequest(target.url())));
      await target.waitForRequests(2);
      // Two under way and three queued fill the queue: one more fails at once, which shows the
      // other three are waiting in the caller, not on their way to the receiver.
      const overflow = await made.call(callbackRequest(target.url()));
      assert.equal(overflow.ok, false);
      assert.equal(overflow.status, null);
      assert.equal(overflow.error, `too many callbacks queued for ${target.host}`);
      assert.equal(atReceiver, 2);

      releasing = true;
      for (const response of held.splice(0)) answer(response);
      const results: HttpCallResult[] = await Promise.all(calls);

      assert.ok(results.every((result) => result.ok));
      assert.equal(target.requests.length, 5);
      assert.equal(mostAtReceiver, 2);
    });

    it('fails a call that waits its whole timeout for a free slot', async () => {
      const hanging = await receiver(() => undefined);
      const made = caller({ maxInFlightPerHost: 1 });
      const first = made.call(callbackRequest(hanging.url(), { timeoutMs: 3000 }));
      await hanging.waitForRequests(1);
      const queued = await made.call(callbackRequest(hanging.url(), { timeoutMs: 300 }));
      assert.equal(queued.ok, false);
      assert.equal(
        queued.error,
        `waited more than 300 ms for a free connection to ${hanging.host}`,
      );
      assert.equal(hanging.requests.length, 1);
      await made.stop();
      assert.equal((await first).error, 'the callback caller stopped (the node is shutting down)');
    });

    it('bounds calls per app, not across apps', async () => {
      const held: http.ServerResponse[] = [];
      const target = await receiver((_request, response) => held.push(response));
      const other = await answering(200, 'ok');
      const made = caller({ maxInFlightPerApp: 1 });
      const first = made.call(callbackRequest(target.url(), { app: 'shop' }));
      await target.waitForRequests(1);
      const otherApp = await made.call(callbackRequest(other.url(), { app: 'billing' }));
      const sameApp = await made.call(
        callbackRequest(other.url(), { app: 'shop', timeoutMs: 300 }),
      );
      assert.equal(otherApp.ok, true, otherApp.error ?? '');
      assert.equal(sameApp.ok, false);
      assert.equal(
        sameApp.error,
        'app shop already has 1 callbacks under way, and none ended within the timeout',
      );
      for (const response of held.splice(0)) response.end('ok');
      assert.equal((await first).ok, true);
    });

    it('reuses one kept-alive connection for sequential calls', async () => {
      const target = await answering(200, 'ok');
      const made = caller();
      for (let n = 0; n < 5; n += 1) {
        const result = await made.call(callbackRequest(target.url()));
        assert.equal(result.ok, true, result.error ?? '');
      }
      assert.equal(target.requests.length, 5);
      assert.equal(target.connections, 1);
    });
  });

  describe('stop', () => {
    it('aborts calls under way, is idempotent, and fails calls made afterwards', async () => {
      const hanging = await receiver(() => undefined);
      const made = caller();
      const underway = made.call(callbackRequest(hanging.url(), { timeoutMs: 30_000 }));
      await hanging.waitForRequests(1);
      await Promise.all([made.stop(), made.stop()]);
      const aborted = await underway;
      const after = await made.call(callbackRequest(hanging.url()));
      assert.equal(aborted.ok, false);
      assert.equal(aborted.error, 'the callback caller stopped (the node is shutting down)');
      assert.equal(after.error, 'the callback caller stopped (the node is shutting down)');
      assert.equal(hanging.requests.length, 1);
    });
  });
});
