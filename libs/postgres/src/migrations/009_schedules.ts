/**
 * 009_schedules: recurring schedules (issue 14, docs/adr/0009-materialising-occurrences.md).
 *
 * A schedule lives in the slot of its own id (`slotOf(app, id)`); the owner of that slot
 * materialises its occurrences as ordinary `messages` rows, ahead of time, and advances `next_at`
 * (the first occurrence not materialised yet) in the same transaction, fenced by the slot's epoch.
 * - `spec`: `{input, spec}`: the timing fields as sent, and as resolved (RecurrenceSpec).
 * - `template`: `{message, resolved}`: the message template as sent, and resolved (targets,
 *   retry strategy, payload as base64) the way each occurrence's message is inserted.
 * - `revision`: raised by every change; part of every occurrence's message id.
 * - `schedules_due_idx` serves the materialiser's pass: active schedules of a slot by next_at.
 */
export const sql = `
CREATE TABLE schedules (
  app                text COLLATE "C" NOT NULL,
  id                 text COLLATE "C" NOT NULL,
  slot               integer NOT NULL,
  spec               jsonb   NOT NULL,
  template           jsonb   NOT NULL,
  state              text    NOT NULL CHECK (state IN ('active', 'paused', 'ended')),
  next_at            bigint,
  occurrences        bigint  NOT NULL DEFAULT 0,
  last_occurrence_id text,
  last_occurrence_at bigint,
  revision           integer NOT NULL DEFAULT 1,
  fingerprint        text    NOT NULL,
  created_at         bigint  NOT NULL,
  updated_at         bigint  NOT NULL,
  PRIMARY KEY (app, id)
);
CREATE INDEX schedules_due_idx ON schedules (slot, next_at) WHERE state = 'active';
`;
