/** What the engine is built from: its settings and the ports it talks to the world through. */
import type {
  AppDeliveryConfig,
  Clock,
  Delivery,
  HttpCaller,
  Logger,
  MessageStore,
} from '@hourglass/core';
import type { GroupCommitOptions } from './group-commit';
import type { EngineMetrics } from './metrics';

export interface EngineOptions {
  horizonMs: number;
  loaderIntervalMs: number;
  hintDrainIntervalMs: number;
  fireBatchSize: number;
  fireConcurrency: number;
  /**
   * How long before its due time a message is claimed, so that at the due time only the delivery
   * is left. A cancel in this window gets `delivery_in_progress`. 0 claims at the due time.
   * @default 25
   */
  claimAheadMs?: number;
  /** A target that refuses a message this many times makes it `failed` (outages never count). */
  maxAttempts: number;
  /** First retry delay after a refusal, doubled per attempt; also the first probe delay of a target that is down. */
  retryInitialMs: number;
  /** Longest retry delay after a refusal. */
  retryMaxMs: number;
  /**
   * Longest wait between two probes of a target that is down: what waits for it is delivered at
   * most this long after it answers again (and at once if a delivery to it succeeds first).
   * @default 1000
   */
  probeMaxMs?: number;
  /** How often the safety-net sweep runs (docs/architecture.md, "Safety nets"). @default 5000 */
  sweepIntervalMs?: number;
  /** How overdue a scheduled row must be before the sweep counts it as missed. @default 2000 */
  sweepGraceMs?: number;
  /**
   * Most overdue messages an acquisition loads at once; the sweep loads the rest as the wheel
   * drains, so a long outage's backlog cannot take all memory at a restart. @default 50000
   */
  overdueLoadLimit?: number;
  /** How long stop() keeps retrying marks while Postgres is unreachable. @default 30000 */
  stopMarkTimeoutMs?: number;
  /**
   * Messages with a target list (callbacks, fan-out) being delivered at once. Beyond it the
   * pipeline claims no more until some finish, so memory stays bounded however slow receivers
   * are. @default 20000
   */
  maxTargetMessagesInFlight?: number;
  /** Group commit of small inserts (./group-commit.ts). @default its own defaults */
  groupCommit?: GroupCommitOptions;
}

export type ResolvedOptions = Required<EngineOptions>;

export function resolveOptions(options: EngineOptions): ResolvedOptions {
  return {
    claimAheadMs: 25,
    probeMaxMs: 1000,
    sweepIntervalMs: 5000,
    sweepGraceMs: 2000,
    overdueLoadLimit: 50_000,
    stopMarkTimeoutMs: 30_000,
    maxTargetMessagesInFlight: 20_000,
    groupCommit: {},
    ...stripUndefined(options),
  } as ResolvedOptions;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export interface EngineDeps {
  store: MessageStore;
  delivery: Delivery;
  clock: Clock;
  logger: Logger;
  metrics: EngineMetrics;
  /**
   * Whether the coordinator can confirm this node's ownership right now (its lease is alive).
   * When it cannot, the engine keeps delivering, but only under the store's epoch lock, so a node
   * that lost its slots while cut off produces nothing once their new owner raised the epochs.
   * @default always confirmed (a standalone node)
   */
  ownershipConfirmed?: () => boolean;
  /** Told when the store showed that another node raised the epoch of slots this node fired. */
  onSlotsFenced?: (slots: readonly number[]) => void;
  /** Sends HTTP callbacks. Without it, an HTTP target fails with "callbacks are not enabled". */
  http?: HttpCaller;
  /** Apps' signing secrets and delivery settings (dead letters, alerts). Without it: unsigned, none. */
  appDelivery?: AppDeliverySource;
}

/** What delivering a callback needs to know of its app; implementations cache. */
export interface AppDeliverySource {
  /** The secrets to sign with, newest first (empty: unsigned). */
  signingSecrets(app: string): Promise<readonly string[]>;
  config(app: string): Promise<AppDeliveryConfig>;
}

/** Extra reach of the wheel beyond the horizon, so hinted and freshly accepted messages fit. */
export const WHEEL_SLACK_MS = 2 * 60_000;
