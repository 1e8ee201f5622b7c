/** @hourglass/postgres: the MessageStore on Postgres. */
export { PgMessageStore } from './store';
export type { PgMessageStoreOptions } from './store';
export { MIGRATIONS } from './migrations';
export type { Migration } from './migrations';
export { PgAppStore } from './app-store';
export { PgScheduleStore } from './schedule-store';
export type { PgScheduleStoreOptions } from './schedule-store';
export type { PgAppStoreOptions } from './app-store';
export { PgRetentionStore } from './retention-store';
export type { PgRetentionStoreOptions } from './retention-store';
export { checkSchema, redactedUrl, SchemaError, SchemaMismatchError } from './schema-check';
export type { CheckSchemaOptions } from './schema-check';
