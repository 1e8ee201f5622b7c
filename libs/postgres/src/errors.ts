/**
 * Which driver errors mean "Postgres is unavailable" (answer 503, retry later) and which are bugs.
 * One table, read by {@link toStoreError}; everything not listed propagates unchanged.
 */
import { DependencyUnavailableError } from '@hourglass/core';

/** Socket-level failures (Node error codes). */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html). */
const UNAVAILABLE_SQLSTATES = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, recovery)
  '57014', // query_canceled: statement_timeout fired; the server is too slow or a lock was held too long
  '55P03', // lock_not_available
  '53300', // too_many_connections
  '53200', // out_of_memory
  '53100', // disk_full
  '40P01', // deadlock_detected: the transaction was rolled back whole; a retry succeeds
  '40001', // serialization_failure: same
  '25006', // read_only_sql_transaction: connected to a standby during a failover
]);

/** node-postgres raises these without a code. */
const DRIVER_MESSAGES = [
  /timeout exceeded when trying to connect/i, // pool connectionTimeoutMillis
  /Connection terminated/i,
  /connection error and is not queryable/i,
  /Client was closed and is not queryable/i,
  /Query read timeout/i, // query_timeout: the server never answered (see pool.ts)
];

export function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code)) return true;
    if (code.startsWith('08')) return true; // connection_exception class
  }
  if (err instanceof AggregateError) return err.errors.some(isUnavailable); // dual-stack connect attempts
  return DRIVER_MESSAGES.some((pattern) => pattern.test(err.message));
}

/** Wraps availability failures in {@link DependencyUnavailableError}; returns anything else as is. */
export function toStoreError(err: unknown): unknown {
  if (err instanceof DependencyUnavailableError) return err;
  return isUnavailable(err) ? new DependencyUnavailableError('postgres', err) : err;
}
