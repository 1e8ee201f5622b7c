/**
 * HTTP callbacks with Hourglass: messages scheduled with a `callback` are POSTed to a receiver at
 * their due time, signed with the app's secret; the SDK's CallbackReceiver verifies them and runs
 * the handler registered for each callback's `name`, like a local callback run later. A handler
 * that throws makes the receiver answer 500, and Hourglass retries by the message's `retry`.
 *
 *   npm start                                     # local cluster, in another terminal
 *   npx tsx examples/webhook-receiver/main.ts     # exits 0 once all three callbacks were handled
 *
 * `run(options)` is exported so the integration test
 * (libs/client/test/integration/receiver-example.test.ts) can point it at a test node.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CallbackMessage, Endpoint, MessageState, ScheduleMessage } from '@hourglass/client';
import { CallbackReceiver, HourglassClient } from '@hourglass/client';

/** One entry of `client.attempts(id)`. */
type Attempt = Awaited<ReturnType<HourglassClient['attempts']>>[number];

export interface WebhookReceiverOptions {
  /** @default { http: 'http://127.0.0.1:8081' } (the first node of `npm start`) */
  endpoint: Endpoint;
  /**
   * An app's token and signing secret. When either is missing, the run creates an app of its own
   * through the admin API (which shows both once) and deletes it at the end.
   * @default process.env.HOURGLASS_TOKEN and process.env.HOURGLASS_SIGNING_SECRET
   */
  token: string | undefined;
  secret: string | undefined;
  /** For creating that app. @default 'http://127.0.0.1:8081' */
  adminUrl: string;
  /** @default process.env.HOURGLASS_ADMIN_TOKEN or 'admin-token' (the development token) */
  adminToken: string;
  /**
   * Where the receiver listens, on a free port. Hourglass must be allowed to call it: loopback is
   * refused by the SSRF guard unless `callbacks.allowNetworks` opens it (`npm start` does).
   * @default '127.0.0.1'
   */
  host: string;
  /** Give up (and report failure) after this long. @default 30000 */
  deadlineMs: number;
  /** @default console.log */
  log: (line: string) => void;
}

export interface HandledCallback {
  name: string;
  id: string;
  /** The attempt that succeeded: 2 for the callback whose handler failed once. */
  attempt: number;
  /** How long after its due time the callback arrived (of the attempt that succeeded). */
  lateMs: number;
}

export interface WebhookReceiverSummary {
  /** True when all three callbacks were handled, and are `delivered`, before the deadline. */
  ok: boolean;
  handled: HandledCallback[];
  /** Handler failures (answered 500): exactly one, the first attempt of `order.charge`. */
  failures: number;
  /** Redeliveries dropped by webhook-id (Hourglass delivers at least once). */
  duplicatesDropped: number;
  /** Each message's state as the server reports it at the end. */
  states: Record<string, MessageState>;
  /** The attempt log of the `order.charge` message: a 500, then a 200. */
  chargeAttempts: Attempt[];
}

interface OrderEvent {
  runId: string;
  orderId: string;
}

const DEFAULTS: WebhookReceiverOptions = {
  endpoint: { http: 'http://127.0.0.1:8081' },
  token: process.env.HOURGLASS_TOKEN,
  secret: process.env.HOURGLASS_SIGNING_SECRET,
  adminUrl: 'http://127.0.0.1:8081',
  adminToken: process.env.HOURGLASS_ADMIN_TOKEN ?? 'admin-token',
  host: '127.0.0.1',
  deadlineMs: 30_000,
  log: (line) => console.log(line),
};

