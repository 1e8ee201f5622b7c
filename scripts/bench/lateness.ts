/**
 * Lateness of one node: N messages with due times spread evenly over S seconds, scheduled ahead
 * through the HTTP batch API, received by a real kafkajs consumer. Lateness = receive time minus
 * deliverAt. Needs the local services (`scripts/services up`).
 *
 *   node --require tsx/cjs scripts/bench/lateness.ts [--messages 10000] [--seconds 60]
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { collectKafka, createTestDatabase, createTopics, randomTopicName, serviceUrls } from '@hourglass/testkit';
import { api, startInProcess, testConfig } from '../../apps/node/test/support/harness';

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { messages: { type: 'string', default: '10000' }, seconds: { type: 'string', default: '60' } } });
  const total = Number(values.messages);
  const seconds = Number(values.seconds);
  const urls = serviceUrls();
  const db = await createTestDatabase();
  const topic = randomTopicName('lateness');
  await createTopics(urls.kafkaBrokers, [topic], 4);
  const collector = await collectKafka(urls.kafkaBrokers, topic);
  const token = `bench-${randomUUID()}`;
  const node = await startInProcess(
    testConfig({ postgres: { url: db.connectionString }, kafka: { brokers: urls.kafkaBrokers, createTopics: false }, apps: [{ name: 'bench', token, topics: [topic] }] }),
  );
  try {
    const start = Date.now() + 5000;
    const due = new Map<string, number>();
    for (let offset = 0; offset < total; offset += 1000) {
      const messages = [];
      for (let i = offset; i < Math.min(total, offset + 1000); i++) {
        const deliverAt = start + Math.floor((i * seconds * 1000) / total);
        const id = `m-${i}`;
        due.set(id, deliverAt);
        messages.push({ id, topic, payload: { i }, deliverAt });
      }
      const response = await api(node.httpUrl, 'POST', '/v1/messages/batch', token, { messages });
      if (response.status !== 200) throw new Error(`batch failed: ${response.status} ${JSON.stringify(response.body)}`);
    }
    process.stderr.write(`scheduled ${total} messages due over ${seconds} s from ${new Date(start).toISOString()}\n`);
    await collector.waitFor(total, (seconds + 60) * 1000);
    const lateness = collector.records
      .map((record) => record.receivedAtMs - (due.get(record.headers['hourglass-id'] ?? '') ?? Number.NaN))
      .sort((a, b) => a - b);
    const early = lateness.filter((ms) => ms < 0).length;
    const ids = new Set(collector.records.map((record) => record.headers['hourglass-id']));
    console.log(
      JSON.stringify({
        messages: total,
        seconds,
        received: collector.records.length,
        distinct: ids.size,
        early,
        p50Ms: percentile(lateness, 50),
        p99Ms: percentile(lateness, 99),
        maxMs: lateness[lateness.length - 1],
      }),
    );
  } finally {
    await node.stop();
    await collector.stop();
    await db.drop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
