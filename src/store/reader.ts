// Reading the store: the questions the causal analysis and the MCP tools ask it, answered by its
// worker (worker.ts) on a channel apart from the rows. The store asks them on its own channel
// (store.ts); another thread (the MCP server's, mcp/thread.ts) asks them on a port of its own to
// the worker, so that its answers never wait for the main thread's event loop.
import type { MessagePort } from 'node:worker_threads';
import type { DuckDBValue } from '@duckdb/node-api';
import type { EventWindow, TraceQuery, TraceSource, TraceSpan, TraceSummary } from '../correlate/source.js';
import { MS } from '../correlate/time.js';
import type { Attributes, KernelEvent } from '../kernel/events.js';
import type { Cell } from './database.js';
import { QueryRefused, type QueryResult, type SqlLimits } from './sql.js';
import type { Reply, Request, StoreSize } from './worker.js';

/**
 * Window queries look this far back for intervals that began before the window: the bound lets
 * DuckDB skip row groups by start time (rows arrive in time order). Longer intervals are missed.
 */
const LONGEST_INTERVAL_NS = 60_000n * MS;

/**
 * A lookup that finds no trace while rows wait to be written has them written first (after the
 * write in progress), waiting this long at most: a trace sent moments ago is found rather than
 * called unknown, and a store far behind answers that it is behind within this bound.
 */
export const LOOKUP_WAIT_MS = 2000;

/** What the worker answers; the id is added when it is asked. */
export type Question = Extract<Request, { id: number }>;
export type WithoutId<R> = R extends unknown ? Omit<R, 'id'> : never;
/** The questions that only read. */
export type ReadQuestion = WithoutId<Extract<Question, { op: 'rows' | 'readOnly' | 'size' }>>;

/** Questions asked and not yet answered, by id: the worker's replies settle them. */
export class Answers {
  private readonly waiting = new Map<number, { resolve: (result: unknown) => void; reject: (error: Error) => void }>();
  private next = 0;

  /** A new question's id, and its answer. */
  ask<T>(): [id: number, answer: Promise<T>] {
    const id = this.next++;
    const answer = new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (result: unknown) => void, reject });
    });
    return [id, answer];
  }

  settle(reply: Reply): void {
    const waiting = this.waiting.get(reply.id);
    this.waiting.delete(reply.id);
    if ('result' in reply) waiting?.resolve(reply.result);
    else waiting?.reject(reply.refused ? new QueryRefused(reply.error) : new Error(reply.error));
  }

  /** Fails every question waiting: the worker that would answer them is gone. */
  failAll(error: Error): void {
    for (const waiting of this.waiting.values()) waiting.reject(error);
    this.waiting.clear();
  }
}

/** The store's answers for the analysis and the tools, from whichever thread asks them (ask). */
export abstract class StoreReader implements TraceSource {
  readonly name = 'local store';

  protected abstract ask<T>(query: ReadQuestion): Promise<T>;

  async spans(traceId: string): Promise<TraceSpan[]> {
    const rows = await this.rows(
      `SELECT trace_id, span_id, parent_span_id, service, name, start_ns, end_ns, pid, tid FROM spans WHERE trace_id = $1 ORDER BY start_ns`,
      [traceId],
    );
    return rows.map(([trace, span, parent, service, name, start, end, pid, tid]) => ({
      traceId: String(trace),
      spanId: String(span),
      ...(parent === null ? {} : { parentSpanId: String(parent) }),
      service: String(service),
      name: String(name),
      startUnixNano: start as bigint,
      endUnixNano: end as bigint,
      ...(pid === null ? {} : { pid: Number(pid) }),
      ...(tid === null ? {} : { tid: Number(tid) }),
    }));
  }

  async events(window: EventWindow): Promise<KernelEvent[]> {
    const thread = window.tid === undefined ? '' : 'AND tid = $4';
    const params: DuckDBValue[] = [window.pid, window.from, window.to];
    if (window.tid !== undefined) params.push(window.tid);
    return this.eventRows(
      `pid = $1 ${thread} AND start_ns < $3 AND start_ns > $2 - ${String(LONGEST_INTERVAL_NS)} AND end_ns > $2`,
      params,
    );
  }

