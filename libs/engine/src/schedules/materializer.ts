/**
 * The materialiser: every node turns the due occurrences of the schedules of ITS slots into
 * messages, ahead of time (at least one horizon), so that an occurrence is an ordinary scheduled
 * message well before it is due, and firing, failover and cancel work for it as for any message.
 *
 * Exactly once (docs/adr/0009-materialising-occurrences.md): an occurrence's message id is
 * derived from the schedule, its revision and the occurrence's time, and each step writes the
 * messages and the schedule's new cursor in one transaction fenced by the schedule slot's epoch.
 * A step of a node that lost the slot writes nothing; a step that is retried (its reply lost, the
 * node killed after the commit) plans from the cursor it committed, or, if it did not commit,
 * inserts the same ids again.
 *
 * When a pass runs: every `passIntervalMs`, as soon as this node acquired slots it did not own
 * (checked every {@link SLOT_CHECK_MS}), and when asked ({@link requestPass}: a schedule created or
 * changed through this node). Passes run one at a time.
 */
import { createHash } from 'node:crypto';
import type {
  Clock,
  Logger,
  MaterialisationStep,
  NewMessage,
  PlanWindow,
  ScheduleStore,
  SlotLease,
  StoredSchedule,
} from '@hourglass/core';
import { Recurrence, planOccurrences, slotOf } from '@hourglass/core';
import { WHEEL_SLACK_MS } from '../options';
import type { ScheduleMetrics } from './metrics';

/** How often the owned slots are compared with the last pass's (in memory; cheap). */
const SLOT_CHECK_MS = 250;

export interface MaterializerOptions {
  readonly slotCount: number;
  /** The engine's horizon: occurrences are materialised at least this far ahead. */
  readonly horizonMs: number;
  /** @default 2000 */
  readonly passIntervalMs?: number;
  /** An occurrence past by less than this is still fired; older ones follow `misfire`. @default 60000 */
  readonly misfireGraceMs?: number;
  /** Occurrences per transaction (a schedule with more due loops). @default 500 */
  readonly maxOccurrencesPerStep?: number;
  /** Schedules per pass (the next pass takes the rest). @default 1000 */
  readonly maxSchedulesPerPass?: number;
}

export interface MaterializerDeps {
  readonly store: ScheduleStore;
  /** The engine's slot leases (DelayEngine.ownedSlots). */
  readonly slots: { ownedSlots(): SlotLease[] };
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: ScheduleMetrics;
}

/** The message of an occurrence: the template's content, the occurrence's id and due time. */
export function occurrenceMessage(
  schedule: StoredSchedule,
  id: string,
  dueMs: number,
  slotCount: number,
): NewMessage {
  const { template } = schedule;
  return {
    app: schedule.app,
    id,
    slot: slotOf(schedule.app, id, slotCount),
    topic: template.topic,
    key: template.key,
    payload: template.payload,
    payloadEncoding: template.payloadEncoding,
    headers: template.headers,
    deliverAtMs: dueMs,
    // Depends only on the template and the due time: a re-materialisation is an identical re-send.
    fingerprint: createHash('sha256')
      .update(`${template.fingerprint}\u0000${dueMs}`)
      .digest('base64url'),
    targets: template.targets ?? null,
    retry: template.retry ?? null,
    contentType: template.contentType ?? null,
  };
}

export class ScheduleMaterializer {
  private readonly passIntervalMs: number;
  private readonly window: Omit<PlanWindow, 'nowMs' | 'untilMs'>;
  private readonly maxSchedulesPerPass: number;
  private timers: NodeJS.Timeout[] = [];
  private running = false;
  private current: Promise<void> | null = null;
  private again = false;
  private lastSlots = '';

  constructor(
    private readonly deps: MaterializerDeps,
    private readonly options: MaterializerOptions,
  ) {
    this.passIntervalMs = options.passIntervalMs ?? 2000;
    this.window = {
      misfireGraceMs: options.misfireGraceMs ?? 60_000,
      maxOccurrences: options.maxOccurrencesPerStep ?? 500,
    };
    this.maxSchedulesPerPass = options.maxSchedulesPerPass ?? 1000;
  }

  /** How far ahead occurrences are materialised: a horizon, plus two passes of slack. */
  get aheadMs(): number {
    return this.options.horizonMs + 2 * this.passIntervalMs;
  }

  start(): Promise<void> {
    if (this.running) return Promise.resolve();
    this.running = true;
    this.timers = [
      setInterval(() => this.requestPass(), this.passIntervalMs),
      setInterval(() => {
        if (this.slotsKey() !== this.lastSlots) this.requestPass();
      }, SLOT_CHECK_MS),
    ];
    this.requestPass();
    return Promise.resolve();
  }

