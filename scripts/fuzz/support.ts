/**
 * The parts of `npm run fuzz` (scripts/fuzz/run) that need Postgres, Kafka or Redis clients:
 *
 *   support.ts prepare STATE_FILE     a fresh Postgres schema, a Redis key prefix and a note of the
 *                                     Kafka topics that exist now; prints KEY=VALUE lines
 *   support.ts instrument STATE_FILE  once the node has migrated the schema: records every topic
 *                                     the node grants (so cleanup knows which topics it created)
 *   support.ts cleanup STATE_FILE     deletes the Kafka topics the run created, the Redis keys
 *                                     under its prefix and the schema
 *
 * The state file (JSON) carries what cleanup needs, so cleanup works even after a crash of the
 * run script. Service locations come from HOURGLASS_PG, HOURGLASS_KAFKA and HOURGLASS_REDIS.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { kafkaClient, randomId, serviceUrls } from '@hourglass/testkit';
import Redis from 'ioredis';
import pg from 'pg';

interface FuzzState {
  schema: string;
  /** The `hourglass` database URL, without the search path. */
  baseUrl: string;
  /** The URL the node uses: `search_path` set to the schema. */
  nodeUrl: string;
  redisPrefix: string;
  /** Kafka topics that existed before the run: cleanup never deletes those. */
  topicsBefore: string[];
  /** The topic the fuzz app is configured with (created by the node at start). */
  topic: string;
}

async function sql(url: string, text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}

async function listTopics(): Promise<string[]> {
  const admin = kafkaClient(serviceUrls().kafkaBrokers, 'hourglass-fuzz').admin();
  await admin.connect();
  try {
    return await admin.listTopics();
  } finally {
    await admin.disconnect();
  }
}

function readState(file: string): FuzzState {
  return JSON.parse(readFileSync(file, 'utf8')) as FuzzState;
}

async function prepare(file: string): Promise<void> {
  const urls = serviceUrls();
  const id = randomId();
  // [a-z0-9_] only: needs no quoting in SQL nor in the libpq `options` parameter.
  const schema = `fuzz_${id}`;
  await sql(urls.postgres, `CREATE SCHEMA ${schema}`);
  const separator = urls.postgres.includes('?') ? '&' : '?';
  const state: FuzzState = {
    schema,
    baseUrl: urls.postgres,
    nodeUrl: `${urls.postgres}${separator}options=${encodeURIComponent(`-c search_path=${schema}`)}`,
    redisPrefix: `fuzz:${id}:`,
    topicsBefore: await listTopics(),
    topic: `hourglass-fuzz-${Date.now()}-${id}`,
  };
  writeFileSync(file, `${JSON.stringify(state, null, 2)}\n`);
  process.stdout.write(
    [
      `FUZZ_SCHEMA=${state.schema}`,
      `FUZZ_PG_URL=${state.nodeUrl}`,
      `FUZZ_REDIS_PREFIX=${state.redisPrefix}`,
      `FUZZ_TOPIC=${state.topic}`,
      '',
    ].join('\n'),
  );
}

/**
 * A trigger on app_topics notes every granted topic in fuzz_topics. Grants are the one record of
 * the topics the node created in Kafka (POST /v1/admin/apps/{app}/topics creates, then grants),
 * and the fuzzer revokes grants and deletes apps as it goes, hence the copy.
 */
async function instrument(file: string): Promise<void> {
  const { schema, baseUrl } = readState(file);
  await sql(
    baseUrl,
    `CREATE TABLE ${schema}.fuzz_topics (topic text PRIMARY KEY);
     INSERT INTO ${schema}.fuzz_topics SELECT DISTINCT topic FROM ${schema}.app_topics ON CONFLICT DO NOTHING;
     CREATE FUNCTION ${schema}.fuzz_note_topic() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       INSERT INTO ${schema}.fuzz_topics (topic) VALUES (NEW.topic) ON CONFLICT DO NOTHING;
       RETURN NEW;
     END $$;
     CREATE TRIGGER fuzz_note_topic AFTER INSERT ON ${schema}.app_topics
       FOR EACH ROW EXECUTE FUNCTION ${schema}.fuzz_note_topic();`,
  );
}

async function cleanup(file: string): Promise<void> {
  const state = readState(file);
  const problems: string[] = [];
  const step = async (what: string, run: () => Promise<void>): Promise<void> => {
    try {
      await run();
    } catch (error) {
      problems.push(`${what}: ${(error as Error).message}`);
    }
  };

  await step('kafka topics', async () => {
    const granted = new Set<string>([state.topic]);
    try {
      const rows = await sql(state.baseUrl, `SELECT topic FROM ${state.schema}.fuzz_topics`);
      for (const row of rows.rows as Array<{ topic: string }>) granted.add(row.topic);
    } catch {
      // Not instrumented (the node never got ready): only the configured topic is ours.
    }
    const before = new Set(state.topicsBefore);
    const admin = kafkaClient(serviceUrls().kafkaBrokers, 'hourglass-fuzz').admin();
    await admin.connect();
    try {
      const existing = await admin.listTopics();
      const ours = existing.filter((topic) => granted.has(topic) && !before.has(topic));
      if (ours.length > 0) await admin.deleteTopics({ topics: ours, timeout: 30_000 });
      process.stderr.write(`fuzz: deleted ${ours.length} Kafka topic(s) the run created\n`);
    } finally {
      await admin.disconnect();
    }
  });

  await step('redis keys', async () => {
    const redis = new Redis(serviceUrls().redis, { lazyConnect: true, maxRetriesPerRequest: 2 });
    await redis.connect();
    try {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(
          cursor,
          'MATCH',
          `${state.redisPrefix}*`,
          'COUNT',
          500,
        );
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
  });

  await step('postgres schema', async () => {
    await sql(state.baseUrl, `DROP SCHEMA IF EXISTS ${state.schema} CASCADE`);
  });

  if (problems.length > 0) {
    process.stderr.write(`fuzz: cleanup incomplete:\n  ${problems.join('\n  ')}\n`);
    process.exitCode = 1;
  }
}

const [command, file] = process.argv.slice(2);
const commands: Record<string, (file: string) => Promise<void>> = { prepare, instrument, cleanup };
const run = command ? commands[command] : undefined;
if (!run || !file) {
  process.stderr.write('usage: support.ts prepare|instrument|cleanup STATE_FILE\n');
  process.exit(2);
}
run(file).then(
  () => process.exit(),
  (error: unknown) => {
    process.stderr.write(`fuzz: ${command} failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
