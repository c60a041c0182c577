// query_sql: one read-only SELECT over the store, for what no other tool answers.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import * as z from 'zod';
import { QueryRefused, SQL_LIMITS, STORE_TABLES, readOnlyQuery } from '../../store/sql.js';
import type { StoreReader } from '../../store/reader.js';
import { READ_ONLY, UNTRUSTED, answer, refusal } from './conventions.js';

const TITLE = 'Read-only SQL over the store';
const TABLES = Object.entries(STORE_TABLES)
  .map(([table, columns]) => `${table}: ${columns}`)
  .join('; ');
const DESCRIPTION =
  'One read-only SELECT (DuckDB SQL) over the embedded store, for questions no other tool answers. ' +
  `Times are Unix nanoseconds. Tables: ${TABLES}. ` +
  `At most ${String(SQL_LIMITS.maxRows)} rows and ${String(SQL_LIMITS.timeoutMs)} ms; no writes, no files, no network.`;

const inputSchema = {
  sql: z.string().min(1).max(10_000),
  max_rows: z.number().int().min(1).max(SQL_LIMITS.maxRows).default(100),
};

const outputSchema = { columns: z.array(z.string()), rows: z.array(z.array(z.unknown())), truncated: z.boolean() };

/** Rows shown in the text answer; structuredContent has them all. */
const ROWS_IN_TEXT = 20;

export function registerQuerySql(server: McpServer, store: StoreReader): void {
  server.registerTool(
    'query_sql',
    { title: TITLE, description: DESCRIPTION, inputSchema, outputSchema, annotations: { ...READ_ONLY, title: TITLE } },
    async ({ sql, max_rows }) => {
      try {
        const result = await readOnlyQuery(store, sql, { maxRows: max_rows, timeoutMs: SQL_LIMITS.timeoutMs });
        const shown = JSON.stringify({ columns: result.columns, rows: result.rows.slice(0, ROWS_IN_TEXT) });
        return answer(
          `${String(result.rows.length)} rows${result.truncated ? ' (truncated)' : ''}. ${UNTRUSTED}\n${shown}`,
          { ...result },
        );
      } catch (e) {
        if (e instanceof QueryRefused) return refusal(`Query refused: ${e.message}`);
        throw e;
      }
    },
  );
}
