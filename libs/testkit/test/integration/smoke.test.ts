/**
 * One smoke test per service that `scripts/services up` runs, each through the client the
 * project uses for it and isolated the testkit way. When one of these fails, the service (or
 * the testkit) is broken, not the code under test.
 */
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { Redis } from 'ioredis';
import pg from 'pg';
import {
  collectKafka,
  createTestDatabase,
  createTopics,
  deleteTopics,
  etcdPrefix,
  kafkaClient,
  randomTopicName,
  redisPrefix,
  serviceUrls,
} from '@hourglass/testkit';

const urls = serviceUrls();

describe('smoke: etcd (etcd3)', () => {
  const prefix = etcdPrefix();
  let etcd: Etcd3;

  before(() => {
    etcd = new Etcd3({ hosts: urls.etcd });
  });

  after(async () => {
    await etcd.delete().prefix(prefix);
    etcd.close();
  });

  it('etcd: grants a lease, puts a key on it, swaps it in a transaction, and revoking deletes it', async () => {
    const key = `${prefix}owner`;
    const lease = etcd.lease(30, { autoKeepAlive: false });
    const leaseId = await lease.grant();
    await lease.put(key).value('node-a');

    const swapped = await etcd
      .if(key, 'Value', '==', 'node-a')
      .then(etcd.put(key).value('node-b').lease(leaseId))
      .commit();
    assert.equal(swapped.succeeded, true);
    assert.equal(await etcd.get(key).string(), 'node-b');

    const stale = await etcd
      .if(key, 'Value', '==', 'node-a')
      .then(etcd.put(key).value('node-c').lease(leaseId))
      .commit();
    assert.equal(stale.succeeded, false, 'the compare must fail once the value changed');

    await lease.revoke();
    assert.equal(await etcd.get(key).string(), null, 'revoking the lease deletes its keys');
  });
});

describe('smoke: postgres (pg)', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let client: pg.Client;

  before(async () => {
    db = await createTestDatabase();
    client = new pg.Client({ connectionString: db.connectionString });
    await client.connect();
  });

  after(async () => {
    await client.end();
    await db.drop();
  });

  it('postgres: creates a table, inserts and selects in an isolated schema', async () => {
    await client.query('CREATE TABLE smoke (id int PRIMARY KEY, body text NOT NULL)');
    await client.query('INSERT INTO smoke (id, body) VALUES ($1, $2)', [1, 'hello']);
    const { rows } = await client.query<{ body: string }>(
      'SELECT body FROM smoke WHERE id = $1',
      [1],
    );
    assert.deepEqual(rows, [{ body: 'hello' }]);

    const where = await client.query<{ schema: string }>(
      "SELECT table_schema AS schema FROM information_schema.tables WHERE table_name = 'smoke'",
    );
    assert.deepEqual(
      where.rows.map((row) => row.schema),
      [db.schema],
      'the table lands in the test schema only',
    );
  });
});

describe('smoke: redis (ioredis)', () => {
  const prefix = redisPrefix();
  let redis: Redis;

  before(async () => {
    redis = new Redis(urls.redis, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
  });

  after(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  it('redis: sets and gets a key under a test prefix', async () => {
    const key = `${prefix}greeting`;
    assert.equal(await redis.set(key, 'hello', 'PX', 60_000), 'OK');
    assert.equal(await redis.get(key), 'hello');
    assert.equal(await redis.get(`${prefix}missing`), null);
  });
});

describe('smoke: kafka (kafkajs)', () => {
  const topic = randomTopicName('smoke');
  let collector: Awaited<ReturnType<typeof collectKafka>> | undefined;
  const producer = kafkaClient(urls.kafkaBrokers).producer();

  after(async () => {
    await collector?.stop();
    await producer.disconnect();
    await deleteTopics(urls.kafkaBrokers, [topic]);
  });

  it('kafka: creates a topic, produces a record, and collectKafka receives it', async () => {
    await createTopics(urls.kafkaBrokers, [topic]);
    collector = await collectKafka(urls.kafkaBrokers, topic);
    await producer.connect();

    const sentAt = Date.now();
    await producer.send({
      topic,
      acks: -1,
      messages: [{ key: 'k-1', value: 'hello', headers: { 'x-trace': 'trace-1' } }],
    });
    await collector.waitFor(1, 20_000);
    await collector.waitUntil((records) => records.some((r) => r.key === 'k-1'), 1_000);

    const [record, ...rest] = collector.records;
    assert.ok(record);
    assert.equal(rest.length, 0);
    assert.equal(record.topic, topic);
    assert.equal(record.key, 'k-1');
    assert.deepEqual(record.value, Buffer.from('hello'));
    assert.deepEqual(record.headers, { 'x-trace': 'trace-1' });
    assert.equal(record.offset, '0');
    assert.ok(record.receivedAtMs >= sentAt);
    assert.equal(await collector.waitForRecord((r) => r.headers['x-trace'] === 'trace-1'), record);
  });
});
