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
  private readonly deliveredTotal: Counter;
  private readonly cancelledTotal: Counter<'app'>;
  private readonly publishFailuresTotal: Counter<'retriable'>;
  private readonly lateness: Histogram;
  private readonly stageSeconds: Histogram<'stage'>;
  private readonly stageMessages: Counter<'stage'>;
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
      help: 'Messages acknowledged by Kafka.',
      registers,
    });
    this.cancelledTotal = new Counter({
      name: 'hourglass_messages_cancelled_total',
      help: 'Messages cancelled.',
      labelNames: ['app'],
      registers,
    });
    this.publishFailuresTotal = new Counter({
      name: 'hourglass_publish_failures_total',
      help: 'Failed produce batches.',
      labelNames: ['retriable'],
      registers,
    });
    this.lateness = new Histogram({
      name: 'hourglass_delivery_lateness_seconds',
      help: 'Kafka acknowledgement time minus due time.',
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

  cancelled(app: string): void {
    this.cancelledTotal.inc({ app });
  }

  delivered(latenessMs: readonly number[]): void {
    this.deliveredTotal.inc(latenessMs.length);
    for (const ms of latenessMs) this.lateness.observe(ms / 1000);
  }

  /** One claim, produce or mark of `messages` messages that took `ms`. */
  fireStage(stage: 'claim' | 'produce' | 'mark', ms: number, messages: number): void {
    this.stageSeconds.observe({ stage }, ms / 1000);
    this.stageMessages.inc({ stage }, messages);
  }

  publishFailed(retriable: boolean): void {
    this.publishFailuresTotal.inc({ retriable: String(retriable) });
  }
}
