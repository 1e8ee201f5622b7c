/**
 * Recurring schedules under the faults: when the load starts, `count` schedules `every: 1s` to the
 * run's topic are created with POST /v1/schedules (retried like the load's POSTs: an identical
 * re-send answers 200), each starting at a whole second `START_LEAD_MS` ahead. They are never
 * changed, so their occurrences are the messages `<scheduleId>:<revision>:<epoch ms>` for every
 * second from `startAt` on (README "Recurring schedules", docs/adr/0009), due at that time (no
 * jitter).
 *
 * Judged from `startAt` to when the load stopped: each of those occurrences must arrive exactly
 * once, never before its time, like any acknowledged message (they become rows of their own,
 * `<window> (recurring)`). Any other message id of a schedule (another revision, a time off its
 * grid) is a stray occurrence the cluster invented, and fails the run. Occurrences due after the
 * load stopped still arrive while the suite drains; they are not judged.
 */
import type { SentMessage } from './load';
import type { AttemptLog, RetryingClient } from './requests';

export const EVERY_MS = 1_000;
/** The first occurrence is this far (rounded up to a second) after the schedule is sent. */
const START_LEAD_MS = 5_000;

export interface ScheduleRecord extends AttemptLog {
  id: string;
  createdAt: number;
  startAt: number;
  ackedAt?: number;
  revision?: number;
  /** A non-retriable answer, or `gave up`. */
  failed?: string;
}

export class RecurringSchedules {
  readonly schedules: ScheduleRecord[] = [];

  constructor(
    private readonly client: RetryingClient,
    private readonly topic: string,
    private readonly runId: string,
    private readonly count: number,
  ) {}

  /** Sends every schedule; resolves once each was acknowledged, refused or given up. */
  async create(giveUpMs: number): Promise<void> {
    const now = Date.now();
    const startAt = Math.ceil((now + START_LEAD_MS) / EVERY_MS) * EVERY_MS;
    await Promise.all(
      Array.from({ length: this.count }, (_, i) => {
        const schedule: ScheduleRecord = {
          id: `chaos-${this.runId}-s${i + 1}`,
          createdAt: now,
          startAt,
          attempts: 0,
          failures: [],
        };
        this.schedules.push(schedule);
        return this.send(schedule, now + giveUpMs);
      }),
    );
  }

  private async send(schedule: ScheduleRecord, giveUpAt: number): Promise<void> {
    const body = JSON.stringify({
      id: schedule.id,
      everyMs: EVERY_MS,
      startAt: schedule.startAt,
      message: { topic: this.topic, key: schedule.id, payload: { schedule: schedule.id } },
    });
    const answer = await this.client.send('POST', '/v1/schedules', body, schedule, giveUpAt);
    if (answer.kind === 'gave-up') {
      schedule.failed = 'gave up';
    } else if (answer.status === 200 || answer.status === 201) {
      schedule.ackedAt = Date.now();
      schedule.revision = (JSON.parse(answer.text) as { revision: number }).revision;
    } else {
      schedule.failed = `${answer.status} ${answer.text.slice(0, 200)}`;
    }
  }

  /** Schedules not acknowledged (yet), with why. */
  get unacknowledged(): string[] {
    return this.schedules
      .filter((s) => s.ackedAt === undefined)
      .map((s) => `${s.id}: ${s.failed ?? 'not answered yet'}`);
  }

  /** How many of `received` ids are occurrences of these schedules. */
  occurrencesIn(received: ReadonlyMap<string, unknown>): number {
    let n = 0;
    for (const id of received.keys()) if (this.scheduleOf(id)) n++;
    return n;
  }

  /**
   * Every occurrence due from a schedule's start until `untilMs` (exclusive), as an acknowledged
   * message of the load (acknowledged when its schedule was). The schedule's own failed requests
   * go with its first occurrence.
   */
  expected(untilMs: number): SentMessage[] {
    const out: SentMessage[] = [];
    for (const s of this.schedules) {
      if (s.ackedAt === undefined || s.revision === undefined) continue;
      for (let due = s.startAt; due < untilMs; due += EVERY_MS) {
        const first = due === s.startAt;
        out.push({
          id: `${s.id}:${s.revision}:${due}`,
          via: 'kafka',
          occurrenceOf: s.id,
          createdAt: s.createdAt,
          delayMs: due - s.createdAt,
          attempts: first ? s.attempts : 0,
          failures: first ? s.failures : [],
          ackedAt: s.ackedAt,
          ackStatus: 201,
          dueMs: due,
        });
      }
    }
    return out;
  }

  /** Received ids that name one of the schedules but are none of its occurrences. */
  strays(received: ReadonlyMap<string, unknown>): string[] {
    const out: string[] = [];
    for (const id of received.keys()) {
      const schedule = this.scheduleOf(id);
      if (!schedule) continue;
      const [revision, at] = id.slice(schedule.id.length + 1).split(':');
      const due = Number(at);
      const onGrid =
        Number.isInteger(due) &&
        due >= schedule.startAt &&
        (due - schedule.startAt) % EVERY_MS === 0;
      if (Number(revision) !== schedule.revision || !onGrid || String(due) !== at) out.push(id);
    }
    return out;
  }

  private scheduleOf(id: string): ScheduleRecord | undefined {
    const colon = id.indexOf(':');
    if (colon < 0) return undefined;
    const scheduleId = id.slice(0, colon);
    return this.schedules.find((s) => s.id === scheduleId);
  }
}
