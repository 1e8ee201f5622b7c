/**
 * The storage port of recurring schedules (docs/adr/0009-materialising-occurrences.md). Methods
 * are domain operations; no connection or transaction type crosses them. The one that matters
 * for exactly-once is {@link ScheduleStore.materialise}: the occurrences' messages and the
 * schedule's new cursor are written in one transaction, fenced by the schedule slot's epoch.
 */
import type { NewMessage, SlotLease } from './ports';
import type { RecurrenceSpec } from './recurrence';
import type { ScheduleSpecInput } from './schedule-input';

export type ScheduleState = 'active' | 'paused' | 'ended';

/** What each occurrence's message is made of, resolved when the schedule was created or changed. */
export type OccurrenceTemplate = Omit<
  NewMessage,
  'app' | 'id' | 'slot' | 'deliverAtMs' | 'fingerprint'
> & {
  /** The fingerprint of the template; an occurrence's is derived from it and its due time. */
  readonly fingerprint: string;
};

export interface StoredSchedule {
  readonly app: string;
  readonly id: string;
  readonly slot: number;
  /** The timing fields as sent (views, PATCH merges). */
  readonly input: ScheduleSpecInput;
  readonly spec: RecurrenceSpec;
  /** The message template as sent. */
  readonly message: Record<string, unknown>;
  readonly template: OccurrenceTemplate;
  readonly state: ScheduleState;
  /** The first occurrence not materialised yet; null when ended. */
  readonly nextAtMs: number | null;
  /** Occurrences materialised (catch-ups included). */
  readonly occurrences: number;
  readonly lastOccurrenceId: string | null;
  readonly lastOccurrenceAtMs: number | null;
  /** Raised by every change (PATCH); part of the occurrence ids (see occurrenceId). */
  readonly revision: number;
  /** Of the create request as sent: an identical re-send is the same schedule. */
  readonly fingerprint: string;
  readonly createdAtMs: number;
  readonly updatedAtMs: number;
}

export type NewSchedule = Omit<
  StoredSchedule,
  | 'occurrences'
  | 'lastOccurrenceId'
  | 'lastOccurrenceAtMs'
  | 'revision'
  | 'createdAtMs'
  | 'updatedAtMs'
>;

export type CreateScheduleOutcome =
  | { readonly kind: 'created' | 'existing' | 'conflict'; readonly schedule: StoredSchedule }
  | { readonly kind: 'quota_exceeded'; readonly count: number };

/** A change decided from the current row (PATCH): raises the revision. */
export interface ScheduleRevision {
  readonly input: ScheduleSpecInput;
  readonly spec: RecurrenceSpec;
  readonly message: Record<string, unknown>;
  readonly template: OccurrenceTemplate;
  readonly state: ScheduleState;
  /**
   * The new revision's first occurrence, given the latest due time of an earlier revision's
   * occurrence that could not be cancelled (null: none): an occurrence time is never fired twice.
   */
  readonly nextAt: (uncancelledDueMs: number | null) => number | null;
}

export interface ScheduleChangeOutcome {
  readonly schedule: StoredSchedule;
  /** Occurrences of earlier revisions, not yet due, that were cancelled. */
  readonly cancelledOccurrences: number;
}

/** One materialisation step, decided from the locked row. */
export interface MaterialisationStep {
  readonly messages: readonly NewMessage[];
  readonly nextAtMs: number | null;
  readonly occurrences: number;
  readonly lastOccurrenceId: string | null;
  readonly lastOccurrenceAtMs: number | null;
  readonly state: ScheduleState;
}

export type MaterialiseOutcome =
  /** The slot's epoch is no longer the lease's: another node owns it; nothing was written. */
  | { readonly kind: 'fenced' }
  /** Deleted, paused, ended, or nothing to do: nothing was written. */
  | { readonly kind: 'skipped' }
  | {
      readonly kind: 'materialised';
      readonly created: number;
      /** Already existing with the same content (never after a clean step; counted for the metric). */
      readonly existing: number;
      /** An id taken by a message of other content (a client used the occurrence id). */
      readonly conflicts: number;
    };

export interface DueSchedule {
  readonly app: string;
  readonly id: string;
  readonly slot: number;
  readonly nextAtMs: number;
}

export interface ScheduleStore {
  /** Refuses (`quota_exceeded`) when the app has `maxPerApp` schedules already. */
  createSchedule(
    schedule: NewSchedule,
    maxPerApp: number,
    nowMs: number,
  ): Promise<CreateScheduleOutcome>;
  getSchedule(app: string, id: string): Promise<StoredSchedule | null>;
  /** By id, after `afterId` (keyset). */
  listSchedules(app: string, afterId: string | null, limit: number): Promise<StoredSchedule[]>;
  /**
   * Locks the row, asks `decide` (null: no change), cancels the earlier revisions' occurrences not
   * yet due, and writes the new revision, in one transaction. null when there is no such schedule.
   */
  reviseSchedule(
    app: string,
    id: string,
    decide: (current: StoredSchedule) => ScheduleRevision | null,
    nowMs: number,
  ): Promise<ScheduleChangeOutcome | null>;
  /** Deletes it and cancels its occurrences not yet due; null when there is no such schedule. */
  deleteSchedule(
    app: string,
    id: string,
    nowMs: number,
  ): Promise<{ cancelledOccurrences: number } | null>;
  /** Active schedules of these slots whose cursor is before `beforeMs`, earliest first. */
  dueSchedules(slots: readonly number[], beforeMs: number, limit: number): Promise<DueSchedule[]>;
  /**
   * One transaction: lock the schedule row, `plan` the step from it (null: nothing to do), lock
   * the slot's `slot_epochs` row FOR SHARE with the lease's epoch (else `fenced`), insert the
   * occurrences' messages with the normal idempotent insert (hints for their owners), advance the
   * cursor.
   */
  materialise(
    lease: SlotLease,
    app: string,
    id: string,
    plan: (schedule: StoredSchedule) => MaterialisationStep | null,
    hintBeforeMs: number,
    nowMs: number,
  ): Promise<MaterialiseOutcome>;
}
