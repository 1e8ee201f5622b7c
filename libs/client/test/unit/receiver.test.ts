/**
 * CallbackReceiver over real HTTP (Node's http and express on 127.0.0.1, called with fetch):
 * requests signed the way the server signs them (@hourglass/core's webhookHeaders).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { RequestListener, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { newSigningSecret, webhookHeaders } from '@hourglass/core';
import express from 'express';
import type { CallbackMessage, Refusal } from '../../src';
import { CallbackReceiver, VerificationError } from '../../src';

const SECRET = newSigningSecret(randomBytes);
const OLD_SECRET = newSigningSecret(randomBytes);
const NOW_MS = 1_900_000_000_000;
const NOW_S = NOW_MS / 1000;

interface SignOptions {
  secrets?: string[];
  id?: string;
  timestamp?: number;
  name?: string | null;
  attempt?: number;
  extra?: Record<string, string>;
}

/** The headers Hourglass sends with a callback body (docs/callbacks.md, "The request"). */
function callbackHeaders(body: string, options: SignOptions = {}): Record<string, string> {
  const id = options.id ?? 'order-42-timeout';
  const name = options.name === undefined ? 'order.timeout' : options.name;
  return {
    'content-type': 'application/json',
    'x-trace': 'abc',
    'hourglass-id': id,
    'hourglass-app': 'shop',
    'hourglass-deliver-at': '2030-03-17T17:46:40.000Z',
    'hourglass-attempt': String(options.attempt ?? 1),
    ...(name === null ? {} : { 'hourglass-callback-name': name }),
    ...options.extra,
    ...webhookHeaders(options.secrets ?? [SECRET], id, options.timestamp ?? NOW_S, body),
  };
}

