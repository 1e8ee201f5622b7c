/** The one thing a query function needs: a pool or a checked-out client. No driver type leaves the package. */
import type { QueryResult, QueryResultRow } from 'pg';

export interface Queryable {
  query<R extends QueryResultRow = QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<QueryResult<R>>;
  query<R extends QueryResultRow = QueryResultRow>(config: NamedQuery): Promise<QueryResult<R>>;
}

/**
 * A statement prepared once per connection under `name` and then only bound and executed: the
 * hot statements (insert, claim, mark) are long CTEs whose parse and analysis cost Postgres more
 * CPU than a single-message execution itself.
 */
export interface NamedQuery {
  name: string;
  text: string;
  values: unknown[];
}
