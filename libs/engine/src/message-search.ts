/**
 * Message search and bulk cancel (issue 14), transport-neutral like MessageService, which wires
 * the node wires next to it. Parsing and the cursor are pure (libs/core/src/search.ts); the store
 * runs one bounded statement per page or batch.
 *
 * A bulk cancel is definitive like the single cancel: every message counted as cancelled was
 * taken from `scheduled` by an UPDATE guarded by `state = 0`, the claim's own condition, so it is
 * never delivered. A filter cancel runs in batches and stops after `cancelBudgetMs`, answering
 * `more: true` and a cursor to continue with, so one request never holds a node's connections for
 * long however many messages match.
 */
import type { Clock, MessageStore, SearchPosition } from '@hourglass/core';
import { encodeCursor, parseCancelRequest, parseSearchQuery } from '@hourglass/core';
import type { DelayEngine } from './engine';
import type { EngineMetrics } from './metrics';
import type { AppIdentity, MessageView } from './service';
import { toView } from './service';

export interface MessageSearchOptions {
  /** Rows one page (or one cancel batch) reads at most, matching or not. @default 20000 */
  readonly scanRowsPerPage?: number;
  /** Messages one cancel statement cancels at most. @default 1000 */
  readonly cancelBatchSize?: number;
  /** A filter cancel starts no new batch after this long. @default 2000 */
  readonly cancelBudgetMs?: number;
}

export interface SearchResult {
  messages: MessageView[];
  /** Pass as `cursor` for the next page; null when the listing is over. */
  nextCursor: string | null;
}

export interface IdsCancelResult {
  cancelled: number;
  alreadyFinished: number;
  /** Claimed for delivery right now (it may still fail and then be cancellable). */
  deliveryInProgress: number;
  notFound: number;
}

export interface FilterCancelResult {
  cancelled: number;
  /** Matched but not cancellable: claimed for delivery, or taken by a racing claim. */
  notCancellable: number;
  /** The time budget ran out first: send the same request with `cursor` to go on. */
  more: boolean;
  /** With `more`: the budget the request stopped at. */
  budgetMs?: number;
  /** With `more`: where to go on. */
  cursor?: string;
}

export class MessageSearch {
  private readonly scanRows: number;
  private readonly batchSize: number;
  private readonly budgetMs: number;

  constructor(
    private readonly engine: DelayEngine,
    private readonly store: MessageStore,
    private readonly clock: Clock,
    private readonly metrics: EngineMetrics,
    options: MessageSearchOptions = {},
  ) {
    this.scanRows = options.scanRowsPerPage ?? 20_000;
    this.batchSize = options.cancelBatchSize ?? 1000;
    this.budgetMs = options.cancelBudgetMs ?? 2000;
  }

  /** GET /v1/messages: the caller's messages. */
  list(app: AppIdentity, query: Record<string, unknown>): Promise<SearchResult> {
    return this.search(query, app.name);
  }

  /** GET /v1/admin/messages: every app's, or one app's with `app`. */
  listAll(query: Record<string, unknown>): Promise<SearchResult> {
    return this.search(query, null);
  }

  private async search(query: Record<string, unknown>, app: string | null): Promise<SearchResult> {
    const request = parseSearchQuery(query, { app });
    const page = await this.store.searchMessages(
      request.filter,
      request.after,
      request.limit,
      this.scanRows,
    );
    return {
      messages: page.messages.map(toView),
      nextCursor: page.next === null ? null : encodeCursor(page.next, request.filter, 'list'),
    };
  }

  /** POST /v1/messages/cancel. */
  async cancel(app: AppIdentity, body: unknown): Promise<IdsCancelResult | FilterCancelResult> {
    const request = parseCancelRequest(body, app.name);
    if (request.kind === 'ids') {
      const outcome = await this.store.cancelIds(app.name, request.ids, this.clock.now());
      this.forget(app.name, outcome.cancelled);
      return {
        cancelled: outcome.cancelled.length,
        alreadyFinished: outcome.alreadyFinished,
        deliveryInProgress: outcome.deliveryInProgress,
        notFound: outcome.notFound,
      };
    }
    const started = this.clock.now();
    let after: SearchPosition | null = request.after;
    let cancelled = 0;
    let notCancellable = 0;
    for (;;) {
      const batch = await this.store.cancelMatching(
        request.filter,
        after,
        this.batchSize,
        this.scanRows,
        this.clock.now(),
      );
      this.forget(app.name, batch.cancelled);
      cancelled += batch.cancelled.length;
      notCancellable += batch.notCancellable;
      after = batch.next;
      if (after === null) return { cancelled, notCancellable, more: false };
      if (this.clock.now() - started >= this.budgetMs)
        return {
          cancelled,
          notCancellable,
          more: true,
          budgetMs: this.budgetMs,
          cursor: encodeCursor(after, request.filter, 'cancel'),
        };
    }
  }

  /** Like the single cancel: this node's wheel lets go, and the metric counts each one. */
  private forget(app: string, cancelled: readonly { seq: number; deliverAtMs: number }[]): void {
    for (const ref of cancelled) {
      this.engine.forget(ref.seq, ref.deliverAtMs);
      this.metrics.cancelled(app);
    }
  }
}
