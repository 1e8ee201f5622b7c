/**
 * Debounce over hourglass.v1.Messages/Schedule against an in-process node on real Postgres and
 * Kafka (its own schema and topic): ten sequential trailing sends of one key give one Kafka record
 * with the last payload, ten leading ones one record with the first; `created` / `debounced` say
 * which request made the message; bad debounces and a debounce in a batch are refused with
 * INVALID_ARGUMENT and the HTTP detail paths. The semantics behind it are the service's
 * (apps/node/test/integration/debounce.test.ts covers them across nodes); this checks the gRPC
 * contract: the mapping, the absent due time, the answer's flag and the trailers.
 */
import assert from 'node:assert/strict';
import type { Client, ServiceClientConstructor, ServiceError } from '@grpc/grpc-js';
import { Metadata, credentials, loadPackageDefinition, status as GrpcStatus } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { MESSAGES_PROTO, PROTO_LOADER_OPTIONS, protoDir } from '@hourglass/grpc-api';
import type { KafkaCollector } from '@hourglass/testkit';
import {
  collectKafka,
  createTestDatabase,
  createTopics,
  deleteTopics,
  randomTopicName,
  serviceUrls,
} from '@hourglass/testkit';
import type { RunningNode } from '../../../../apps/node/src/node';
import { startInProcess, testConfig } from '../../../../apps/node/test/support/harness';

const TOKEN = 'grpc-debounce-token-0001';
const SENDS = 10;

interface MessagePb {
  id: string;
  state: string;
  deliverAt: string;
  version: number;
}
interface ScheduleResponsePb {
  created?: boolean;
  debounced?: boolean;
  message: MessagePb;
}
interface Outcome<T> {
  response?: T;
  error?: ServiceError;
  trailers: Record<string, string>;
}
type Unary = (
  request: unknown,
  metadata: Metadata,
  callback: (error: ServiceError | null, response?: unknown) => void,
) => void;