  /** Stops the timers; resolves when the pass under way finished. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.again = false;
    await this.current;
  }

  /** Runs a pass soon (after the one under way, if any). */
  requestPass(): void {
    if (!this.running) return;
    if (this.current) {
      this.again = true;
      return;
    }
    this.current = this.loop().finally(() => {
      this.current = null;
    });
  }

  /** Runs one pass now (tests; the timers run them otherwise). */
  async pass(): Promise<void> {
    const started = performance.now();
    const leases = this.deps.slots.ownedSlots();
    this.lastSlots = keyOf(leases);
    if (leases.length === 0) return;
    const epochs = new Map(leases.map((lease) => [lease.slot, lease.epoch]));
    const due = await this.deps.store.dueSchedules(
      [...epochs.keys()],
      this.deps.clock.now() + this.aheadMs,
      this.maxSchedulesPerPass,
    );
    for (const schedule of due) {
      const epoch = epochs.get(schedule.slot);
      if (epoch === undefined) continue;
      try {
        await this.materialiseSchedule({ slot: schedule.slot, epoch }, schedule.app, schedule.id);
      } catch (error) {
        this.deps.logger.warn(
          { err: error, app: schedule.app, schedule: schedule.id },
          'materialising a schedule failed; the next pass retries',
        );
      }
    }
    this.deps.metrics.pass((performance.now() - started) / 1000);
  }

  /** Materialises one schedule up to now + {@link aheadMs}, in steps of at most maxOccurrences. */
  async materialiseSchedule(lease: SlotLease, app: string, id: string): Promise<void> {
    for (;;) {
      const now = this.deps.clock.now();
      let planned = { onTime: 0, missed: 0, late: false, full: false, misfire: 'skip' };
      const outcome = await this.deps.store.materialise(
        lease,
        app,
        id,
        (schedule) => {
          const step = this.plan(schedule, now);
          if (step) planned = step.counts;
          return step?.step ?? null;
        },
        now + this.options.horizonMs + WHEEL_SLACK_MS / 2,
        now,
      );
      if (outcome.kind === 'fenced') {
        this.deps.metrics.fenced();
        return;
      }
      if (outcome.kind === 'skipped') return;
      if (planned.late) this.deps.metrics.foundLate(planned.misfire);
      this.deps.metrics.materialised(planned.onTime, planned.missed);
      if (outcome.conflicts > 0)
        this.deps.logger.warn(
          { app, schedule: id, conflicts: outcome.conflicts },
          'occurrence ids were taken by messages of other content; those occurrences were skipped',
        );
      if (!planned.full) return;
    }
  }

  private plan(
    schedule: StoredSchedule,
    nowMs: number,
  ): {
    step: MaterialisationStep;
    counts: { onTime: number; missed: number; late: boolean; full: boolean; misfire: string };
  } | null {
    if (schedule.state !== 'active' || schedule.nextAtMs === null) return null;
    const recurrence = new Recurrence(schedule.spec);
    const plan = planOccurrences(
      recurrence,
      schedule.id,
      schedule.revision,
      { nextAtMs: schedule.nextAtMs, occurrences: schedule.occurrences },
      { ...this.window, nowMs, untilMs: nowMs + this.aheadMs },
    );
    if (plan.occurrences.length === 0 && plan.cursor.nextAtMs === schedule.nextAtMs) return null;
    const last = plan.occurrences[plan.occurrences.length - 1];
    const missed = plan.occurrences.filter((occurrence) => occurrence.missed).length;
    return {
      step: {
        messages: plan.occurrences.map((occurrence) =>
          occurrenceMessage(schedule, occurrence.id, occurrence.dueMs, this.options.slotCount),
        ),
        nextAtMs: plan.cursor.nextAtMs,
        occurrences: plan.cursor.occurrences,
        lastOccurrenceId: last?.id ?? schedule.lastOccurrenceId,
        lastOccurrenceAtMs: last?.atMs ?? schedule.lastOccurrenceAtMs,
        state: plan.cursor.nextAtMs === null ? 'ended' : 'active',
      },
      counts: {
        onTime: plan.occurrences.length - missed,
        missed,
        late: plan.late,
        full: plan.occurrences.length >= this.window.maxOccurrences,
        misfire: schedule.spec.misfire,
      },
    };
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      try {
        await this.pass();
      } catch (error) {
        this.deps.logger.warn({ err: error }, 'schedule pass failed; the next one retries');
      }
    } while (this.again && this.running);
  }

  private slotsKey(): string {
    return keyOf(this.deps.slots.ownedSlots());
  }
}

function keyOf(leases: readonly SlotLease[]): string {
  return leases.map((lease) => `${lease.slot}@${lease.epoch}`).join(',');
}
