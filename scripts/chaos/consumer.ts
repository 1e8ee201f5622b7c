/**
 * Records every record on the run's topic, from its beginning: its `hourglass-id`, its
 * `hourglass-deliver-at`, the broker's append time (the topic uses LogAppendTime), the time
 * this process received it, and the version its payload names (a rescheduled message's `v`).
 *
 * A record is identified by partition and offset, so re-reading one after a consumer restart or a
 * rebalance (uncommitted offsets are read again) is not mistaken for a duplicate delivery: only
 * the same `hourglass-id` at two offsets is one.
 *
 * kafkajs restarts a consumer that crashed on a retriable error by itself; one that crashed for
 * good is replaced by a new consumer in the same group (at most `MAX_RESTARTS` times).
 */
import type { Consumer } from 'kafkajs';
import { bounded, errorText, log } from './common';
import { kafka } from './services';

const MAX_RESTARTS = 20;

export interface Receipt {
  receivedAt: number;
  /** The broker's append time (record timestamp of a LogAppendTime topic). */
  appendedAt: number;
  /** `hourglass-deliver-at`, epoch ms. */
  deliverAt: number;
  partition: number;
  offset: string;
  /** The payload's `v` (2 for the moved version of a rescheduled message), 1 when it has none. */
  version: number;
}

/** The `v` of a record's JSON payload; 1 without one (the load's first version carries none). */
function versionOf(value: Buffer | null): number {
  if (!value) return 1;
  try {
    const v = (JSON.parse(value.toString()) as { v?: unknown } | null)?.v;
    return typeof v === 'number' ? v : 1;
  } catch {
    return 1;
  }
}

export class Recorder {
  readonly receipts = new Map<string, Receipt[]>();
  /** Records without an `hourglass-id` header. */
  anonymous = 0;
  received = 0;
  private readonly seen = new Set<string>();
  private readonly consumers: Consumer[] = [];
  private restarts = 0;
  private stopping = false;
  private readonly groupId: string;

  constructor(
    private readonly brokers: string[],
    private readonly topic: string,
    runId: string,
  ) {
    this.groupId = `chaos-${runId}`;
  }

  /** Resolves once the consumer has joined its group and has partitions of the topic. */
  async start(timeoutMs: number): Promise<void> {
    await bounded(this.run(), timeoutMs, 'joining the Kafka consumer group');
  }

  private async run(): Promise<void> {
    const consumer = kafka(this.brokers, 'hourglass-chaos-consumer').consumer({
      groupId: this.groupId,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: 100,
      minBytes: 1,
      // The broker's minimum (group.min.session.timeout.ms): after a Kafka restart the group
      // waits this long for the member that went away before it lets the new one in.
      sessionTimeout: 6_000,
      rebalanceTimeout: 6_000,
      heartbeatInterval: 500,
      retry: { retries: 12, initialRetryTime: 100, maxRetryTime: 1_000 },
    });
    this.consumers.push(consumer);
    const joined = new Promise<void>((resolve) => {
      consumer.on(consumer.events.GROUP_JOIN, (event) => {
        if ((event.payload.memberAssignment[this.topic]?.length ?? 0) > 0) resolve();
      });
    });
    consumer.on(consumer.events.CRASH, (event) => {
      if (event.payload.restart || this.stopping) return;
      log(`Kafka consumer crashed (${event.payload.error.message}); starting a new one`);
      this.restart();
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [this.topic], fromBeginning: true });
    await consumer.run({
      partitionsConsumedConcurrently: 4,
      eachBatch: ({ batch }) => {
        const receivedAt = Date.now();
        for (const message of batch.messages) {
          const key = `${batch.partition}:${message.offset}`;
          if (this.seen.has(key)) continue;
          this.seen.add(key);
          this.received++;
          const headers = message.headers ?? {};
          const id = headers['hourglass-id']?.toString();
          if (!id) {
            this.anonymous++;
            continue;
          }
          const receipt: Receipt = {
            receivedAt,
            appendedAt: Number(message.timestamp),
            deliverAt: Number(headers['hourglass-deliver-at']?.toString() ?? 'NaN'),
            partition: batch.partition,
            offset: message.offset,
            version: versionOf(message.value),
          };
          const list = this.receipts.get(id);
          if (list) list.push(receipt);
          else this.receipts.set(id, [receipt]);
        }
        return Promise.resolve();
      },
    });
    await joined;
  }

  private restart(): void {
    if (this.restarts++ >= MAX_RESTARTS) {
      log(`the Kafka consumer failed ${MAX_RESTARTS} times; giving up on it`);
      return;
    }
    setTimeout(() => {
      if (this.stopping) return;
      this.run().catch((error: unknown) => {
        log(`could not restart the Kafka consumer: ${errorText(error)}`);
        this.restart();
      });
    }, 1_000);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.consumers.map((consumer) =>
        bounded(consumer.disconnect(), 10_000, 'stopping the Kafka consumer').catch(
          (error: unknown) => log(errorText(error)),
        ),
      ),
    );
  }
}
