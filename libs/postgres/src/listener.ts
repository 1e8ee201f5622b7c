/**
 * The LISTEN side of wheel hints: one dedicated connection (LISTEN holds its session, so it cannot
 * come from the pool), re-established with capped exponential backoff when it drops. Best effort
 * by contract: a notification sent while the connection is down is lost, and the engine's
 * periodic `readHints` drain is the guarantee.
 */
import { createHash } from 'node:crypto';
import { Client, escapeIdentifier } from 'pg';
import { KEEPALIVE_INITIAL_DELAY_MS } from './pool';

const MAX_CHANNEL_BYTES = 63; // NAMEDATALEN - 1: longer channel names are rejected by pg_notify

/**
 * Channels are database-wide while Hourglass lives in a schema, so the channel carries the schema
 * (several clusters or test files may share a database). Long schema names are hashed to fit.
 */
export function hintChannel(schema: string): string {
  const plain = `hourglass_hints_${schema}`;
  if (Buffer.byteLength(plain) <= MAX_CHANNEL_BYTES) return plain;
  return `hourglass_hints_${createHash('sha256').update(schema).digest('hex').slice(0, 32)}`;
}

/** Parses a NOTIFY payload ("3,17,42") into slots; ignores anything malformed. */
export function parseHintPayload(payload: string | undefined): number[] {
  if (!payload) return [];
  return payload
    .split(',')
    .map((part) => Number(part))
    .filter((slot) => Number.isSafeInteger(slot) && slot >= 0);
}

export interface HintListenerOptions {
  readonly connectionString: string;
  readonly onSlot: (slot: number) => void;
  /** Called with connection failures (the listener keeps retrying). */
  readonly onError: (err: unknown) => void;
  /** @default 100 */
  readonly minBackoffMs?: number;
  /** @default 5000 */
  readonly maxBackoffMs?: number;
}

export class HintListener {
  private client: Client | null = null;
  private stopped = true;
  private retryTimer: NodeJS.Timeout | null = null;
  private backoffMs: number;
  private connecting: Promise<void> | null = null;

  constructor(private readonly options: HintListenerOptions) {
    this.backoffMs = options.minBackoffMs ?? 100;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connecting = this.connect();
  }

  /** Resolves once the connection is closed and no reconnect is pending. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    await this.connecting;
    const client = this.client;
    this.client = null;
    if (client) await client.end().catch(() => undefined);
  }

  /** Resolves when the current connection attempt ends (LISTEN active, or failed and rescheduled). */
  ready(): Promise<void> {
    return this.connecting ?? Promise.resolve();
  }

  private async connect(): Promise<void> {
    const client = new Client({
      connectionString: this.options.connectionString,
      application_name: 'hourglass-hints',
      // The listener sits idle for long stretches: keepalive notices a peer that vanished, and
      // the timeouts keep a hung server from holding the LISTEN (re)connect forever.
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_INITIAL_DELAY_MS,
      connectionTimeoutMillis: 5_000,
      query_timeout: 10_000,
    });
    let failed = false;
    const onDown = (err?: unknown): void => {
      if (failed) return;
      failed = true;
      if (err !== undefined) this.options.onError(err);
      if (this.client === client) this.client = null;
      client.end().catch(() => undefined);
      this.scheduleReconnect();
    };
    client.on('error', onDown);
    client.on('end', () => onDown());
    client.on('notification', (message) => {
      for (const slot of parseHintPayload(message.payload)) {
        try {
          this.options.onSlot(slot);
        } catch (err) {
          this.options.onError(err);
        }
      }
    });
    try {
      await client.connect();
      const schema = await client.query<{ schema: string | null }>(
        'SELECT current_schema() AS schema',
      );
      const name = schema.rows[0]?.schema;
      if (!name) throw new Error('no current schema: the search_path names no existing schema');
      await client.query(`LISTEN ${escapeIdentifier(hintChannel(name))}`);
      if (this.stopped || failed) {
        failed = true;
        await client.end().catch(() => undefined);
        return;
      }
      this.client = client;
      this.backoffMs = this.options.minBackoffMs ?? 100;
    } catch (err) {
      onDown(err);
    }
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.retryTimer) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 5000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped) this.connecting = this.connect();
    }, delay);
  }
}
