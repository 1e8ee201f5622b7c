/**
 * 004_owner_revision: `slot_epochs.owner_revision`, the coordinator revision (the etcd ownership
 * key's create revision; 0 for a standalone node) of the acquisition that last raised the slot's
 * epoch. An acquisition carrying a lower revision comes from an owner that has since been
 * replaced, and is refused (see ../sql/slots.ts): without it, a late acquisition of an old owner
 * raised the epoch over the new owner's, and the slot stalled with nobody firing it.
 */
export const sql = `
ALTER TABLE slot_epochs ADD COLUMN owner_revision bigint NOT NULL DEFAULT 0;
`;
