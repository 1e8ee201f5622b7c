/**
 * The ordered, versioned migrations. A migration is never edited once released: add the next
 * version instead. `version` is what `schema_migrations` records.
 */
import { sql as init } from './001_init';
import { sql as apps } from './002_apps';
import { sql as seq } from './003_seq';
import { sql as ownerRevision } from './004_owner_revision';
import { sql as targets } from './005_targets';
import { sql as versions } from './006_versions';
import { sql as search } from './007_search';
import { sql as retention } from './008_retention';
import { sql as schedules } from './009_schedules';

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: '001_init', sql: init },
  { version: 2, name: '002_apps', sql: apps },
  { version: 3, name: '003_seq', sql: seq },
  { version: 4, name: '004_owner_revision', sql: ownerRevision },
  { version: 5, name: '005_targets', sql: targets },
  { version: 6, name: '006_versions', sql: versions },
  { version: 7, name: '007_search', sql: search },
  { version: 8, name: '008_retention', sql: retention },
  { version: 9, name: '009_schedules', sql: schedules },
];
