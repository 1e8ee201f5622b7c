/**
 * insertBatch: a whole batch in ONE statement, one round trip.
 *
 * The statement, CTE by CTE:
 * - `input`: the batch as parallel arrays, `unnest`ed with their ordinal (input order).
 * - `locked`: the batch's slots in `slot_epochs`, locked FOR SHARE in ascending slot order.
 *   Why: `acquireSlots` bumps an epoch with an UPDATE of that row, which must wait for every
 *   in-flight insert into the slot. Let L be the moment our lock is granted and e_L the epoch it
 *   returns. In READ COMMITTED a locking read follows the row's update chain, so e_L is the latest
 *   committed epoch at L (if a takeover was in flight, we waited for it), and it cannot change
 *   until we commit. So:
 *     * e_L equals the epoch this node holds → no takeover has committed since we acquired, and
 *       any later takeover waits for our commit; its reset and the load that follows see our row.
 *       The message is "wheelable": this node may put it in its own wheel.
 *     * otherwise another node owns the slot (or took it over while we waited). Its load may have
 *       run before we commit and missed our row, so a near-due message (deliver_at < hintBefore,
 *       i.e. inside the horizon the owner has already loaded) gets a `wheel_hints` row. The
 *       takeover that produced e_L committed its `DELETE FROM wheel_hints` before L, so it cannot
 *       erase our hint; a takeover after L waits for us and then loads the row itself.
 *   It does not matter whether the insert runs before or after the lock inside the statement: the
 *   argument only uses "e_L is current at L and frozen until commit". Ascending order matches
 *   `acquireSlots`, which locks its rows in the same order, so the two cannot deadlock.
 * - `ins`: `INSERT … ON CONFLICT (app, id) DO NOTHING`, returning the new rows' `seq` (identity).
 *   `DISTINCT ON (app, id) … ORDER BY app, id, ord` keeps the first occurrence of an id sent twice
 *   in one batch (the second behaves as a re-send of the first) and inserts in key order, so two
 *   batches racing on the same ids wait for each other in the same order instead of deadlocking.
 *   The statement is first sent WITHOUT the ON CONFLICT clause ({@link INSERT_NEW}): ON CONFLICT's
 *   speculative insertion (a pre-check probe, a speculative lock and a confirm WAL record per row)
 *   was about 15 % of the statement's CPU, and nearly every batch is all new ids. If an id exists
 *   (a re-send, or a concurrent insert of it that commits while we wait), that statement fails
 *   with unique_violation on `messages_pkey` and rolls back whole, hints and NOTIFY included;
 *   {@link insertMessages} then sends the ON CONFLICT form. Rows go in key order, so a batch that
 *   is re-sent whole fails at its first row, before inserting anything. Costs of a fallback: one
 *   more statement, the identity values of rows inserted before the failure (seqs are not
 *   gap-free anyway), and a duplicate-key ERROR line in the Postgres log.
 * - `classified`: wheelable = the locked epoch equals the one in ownedEpochs for that slot.
 * - `hints` + `notified`: hint rows, then `pg_notify` with the comma-separated hinted slots
 *   (chunked to stay under NOTIFY's 8000-byte payload limit). NOTIFY is transactional: listeners
 *   hear it only once the hints are committed. `notified` is a plain SELECT CTE, which only runs
 *   when referenced, hence the cross join in the final SELECT.
 * - Final SELECT: ONE row that describes every input row, in input order: `seqs`, the new rows'
 *   seqs comma-separated (empty for an input row that created nothing), `wheelable`, one `1`/`0`
 *   character per input row, and `created_at`. Every row of a statement gets the same created_at
 *   (the column default reads now(), the transaction's start); `created_ats` lists them per input
 *   row only if that ever stops being true. Parsing 1000 rows of four columns was about 1.5 ms of
 *   the node's (single-threaded) CPU per batch; splitting two strings is a fifth of that.
 *   An input row that created nothing is an existing id; the caller reads those rows with
 *   {@link selectMessages} (a fresh snapshot, so it also sees a row that a concurrent insert
 *   committed after this statement began, which ON CONFLICT waited for). A second occurrence of
 *   an id created by this batch joins its first occurrence's row, so it reports the same seq;
 *   the caller treats it as a re-send of the first.
 */
