/** @hourglass/postgres: the MessageStore on Postgres. */
export { PgMessageStore } from './store';
export type { PgMessageStoreOptions } from './store';
export { MIGRATIONS } from './migrations';
export type { Migration } from './migrations';
export { PgAppStore } from './app-store';
export type { PgAppStoreOptions } from './app-store';
export { checkSchema, redactedUrl, SchemaError, SchemaMismatchError } from './schema-check';
export type { CheckSchemaOptions } from './schema-check';
