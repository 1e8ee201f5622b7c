/**
 * The `schedules` table (009_schedules): one function per statement. The reasoning that makes
 * materialisation exactly-once is in docs/adr/0009-materialising-occurrences.md; the fence itself
 * is the one of the firing path (./claims.ts "The fence"): a `slot_epochs` row locked FOR SHARE and
 * compared with the caller's lease, so a takeover (which UPDATEs the row) either committed before
 * (the lock sees the new epoch and the step writes nothing) or waits for the step's commit.
 */
import type {
  OccurrenceTemplate,
  RecurrenceSpec,
  ScheduleSpecInput,
  ScheduleState,
  StoredSchedule,
} from '@hourglass/core';
import type { Queryable } from './db';

export interface ScheduleRow {
  app: string;
  id: string;
  slot: number;
  spec: { input: ScheduleSpecInput; spec: RecurrenceSpec };
  template: { message: Record<string, unknown>; resolved: StoredTemplate };
  state: ScheduleState;
  next_at: string | null;
  occurrences: string;
  last_occurrence_id: string | null;
  last_occurrence_at: string | null;
  revision: number;
  fingerprint: string;
  created_at: string;
  updated_at: string;
}

/** The template as jsonb holds it: the payload as base64. */
export type StoredTemplate = Omit<OccurrenceTemplate, 'payload'> & { payload: string };

const COLUMNS = `app, id, slot, spec, template, state, next_at, occurrences, last_occurrence_id,
  last_occurrence_at, revision, fingerprint, created_at, updated_at`;

const numberOrNull = (text: string | null): number | null => (text === null ? null : Number(text));

export function toStoredSchedule(row: ScheduleRow): StoredSchedule {
  const { payload, ...rest } = row.template.resolved;
  return {
    app: row.app,
    id: row.id,
    slot: row.slot,
    input: row.spec.input,
    spec: row.spec.spec,
    message: row.template.message,
    template: { ...rest, payload: Buffer.from(payload, 'base64') },
    state: row.state,
    nextAtMs: numberOrNull(row.next_at),
    occurrences: Number(row.occurrences),
    lastOccurrenceId: row.last_occurrence_id,
    lastOccurrenceAtMs: numberOrNull(row.last_occurrence_at),
    revision: row.revision,
    fingerprint: row.fingerprint,
    createdAtMs: Number(row.created_at),
    updatedAtMs: Number(row.updated_at),
  };
}

function templateJson(message: Record<string, unknown>, template: OccurrenceTemplate): string {
  return JSON.stringify({
    message,
    resolved: { ...template, payload: template.payload.toString('base64') },
  });
}

/**
 * Inserts the schedule unless the app has `max` already. Creates of one app are serialised by a
 * transaction-scoped advisory lock on the app, so two concurrent creates cannot both pass the count.
 */
export async function insertSchedule(
  db: Queryable,
  schedule: Omit<
    StoredSchedule,
    | 'occurrences'
    | 'lastOccurrenceId'
    | 'lastOccurrenceAtMs'
    | 'revision'
    | 'createdAtMs'
    | 'updatedAtMs'
  >,
  max: number,
  nowMs: number,
): Promise<{ inserted: ScheduleRow | null; count: number }> {
  await db.query(`SELECT pg_advisory_xact_lock(hashtext('hourglass_schedules'), hashtext($1))`, [
    schedule.app,
  ]);
  const counted = await db.query<{ count: string }>(
    'SELECT count(*) AS count FROM schedules WHERE app = $1',
    [schedule.app],
  );
  const count = Number(counted.rows[0]?.count ?? 0);
  if (count >= max) return { inserted: null, count };
  const result = await db.query<ScheduleRow>(
    `INSERT INTO schedules (app, id, slot, spec, template, state, next_at, fingerprint, created_at, updated_at)
     VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7, $8, $9, $9)
     ON CONFLICT (app, id) DO NOTHING
     RETURNING ${COLUMNS}`,
    [
      schedule.app,
      schedule.id,
      schedule.slot,
      JSON.stringify({ input: schedule.input, spec: schedule.spec }),
      templateJson(schedule.message, schedule.template),
      schedule.state,
      schedule.nextAtMs,
      schedule.fingerprint,
      nowMs,
    ],
  );
  return { inserted: result.rows[0] ?? null, count };
}

export async function selectSchedule(
  db: Queryable,
  app: string,
  id: string,
  forUpdate = false,
): Promise<ScheduleRow | null> {
  const result = await db.query<ScheduleRow>(
    `SELECT ${COLUMNS} FROM schedules WHERE app = $1 AND id = $2${forUpdate ? ' FOR UPDATE' : ''}`,
    [app, id],
  );
  return result.rows[0] ?? null;
}

export async function selectSchedules(
  db: Queryable,
  app: string,
  afterId: string | null,
  limit: number,
): Promise<ScheduleRow[]> {
  const result = await db.query<ScheduleRow>(
    `SELECT ${COLUMNS} FROM schedules WHERE app = $1 AND ($2::text IS NULL OR id > $2)
     ORDER BY id LIMIT $3`,
    [app, afterId, limit],
  );
  return result.rows;
}