async function admin(
  options: WebhookReceiverOptions,
  method: string,
  path: string,
  body?: unknown,
): Promise<Record<string, unknown>> {
  const response = await fetch(`${options.adminUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${options.adminToken}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

export async function run(
  overrides: Partial<WebhookReceiverOptions> = {},
): Promise<WebhookReceiverSummary> {
  const options: WebhookReceiverOptions = { ...DEFAULTS, ...overrides };
  const { log } = options;
  const runId = randomBytes(4).toString('hex');
  const started = Date.now();
  const remainingMs = (): number => started + options.deadlineMs - Date.now();
  const elapsed = (): string => `+${((Date.now() - started) / 1000).toFixed(2)}s`;

  // 1. An app, for its token and signing secret.
  let { token, secret } = options;
  let ownApp: string | undefined;
  if (token === undefined || secret === undefined) {
    ownApp = `webhook-example-${runId}`;
    const created = await admin(options, 'POST', '/v1/admin/apps', { name: ownApp });
    token = String(created.token);
    secret = String(created.signingSecret);
    log(`${elapsed()} created app ${ownApp} (its signing secret is shown once, at creation)`);
  }

  // 2. The receiver: one handler per callback name. Hourglass delivers at least once, so each
  //    handler is idempotent; `webhookId` (the message id, stable across retries) tells repeats.
  const handled: HandledCallback[] = [];
  const seen = new Set<string>();
  let failures = 0;
  let duplicatesDropped = 0;
  let allHandled!: () => void;
  const done = new Promise<void>((resolve) => (allHandled = resolve));
  const once =
    (name: string, handler: (event: OrderEvent, message: CallbackMessage) => void) =>
    (message: CallbackMessage): void => {
      // webhook-id is the message id; with the name it also tells apart several HTTP targets of
      // one message sent to this receiver.
      const key = `${message.webhookId}/${name}`;
      if (seen.has(key)) {
        duplicatesDropped++;
        log(`${elapsed()} dropped a redelivery of ${message.webhookId}`);
        return; // answered 200: it was handled before
      }
      handler(message.json<OrderEvent>(), message);
      seen.add(key);
      const lateMs = Date.now() - message.deliverAt.getTime();
      handled.push({ name, id: message.id, attempt: message.attempt, lateMs });
      if (handled.length === 3) allHandled();
    };
  let chargeCalls = 0;
  const receiver = new CallbackReceiver({
    secret,
    onError: (error, message) => {
      failures++;
      log(`${elapsed()} ${message.name} attempt ${message.attempt} failed: ${String(error)}`);
    },
    onRefused: (refusal) =>
      log(`${elapsed()} refused a request: ${refusal.status} ${refusal.message}`),
  })
    .on(
      'order.timeout',
      once('order.timeout', (event, message) =>
        log(
          `${elapsed()} order.timeout ${event.orderId}: unpaid, cancelling it (attempt ${message.attempt})`,
        ),
      ),
    )
    .on(
      'order.remind',
      once('order.remind', (event) =>
        log(`${elapsed()} order.remind  ${event.orderId}: reminding the customer`),
      ),
    )
    .on(
      'order.charge',
      once('order.charge', (event, message) => {
        // The payment provider is down the first time: the receiver answers 500 and Hourglass
        // retries 500 ms later, by the message's retry policy.
        if (++chargeCalls === 1) throw new Error('payment provider unavailable (simulated)');
        log(`${elapsed()} order.charge  ${event.orderId}: charged (attempt ${message.attempt})`);
      }),
    );

  const server = createServer(receiver.handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, options.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${options.host}:${port}/hooks/hourglass`;
  log(`${elapsed()} receiver listening on ${url}`);

  const client = new HourglassClient(options.endpoint, { token });
  const ids = {
    timeout: `order-timeout:${runId}`,
    remind: `order-remind:${runId}`,
    charge: `order-charge:${runId}`,
  };
  try {
    // 3. Three callbacks. Ids derive from the business key, so scheduling twice is harmless.
    const schedule = async (
      id: string,
      name: string,
      delayMs: number,
      extra: Pick<ScheduleMessage, 'retry'> = {},
    ): Promise<void> => {
      const { message } = await client.schedule({
        id,
        payload: { runId, orderId: `order-${runId}` } satisfies OrderEvent,
        delayMs,
        // expectBody: the receiver answers "ok", so a 2xx from anything else (a proxy's page)
        // does not count as handled.
        callback: { url, name, expectBody: 'ok' },
        ...extra,
      });
      log(`${elapsed()} scheduled ${name} for ${message.deliverAt.toISOString()}`);
    };
    await schedule(ids.timeout, 'order.timeout', 1000);
    await schedule(ids.remind, 'order.remind', 2000);
    await schedule(ids.charge, 'order.charge', 1000, {
      retry: { strategy: 'fixed', initialDelayMs: 500, maxAttempts: 3, jitter: false },
    });

    // 4. Wait for the three handlers, then for the server to record the deliveries (it does so
    //    once the receiver's answer arrived, just after the handler returned).
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>(
      (resolve) => (timer = setTimeout(() => resolve('deadline'), remainingMs())),
    );
    const outcome = await Promise.race([done.then(() => 'done' as const), deadline]);
    clearTimeout(timer);
    const states: Record<string, MessageState> = {};
    for (const id of Object.values(ids)) {
      for (;;) {
        states[id] = (await client.get(id)).state;
        if (states[id] !== 'scheduled' || outcome !== 'done' || remainingMs() <= 0) break;
        await sleep(Math.min(50, remainingMs()));
      }
    }
    const chargeAttempts = await client.attempts(ids.charge);
    for (const attempt of chargeAttempts)
      log(
        `${elapsed()} order.charge attempt ${attempt.attempt}: ${attempt.status ?? attempt.error ?? '?'}${attempt.response ? ` "${attempt.response}"` : ''}`,
      );

    const ok =
      outcome === 'done' &&
      Object.values(states).every((state) => state === 'delivered') &&
      handled.find((h) => h.name === 'order.charge')?.attempt === 2;
    log(
      ok
        ? `${elapsed()} done: ${handled.length} callbacks handled, ${failures} failed attempt retried`
        : `${elapsed()} FAILED: handled ${handled.map((h) => h.name).join(', ') || 'nothing'}; states ${JSON.stringify(states)}`,
    );
    return { ok, handled, failures, duplicatesDropped, states, chargeAttempts };
  } finally {
    client.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (ownApp !== undefined)
      await admin(options, 'DELETE', `/v1/admin/apps/${ownApp}`).catch((error: unknown) =>
        log(`could not delete app ${ownApp}: ${String(error)}`),
      );
  }
}

if (require.main === module) {
  run().then(
    (summary) => process.exit(summary.ok ? 0 : 1),
    (error: unknown) => {
      console.error(error);
      process.exit(2);
    },
  );
}
