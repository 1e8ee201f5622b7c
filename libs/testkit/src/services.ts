/**
 * Where the test services are. `scripts/services up` starts them on these defaults and
 * `scripts/test` exports the same values, so tests started either way (or from an editor)
 * agree. Point a variable elsewhere to test against another instance.
 */

/** Connection details for the four services integration tests use. */
export interface ServiceUrls {
  /** etcd client URL. From `HOURGLASS_ETCD`; @default 'http://127.0.0.1:23790' */
  readonly etcd: string;
  /** Postgres URL of the `hourglass` database. From `HOURGLASS_PG`; @default 'postgres://postgres@127.0.0.1:55432/hourglass' */
  readonly postgres: string;
  /** Redis URL. From `HOURGLASS_REDIS`; @default 'redis://127.0.0.1:56379' */
  readonly redis: string;
  /** Kafka bootstrap brokers. From `HOURGLASS_KAFKA` (comma-separated); @default ['127.0.0.1:59092'] */
  readonly kafkaBrokers: string[];
}

export const DEFAULT_SERVICE_URLS: Readonly<ServiceUrls> = Object.freeze({
  etcd: 'http://127.0.0.1:23790',
  postgres: 'postgres://postgres@127.0.0.1:55432/hourglass',
  redis: 'redis://127.0.0.1:56379',
  kafkaBrokers: Object.freeze(['127.0.0.1:59092']) as string[],
});

/** Reads the service locations from the environment (an empty variable counts as unset). */
export function serviceUrls(env: NodeJS.ProcessEnv = process.env): ServiceUrls {
  const pick = (name: string, fallback: string): string => {
    const value = env[name]?.trim();
    return value ? value : fallback;
  };
  const brokers = (env['HOURGLASS_KAFKA'] ?? '')
    .split(',')
    .map((broker) => broker.trim())
    .filter((broker) => broker.length > 0);
  return {
    etcd: pick('HOURGLASS_ETCD', DEFAULT_SERVICE_URLS.etcd),
    postgres: pick('HOURGLASS_PG', DEFAULT_SERVICE_URLS.postgres),
    redis: pick('HOURGLASS_REDIS', DEFAULT_SERVICE_URLS.redis),
    kafkaBrokers: brokers.length > 0 ? brokers : [...DEFAULT_SERVICE_URLS.kafkaBrokers],
  };
}

/**
 * Wraps a connection failure in an error that says which service is missing and how to start
 * it, keeping the original as `cause`.
 */
export function serviceUnreachable(service: string, where: string, cause: unknown): Error {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new Error(
    `${service} at ${where} is not reachable (${reason}). ` +
      'Start the test services with `scripts/services up` (or run tests through `npm test`).',
    { cause },
  );
}
