// The store's DuckDB database, as its worker (worker.ts) runs it: the schema, the appends of
// the rows the main thread handed over, retention, and the queries. Kernel events, spans and
// attachments come packed by column (columns.ts) and are appended a data chunk at a time (spans'
// processes, new ones only, a row at a time); an append gives the worker's event loop a turn
// between chunks, so that a query asked meanwhile starts (and its result is sent) without waiting
// for the whole batch. A write's appends are one transaction, committed by an asynchronous COMMIT
// that runs on DuckDB's side: committing is what takes long (the write-ahead log written and
// synced, and a checkpoint when one is due), and an appender's synchronous close committed on
// this thread, holding every query up meanwhile (for up to 0.8 s at a checkpoint under load).
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import {
  BIGINT,
  DOUBLE,
  DuckDBDataChunk,
  DuckDBInstance,
  INTEGER,
  type DuckDBAppender,
  type DuckDBConnection,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import bindings from '@duckdb/node-bindings';
import type { ShedTime } from '../correlate/source.js';
import { MS } from '../correlate/time.js';
import {
  ATTACHMENT_COLUMNS,
  EVENT_COLUMNS,
  NULL,
  SPAN_COLUMNS,
  columnViews,
  eventsWithJson,
  spanColumns,
  spansWithJson,
  type Column,
  type ColumnType,
  type Packed,
} from './columns.js';
import { confinedQuery } from './sql-confined.js';
import type { QueryResult, SqlLimits } from './sql.js';

/** The retention bounds: rows past any of them are deleted. */
export interface StoreRetention {
  /** Rows older than this (by end time). */
  retentionMs: number;
  maxEvents: number;
  maxSpans: number;
  /** The database's blocks in use plus its write-ahead log (on disk), or its memory (in memory). */
  maxBytes: number;
}

/** The path that keeps the store in memory, gone at exit. */
export const IN_MEMORY = ':memory:';

export interface DatabaseOptions extends StoreRetention {
  path: string;
  memoryLimit: string;
}

/** An app span as the worker needs it: what its row and its process's row hold (packed by packSpans). */
export interface SpanRow {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  service: string;
  name: string;
  kind: number;
  startUnixNano: bigint;
  endUnixNano: bigint;
  pid: number | undefined;
  tid: number | undefined;
  statusCode: number;
  /** Stored as JSON. */
  attributes: Record<string, unknown>;
  executable: string | undefined;
  containerId: string | undefined;
}

export interface Written {
  eventsStored: number;
  spansStored: number;
  attachmentsStored: number;
  rowsExpired: number;
  ms: number;
}

/** A value of a query's row, as it crosses to the main thread; other DuckDB values come as their text. */
export type Cell = bigint | number | string | boolean | null;

export interface Size {
  events: number;
  spans: number;
  attachments: number;
  memoryBytes: number;
  /** What maxBytes bounds. */
  bytes: number;
}

/** Past maxBytes, the oldest rows are deleted down to this share of it, so that not every flush deletes. */
const SHRINK_TO = 0.8;
/** Rounds of deleting and measuring within one flush, until the store fits. */
const SHRINK_ROUNDS = 4;
/**
 * The retention's and the row bounds' DELETEs run at most once a second (of the store's clock), not
 * at every write (four a second): seven statements that took a quarter of the store's write time
 * under the bench's load, each costing about the same whatever it deleted. Rows stay up to a
 * second past the bounds.
 */
const EXPIRE_EVERY_NS = 1_000_000_000n;
/** Read connections: queries of one explain_trace run side by side on DuckDB's threads. */
const READERS = 4;
/** What DuckDB's memory holds, the store's size in memory. */
const MEMORY_BYTES = 'SELECT sum(memory_usage_bytes) FROM duckdb_memory()';
/** Rows of a data chunk at most, and so between turns of the event loop for packed rows (DuckDB's vector size). */
const ROWS_PER_CHUNK = 2048;
/** Rows the appender holds at most before it writes them out: a flush holds the worker's event loop too. */
const ROWS_PER_FLUSH = 16_384;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS spans (
  seq BIGINT, trace_id VARCHAR, span_id VARCHAR, parent_span_id VARCHAR, service VARCHAR, name VARCHAR,
  span_kind TINYINT, start_ns BIGINT, end_ns BIGINT, duration_ms DOUBLE, pid INTEGER, tid INTEGER,
  status_code TINYINT, attributes JSON);
-- No index on trace_id: a trace's lookup scans the column (0.3 ms per 100,000 spans), where
-- keeping an index cost the worker a quarter of its time per row stored. Earlier stores had one.
DROP INDEX IF EXISTS spans_by_trace;
CREATE TABLE IF NOT EXISTS kernel_events (
  event_id BIGINT, kind VARCHAR, pid INTEGER, tid INTEGER, comm VARCHAR, start_ns BIGINT, end_ns BIGINT,
  duration_ms DOUBLE, other_pid INTEGER, other_tid INTEGER, other_comm VARCHAR, cuda_kernel VARCHAR,
  attributes JSON);
-- The span stamp came later: a store written before it gains the columns, NULL in its rows.
ALTER TABLE kernel_events ADD COLUMN IF NOT EXISTS active_trace_id VARCHAR;
ALTER TABLE kernel_events ADD COLUMN IF NOT EXISTS active_span_id VARCHAR;
CREATE TABLE IF NOT EXISTS attachments (trace_id VARCHAR, span_id VARCHAR, event_id BIGINT, end_ns BIGINT);
CREATE TABLE IF NOT EXISTS processes (pid INTEGER, service VARCHAR, executable VARCHAR, container_id VARCHAR, seen_ns BIGINT);
CREATE TABLE IF NOT EXISTS shed_times (from_ns BIGINT, to_ns BIGINT);
`;

/** A processes row, as seen in a span. */
type ProcessRow = [pid: number, service: string, executable: string | undefined, containerId: string | undefined];

/** Appends the value, or SQL NULL when there is none. */
function appendVarcharOrNull(appender: DuckDBAppender, value: string | undefined): void {
  if (value === undefined) appender.appendNull();
  else appender.appendVarchar(value);
}

/** A validity mask (DuckDB's: a bit per row, set when valid) with every row valid. */
const allValid = (rows: number) => new Uint8Array(new ArrayBuffer(Math.ceil(rows / 64) * 8)).fill(0xff);

/**
 * Sets a data chunk's column from a packed one's rows [from, from + rows): numbers are copied in
 * one go (the packed layout is DuckDB's), a string is one call; NULLs go in the validity mask.
 * Through DuckDB's bindings: setItem per value cost the worker more than the append itself.
 */
function fill(
  chunk: DuckDBDataChunk,
  c: number,
  type: ColumnType,
  column: Column,
  from: number,
  rows: number,
  packed: Packed,
) {
  const vector = bindings.data_chunk_get_vector(chunk.chunk, c);
  let valid: Uint8Array | undefined;
  if (type === 'integer' || type === 'varchar')
    for (let r = 0; r < rows; r++) {
      const value = column[from + r] as number;
      const text = type === 'varchar' ? packed.strings[value] : undefined;
      if (text !== undefined) bindings.vector_assign_string_element(vector, r, text);
      else if (value === NULL || type === 'varchar') {
        valid ??= allValid(rows);
        valid[r >> 3] = (valid[r >> 3] ?? 0) & ~(1 << (r & 7));
      }
    }
  if (type !== 'varchar') {
    const width = column.BYTES_PER_ELEMENT;
    bindings.copy_data_to_vector(vector, 0, packed.buffer, column.byteOffset + from * width, rows * width);
  }
  if (valid !== undefined) {
    bindings.vector_ensure_validity_writable(vector);
    bindings.copy_data_to_vector_validity(vector, 0, valid.buffer as ArrayBuffer, 0, valid.byteLength);
  }
}

/**
 * A data chunk's column type: the table's for strings (a JSON column stays JSON), the packed one
 * for numbers, which DuckDB casts to the table's where they differ (the spans' TINYINTs).
 */
function chunkType(packed: ColumnType, table: DuckDBType): DuckDBType {
  if (packed === 'bigint') return BIGINT;
  if (packed === 'integer') return INTEGER;
  if (packed === 'double') return DOUBLE;
  return table;
}

const cell = (value: DuckDBValue): Cell => (value === null || typeof value !== 'object' ? value : String(value));

function fileBytes(path: string): number {
  try {
    return statSync(path).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0; // no write-ahead log after a checkpoint
    throw error;
  }
}

export class StoreDatabase {
  /** Reads, taken in turn: a DuckDB connection runs one query at a time, and writes have their own. */
  private readers: DuckDBConnection[] = [];
  private nextReader = 0;
  private readonly processesSeen = new Set<string>();
  /** The next ids, after those of the rows held. */
  nextEventId = 0n;
  nextSpanSeq = 0n;
  /** When the retention and the row bounds next apply (expire). */
  private expireAt = 0n;

  private constructor(
    private readonly instance: DuckDBInstance,
    /** Appends and retention. */
    private readonly connection: DuckDBConnection,
    private readonly options: DatabaseOptions,
  ) {}

  static async open(options: DatabaseOptions): Promise<StoreDatabase> {
    const onDisk = options.path !== IN_MEMORY;
    if (onDisk) mkdirSync(dirname(options.path), { recursive: true, mode: 0o750 });
    // No file or network access from SQL at all, settings locked: query_sql cannot reach out.
    // Checkpoints at 16 MB of write-ahead log (DuckDB's default), set so that it stays: at 4 MB the
    // worker took about 40% more CPU per row stored, and its writes were no shorter
    // (test/bench/HISTORY.md, "Where the worker's time per row went before").
    const instance = await DuckDBInstance.create(IN_MEMORY, {
      memory_limit: options.memoryLimit,
      threads: '2',
      checkpoint_threshold: '16MB',
    });
    const connection = await instance.connect();
    // An attached in-memory database can be compressed; the default one cannot. A file's
    // write-ahead log is replayed here if the last run did not close it.
    const database = onDisk ? `'${options.path.replaceAll("'", "''")}'` : `':memory:'`;
    await connection.run(
      `ATTACH ${database} AS causeway (${onDisk ? '' : 'COMPRESS, '}ROW_GROUP_SIZE 16384); USE causeway;`,
    );
    await connection.run(SCHEMA);
    await connection.run(`SET enable_external_access = false; SET lock_configuration = true;`);
    const db = new StoreDatabase(instance, connection, options);
    db.readers = await Promise.all(Array.from({ length: READERS }, () => db.connect()));
    // Ids go on from those of the rows a file kept.
    const [next] = await db.rows(
      `SELECT (SELECT coalesce(max(event_id) + 1, 0) FROM kernel_events), (SELECT coalesce(max(seq) + 1, 0) FROM spans)`,
    );
    db.nextEventId = BigInt(String(next?.[0] ?? 0));
    db.nextSpanSeq = BigInt(String(next?.[1] ?? 0));
    return db;
  }

  /** Appends the rows, then applies retention as of `now`. */
  async write(
    events: Packed[],
    spans: Packed[],
    attachments: Packed[],
    shed: ShedTime[],
    now: bigint,
  ): Promise<Written> {
    const started = performance.now();
    await this.connection.run('BEGIN TRANSACTION');
    let committing = false;
    let appended;
    try {
      appended = {
        eventsStored: await this.appendEvents(events),
        spansStored: await this.appendSpans(spans, now),
        attachmentsStored: await this.appendPacked('attachments', ATTACHMENT_COLUMNS, attachments),
      };
      await this.appendShed(shed);
      committing = true;
      await this.connection.run('COMMIT');
    } catch (error) {
      // A COMMIT that fails has rolled the transaction back already.
      if (!committing) await this.connection.run('ROLLBACK');
      // The processes rolled back are appended again when next seen.
      this.processesSeen.clear();
      throw error;
    }
    return { ...appended, rowsExpired: await this.expire(now), ms: performance.now() - started };
  }

  /** Rows of an internal, parameterised query. */
  async rows(sql: string, params: DuckDBValue[] = []): Promise<Cell[][]> {
    const connection = this.readers[this.nextReader++ % this.readers.length] ?? this.connection;
    const reader = await connection.runAndReadAll(sql, params);
    return reader.getRows().map((row) => row.map(cell));
  }

  /** A query_sql query (sql.ts), on a connection of its own so that interrupting it stops only that query. */
  async readOnly(sql: string, limits: SqlLimits): Promise<QueryResult> {
    return confinedQuery(await this.connect(), sql, limits);
  }

  /** Rows held and memory used, per table; `bytes` is what maxBytes bounds. */
  async size(): Promise<Size> {
    const rows = await this
      .rows(`SELECT (SELECT count(*) FROM kernel_events), (SELECT count(*) FROM spans), (SELECT count(*) FROM attachments),
      (${MEMORY_BYTES})`);
    const [events, spans, attachments, memory] = rows[0] ?? [];
    return {
      events: Number(events),
      spans: Number(spans),
      attachments: Number(attachments),
      memoryBytes: Number(memory),
      bytes: await this.bytes(Number(memory)),
    };
  }

  close(): void {
    for (const reader of this.readers) reader.closeSync();
    this.connection.closeSync();
    this.instance.closeSync();
  }

  private async connect(): Promise<DuckDBConnection> {
    const connection = await this.instance.connect();
    await connection.run('USE causeway');
    return connection;
  }

  /** On disk: the blocks in use and the write-ahead log (freed blocks are reused); in memory: the memory. */
  private async bytes(memoryBytes?: number): Promise<number> {
    if (this.options.path === IN_MEMORY) {
      if (memoryBytes !== undefined) return memoryBytes;
      const [memory] = await this.rows(MEMORY_BYTES);
      return Number(memory?.[0] ?? 0);
    }
    const [used] = await this.rows(
      `SELECT used_blocks * block_size FROM pragma_database_size() WHERE database_name = 'causeway'`,
    );
    return Number(used?.[0] ?? 0) + fileBytes(`${this.options.path}.wal`);
  }

  /** Kernel events; the ids go on from the last one appended (the first column). */
  private async appendEvents(batches: Packed[]): Promise<number> {
    for (const { rows, buffer } of batches) {
      const [ids] = columnViews(EVENT_COLUMNS, rows, buffer);
      const last = ids?.[rows - 1];
      if (typeof last === 'bigint' && last >= this.nextEventId) this.nextEventId = last + 1n;
    }
    return this.appendPacked('kernel_events', EVENT_COLUMNS, batches.map(eventsWithJson));
  }

  /**
   * Packed rows a data chunk at a time, with a turn of the event loop after each. The table's
   * columns are the layout's first ones (a spans batch carries its process's after them).
   */
  private async appendPacked(table: string, layout: readonly ColumnType[], batches: Packed[]): Promise<number> {
    if (batches.length === 0) return 0;
    const a = await this.connection.createAppender(table);
    // A table with a column the layout lacks would get that column unfilled.
    if (a.columnCount > layout.length)
      throw new Error(`${table} has ${String(a.columnCount)} columns, its packed rows ${String(layout.length)}`);
    const types = layout.slice(0, a.columnCount).map((packed, i) => chunkType(packed, a.columnType(i)));
    let n = 0;
    let unflushed = 0;
    for (const batch of batches) {
      const { rows } = batch;
      const columns = columnViews(layout, rows, batch.buffer).slice(0, types.length);
      for (let from = 0; from < rows; from += ROWS_PER_CHUNK) {
        const count = Math.min(ROWS_PER_CHUNK, rows - from);
        const chunk = DuckDBDataChunk.create(types, count);
        columns.forEach((column, c) => {
          fill(chunk, c, layout[c] ?? 'varchar', column, from, count, batch);
        });
        a.appendDataChunk(chunk);
        n += count;
        unflushed += count;
        if (unflushed >= ROWS_PER_FLUSH) {
          a.flushSync();
          unflushed = 0;
        }
        await turn();
      }
    }
    a.closeSync();
    return n;
  }

  private async appendShed(shed: ShedTime[]): Promise<void> {
    if (shed.length === 0) return;
    const a = await this.connection.createAppender('shed_times');
    for (const { from, to } of shed) {
      a.appendBigInt(from);
      a.appendBigInt(to);
      a.endRow();
    }
    a.closeSync();
  }

  /** Spans, numbered on from the last one appended, and the processes seen in them for the first time. */
  private async appendSpans(batches: Packed[], now: bigint): Promise<number> {
    const withJson = batches.map(spansWithJson);
    const processes: ProcessRow[] = [];
    for (const { rows, buffer, strings } of withJson) {
      const { seqs, services, pids, executables, containers } = spanColumns(columnViews(SPAN_COLUMNS, rows, buffer));
      const text = (column: Int32Array, row: number) => strings[column[row] ?? NULL];
      for (let row = 0; row < rows; row++) {
        seqs[row] = this.nextSpanSeq++;
        const pid = pids[row] ?? NULL;
        if (pid === NULL) continue;
        const service = text(services, row) ?? '';
        const key = `${String(pid)}/${service}`;
        if (this.processesSeen.has(key)) continue;
        if (this.processesSeen.size >= 65536) this.processesSeen.clear();
        this.processesSeen.add(key);
        processes.push([pid, service, text(executables, row), text(containers, row)]);
      }
    }
    const n = await this.appendPacked('spans', SPAN_COLUMNS, withJson);
    await this.appendProcesses(processes, now);
    return n;
  }

  /** Processes seen in spans for the first time. */
  private async appendProcesses(processes: ProcessRow[], now: bigint): Promise<void> {
    if (processes.length === 0) return;
    const p = await this.connection.createAppender('processes');
    for (const [pid, service, executable, containerId] of processes) {
      p.appendInteger(pid);
      p.appendVarchar(service);
      appendVarcharOrNull(p, executable);
      appendVarcharOrNull(p, containerId);
      p.appendBigInt(now);
      p.endRow();
    }
    p.closeSync();
  }

  /**
   * Deletes what is older than the retention, then the oldest rows beyond the row bounds (at most
   * once per EXPIRE_EVERY_NS), then, past maxBytes (at every write), the oldest rows of each table
   * down to SHRINK_TO of it (a checkpoint then frees their blocks and empties the write-ahead log),
   * again until it fits. Returns the rows deleted.
   */
  private async expire(now: bigint): Promise<number> {
    const { retentionMs, maxEvents, maxSpans, maxBytes, path } = this.options;
    const cutoff = now - BigInt(retentionMs) * MS;
    let expired = 0;
    // A clock set back runs them too: they would wait for it to catch up.
    if (now >= this.expireAt || now < this.expireAt - EXPIRE_EVERY_NS) {
      this.expireAt = now + EXPIRE_EVERY_NS;
      expired = await this.deleteBefore(
        cutoff,
        this.nextEventId - BigInt(maxEvents),
        this.nextSpanSeq - BigInt(maxSpans),
      );
    }
    // Blocks are not freed in proportion to the rows deleted (a row group keeps its blocks until
    // the checkpoint rewrites it), so measure again: each round deletes a larger share.
    for (let round = 0; round < SHRINK_ROUNDS; round++) {
      // The bytes alone first: size() also counts each table's rows, which took about as long as
      // the DELETEs when it ran at every write.
      if ((await this.bytes()) <= maxBytes) break;
      const size = await this.size();
      if (size.bytes <= maxBytes || size.events + size.spans === 0) break;
      const keep = (SHRINK_TO * maxBytes) / size.bytes;
      expired += await this.deleteBefore(
        cutoff,
        this.nextEventId - BigInt(Math.floor(size.events * keep)),
        this.nextSpanSeq - BigInt(Math.floor(size.spans * keep)),
      );
      if (path !== IN_MEMORY) await this.connection.run('CHECKPOINT');
    }
    return expired;
  }

  private async deleteBefore(cutoff: bigint, oldestEvent: bigint, oldestSpan: bigint): Promise<number> {
    // A condition on one column each, so that DuckDB skips the row groups its zone maps rule out:
    // `end_ns < $1 OR event_id < $2` on a table of 1M events took 10.4 ms a write, the two 6.6.
    const older = async (table: string, column: string, before: bigint) =>
      (await this.connection.run(`DELETE FROM ${table} WHERE ${column} < $1`, [before])).rowsChanged;
    const deleted =
      (await older('kernel_events', 'event_id', oldestEvent)) +
      (await older('kernel_events', 'end_ns', cutoff)) +
      (await older('spans', 'seq', oldestSpan)) +
      (await older('spans', 'end_ns', cutoff));
    await older('attachments', 'event_id', oldestEvent);
    await older('attachments', 'end_ns', cutoff);
    // A shed time is kept while a span it may overlap is: before the oldest span, it overlaps none.
    await this.connection.run(`DELETE FROM shed_times WHERE to_ns < $1 OR to_ns < (SELECT min(start_ns) FROM spans)`, [
      cutoff,
    ]);
    return deleted;
  }
}