function call<T>(client: Client, method: string, request: unknown): Promise<Outcome<T>> {
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${TOKEN}`);
  const fn: Unary = (client as unknown as Record<string, Unary>)[method]!.bind(client);
  return new Promise((resolve) => {
    fn(request, metadata, (error, response) => {
      if (error) {
        const trailers: Record<string, string> = {};
        for (const [key, value] of Object.entries(error.metadata.getMap()))
          trailers[key] = String(value);
        resolve({ error, trailers });
      } else resolve({ response: response as T, trailers: {} });
    });
  });
}

/** The call's answer; fails the test with the status text when it was refused. */
async function ok<T>(client: Client, method: string, request: unknown): Promise<T> {
  const outcome = await call<T>(client, method, request);
  assert.equal(outcome.error, undefined, `${method}: ${outcome.error?.details}`);
  return outcome.response as T;
}

describe('gRPC debounce (hourglass.v1.Messages/Schedule with debounce)', function () {
  const urls = serviceUrls();
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let topic: string;
  let node: RunningNode;
  let messages: Client;
  let collector: KafkaCollector;
  const run = Date.now().toString(36);

  /** Records of one run, told apart by the payload's `run`. */
  const recordsOf = (label: string) =>
    collector.records.filter(
      (record) => (JSON.parse(record.value.toString('utf8')) as { run?: string }).run === label,
    );
  const waitForRun = (label: string) =>
    collector.waitForRecord(
      (record) => (JSON.parse(record.value.toString('utf8')) as { run?: string }).run === label,
      30_000,
    );

  /** SENDS sequential sends of one key; the answers in send order. */
  async function sendAll(label: string, debounce: Record<string, unknown>, due = {}) {
    const answers: ScheduleResponsePb[] = [];
    for (let index = 0; index < SENDS; index++)
      answers.push(
        await ok<ScheduleResponsePb>(messages, 'Schedule', {
          topic,
          payloadJson: JSON.stringify({ run: label, index }),
          debounce: { key: `cart-${label}`, ...debounce },
          ...due,
        }),
      );
    return answers;
  }

  /** A plain message due after `delayMs`: once it arrived, so did anything due before it. */
  async function sentinel(delayMs: number): Promise<void> {
    const label = `sentinel-${run}-${Math.random().toString(36).slice(2)}`;
    await ok(messages, 'Schedule', {
      topic,
      payloadJson: JSON.stringify({ run: label }),
      delayMs,
    });
    await waitForRun(label);
  }

  before(async () => {
    db = await createTestDatabase();
    topic = randomTopicName('grpc-debounce');
    await createTopics(urls.kafkaBrokers, [topic], 1);
    collector = await collectKafka(urls.kafkaBrokers, topic);
    node = await startInProcess(
      testConfig({
        postgres: { url: db.connectionString },
        kafka: { brokers: urls.kafkaBrokers, createTopics: false },
        grpc: { port: 0 },
        core: { loaderIntervalMs: 200 },
        apps: [{ name: 'rpc', token: TOKEN, topics: [topic] }],
      }),
    );
    const definition = loadSync(MESSAGES_PROTO, {
      ...PROTO_LOADER_OPTIONS,
      includeDirs: [protoDir()],
    });
    const root = loadPackageDefinition(definition) as unknown as {
      hourglass: { v1: { Messages: ServiceClientConstructor } };
    };
    messages = new root.hourglass.v1.Messages(node.grpcAddress, credentials.createInsecure());
  });

  after(async () => {
    messages?.close();
    await node?.stop();
    await collector?.stop();
    await deleteTopics(urls.kafkaBrokers, [topic]).catch(() => undefined);
    await db?.drop();
  });

  it('trailing, no due time: ten sends give one record, of the last payload, after the window', async () => {
    const label = `trailing-${run}`;
    const answers = await sendAll(label, { windowMs: 1500 });
    const [first, ...rest] = answers;
    assert.equal(first!.created, true);
    assert.equal(first!.debounced, false, 'the creating request says debounced = false');
    for (const answer of rest) {
      assert.equal(answer.created ?? false, false);
      assert.equal(answer.debounced, true);
      assert.equal(answer.message.id, first!.message.id, 'merged into the one message');
    }
    const last = answers[SENDS - 1]!.message;
    assert.equal(last.version, SENDS, 'each merge is a change of the message');
    assert.ok(Date.parse(last.deliverAt) >= Date.parse(first!.message.deliverAt));
    const record = await waitForRun(label);
    assert.deepEqual(JSON.parse(record.value.toString('utf8')), { run: label, index: SENDS - 1 });
    assert.equal(record.headers['hourglass-id'], first!.message.id);
    assert.ok(record.receivedAtMs >= Date.parse(last.deliverAt), 'not before the last window');
    await sentinel(1000);
    assert.equal(recordsOf(label).length, 1);
  });

  it('leading, with a due time: ten sends give one record, of the first payload', async () => {
    const label = `leading-${run}`;
    const answers = await sendAll(label, { windowMs: 60_000, mode: 'leading' }, { delayMs: 800 });
    const [first, ...rest] = answers;
    assert.equal(first!.created, true);
    assert.equal(first!.debounced, false);
    for (const answer of rest) {
      assert.equal(answer.debounced, true);
      assert.equal(answer.message.id, first!.message.id);
      assert.equal(answer.message.version, 1, 'nothing changed the first message');
    }
    const record = await waitForRun(label);
    assert.deepEqual(JSON.parse(record.value.toString('utf8')), { run: label, index: 0 });
    await sentinel(1000);
    assert.equal(recordsOf(label).length, 1);
  });

  it('answers a plain schedule without debounced', async () => {
    const plain = await ok<ScheduleResponsePb>(messages, 'Schedule', {
      topic,
      payloadJson: '1',
      delayMs: 3_600_000,
    });
    assert.equal(plain.created, true);
    assert.equal('debounced' in plain, false);
  });

  it('refuses a bad debounce with INVALID_ARGUMENT and the HTTP detail paths', async () => {
    const expectRefused = async (request: Record<string, unknown>, paths: string[]) => {
      const outcome = await call(messages, 'Schedule', {
        topic,
        payloadJson: '1',
        ...request,
      });
      assert.equal(outcome.error?.code, GrpcStatus.INVALID_ARGUMENT, JSON.stringify(request));
      assert.equal(outcome.trailers['hourglass-error-code'], 'invalid_request');
      const details = JSON.parse(outcome.trailers['hourglass-error-details']!) as Array<{
        path: string;
      }>;
      assert.deepEqual(
        details.map((d) => d.path),
        paths,
      );
      return outcome;
    };
    await expectRefused({ debounce: { key: 'k' } }, ['debounce/windowMs']);
    await expectRefused({ debounce: { windowMs: 1000, maxWaitMs: 10, mode: 'middle' } }, [
      'debounce/key',
      'debounce/maxWaitMs',
      'debounce/mode',
    ]);
    const due = await expectRefused({ delayMs: 1000, debounce: { key: 'k', windowMs: 1000 } }, [
      'delayMs',
    ]);
    assert.match(due.error!.details, /not with a trailing debounce/);
    await expectRefused({ deliverAtMs: Date.now() + 1000, debounce: { key: 'k', windowMs: 1 } }, [
      'deliverAt',
    ]);
    // Without debounce an absent due time is still refused, as over HTTP.
    const none = await call(messages, 'Schedule', { topic, payloadJson: '1' });
    assert.equal(none.error?.code, GrpcStatus.INVALID_ARGUMENT);
  });

  it('refuses debounce in a batch per item, with the item’s path', async () => {
    const answer = await ok<{
      results: Array<{
        message?: MessagePb;
        error?: { code: string; details: Array<{ path: string }> };
      }>;
    }>(messages, 'ScheduleBatch', {
      messages: [
        { topic, payloadJson: '1', delayMs: 3_600_000 },
        { topic, payloadJson: '2', debounce: { key: 'k', windowMs: 1000 } },
      ],
    });
    assert.ok(answer.results[0]!.message, 'the plain item is scheduled');
    assert.equal(answer.results[1]!.error?.code, 'invalid_request');
    assert.deepEqual(
      answer.results[1]!.error?.details.map((d) => d.path),
      ['messages/1/debounce'],
    );
  });
});
