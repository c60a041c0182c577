// Ad-hoc SQL over the store, for questions no tool covers: the limits and the refusal, as the
// tools ask it. The query is confined to the store and bounded where it runs, in the store's
// worker, next to the database (sql-confined.ts).
import type { StoreReader } from './reader.js';

export class QueryRefused extends Error {}

export interface QueryResult {
  columns: string[];
  rows: unknown[][];
  /** More rows matched than were returned. */
  truncated: boolean;
}

export interface SqlLimits {
  maxRows: number;
  timeoutMs: number;
  /** The returned values' size as text, at most. */
  maxBytes: number;
}

export const SQL_LIMITS: SqlLimits = { maxRows: 1000, timeoutMs: 5000, maxBytes: 1024 * 1024 };

/** What each table and column holds, for query_sql's callers. */
export const STORE_TABLES = {
  spans:
    'app spans: trace_id, span_id, parent_span_id, service, name, span_kind (OTLP number), start_ns, end_ns (Unix ns), duration_ms, pid, tid (host ids, null when unknown), status_code, attributes (JSON)',
  kernel_events:
    'kernel events: event_id, kind, pid, tid, comm, start_ns, end_ns, duration_ms, other_pid/other_tid/other_comm (the waker for futex.wait and sched.blocked, the task that held the CPU longest during a sched.runqueue wait), cuda_kernel, attributes (JSON), active_trace_id/active_span_id (the app span the thread published as active when the event began, null when none was read)',
  attachments: 'which kernel event was attached to which app span: trace_id, span_id, event_id',
  shed_times:
    'times kernel events were shed because the sidecar was behind (the spans of that time miss some): from_ns, to_ns (Unix ns)',
  processes: 'processes seen in spans: pid (host), service, executable, container_id, seen_ns',
} as const;

/** Runs one confined SELECT in the store's worker; `given` limits replace those of SQL_LIMITS. */
export function readOnlyQuery(store: StoreReader, sql: string, given: Partial<SqlLimits> = {}): Promise<QueryResult> {
  return store.readOnly(sql, { ...SQL_LIMITS, ...given });
}
