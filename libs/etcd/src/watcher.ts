/**
 * Watches the cluster prefix. Events only wake a reconcile pass: the pass reads a full snapshot,
 * so a missed or replayed event is harmless (and a resync runs every second anyway).
 */
import type { Etcd3, Watcher } from 'etcd3';
import { WATCH_BACKOFF_MAX_MS } from './options';
import type { Settings } from './options';

export class ClusterWatch {
  private watcher: Watcher | undefined;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly client: Etcd3,
    private readonly settings: Settings,
    /** Called on every event and reconnection. */
    private readonly onChange: () => void,
  ) {}

  /** Creates the watch. @throws when etcd cannot be reached. */
  async start(): Promise<void> {
    const watcher = await this.client.watch().prefix(this.settings.base).create();
    if (this.stopped) {
      await watcher.cancel().catch(() => undefined);
      return;
    }
    this.watcher = watcher;
    watcher.on('data', () => this.onChange());
    // etcd3 reconnects a broken watch itself (with the backoff of createClient).
    watcher.on('connected', () => this.onChange());
    watcher.on('disconnected', (error) =>
      this.settings.logger.debug({ err: error }, 'etcd watch disconnected; reconnecting'),
    );
    watcher.on('error', (error) => {
      // The watch was cancelled by etcd (e.g. compacted revision): make a new one.
      this.settings.logger.warn({ err: error }, 'etcd watch failed; re-creating it');
      if (this.watcher === watcher) this.watcher = undefined;
      void watcher.cancel().catch(() => undefined);
      this.rewatchLater();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    const watcher = this.watcher;
    this.watcher = undefined;
    await watcher?.cancel().catch(() => undefined);
  }

  private rewatchLater(): void {
    if (this.stopped || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (this.stopped || this.watcher) return;
      this.start().then(
        () => this.onChange(),
        () => this.rewatchLater(),
      );
    }, WATCH_BACKOFF_MAX_MS);
  }
}
