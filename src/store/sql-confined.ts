// Ad-hoc SQL over the store, for questions no tool covers, read-only and confined to the store
// for real: exactly one statement; DuckDB's own parser must serialize it as a SELECT (so no
// INSERT, DELETE, DROP, SET, ATTACH, COPY, PRAGMA, INSTALL, LOAD, ...) whose tree names only the
// store's tables and allowed functions (sql-allowed.ts), checked before DuckDB binds anything,
// so a refused file, setting or catalog is never opened. What runs is the SQL DuckDB writes
// back from that checked tree, never the text as given; DuckDB must classify it as a SELECT
// too; and the database has external access disabled and its configuration locked.
// The answer is bounded in rows, in time, and in bytes before any of it becomes JavaScript
// values (a thousand rows of a megabyte each would take gigabytes there): DuckDB measures the
// rows first. Each query has its own connection, so interrupting it stops only that query. It
// runs in the store's worker (store.ts), next to the database; the tools ask it through sql.ts.
import { StatementType, type DuckDBConnection, type DuckDBPreparedStatement } from '@duckdb/node-api';
import { refusalOf } from './sql-allowed.js';
import { QueryRefused, type QueryResult, type SqlLimits } from './sql.js';

const READ_ONLY = 'only SELECT queries are allowed: the store is read-only';
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Runs one confined SELECT on a connection of its own, which it closes. */
export async function confinedQuery(
  connection: DuckDBConnection,
  sql: string,
  limits: SqlLimits,
): Promise<QueryResult> {
  let timer: NodeJS.Timeout | undefined;
  let prepared: DuckDBPreparedStatement | undefined;
  let interrupted = false;
  const refusal = (e: unknown) =>
    interrupted
      ? new QueryRefused(`the query ran past ${String(limits.timeoutMs)} ms and was stopped`)
      : new QueryRefused(message(e));
  try {
    const statements = await connection.extractStatements(sql).catch((e: unknown) => {
      throw new QueryRefused(`cannot parse the query: ${message(e)}`);
    });
    if (statements.count !== 1)
      throw new QueryRefused(`expected exactly one SQL statement, got ${String(statements.count)}`);
    const checked = await confined(connection, sql);
    timer = setTimeout(() => {
      interrupted = true;
      connection.interrupt();
    }, limits.timeoutMs);
    const bytes = await answerBytes(connection, checked, limits.maxRows + 1).catch((e: unknown) => {
      throw refusal(e);
    });
    if (bytes > limits.maxBytes)
      throw new QueryRefused(
        `the answer would hold ${mib(bytes)} MiB of values, past the ${mib(limits.maxBytes)} MiB allowed: select fewer rows or columns, or shorten long values (left(), substr())`,
      );
    prepared = await connection.prepare(checked).catch((e: unknown) => {
      throw refusal(e);
    });
    if (prepared.statementType !== StatementType.SELECT) throw new QueryRefused(READ_ONLY);
    const reader = await prepared.streamAndReadUntil(limits.maxRows + 1).catch((e: unknown) => {
      throw refusal(e);
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

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 2 : 0);

/**
 * The statement as DuckDB writes it back from its parse tree, once the tree is a SELECT that
 * names nothing outside the store; otherwise QueryRefused, saying why.
 */
async function confined(connection: DuckDBConnection, sql: string): Promise<string> {
  // json_serialize_sql only parses: its argument is never bound or run.
  const parsed = await connection.runAndReadAll('SELECT json_serialize_sql($1::VARCHAR)', [sql]);
  const json = String(parsed.getRows()[0]?.[0]);
  const tree = JSON.parse(json) as { error?: boolean; error_message?: unknown };
  if (tree.error === true)
    throw new QueryRefused(
      /only select/i.test(String(tree.error_message))
        ? READ_ONLY
        : `cannot parse the query: ${String(tree.error_message)}`,
    );
  const problem = refusalOf(tree);
  if (problem !== undefined) throw new QueryRefused(problem);
  const written = await connection
    .runAndReadAll('SELECT json_deserialize_sql($1::JSON)', [json])
    .catch((e: unknown) => {
      throw new QueryRefused(`cannot run this query: ${message(e)}`);
    });
  return String(written.getRows()[0]?.[0]);
}

/** The size, as text, of the values of the first `rows` rows of the query, measured by DuckDB. */
async function answerBytes(connection: DuckDBConnection, query: string, rows: number): Promise<number> {
  const reader = await connection.runAndReadAll(
    `SELECT sum(strlen(CAST(COLUMNS(*) AS VARCHAR))) FROM (SELECT * FROM (${query}) LIMIT ${String(rows)})`,
  );
  return (reader.getRows()[0] ?? []).reduce((sum: number, column) => sum + Number(column ?? 0), 0);
}