/**
 * The occurrence ids of one revision are `<id>:<revision>:<ms>`; as "C"-collated text they form
 * the key range [`<id>:<revision>:`, `<id>:<revision>;`) (`;` follows `:`), which the primary key
 * (app, id) scans directly.
 */
function revisionRange(id: string, revision: number): [string, string] {
  return [`${id}:${revision}:`, `${id}:${revision};`];
}

/**
 * Cancels the occurrences of a revision that are still `scheduled` (due or not), like DELETE
 * /v1/messages/{id} does each (the claim takes only scheduled rows, so none of them fires after
 * this commits). Returns how many, and the latest due time of the revision's occurrences that
 * were not cancelled (being or already delivered).
 */
export async function cancelRevisionOccurrences(
  db: Queryable,
  app: string,
  id: string,
  revision: number,
  nowMs: number,
): Promise<{ cancelled: number; uncancelledDueMs: number | null }> {
  const [from, to] = revisionRange(id, revision);
  const cancelled = await db.query(
    `UPDATE messages SET state = 3, finished_at = $4
     WHERE app = $1 AND id >= $2 AND id < $3 AND state = 0`,
    [app, from, to, nowMs],
  );
  const rest = await db.query<{ due: string | null }>(
    `SELECT max(deliver_at) AS due FROM messages
     WHERE app = $1 AND id >= $2 AND id < $3 AND state <> 3`,
    [app, from, to],
  );
  return {
    cancelled: cancelled.rowCount ?? 0,
    uncancelledDueMs: numberOrNull(rest.rows[0]?.due ?? null),
  };
}

export async function updateScheduleRevision(
  db: Queryable,
  app: string,
  id: string,
  change: {
    input: ScheduleSpecInput;
    spec: RecurrenceSpec;
    message: Record<string, unknown>;
    template: OccurrenceTemplate;
    state: ScheduleState;
    nextAtMs: number | null;
  },
  nowMs: number,
): Promise<ScheduleRow> {
  const result = await db.query<ScheduleRow>(
    `UPDATE schedules SET spec = $3::jsonb, template = $4::jsonb, state = $5, next_at = $6,
       revision = revision + 1, updated_at = $7
     WHERE app = $1 AND id = $2
     RETURNING ${COLUMNS}`,
    [
      app,
      id,
      JSON.stringify({ input: change.input, spec: change.spec }),
      templateJson(change.message, change.template),
      change.state,
      change.nextAtMs,
      nowMs,
    ],
  );
  const row = result.rows[0];
  if (!row) throw new Error(`schedule ${app}/${id} vanished while locked`);
  return row;
}

export async function deleteScheduleRow(db: Queryable, app: string, id: string): Promise<void> {
  await db.query('DELETE FROM schedules WHERE app = $1 AND id = $2', [app, id]);
}

/** The materialiser's pass: through schedules_due_idx, per slot, earliest cursor first. */
export async function selectDueSchedules(
  db: Queryable,
  slots: readonly number[],
  beforeMs: number,
  limit: number,
): Promise<{ app: string; id: string; slot: number; next_at: string }[]> {
  const result = await db.query<{ app: string; id: string; slot: number; next_at: string }>(
    `SELECT app, id, slot, next_at FROM schedules
     WHERE slot = ANY($1::int[]) AND state = 'active' AND next_at < $2
     ORDER BY next_at LIMIT $3`,
    [slots, beforeMs, limit],
  );
  return result.rows;
}

/**
 * The fence of a materialisation step: the `slot_epochs` rows of the schedule's slot and of its
 * occurrences' slots, locked FOR SHARE in ascending slot order (the order takeovers lock in, so
 * the two cannot deadlock; the insert that follows locks only rows already held). True when the
 * schedule slot's epoch is still the lease's.
 */
export async function lockScheduleFence(
  db: Queryable,
  slot: number,
  epoch: number,
  messageSlots: readonly number[],
): Promise<boolean> {
  const result = await db.query<{ slot: number; epoch: string }>(
    `SELECT slot, epoch FROM slot_epochs WHERE slot = ANY($1::int[]) ORDER BY slot FOR SHARE`,
    [[...new Set([slot, ...messageSlots])]],
  );
  const row = result.rows.find((candidate) => candidate.slot === slot);
  return row !== undefined && Number(row.epoch) === epoch;
}

export async function advanceSchedule(
  db: Queryable,
  app: string,
  id: string,
  step: {
    nextAtMs: number | null;
    occurrences: number;
    lastOccurrenceId: string | null;
    lastOccurrenceAtMs: number | null;
    state: ScheduleState;
  },
  nowMs: number,
): Promise<void> {
  await db.query(
    `UPDATE schedules SET next_at = $3, occurrences = $4, last_occurrence_id = $5,
       last_occurrence_at = $6, state = $7, updated_at = $8
     WHERE app = $1 AND id = $2`,
    [
      app,
      id,
      step.nextAtMs,
      step.occurrences,
      step.lastOccurrenceId,
      step.lastOccurrenceAtMs,
      step.state,
      nowMs,
    ],
  );
}