async function listen(listener: RequestListener | express.Express): Promise<{
  url: string;
  close(): Promise<void>;
}> {
  const server: Server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/hourglass`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

async function post(
  url: string,
  body: string,
  headers: Record<string, string>,
  method = 'POST',
): Promise<{ status: number; text: string }> {
  const response = await fetch(url, { method, headers, body: method === 'GET' ? undefined : body });
  return { status: response.status, text: await response.text() };
}

describe('CallbackReceiver', () => {
  const BODY = JSON.stringify({ order: 42 });
  let received: CallbackMessage[];
  let refusals: Refusal[];
  let errors: unknown[];
  let receiver: CallbackReceiver;
  let server: { url: string; close(): Promise<void> };

  function newReceiver(secret: string | string[] = SECRET): CallbackReceiver {
    return new CallbackReceiver({
      secret,
      now: () => NOW_MS,
      onRefused: (refusal) => refusals.push(refusal),
      onError: (error) => errors.push(error),
    })
      .on('order.timeout', (message) => {
        received.push(message);
      })
      .on('order.fail', () => Promise.reject(new Error('the order service is down')));
  }

  beforeEach(async () => {
    received = [];
    refusals = [];
    errors = [];
    receiver = newReceiver();
    server = await listen(receiver.handler);
  });

  afterEach(async () => {
    await server.close();
  });

  describe('on plain node http', () => {
    it('runs the handler for the name with the parsed message and answers 200 ok', async () => {
      const answer = await post(server.url, BODY, callbackHeaders(BODY, { attempt: 3 }));
      assert.deepEqual(answer, { status: 200, text: 'ok' });
      assert.equal(received.length, 1);
      const message = received[0]!;
      assert.equal(message.id, 'order-42-timeout');
      assert.equal(message.webhookId, 'order-42-timeout');
      assert.equal(message.app, 'shop');
      assert.equal(message.name, 'order.timeout');
      assert.equal(message.deliverAt.toISOString(), '2030-03-17T17:46:40.000Z');
      assert.equal(message.attempt, 3);
      assert.equal(message.timestamp.getTime(), NOW_MS);
      assert.equal(message.contentType, 'application/json');
      assert.equal(message.headers['x-trace'], 'abc');
      assert.deepEqual(message.body, Buffer.from(BODY));
      assert.deepEqual(message.json<{ order: number }>(), { order: 42 });
      assert.deepEqual(refusals, []);
    });

    it('accepts PUT, the other method a callback may use', async () => {
      const answer = await post(server.url, BODY, callbackHeaders(BODY), 'PUT');
      assert.deepEqual(answer, { status: 200, text: 'ok' });
      assert.equal(received.length, 1);
    });

    it('answers 401 bad_signature to a tampered body, without running the handler', async () => {
      const answer = await post(server.url, '{"order":43}', callbackHeaders(BODY));
      assert.equal(answer.status, 401);
      assert.match(answer.text, /^bad_signature: /);
      assert.deepEqual(received, []);
      assert.deepEqual(
        refusals.map((r) => [r.code, r.status]),
        [['bad_signature', 401]],
      );
    });

    it('answers 401 bad_signature to a message signed with another secret', async () => {
      const answer = await post(server.url, BODY, callbackHeaders(BODY, { secrets: [OLD_SECRET] }));
      assert.equal(answer.status, 401);
      assert.match(answer.text, /^bad_signature: /);
      assert.deepEqual(received, []);
    });

    it('answers 401 stale_timestamp outside the 5-minute tolerance, either way', async () => {
      for (const timestamp of [NOW_S - 301, NOW_S + 301]) {
        const answer = await post(server.url, BODY, callbackHeaders(BODY, { timestamp }));
        assert.equal(answer.status, 401);
        assert.match(answer.text, /^stale_timestamp: .*tolerance 300 s/);
      }
      assert.deepEqual(received, []);
    });

    it('accepts a timestamp 300 s off, the edge of the tolerance', async () => {
      for (const timestamp of [NOW_S - 300, NOW_S + 300]) {
        const answer = await post(server.url, BODY, callbackHeaders(BODY, { timestamp }));
        assert.equal(answer.status, 200, answer.text);
      }
      assert.equal(received.length, 2);
    });

    it('answers 401 missing_headers naming the missing Standard Webhooks header', async () => {
      const headers = callbackHeaders(BODY);
      delete headers['webhook-signature'];
      const answer = await post(server.url, BODY, headers);
      assert.deepEqual(answer, {
        status: 401,
        text: 'missing_headers: missing header webhook-signature',
      });
    });

    it('answers 401 to a signed request without the hourglass-* headers', async () => {
      const headers = callbackHeaders(BODY);
      delete headers['hourglass-app'];
      headers['hourglass-attempt'] = '0';
      const answer = await post(server.url, BODY, headers);
      assert.equal(answer.status, 401);
      assert.match(answer.text, /^missing_headers: .*hourglass-app, hourglass-attempt$/);
      assert.deepEqual(received, []);
    });

    it('answers 500 with the error message when the handler throws, and reports it', async () => {
      const answer = await post(
        server.url,
        BODY,
        callbackHeaders(BODY, { name: 'order.fail', attempt: 1 }),
      );
      assert.deepEqual(answer, { status: 500, text: 'the order service is down' });
      assert.equal(errors.length, 1);
      assert.equal((errors[0] as Error).message, 'the order service is down');
    });

    it('cuts the error message at 200 characters', async () => {
      receiver.on('order.long', () => {
        throw new Error('x'.repeat(1000));
      });
      const answer = await post(server.url, BODY, callbackHeaders(BODY, { name: 'order.long' }));
      assert.equal(answer.status, 500);
      assert.equal(answer.text, 'x'.repeat(200));
    });

    it('answers 404 for a name without a handler, and for callbacks without a name', async () => {
      const unknown = await post(server.url, BODY, callbackHeaders(BODY, { name: 'order.paid' }));
      assert.deepEqual(unknown, { status: 404, text: 'no handler for callback "order.paid"' });
      const unnamed = await post(server.url, BODY, callbackHeaders(BODY, { name: null }));
      assert.equal(unnamed.status, 404);
      assert.match(unnamed.text, /without a name/);
      assert.deepEqual(
        refusals.map((r) => r.code),
        ['no_handler', 'no_handler'],
      );
    });

    it('runs the otherwise() handler for unknown names and callbacks without one', async () => {
      const others: Array<string | undefined> = [];
      receiver.otherwise((message) => others.push(message.name));
      assert.equal(
        (await post(server.url, BODY, callbackHeaders(BODY, { name: 'x' }))).status,
        200,
      );
      assert.equal(
        (await post(server.url, BODY, callbackHeaders(BODY, { name: null }))).status,
        200,
      );
      assert.equal((await post(server.url, BODY, callbackHeaders(BODY))).status, 200);
      assert.deepEqual(others, ['x', undefined]);
      assert.equal(received.length, 1);
    });

    it('answers 405 to methods other than POST and PUT', async () => {
      const response = await fetch(server.url);
      assert.equal(response.status, 405);
      assert.equal(response.headers.get('allow'), 'POST, PUT');
      await response.text();
    });

    it('answers 413 to a body over maxBodyBytes, announced or not', async () => {
      const small = new CallbackReceiver({ secret: SECRET, now: () => NOW_MS, maxBodyBytes: 64 });
      const handled: number[] = [];
      small.on('order.timeout', (message) => handled.push(message.body.length));
      const smallServer = await listen(small.handler);
      try {
        const big = JSON.stringify({ pad: 'x'.repeat(100) });
        const announced = await post(smallServer.url, big, callbackHeaders(big));
        assert.equal(announced.status, 413);
        // Streamed in chunks without a content-length: refused once the limit is passed.
        const chunked = await fetch(smallServer.url, {
          method: 'POST',
          headers: callbackHeaders(big),
          body: new ReadableStream({
            start(controller) {
              controller.enqueue(Buffer.from(big.slice(0, 50)));
              controller.enqueue(Buffer.from(big.slice(50)));
              controller.close();
            },
          }),
          duplex: 'half',
        });
        assert.equal(chunked.status, 413);
        assert.match(await chunked.text(), /^body over 64 bytes/);
        const fits = JSON.stringify({ pad: 'x' });
        assert.deepEqual(await post(smallServer.url, fits, callbackHeaders(fits)), {
          status: 200,
          text: 'ok',
        });
        assert.deepEqual(handled, [fits.length]);
      } finally {
        await smallServer.close();
      }
    });
  });

  describe('during a secret rotation', () => {
    // Hourglass signs with the new and the old secret during the grace period.
    const rotated = (): Record<string, string> =>
      callbackHeaders(BODY, { secrets: [SECRET, OLD_SECRET] });

    for (const [label, secret] of [
      ['only the new secret', SECRET],
      ['only the old secret', OLD_SECRET],
      ['both secrets', [OLD_SECRET, SECRET]],
    ] as const) {
      it(`accepts a message signed with both when the receiver knows ${label}`, () => {
        const message = newReceiver(typeof secret === 'string' ? secret : [...secret]).verify(
          rotated(),
          BODY,
        );
        assert.equal(message.id, 'order-42-timeout');
      });
    }

    it('accepts a message signed with the new secret when the receiver knows both', async () => {
      const both = newReceiver([OLD_SECRET, SECRET]);
      const bothServer = await listen(both.handler);
      try {
        const answer = await post(bothServer.url, BODY, callbackHeaders(BODY));
        assert.deepEqual(answer, { status: 200, text: 'ok' });
      } finally {
        await bothServer.close();
      }
    });

    it('refuses it when the receiver knows neither', () => {
      assert.throws(
        () => newReceiver(newSigningSecret(randomBytes)).verify(rotated(), BODY),
        (error: unknown) => error instanceof VerificationError && error.code === 'bad_signature',
      );
    });
  });

  describe('verify()', () => {
    it('reads a fetch Headers object too', () => {
      const message = receiver.verify(new Headers(callbackHeaders(BODY)), Buffer.from(BODY));
      assert.equal(message.name, 'order.timeout');
      assert.equal(message.headers['x-trace'], 'abc');
    });

    it('reads headers spelled in any case from a plain object', () => {
      const headers = Object.fromEntries(
        Object.entries(callbackHeaders(BODY)).map(([name, value]) => [name.toUpperCase(), value]),
      );
      const message = receiver.verify(headers, BODY);
      assert.equal(message.app, 'shop');
      assert.equal(message.headers['hourglass-app'], 'shop');
    });

    it('throws typed errors', () => {
      const codes = [
        () => receiver.verify({}, BODY),
        () => receiver.verify(callbackHeaders(BODY), `${BODY} `),
        () => receiver.verify(callbackHeaders(BODY, { timestamp: NOW_S - 301 }), BODY),
      ].map((call) => {
        try {
          call();
          return 'accepted';
        } catch (error) {
          assert.ok(error instanceof VerificationError);
          return error.code;
        }
      });
      assert.deepEqual(codes, ['missing_headers', 'bad_signature', 'stale_timestamp']);
    });
  });

  describe('setup errors', () => {
    it('refuses a malformed secret, a bad handler name and a second handler for a name', () => {
      assert.throws(() => new CallbackReceiver({ secret: 'whsec_not base64!' }), TypeError);
      assert.throws(() => new CallbackReceiver({ secret: [] }), TypeError);
      assert.throws(() => receiver.on('has space', () => undefined), TypeError);
      assert.throws(() => receiver.on('order.timeout', () => undefined), /already registered/);
    });
  });

  describe('mounted in express', () => {
    async function expressServer(
      setup: (app: express.Express) => void,
    ): Promise<{ url: string; close(): Promise<void> }> {
      const app = express();
      setup(app);
      return listen(app);
    }

    it('reads the raw body itself when mounted without a body parser', async () => {
      const app = await expressServer((a) => a.post('/hooks/hourglass', receiver.express()));
      try {
        const answer = await post(app.url, BODY, callbackHeaders(BODY));
        assert.deepEqual(answer, { status: 200, text: 'ok' });
        assert.deepEqual(received[0]?.json(), { order: 42 });
      } finally {
        await app.close();
      }
    });

    it('works mounted before express.json(), which then serves the other routes', async () => {
      const app = await expressServer((a) => {
        a.post('/hooks/hourglass', receiver.express());
        a.use(express.json());
        a.post('/orders', (req, res) => {
          res.json({ echoed: req.body as unknown });
        });
      });
      try {
        assert.deepEqual(await post(app.url, BODY, callbackHeaders(BODY)), {
          status: 200,
          text: 'ok',
        });
        const orders = await post(app.url.replace('/hooks/hourglass', '/orders'), BODY, {
          'content-type': 'application/json',
        });
        assert.deepEqual(JSON.parse(orders.text), { echoed: { order: 42 } });
      } finally {
        await app.close();
      }
    });

    it('uses the Buffer left by express.raw()', async () => {
      const app = await expressServer((a) =>
        a.post('/hooks/hourglass', express.raw({ type: '*/*' }), receiver.express()),
      );
      try {
        assert.deepEqual(await post(app.url, BODY, callbackHeaders(BODY)), {
          status: 200,
          text: 'ok',
        });
        const tampered = await post(app.url, '{"order":1}', callbackHeaders(BODY));
        assert.equal(tampered.status, 401);
      } finally {
        await app.close();
      }
    });

    it('answers 500 explaining the mounting when express.json() parsed the body first', async () => {
      const app = await expressServer((a) => {
        a.use(express.json());
        a.post('/hooks/hourglass', receiver.express());
      });
      try {
        const answer = await post(app.url, BODY, callbackHeaders(BODY));
        assert.equal(answer.status, 500);
        assert.match(answer.text, /mount the receiver before body parsers/);
        assert.deepEqual(received, []);
        assert.deepEqual(
          refusals.map((r) => r.code),
          ['body_already_read'],
        );
      } finally {
        await app.close();
      }
    });
  });
});
