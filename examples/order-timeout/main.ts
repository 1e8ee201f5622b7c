/**
 * Order payment timeouts with Hourglass: each new order gets a "payment timeout" message due a
 * few seconds later; paying the order cancels it; a Kafka consumer reacts to the timeouts that
 * fire (here: it would cancel the unpaid order).
 *
 *   npm start                                   # local cluster, in another terminal
 *   npx tsx examples/order-timeout/main.ts      # exits 0 once both unpaid orders timed out
 *
 * `run(options)` is exported so the integration test (libs/client/test/integration/example.test.ts)
 * can point it at a test node and topic.
 */
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import type { Delivery, Endpoint } from '@hourglass/client';
import { HourglassClient, HourglassClientError, handleDeliveries } from '@hourglass/client';

export interface OrderTimeoutOptions {
  /** @default { http: 'http://127.0.0.1:8081' } (the first node of `npm start`) */
  endpoint: Endpoint;
  /** @default 'demo-token' */
  token: string;
  /** @default 'demo.events' */
  topic: string;
  /** @default ['127.0.0.1:59092'] */
  brokers: string[];
  /** Orders created. @default 5 */
  orders: number;
  /** Of those, how many get paid in time. @default 3 */
  paid: number;
  /** How long an order waits for its payment. @default 3000 */
  paymentTimeoutMs: number;
  /** Give up (and report failure) after this long. @default 30000 */
  deadlineMs: number;
  /** @default console.log */
  log: (line: string) => void;
}

export interface OrderTimeoutSummary {
  /** True when exactly the unpaid orders timed out, before the deadline. */
  ok: boolean;
  orders: string[];
  paid: string[];
  timedOut: string[];
  /** Timeouts that fired for orders that were paid: must stay empty. */
  wronglyTimedOut: string[];
  /** Redeliveries dropped by the consumer's dedupe (Hourglass delivers at least once). */
  duplicatesDropped: number;
}

interface PaymentTimeout {
  type: 'payment-timeout';
  runId: string;
  orderId: string;
}

const DEFAULTS: OrderTimeoutOptions = {
  endpoint: { http: 'http://127.0.0.1:8081' },
  token: 'demo-token',
  topic: 'demo.events',
  brokers: ['127.0.0.1:59092'],
  orders: 5,
  paid: 3,
  paymentTimeoutMs: 3000,
  deadlineMs: 30_000,
  log: (line) => console.log(line),
};

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The timeout's id is derived from the order, so scheduling it twice (e.g. after a crash) is harmless. */
const timeoutId = (orderId: string): string => `payment-timeout:${orderId}`;

export async function run(
  overrides: Partial<OrderTimeoutOptions> = {},
): Promise<OrderTimeoutSummary> {
  const options: OrderTimeoutOptions = { ...DEFAULTS, ...overrides };
  const { log } = options;
  const runId = randomBytes(4).toString('hex');
  const started = Date.now();
  const elapsed = (): string => `+${((Date.now() - started) / 1000).toFixed(2)}s`;

  const orders = Array.from({ length: options.orders }, (_, i) => `order-${runId}-${i + 1}`);
  const paid = orders.slice(0, options.paid);
  const unpaid = new Set(orders.slice(options.paid));
  const timedOut: string[] = [];
  const wronglyTimedOut: string[] = [];
  let duplicatesDropped = 0;
  let allTimedOut!: () => void;
  const done = new Promise<void>((resolve) => (allTimedOut = resolve));

  // 1. The consumer first, so no timeout fires before it listens.
  const kafka = new Kafka({
    clientId: 'order-timeout-example',
    brokers: options.brokers,
    logLevel: logLevel.NOTHING,
  });
  const consumer = kafka.consumer({
    groupId: `order-timeout-example-${runId}`,
    maxWaitTimeInMs: 250,
  });
  const client = new HourglassClient(options.endpoint, { token: options.token });
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [options.topic], fromBeginning: false });
    const joined = new Promise<void>((resolve) =>
      consumer.on(consumer.events.GROUP_JOIN, () => resolve()),
    );
    await consumer.run({
      eachMessage: handleDeliveries(
        (delivery: Delivery) => {
          const event = delivery.json<Partial<PaymentTimeout>>();
          if (event.type !== 'payment-timeout' || event.runId !== runId || !event.orderId) return; // another run's or app's record
          const lateMs = delivery.firedAt.getTime() - delivery.deliverAt.getTime();
          if (unpaid.has(event.orderId)) {
            log(
              `${elapsed()} timeout  ${event.orderId}: still unpaid, cancelling the order (fired ${lateMs} ms after due)`,
            );
            timedOut.push(event.orderId);
            if (timedOut.length === unpaid.size) allTimedOut();
          } else {
            log(`${elapsed()} ERROR    ${event.orderId} was paid but its timeout fired`);
            wronglyTimedOut.push(event.orderId);
          }
        },
        {
          dedupe: true,
          onDuplicate: (delivery) => {
            duplicatesDropped++;
            log(`${elapsed()} dropped a redelivery of ${delivery.id}`);
          },
        },
      ),
    });
    await joined;
    log(`${elapsed()} consumer listening on ${options.topic}`);

    // 2. Orders come in; each gets a payment timeout.
    for (const orderId of orders) {
      const { message } = await client.schedule({
        id: timeoutId(orderId),
        topic: options.topic,
        key: orderId,
        payload: { type: 'payment-timeout', runId, orderId } satisfies PaymentTimeout,
        delayMs: options.paymentTimeoutMs,
      });
      log(`${elapsed()} created  ${orderId}: payment due by ${message.deliverAt.toISOString()}`);
    }

    // 3. Some get paid in time, which cancels their timeout.
    await sleep(Math.min(1000, options.paymentTimeoutMs / 3));
    for (const orderId of paid) {
      try {
        await client.cancel(timeoutId(orderId));
        log(`${elapsed()} paid     ${orderId}: timeout cancelled`);
      } catch (error) {
        // Paid too late: the timeout fired (or is firing) and the consumer handles the order.
        if (error instanceof HourglassClientError && error.code === 'already_delivered')
          log(`${elapsed()} paid     ${orderId} too late`);
        else throw error;
      }
    }

    // 4. Wait for the unpaid orders' timeouts.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>(
      (resolve) =>
        (timer = setTimeout(
          () => resolve('deadline'),
          options.deadlineMs - (Date.now() - started),
        )),
    );
    const outcome = await Promise.race([done.then(() => 'done' as const), deadline]);
    clearTimeout(timer);
    // The paid orders' timeouts were due when the unpaid ones fired; confirm they never will.
    for (const orderId of paid) {
      const state = (await client.get(timeoutId(orderId))).state;
      if (state !== 'cancelled') wronglyTimedOut.push(orderId);
    }
    const ok = outcome === 'done' && wronglyTimedOut.length === 0;
    log(
      ok
        ? `${elapsed()} done: ${timedOut.length} unpaid order(s) timed out, ${paid.length} paid order(s) did not`
        : `${elapsed()} FAILED: timed out ${timedOut.length} of ${unpaid.size} unpaid order(s)${wronglyTimedOut.length ? `; paid but timed out: ${wronglyTimedOut.join(', ')}` : ''}`,
    );
    return { ok, orders, paid, timedOut, wronglyTimedOut, duplicatesDropped };
  } finally {
    client.close();
    await consumer.disconnect();
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
