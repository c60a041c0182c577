// Ad-hoc SQL over the store, for questions no tool covers, read-only for real: exactly one
// statement, and DuckDB itself must classify it as a SELECT (so no INSERT, DELETE, DROP, SET,
// ATTACH, COPY, PRAGMA, ...); the database has external access disabled and its configuration
// locked, so no file or network reads either; rows and time are bounded, each query on its
// own connection so that interrupting it at the deadline stops only that query.
import { StatementType, type DuckDBPreparedStatement } from '@duckdb/node-api';
import type { Store } from './store.js';

export class QueryRefused extends Error {}

export interface QueryResult {
  columns: string[];
  rows: unknown[][];
  /** More rows matched than were returned. */
  truncated: boolean;
}

export const SQL_LIMITS = { maxRows: 1000, timeoutMs: 5000 } as const;

export async function readOnlyQuery(
  store: Store,
  sql: string,
  limits: { maxRows: number; timeoutMs: number } = SQL_LIMITS,
): Promise<QueryResult> {
  const connection = await store.connect();
  let timer: NodeJS.Timeout | undefined;
  let prepared: DuckDBPreparedStatement | undefined;
  try {
    const statements = await connection.extractStatements(sql).catch((e: unknown) => {
      throw new QueryRefused(`cannot parse the query: ${e instanceof Error ? e.message : String(e)}`);
    });
    if (statements.count !== 1)
      throw new QueryRefused(`expected exactly one SQL statement, got ${String(statements.count)}`);
    prepared = await statements.prepare(0).catch((e: unknown) => {
      throw new QueryRefused(e instanceof Error ? e.message : String(e));
    });
    if (prepared.statementType !== StatementType.SELECT)
      throw new QueryRefused('only SELECT queries are allowed: the store is read-only');
    let interrupted = false;
    timer = setTimeout(() => {
      interrupted = true;
      connection.interrupt();
    }, limits.timeoutMs);
    const reader = await prepared.streamAndReadUntil(limits.maxRows + 1).catch((e: unknown) => {
      throw interrupted
        ? new QueryRefused(`the query ran past ${String(limits.timeoutMs)} ms and was stopped`)
        : new QueryRefused(e instanceof Error ? e.message : String(e));
    });
    const rows = reader.getRowsJson();
    return {
      columns: reader.columnNames(),
      rows: rows.slice(0, limits.maxRows),
      truncated: rows.length > limits.maxRows,
    };
  } finally {
    clearTimeout(timer);
    prepared?.destroySync();
    connection.closeSync();
  }
}