import type { NewMessage } from '@hourglass/core';
import type { MessageRow } from '../rows';
import { MESSAGE_COLUMNS, encodingCode, leaseArrays, seqNumber, targetExtras } from '../rows';
import { byteaArray, integerArray, textArray } from './binary-arrays';
import type { Queryable } from './db';

const insertBatchSql = (onConflict: string): string => `
WITH input AS (
  -- "C" like the columns, so comparisons with them need no collation choice.
  SELECT r.app COLLATE "C" AS app, r.id COLLATE "C" AS id, r.slot, r.topic, r.msg_key, r.payload,
         r.payload_encoding, r.headers, r.deliver_at, r.fingerprint, r.extra::jsonb AS extra, r.ord
  FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::bytea[], $7::smallint[],
              $8::text[], $9::bigint[], $10::text[], $15::text[])
       WITH ORDINALITY AS r(app, id, slot, topic, msg_key, payload, payload_encoding, headers, deliver_at, fingerprint, extra, ord)
),
locked AS MATERIALIZED (
  SELECT e.slot, e.epoch
  FROM slot_epochs e
  WHERE e.slot IN (SELECT slot FROM input)
  ORDER BY e.slot
  FOR SHARE
),
ins AS (
  INSERT INTO messages (app, id, slot, topic, msg_key, payload, payload_encoding, headers, deliver_at, fingerprint,
                        targets, target_states, retry, content_type)
  SELECT DISTINCT ON (app, id) app, id, slot, topic, msg_key, payload, payload_encoding, headers::jsonb, deliver_at, fingerprint,
         extra->'t', extra->'s', nullif(extra->'r', 'null'::jsonb), extra->>'c'
  FROM input
  ORDER BY app, id, ord
  ${onConflict}
  RETURNING seq, app, id, slot, deliver_at, created_at
),
owned AS (
  SELECT * FROM unnest($11::int[], $12::bigint[]) AS o(slot, epoch)
),
classified AS (
  SELECT ins.seq, ins.app, ins.id, ins.slot, ins.deliver_at, ins.created_at,
         coalesce(l.epoch = o.epoch, false) AS wheelable
  FROM ins
  LEFT JOIN locked l ON l.slot = ins.slot
  LEFT JOIN owned o ON o.slot = ins.slot
),
hints AS (
  INSERT INTO wheel_hints (slot, seq, deliver_at)
  SELECT slot, seq, deliver_at FROM classified
  WHERE NOT wheelable AND deliver_at < $13::bigint
  RETURNING slot
),
notified AS (
  SELECT pg_notify($14::text, string_agg(slot::text, ',' ORDER BY slot))
  FROM (SELECT slot, (row_number() OVER (ORDER BY slot) - 1) / 500 AS chunk
        FROM (SELECT DISTINCT slot FROM hints) d) s
  GROUP BY chunk
)
SELECT string_agg(coalesce(c.seq::text, ''), ',' ORDER BY i.ord) AS seqs,
       string_agg(CASE WHEN c.wheelable THEN '1' ELSE '0' END, '' ORDER BY i.ord) AS wheelable,
       min(c.created_at) AS created_at,
       CASE WHEN min(c.created_at) <> max(c.created_at)
            THEN string_agg(coalesce(c.created_at::text, ''), ',' ORDER BY i.ord) END AS created_ats
FROM input i
LEFT JOIN classified c ON c.app = i.app AND c.id = i.id
CROSS JOIN (SELECT count(*) FROM notified) n
`;
/** Every id new: the common case, without ON CONFLICT's per-row cost. */
const INSERT_NEW = insertBatchSql('');
const INSERT_BATCH = insertBatchSql('ON CONFLICT (app, id) DO NOTHING');