  async gpuEvents(from: bigint, to: bigint, exceptPid: number): Promise<KernelEvent[]> {
    return this.eventRows(
      `kind LIKE 'cuda.%' AND pid <> $1 AND start_ns < $3 AND start_ns > $2 - ${String(LONGEST_INTERVAL_NS)} AND end_ns >= $2`,
      [exceptPid, from, to],
    );
  }

  async shedDuring(from: bigint, to: bigint): Promise<boolean> {
    const [found] = await this.rows(`SELECT count(*) > 0 FROM shed_times WHERE from_ns < $2 AND to_ns >= $1`, [
      from,
      to,
    ]);
    return found?.[0] === true;
  }

  async slowTraces(query: TraceQuery): Promise<TraceSummary[]> {
    const service =
      query.service === undefined ? '' : 'AND trace_id IN (SELECT trace_id FROM spans WHERE service = $5)';
    const params: DuckDBValue[] = [query.from, query.to, query.minDurationMs ?? 0, query.limit];
    if (query.service !== undefined) params.push(query.service);
    const rows = await this.rows(
      `SELECT trace_id, arg_min(service, start_ns), arg_min(name, start_ns), min(start_ns), (max(end_ns) - min(start_ns)) / 1e6 AS duration_ms
       FROM spans WHERE start_ns >= $1 AND start_ns < $2 ${service}
       GROUP BY trace_id HAVING duration_ms >= $3 ORDER BY duration_ms DESC LIMIT $4`,
      params,
    );
    return rows.map(([trace, svc, name, start, duration]) => ({
      traceId: String(trace),
      service: String(svc),
      name: String(name),
      startUnixNano: start as bigint,
      durationMs: Number(duration),
    }));
  }

  /** Rows of an internal, parameterised query; values other than numbers, strings and booleans come as their text. */
  rows(sql: string, params: DuckDBValue[] = []): Promise<Cell[][]> {
    return this.ask({ op: 'rows', sql, params });
  }

  /** A query_sql query, confined and bounded (sql.ts). */
  readOnly(sql: string, limits: SqlLimits): Promise<QueryResult> {
    return this.ask({ op: 'readOnly', sql, limits });
  }

  /** Rows held and memory used, per table; `bytes` is what maxBytes bounds; the worker's heap. */
  size(): Promise<StoreSize> {
    return this.ask({ op: 'size' });
  }

  private async eventRows(where: string, params: DuckDBValue[]): Promise<KernelEvent[]> {
    const rows = await this.rows(
      `SELECT kind, pid, tid, comm, start_ns, end_ns, attributes, active_trace_id, active_span_id FROM kernel_events WHERE ${where} ORDER BY start_ns`,
      params,
    );
    return rows.map(([kind, pid, tid, comm, start, end, attributes, traceId, spanId]) => ({
      kind: String(kind) as KernelEvent['kind'],
      pid: Number(pid),
      tid: Number(tid),
      comm: String(comm),
      startUnixNano: start as bigint,
      endUnixNano: end as bigint,
      attributes: JSON.parse(String(attributes)) as Attributes,
      ...(traceId === null || spanId === null
        ? {}
        : { spanContext: { traceId: String(traceId), spanId: String(spanId) } }),
    }));
  }
}

/**
 * The store read from another thread, over a port of its own to the store's worker (Store.readerPort,
 * passed on by `connect`). A worker that stops closes its ports: the questions waiting fail, and
 * the next one asks `connect` for a port to the worker started after it.
 */
export class PortStoreReader extends StoreReader {
  private port: Promise<MessagePort> | undefined;
  private readonly answers = new Answers();

  constructor(private readonly connect: () => Promise<MessagePort>) {
    super();
  }

  protected async ask<T>(query: ReadQuestion): Promise<T> {
    const port = await (this.port ??= this.open());
    const [id, answer] = this.answers.ask<T>();
    port.postMessage({ ...query, id });
    return answer;
  }

  private async open(): Promise<MessagePort> {
    let port: MessagePort;
    try {
      port = await this.connect();
    } catch (error) {
      this.port = undefined;
      throw error;
    }
    port.on('message', (reply: Reply) => {
      this.answers.settle(reply);
    });
    port.once('close', () => {
      this.port = undefined;
      this.answers.failAll(new Error("the store's worker stopped"));
    });
    // Answers are awaited by requests the thread serves: the port alone does not keep it running.
    port.unref();
    return port;
  }
}
