/**
 * The coordinator's options, their defaults, and the etcd client built from them.
 */
import type { Clock, Logger } from '@hourglass/core';
import { silentLogger, systemClock } from '@hourglass/core';
import type { IOptions } from 'etcd3';
import { Etcd3 } from 'etcd3';
import { NODE_ID_PATTERN, keyBase } from './keys';

export interface EtcdCoordinatorOptions {
  /** etcd client URLs, `http(s)://host:port`. */
  endpoints: readonly string[];
  /** The cluster's key prefix; every node of a cluster uses the same one. @default '/hourglass' */
  prefix?: string;
  /** Unique in the cluster (`[A-Za-z0-9._-]`, 1-64 characters). */
  nodeId: string;
  /** Published under the node's key for admins and other nodes. */
  httpUrl: string;
  grpcAddress: string;
  /** The cluster's fixed slot count. */
  slotCount: number;
  /**
   * TTL of the membership lease; a dead node's slots move after about this long. At least 2:
   * etcd raises shorter TTLs to its minimum (1.5 × the election timeout, 1 s by default). @default 2
   */
  leaseTtlSeconds?: number;
  /** How long membership (and pins and drains) must be stable before slots move. @default 1000 */
  rebalanceDelayMs?: number;
  /** Full reconcile every so often, in case a watch event was missed. @default 1000 */
  resyncIntervalMs?: number;
  /**
   * How long before the lease could expire (counted from the send time of the last acknowledged
   * keepalive) ownership stops being confirmed. @default max(500, TTL / 4)
   */
  fenceMarginMs?: number;
  /** Deadline of each unary etcd call (and of a keepalive's answer). @default max(1000, TTL / 2) */
  callTimeoutMs?: number;
  /** @default Date.now */
  clock?: Clock;
  /** @default silent */
  logger?: Logger;
}

/** The options with defaults applied. */
export interface Settings {
  readonly endpoints: readonly string[];
  readonly base: string;
  readonly nodeId: string;
  readonly httpUrl: string;
  readonly grpcAddress: string;
  readonly slotCount: number;
  readonly ttlSeconds: number;
  /** A keepalive every TTL / 4: a late answer or two still leaves the lease confirmed. */
  readonly keepaliveIntervalMs: number;
  readonly rebalanceDelayMs: number;
  readonly resyncIntervalMs: number;
  readonly fenceMarginMs: number;
  readonly callTimeoutMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
}

export const DEFAULT_LEASE_TTL_SECONDS = 2;

/** Watch reconnect backoff: 100 ms doubling to at most 1 s (the etcd3 default grows to 30 s). */
export const WATCH_BACKOFF_MAX_MS = 1000;

export function settings(options: EtcdCoordinatorOptions): Settings {
  const ttlSeconds = options.leaseTtlSeconds ?? DEFAULT_LEASE_TTL_SECONDS;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 2)
    throw new RangeError(`leaseTtlSeconds must be an integer >= 2, got ${ttlSeconds}`);
  if (!NODE_ID_PATTERN.test(options.nodeId))
    throw new RangeError(`node id "${options.nodeId}" must be 1-64 of A-Z a-z 0-9 . _ -`);
  if (!Number.isInteger(options.slotCount) || options.slotCount < 1)
    throw new RangeError(`slotCount must be a positive integer, got ${options.slotCount}`);
  const ttlMs = ttlSeconds * 1000;
  const keepaliveIntervalMs = ttlMs / 4;
  const fenceMarginMs = options.fenceMarginMs ?? Math.max(500, ttlMs / 4);
  // Ownership is confirmed for TTL - margin after each acknowledged keepalive; keepalives must come
  // more often than that, or it would lapse between two of them.
  if (fenceMarginMs >= ttlMs - keepaliveIntervalMs)
    throw new RangeError(
      `fenceMarginMs (${fenceMarginMs}) must be below the lease TTL minus the keepalive interval (${ttlMs - keepaliveIntervalMs} ms)`,
    );
  return {
    endpoints: options.endpoints,
    base: keyBase(options.prefix ?? '/hourglass'),
    nodeId: options.nodeId,
    httpUrl: options.httpUrl,
    grpcAddress: options.grpcAddress,
    slotCount: options.slotCount,
    ttlSeconds,
    keepaliveIntervalMs,
    rebalanceDelayMs: options.rebalanceDelayMs ?? 1000,
    resyncIntervalMs: options.resyncIntervalMs ?? 1000,
    fenceMarginMs,
    callTimeoutMs: options.callTimeoutMs ?? Math.max(1000, ttlMs / 2),
    clock: options.clock ?? systemClock,
    logger: options.logger ?? silentLogger,
  };
}

type FaultHandling = NonNullable<IOptions['faultHandling']>;
type WatchBackoff = NonNullable<FaultHandling['watchBackoff']>;
type HostPolicy = ReturnType<NonNullable<FaultHandling['host']>>;

function watchBackoff(attempt: number): WatchBackoff {
  return {
    duration: Math.min(WATCH_BACKOFF_MAX_MS, 100 * 2 ** attempt),
    next: () => watchBackoff(attempt + 1),
  };
}

/**
 * Lets every call through to its host. etcd3's default per-host circuit breaker opens for 5 s after
 * three failures, which would keep a node from renewing its lease (or rejoining) for up to 5 s
 * after etcd is back; the client's global retry already moves a failed call to another endpoint.
 */
const passThrough: HostPolicy = {
  _altReturn: undefined as never,
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
  execute: async (fn, signal) => fn({ signal: signal ?? new AbortController().signal }),
};

export function createClient(s: Settings): Etcd3 {
  const { callTimeoutMs } = s;
  return new Etcd3({
    hosts: [...s.endpoints],
    // A hung etcd must not hang a pass (or a graceful stop) forever; streams have their own timeouts.
    defaultCallOptions: (context) =>
      context.isStream ? {} : { deadline: Date.now() + callTimeoutMs },
    faultHandling: { watchBackoff: watchBackoff(0), host: () => passThrough },
    dialTimeout: callTimeoutMs,
    grpcOptions: {
      // A large cluster's range read (one key per slot) can exceed gRPC's 4 MiB default.
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      // gRPC's reconnect backoff grows to 2 minutes; etcd coming back must be noticed in a second.
      'grpc.max_reconnect_backoff_ms': 1000,
    },
  });
}
