/**
 * The pool both stores use, and the two helpers every query goes through: {@link guarded} (driver
 * errors become store errors) and {@link inTransaction}.
 *
 * Every pooled connection is bounded three ways, so a Postgres that hangs (or a network path that
 * drops packets without a reset) fails calls instead of stalling the firing path: the server-side
 * `statement_timeout`, a client-side `query_timeout` a little above it (the reply may never come),
 * and TCP keepalive, so a dead idle connection is noticed and not handed out.
 */
import type { PoolClient } from 'pg';
import { Pool } from 'pg';
import { isUnavailable, toStoreError } from './errors';

export interface PoolSettings {
  readonly connectionString: string;
  readonly max: number;
  readonly statementTimeoutMs: number;
  readonly connectionTimeoutMs: number;
  readonly applicationName: string;
  readonly onBackgroundError: (err: unknown) => void;
}

/** Client-side slack over statement_timeout: the server's own cancel answers first when it can. */
const QUERY_TIMEOUT_SLACK_MS = 2_000;
/** Idle time before TCP keepalive probes start. */
export const KEEPALIVE_INITIAL_DELAY_MS = 10_000;

export function createPool(settings: PoolSettings): Pool {
  const pool = new Pool({
    connectionString: settings.connectionString,
    max: settings.max,
    connectionTimeoutMillis: settings.connectionTimeoutMs,
    // Sent in the startup packet, so it holds for every pooled connection without a round trip.
    statement_timeout: settings.statementTimeoutMs,
    query_timeout: settings.statementTimeoutMs + QUERY_TIMEOUT_SLACK_MS,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_INITIAL_DELAY_MS,
    application_name: settings.applicationName,
  });
  // An idle connection that dies (server restart) is removed by the pool; without a listener the
  // 'error' event would crash the process.
  pool.on('error', (err) => settings.onBackgroundError(err));
  return pool;
}

export async function guarded<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw toStoreError(err);
  }
}

/** BEGIN, work, COMMIT on one pooled connection; ROLLBACK on any error. */
export function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  return guarded(async () => {
    const client = await pool.connect();
    // The pool listens for errors of idle connections only. A checked-out one that the server
    // terminates between two statements (a restart, pg_terminate_backend) emits 'error', which
    // without a listener crashes the process; the statement in flight or the next one fails anyway.
    let lost: Error | undefined;
    const onError = (err: Error): void => {
      lost = err;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      client.removeListener('error', onError);
      client.release();
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      client.removeListener('error', onError);
      // A connection that failed is not reused; after a clean ROLLBACK it is fine.
      client.release(lost ?? (isUnavailable(err) ? (err as Error) : undefined));
      throw err;
    }
  });
}