interface InsertResultRow {
  seqs: string;
  wheelable: string;
  created_at: string | null;
  created_ats: string | null;
}

/** What the insert statement created, per input row (input order). */
export interface InsertedRows {
  /** The new row's seq; null when the statement created no row for it (an existing id). */
  readonly seqs: (number | null)[];
  readonly wheelable: boolean[];
  /** The new row's created_at (meaningless where seqs is null). */
  createdAtMs(index: number): number;
}

function parseInserted(row: InsertResultRow | undefined, count: number): InsertedRows {
  if (!row) throw new Error('the insert statement returned no row');
  const seqs = row.seqs.split(',').map((text) => (text === '' ? null : seqNumber(text)));
  if (seqs.length !== count || row.wheelable.length !== count)
    throw new Error(`the insert statement described ${seqs.length} of ${count} messages`);
  const wheelable = new Array<boolean>(count);
  for (let index = 0; index < count; index++)
    wheelable[index] = row.wheelable.charCodeAt(index) === 49; // '1'
  const createdAt = Number(row.created_at);
  const perRow = row.created_ats?.split(',').map(Number);
  return {
    seqs,
    wheelable,
    createdAtMs: perRow ? (index) => perRow[index]! : () => createdAt,
  };
}

export async function insertMessages(
  db: Queryable,
  messages: readonly NewMessage[],
  ownedEpochs: ReadonlyMap<number, number>,
  hintBeforeMs: number,
  channel: string,
): Promise<InsertedRows> {
  const [ownedSlots, ownedEpochValues] = leaseArrays(ownedEpochs);
  // The batch's arrays in binary format (see ./binary-arrays.ts): no escaping or hex here, no
  // array literal parsing in Postgres.
  const values = [
    textArray(messages.map((m) => m.app)),
    textArray(messages.map((m) => m.id)),
    integerArray(
      'int4',
      messages.map((m) => m.slot),
    ),
    textArray(messages.map((m) => m.topic)),
    textArray(messages.map((m) => m.key)),
    byteaArray(messages.map((m) => m.payload)),
    integerArray(
      'int2',
      messages.map((m) => encodingCode(m.payloadEncoding)),
    ),
    textArray(messages.map((m) => JSON.stringify(m.headers))),
    integerArray(
      'int8',
      messages.map((m) => m.deliverAtMs),
    ),
    textArray(messages.map((m) => m.fingerprint)),
    integerArray('int4', ownedSlots),
    integerArray('int8', ownedEpochValues),
    hintBeforeMs,
    channel,
    textArray(messages.map(targetExtras)),
  ];
  let row: InsertResultRow | undefined;
  try {
    row = (
      await db.query<InsertResultRow>({ name: 'hourglass_insert_new', text: INSERT_NEW, values })
    ).rows[0];
  } catch (err) {
    if (!isDuplicateId(err)) throw err;
    row = (
      await db.query<InsertResultRow>({
        name: 'hourglass_insert_batch',
        text: INSERT_BATCH,
        values,
      })
    ).rows[0];
  }
  return parseInserted(row, messages.length);
}

/** unique_violation on the (app, id) primary key: some id of the batch exists already. */
function isDuplicateId(err: unknown): boolean {
  const { code, constraint } = err as { code?: unknown; constraint?: unknown };
  return code === '23505' && constraint === 'messages_pkey';
}

/** The committed rows of these ids (read with a fresh snapshot). */
export async function selectMessages(
  db: Queryable,
  keys: readonly { app: string; id: string }[],
): Promise<MessageRow[]> {
  const result = await db.query<MessageRow>(
    `SELECT ${MESSAGE_COLUMNS} FROM messages
     WHERE (app, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
    [keys.map((k) => k.app), keys.map((k) => k.id)],
  );
  return result.rows;
}
