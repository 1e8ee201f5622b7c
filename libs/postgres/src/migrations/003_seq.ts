/**
 * 003_seq: a store-wide sequence number per message, so the wheel and the firing path refer to a
 * message by one integer instead of its (app, id) strings (issue 5: under 100 bytes per message
 * held in the wheel).
 *
 * - `messages.seq`: `bigint GENERATED ALWAYS AS IDENTITY`, unique (`messages_seq_idx`). Inserts
 *   never name it (ALWAYS refuses an explicit value), so every writer, including a bulk
 *   `INSERT … SELECT` like the bench's scale fill, gets one from the identity's sequence. Adding
 *   the column numbers the existing rows too (in physical order), so the unique index can be
 *   built right away. The engine keeps seqs in doubles: exact below 2^53, which the sequence does
 *   not reach (9·10^15 messages). Values are unique, not gap-free and not an order of anything
 *   the engine relies on; loadDue merely uses them to break due-time ties for keyset paging.
 * - claim, markDelivered and releaseClaims probe `messages_seq_idx` (see ../sql/claims.ts).
 * - `wheel_hints` carries the seq instead of (app, id): draining hints yields wheel items
 *   directly. Hints left by the previous version are numbered from their messages; a hint whose
 *   message is gone (there is none in practice, hints live for milliseconds) is dropped.
 *
 * Cost: adding an identity column rewrites `messages` and builds the unique index inside the
 * migration transaction, under an exclusive lock: inserts and firing wait for it (minutes for
 * tens of millions of rows). Nodes of the previous version cannot write hints into the new
 * `wheel_hints`, so upgrade every node of a cluster together.
 */
export const sql = `
ALTER TABLE messages ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX messages_seq_idx ON messages (seq);

ALTER TABLE wheel_hints ADD COLUMN seq bigint;
UPDATE wheel_hints h SET seq = m.seq FROM messages m WHERE m.app = h.app AND m.id = h.id;
DELETE FROM wheel_hints WHERE seq IS NULL;
ALTER TABLE wheel_hints ALTER COLUMN seq SET NOT NULL, DROP COLUMN app, DROP COLUMN id;
`;
