/**
 * Prometheus metrics of a node (served at GET /metrics). The registry is injected so tests and
 * several engines in one process do not share counters.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface EngineSnapshot {
  wheelSize: number;
  ownedSlots: number;
  loaderLagMs: number;
  inFlightBatches: number;
}

export class EngineMetrics {
  readonly registry: Registry;
  private readonly acceptedTotal: Counter<'app'>;
  private readonly deliveredTotal: Counter<'app'>;
  private readonly failedTotal: Counter<'app'>;
  private readonly cancelledTotal: Counter<'app'>;
  private readonly updatedTotal: Counter<'app' | 'rescheduled'>;
  private readonly debouncedTotal: Counter<'app'>;
  private readonly deliveryFailuresTotal: Counter<'retriable'>;
  private readonly sweepFoundTotal: Counter<'kind'>;
  private readonly fencedClaimsTotal: Counter;
  private readonly acquisitionsRefusedTotal: Counter;
  private readonly loadFailuresTotal: Counter;
  private readonly oldestOverdue: Gauge;
  private readonly stuckDeliveringGauge: Gauge;
  private parked: () => number = () => 0;
  private readonly lateness: Histogram;
  private readonly stageSeconds: Histogram<'stage'>;
  private readonly stageMessages: Counter<'stage'>;
  private readonly callbackAttemptsTotal: Counter<'app' | 'result'>;
  private readonly callbackDuration: Histogram;
  private readonly callbackFailedTotal: Counter<'app'>;
  private readonly deadLettersTotal: Counter<'app' | 'result'>;
  private readonly alertsTotal: Counter<'result'>;
  private readonly callbackLateness: Histogram;
  private readonly insertGroupMessages: Histogram;
  private readonly insertGroupWait: Histogram;
  private readonly insertSeconds: Histogram;
  private readonly retentionRemovedTotal: Counter<'state'>;
  private readonly archivedTotal: Counter;
  private readonly retentionPassSeconds: Histogram<'result'>;
  private snapshot: () => EngineSnapshot = () => ({
    wheelSize: 0,
    ownedSlots: 0,
    loaderLagMs: 0,
    inFlightBatches: 0,
  });

  constructor(options: { registry?: Registry; defaultMetrics?: boolean } = {}) {
    this.registry = options.registry ?? new Registry();
    if (options.defaultMetrics)
      collectDefaultMetrics({ register: this.registry, prefix: 'hourglass_process_' });
    const registers = [this.registry];
    this.acceptedTotal = new Counter({
      name: 'hourglass_messages_accepted_total',
      help: 'Messages accepted (committed to Postgres).',
      labelNames: ['app'],
      registers,
    });
    this.deliveredTotal = new Counter({
      name: 'hourglass_messages_delivered_total',
      help: 'Messages acknowledged by their target, by app.',
      labelNames: ['app'],
      registers,
    });
    this.failedTotal = new Counter({
      name: 'hourglass_messages_failed_total',
      help: 'Messages that became failed (their target refused them maxAttempts times), by app.',
      labelNames: ['app'],
      registers,
    });
    this.callbackAttemptsTotal = new Counter({
      name: 'hourglass_callback_attempts_total',
      help: 'HTTP callback attempts by app and result (delivered, failed, gone).',
      labelNames: ['app', 'result'],
      registers,
    });
    this.callbackDuration = new Histogram({
      name: 'hourglass_callback_duration_seconds',
      help: 'How long HTTP callback requests took, from sending to the end of the answer.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.callbackFailedTotal = new Counter({
      name: 'hourglass_callback_failed_total',
      help: 'HTTP targets that finally failed (retry strategy exhausted, or 410 Gone), by app.',
      labelNames: ['app'],
      registers,
    });
    this.deadLettersTotal = new Counter({
      name: 'hourglass_dead_letters_total',
      help: "Finally failed targets produced to their app's dead-letter topic, by result (produced, failed).",
      labelNames: ['app', 'result'],
      registers,
    });
    this.alertsTotal = new Counter({
      name: 'hourglass_alerts_total',
      help: 'Alert events about failing deliveries, by result (sent, failed).',
      labelNames: ['result'],
      registers,
    });
    this.callbackLateness = new Histogram({
      name: 'hourglass_callback_lateness_seconds',
      help: 'How long after its due time an HTTP callback attempt was answered (first attempts and retries alike).',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
      registers,
    });
    this.sweepFoundTotal = new Counter({
      name: 'hourglass_sweep_found_total',
      help:
        'Messages the safety-net sweep found and fired: stranded (overdue, nothing held them: should stay 0), ' +
        'stuck_delivering (claims nothing accounted for: should stay 0), backfill (the rest of a takeover backlog cut at core.overdueLoadLimit).',
      labelNames: ['kind'],
      registers,
    });
    this.fencedClaimsTotal = new Counter({
      name: 'hourglass_fenced_claims_total',
      help: 'Messages whose claim or delivery matched nothing because another node had raised the slot epoch.',
      registers,
    });
    this.acquisitionsRefusedTotal = new Counter({
      name: 'hourglass_slot_acquisitions_refused_total',
      help: 'Slot acquisitions refused because a newer owner had raised the epoch.',
      registers,
    });
    this.loadFailuresTotal = new Counter({
      name: 'hourglass_slot_load_failures_total',
      help: 'Takeover loads that failed and wait for the next loader step.',
      registers,
    });
    this.oldestOverdue = new Gauge({
      name: 'hourglass_oldest_overdue_seconds',
      help: 'Age of the oldest scheduled message of the owned slots whose due time has passed (measured by the sweep).',
      registers,
    });
    this.stuckDeliveringGauge = new Gauge({
      name: 'hourglass_messages_stuck_delivering',
      help: 'Rows of the owned slots left delivering that no claim of this node accounts for (last sweep).',
      registers,
    });
    this.cancelledTotal = new Counter({
      name: 'hourglass_messages_cancelled_total',
      help: 'Messages cancelled.',
      labelNames: ['app'],
      registers,
    });
    this.updatedTotal = new Counter({
      name: 'hourglass_messages_updated_total',
      help: 'Scheduled messages changed (PATCH); rescheduled="true" when the due time moved.',
      labelNames: ['app', 'rescheduled'],
      registers,
    });
    this.debouncedTotal = new Counter({
      name: 'hourglass_messages_debounced_total',
      help: 'Schedule requests with debounce merged into (trailing) or dropped for (leading) a scheduled message of the same key.',
      labelNames: ['app'],
      registers,
    });
    this.deliveryFailuresTotal = new Counter({
      name: 'hourglass_delivery_failures_total',
      help: 'Messages whose delivery attempt failed: retriable (target down) or not (refused).',
      labelNames: ['retriable'],
      registers,
    });
    this.lateness = new Histogram({
      name: 'hourglass_delivery_lateness_seconds',
      help: 'Target acknowledgement time minus due time.',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.stageSeconds = new Histogram({
      name: 'hourglass_fire_stage_seconds',
      help: 'Duration of one statement or request of the fire path: claim, produce or mark (delivered).',
      labelNames: ['stage'],
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.stageMessages = new Counter({
      name: 'hourglass_fire_stage_messages_total',
      help: 'Messages handled by the claim, produce and mark statements or requests.',
      labelNames: ['stage'],
      registers,
    });
    this.insertGroupMessages = new Histogram({
      name: 'hourglass_insert_group_messages',
      help: 'Messages per grouped insert statement (group commit of small schedules).',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000],
      registers,
    });
    this.insertGroupWait = new Histogram({
      name: 'hourglass_insert_group_wait_seconds',
      help: 'How long the oldest member of a group waited before its insert statement was sent.',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1],
      registers,
    });
    this.insertSeconds = new Histogram({
      name: 'hourglass_insert_seconds',
      help: 'Duration of one insert statement and its commit (single schedules grouped, or a batch).',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    this.retentionRemovedTotal = new Counter({
      name: 'hourglass_retention_removed_total',
      help: 'Finished messages removed after their retention (archived ones included), by final state.',
      labelNames: ['state'],
      registers,
    });
    this.archivedTotal = new Counter({
      name: 'hourglass_archived_total',
      help: 'Finished messages moved to messages_archive (archive.mode move).',
      registers,
    });
    this.retentionPassSeconds = new Histogram({
      name: 'hourglass_retention_pass_seconds',
      help: 'Duration of one retention pass of this node (result ok, or failed when a statement failed).',
      labelNames: ['result'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
      registers,
    });
    const read = (pick: (s: EngineSnapshot) => number) =>
      function (this: Gauge) {
        this.set(pick(self.snapshot()));
      };
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- prom-client calls collect with the gauge as `this`.
    const self = this;
    new Gauge({
      name: 'hourglass_wheel_size',
      help: 'Messages held in the timing wheel.',
      registers,
      collect: read((s) => s.wheelSize),
    });
    new Gauge({
      name: 'hourglass_owned_slots',
      help: 'Slots this node owns.',
      registers,
      collect: read((s) => s.ownedSlots),
    });
    new Gauge({
      name: 'hourglass_loader_lag_seconds',
      help: 'How far the loaded horizon trails now + horizon.',
      registers,
      collect: read((s) => s.loaderLagMs / 1000),
    });
    new Gauge({
      name: 'hourglass_parked_messages',
      help: 'Messages waiting for a delivery target that is down.',
      registers,
      collect() {
        this.set(self.parked());
      },
    });
    new Gauge({
      name: 'hourglass_fire_batches_in_flight',
      help: 'Batches being claimed, produced or marked.',
      registers,
      collect: read((s) => s.inFlightBatches),
    });
  }

  observeEngine(snapshot: () => EngineSnapshot): void {
    this.snapshot = snapshot;
  }

  accepted(app: string, count = 1): void {
    this.acceptedTotal.inc({ app }, count);
  }

  debounced(app: string): void {
    this.debouncedTotal.inc({ app });
  }

  updated(app: string, rescheduled: boolean): void {
    this.updatedTotal.inc({ app, rescheduled: String(rescheduled) });
  }

  cancelled(app: string): void {
    this.cancelledTotal.inc({ app });
  }

  observeParked(count: () => number): void {
    this.parked = count;
  }

  /** Messages their target acknowledged at `ackedAtMs`. */
  delivered(
    messages: ReadonlyArray<{ app: string; deliverAtMs: number }>,
    ackedAtMs: number,
  ): void {
    const byApp = new Map<string, number>();
    for (const message of messages) {
      byApp.set(message.app, (byApp.get(message.app) ?? 0) + 1);
      this.lateness.observe((ackedAtMs - message.deliverAtMs) / 1000);
    }
    for (const [app, count] of byApp) this.deliveredTotal.inc({ app }, count);
  }

  failed(messages: ReadonlyArray<{ app: string }>): void {
    for (const message of messages) this.failedTotal.inc({ app: message.app });
  }

  deliveryFailed(retriable: boolean, messages: number): void {
    this.deliveryFailuresTotal.inc({ retriable: String(retriable) }, messages);
  }

  sweepFound(kind: 'stranded' | 'stuck_delivering' | 'backfill', messages: number): void {
    this.sweepFoundTotal.inc({ kind }, messages);
  }

  callbackAttempt(app: string, result: 'delivered' | 'failed' | 'gone', seconds: number): void {
    this.callbackAttemptsTotal.inc({ app, result });
    this.callbackDuration.observe(seconds);
  }

  callbackAnswered(latenessMs: number): void {
    this.callbackLateness.observe(Math.max(0, latenessMs) / 1000);
  }

  callbackFailed(app: string): void {
    this.callbackFailedTotal.inc({ app });
  }

  deadLetter(app: string, result: 'produced' | 'failed'): void {
    this.deadLettersTotal.inc({ app, result });
  }

  alert(result: 'sent' | 'failed'): void {
    this.alertsTotal.inc({ result });
  }

  fencedClaims(messages: number): void {
    this.fencedClaimsTotal.inc(messages);
  }

  acquisitionsRefused(slots: number): void {
    this.acquisitionsRefusedTotal.inc(slots);
  }

  loadFailed(): void {
    this.loadFailuresTotal.inc();
  }

  overdue(ageMs: number): void {
    this.oldestOverdue.set(ageMs / 1000);
  }

  stuckDelivering(rows: number): void {
    this.stuckDeliveringGauge.set(rows);
  }

  /** One claim, produce or mark of `messages` messages that took `ms`. */
  fireStage(stage: 'claim' | 'produce' | 'mark', ms: number, messages: number): void {
    this.stageSeconds.observe({ stage }, ms / 1000);
    this.stageMessages.inc({ stage }, messages);
  }

  inserted(ms: number): void {
    this.insertSeconds.observe(ms / 1000);
  }

  /** One retention batch: `removed` rows of `state` gone, `archived` of them moved to the archive. */
  retentionRemoved(state: string, removed: number, archived: number): void {
    if (removed > 0) this.retentionRemovedTotal.inc({ state }, removed);
    if (archived > 0) this.archivedTotal.inc(archived);
  }

  retentionPass(ms: number, result: 'ok' | 'failed'): void {
    this.retentionPassSeconds.observe({ result }, ms / 1000);
  }

  insertGroup(messages: number, waitedMs: number): void {
    this.insertGroupMessages.observe(messages);
    this.insertGroupWait.observe(waitedMs / 1000);
  }
}
