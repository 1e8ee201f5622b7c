/**
 * Apps' signing secrets and delivery settings for the firing path, from the app store, cached
 * for a few seconds per app: a callback round reads them once per app, and Postgres is asked at
 * most once per `ttlMs` per app and node. A rotation reaches every node within `ttlMs`, well
 * inside the rotation's grace period (during which both secrets sign). An app without a secret
 * (created before secrets existed) gets one here, stored, so every node signs with the same.
 * While Postgres cannot be read, the last copy is used, however old: a rotation keeps the
 * previous secret valid for its grace period, so a stale copy still signs acceptably.
 */
import { randomBytes } from 'node:crypto';
import type { AppDeliveryConfig, AppStore, Clock } from '@hourglass/core';
import { NO_DELIVERY_CONFIG, newSigningSecret } from '@hourglass/core';
import type { AppDeliverySource } from './options';

interface Entry {
  readonly atMs: number;
  readonly secrets: readonly string[];
  readonly config: AppDeliveryConfig;
}

export class CachedAppDelivery implements AppDeliverySource {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry>>();

  constructor(
    private readonly store: AppStore,
    private readonly clock: Clock,
    private readonly ttlMs = 5_000,
  ) {}

  async signingSecrets(app: string): Promise<readonly string[]> {
    return (await this.entry(app)).secrets;
  }

  async config(app: string): Promise<AppDeliveryConfig> {
    return (await this.entry(app)).config;
  }

  /** Drops an app's cached copy (after an admin change on this node). */
  forget(app: string): void {
    this.entries.delete(app);
  }

  private entry(app: string): Promise<Entry> {
    const now = this.clock.now();
    const cached = this.entries.get(app);
    if (cached && now - cached.atMs < this.ttlMs) return Promise.resolve(cached);
    let loading = this.loading.get(app);
    if (!loading) {
      loading = this.load(app, now)
        // Postgres out: the last copy still signs (callbacks need not wait for Postgres). With no
        // copy at all the callback's attempt waits, uncounted, for Postgres to answer.
        .catch((error: unknown) => {
          if (cached) return cached;
          throw error;
        })
        .finally(() => this.loading.delete(app));
      this.loading.set(app, loading);
    }
    return loading;
  }

  private async load(app: string, now: number): Promise<Entry> {
    const [secrets, record] = await Promise.all([
      this.store.signingSecrets(app, now, () => newSigningSecret(randomBytes)),
      this.store.getApp(app),
    ]);
    if (secrets === null || record === null) {
      // The app was deleted: its messages are still delivered, unsigned, with no extras.
      const entry = { atMs: now, secrets: [], config: NO_DELIVERY_CONFIG };
      this.entries.set(app, entry);
      return entry;
    }
    const entry = { atMs: now, secrets, config: record.delivery };
    this.entries.set(app, entry);
    return entry;
  }
}
