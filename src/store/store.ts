// The embedded store: app spans, kernel events, which events were attached to which span, and
// the processes seen, in a DuckDB database (columnar and compressed, SQL with range joins) that
// the MCP tools query: a file, so that what was captured survives a restart (each batch is a
// transaction in DuckDB's write-ahead log, replayed at the next open after a crash), or memory.
// Writes are buffered and appended in batches on a timer, off the correlation path; queries run
// on DuckDB's own threads, so they never hold up capture. Retention is bounded by age, by row
// counts and by the bytes the database takes; the oldest rows past any bound are deleted.
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { DuckDBInstance, type DuckDBAppender, type DuckDBConnection, type DuckDBValue } from '@duckdb/node-api';
import type { Meter } from '@opentelemetry/api';
import type { Attachment, PlacedSpan } from '../correlate/correlator.js';
import { isLinked } from '../correlate/linked.js';
import type { EventWindow, TraceQuery, TraceSource, TraceSpan, TraceSummary } from '../correlate/source.js';
import { MS, nowUnixNano } from '../correlate/time.js';
import { otherTask, type Attributes, type KernelEvent } from '../kernel/events.js';
import { counter, gauge, observe } from '../export/metrics.js';
import type { AppSpan } from '../otlp/index.js';
import * as A from '../semconv/attributes.js';

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

export interface StoreOptions extends StoreRetention {
  /** The database file (created with its directory), or IN_MEMORY. */
  path: string;
  /** The counters and the rows held are read from here at each collection. */
  meter?: Meter;
  /** How often buffered rows are appended. */
  flushMs?: number;
  /** DuckDB's memory limit, e.g. '256MB'; default MEMORY_LIMIT. */
  memoryLimit?: string;
  now?: () => bigint;
}

/**
 * DuckDB's memory limit: an on-disk store needs memory only for its buffers and queries (blocks
 * past the limit are read back from the file); an in-memory one holds its rows there too.
 */
const MEMORY_LIMIT = { onDisk: '128MB', inMemory: '256MB' } as const;
const STORE_DEFAULTS = { flushMs: 250 } as const;

export interface StoreCounters {
  eventsStored: number;
  spansStored: number;
  attachmentsStored: number;
  /** Rows refused because the write buffer was full (the database fell behind). */
  rowsShed: number;
  /** Rows deleted by retention. */
  rowsExpired: number;
  flushErrors: number;
  /** Rows waiting in the write buffer. */
  rowsBuffered: number;
  /** Time the last flush took. */
  lastFlushMs: number;
}

/** Past maxBytes, the oldest rows are deleted down to this share of it, so that not every flush deletes. */
const SHRINK_TO = 0.8;
/** Rounds of deleting and measuring within one flush, until the store fits. */
const SHRINK_ROUNDS = 4;

/** Read connections: queries of one explain_trace run side by side on DuckDB's threads. */
const READERS = 4;
/** Rows buffered at most between flushes; beyond it, new rows are shed and counted. */
const MAX_BUFFERED = 250_000;
/**
 * Window queries look this far back for intervals that began before the window: the bound lets
 * DuckDB skip row groups by start time (rows arrive in time order). Longer intervals are missed.
 */
const LONGEST_INTERVAL_NS = 60_000n * MS;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS spans (
  seq BIGINT, trace_id VARCHAR, span_id VARCHAR, parent_span_id VARCHAR, service VARCHAR, name VARCHAR,
  span_kind TINYINT, start_ns BIGINT, end_ns BIGINT, duration_ms DOUBLE, pid INTEGER, tid INTEGER,
  status_code TINYINT, attributes JSON);
CREATE INDEX IF NOT EXISTS spans_by_trace ON spans (trace_id);
CREATE TABLE IF NOT EXISTS kernel_events (
  event_id BIGINT, kind VARCHAR, pid INTEGER, tid INTEGER, comm VARCHAR, start_ns BIGINT, end_ns BIGINT,
  duration_ms DOUBLE, other_pid INTEGER, other_tid INTEGER, other_comm VARCHAR, cuda_kernel VARCHAR,
  attributes JSON);
CREATE TABLE IF NOT EXISTS attachments (trace_id VARCHAR, span_id VARCHAR, event_id BIGINT, end_ns BIGINT);
CREATE TABLE IF NOT EXISTS processes (pid INTEGER, service VARCHAR, executable VARCHAR, container_id VARCHAR, seen_ns BIGINT);
`;

/** What each table and column holds, for query_sql's callers. */
export const STORE_TABLES = {
  spans:
    'app spans: trace_id, span_id, parent_span_id, service, name, span_kind (OTLP number), start_ns, end_ns (Unix ns), duration_ms, pid, tid (host ids, null when unknown), status_code, attributes (JSON)',
  kernel_events:
    'kernel events: event_id, kind, pid, tid, comm, start_ns, end_ns, duration_ms, other_pid/other_tid/other_comm (the waker for futex.wait and sched.blocked, the task that held the CPU longest during a sched.runqueue wait), cuda_kernel, attributes (JSON)',
  attachments: 'which kernel event was attached to which app span: trace_id, span_id, event_id',
  processes: 'processes seen in spans: pid (host), service, executable, container_id, seen_ns',
} as const;

const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
const json = (value: unknown) =>
  JSON.stringify(value, (_, v: unknown) =>
    typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
  );

function cudaKernel(event: KernelEvent): string | undefined {
  const a = event.attributes;
  const inflight = a[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS];
  return text(a[A.ATTR_CAUSEWAY_CUDA_KERNEL]) ?? (Array.isArray(inflight) ? text(inflight[0]) : undefined);
}

/** Process metadata is in the processes table: each event carries only its own attributes. */
const PROCESS_KEYS = new Set<string>([
  A.ATTR_PROCESS_EXECUTABLE_PATH,
  A.ATTR_CONTAINER_ID,
  A.ATTR_CAUSEWAY_PROCESS_NSPID,
]);

function ownAttributes(attributes: Attributes): Attributes {
  const own: Attributes = {};
  for (const [key, value] of Object.entries(attributes)) if (!PROCESS_KEYS.has(key)) own[key] = value;
  return own;
}

/** Appends the value, or SQL NULL when there is none. */
function appendIntegerOrNull(appender: DuckDBAppender, value: number | undefined): void {
  if (value === undefined) appender.appendNull();
  else appender.appendInteger(value);
}

function appendVarcharOrNull(appender: DuckDBAppender, value: string | undefined): void {
  if (value === undefined) appender.appendNull();
  else appender.appendVarchar(value);
}

export class Store implements TraceSource {
  readonly name = 'local store';
  private eventsBuffer: KernelEvent[] = [];
  private spansBuffer: PlacedSpan<AppSpan>[] = [];
  private attachmentsBuffer: Attachment<AppSpan>[] = [];
  private readonly eventIds = new WeakMap<KernelEvent, bigint>();
  private readonly processesSeen = new Set<string>();
  private nextEventId = 0n;
  private nextSpanSeq = 0n;
  private flushing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private readonly count = {
    eventsStored: 0,
    spansStored: 0,
    attachmentsStored: 0,
    rowsShed: 0,
    rowsExpired: 0,
    flushErrors: 0,
    lastFlushMs: 0,
  };
  private readonly settings: Required<Omit<StoreOptions, 'now' | 'meter' | 'memoryLimit'>> & { now: () => bigint };

  /** Reads, taken in turn: a DuckDB connection runs one query at a time, and writes have their own. */
  private readers: DuckDBConnection[] = [];
  private nextReader = 0;

  private constructor(
    private readonly instance: DuckDBInstance,
    /** Appends and retention. */
    private readonly connection: DuckDBConnection,
    options: StoreOptions,
  ) {
    const { meter, ...settings } = options;
    this.settings = { ...STORE_DEFAULTS, ...settings, now: options.now ?? nowUnixNano };
    if (meter !== undefined) this.instrument(meter);
  }

  static async open(options: StoreOptions): Promise<Store> {
    const onDisk = options.path !== IN_MEMORY;
    if (onDisk) mkdirSync(dirname(options.path), { recursive: true, mode: 0o750 });
    // No file or network access from SQL at all, settings locked: query_sql cannot reach out.
    const instance = await DuckDBInstance.create(IN_MEMORY, {
      memory_limit: options.memoryLimit ?? (onDisk ? MEMORY_LIMIT.onDisk : MEMORY_LIMIT.inMemory),
      threads: '2',
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
    const store = new Store(instance, connection, options);
    // Ids go on from those of the rows a file kept.
    const [next] = await store.rows(
      `SELECT (SELECT coalesce(max(event_id) + 1, 0) FROM kernel_events), (SELECT coalesce(max(seq) + 1, 0) FROM spans)`,
    );
    store.nextEventId = BigInt(String(next?.[0] ?? 0));
    store.nextSpanSeq = BigInt(String(next?.[1] ?? 0));
    store.readers = await Promise.all(Array.from({ length: READERS }, () => store.connect()));
    store.timer = setInterval(() => {
      void store.flush();
    }, store.settings.flushMs);
    store.timer.unref();
    return store;
  }

  /** A separate connection for ad-hoc SQL, so that interrupting it stops only that query. */
  async connect(): Promise<DuckDBConnection> {
    const connection = await this.instance.connect();
    await connection.run('USE causeway');
    return connection;
  }

  addEvents(events: KernelEvent[]): void {
    for (const event of this.admit(events)) {
      this.eventIds.set(event, this.nextEventId++);
      this.eventsBuffer.push(event);
    }
  }

  addSpans(spans: PlacedSpan<AppSpan>[]): void {
    this.spansBuffer.push(...this.admit(spans));
  }

  addAttachments(attachments: Attachment<AppSpan>[]): void {
    const admitted = this.admit(attachments);
    // Linked waits (correlate/linked.ts) are made at joining: stored with the span they were linked to.
    this.addEvents(admitted.flatMap((a) => a.events.filter(isLinked)));
    this.attachmentsBuffer.push(...admitted);
  }

  counters(): StoreCounters {
    return { ...this.count, rowsBuffered: this.buffered() };
  }

  /** Counters, rows held, memory and disk used, the oldest rows, and the retention bounds. */
  async status() {
    const { path, retentionMs, maxEvents, maxSpans, maxBytes } = this.settings;
    const now = this.settings.now();
    const [oldest] = await this.rows(`SELECT (SELECT min(end_ns) FROM kernel_events), (SELECT min(end_ns) FROM spans)`);
    const age = (ns: unknown) => (typeof ns === 'bigint' ? Number((now - ns) / MS) : null);
    return {
      ...this.counters(),
      ...(await this.size()),
      path,
      diskBytes: this.diskBytes(),
      oldestEventAgeMs: age(oldest?.[0]),
      oldestSpanAgeMs: age(oldest?.[1]),
      retentionMs,
      maxEvents,
      maxSpans,
      maxBytes,
    };
  }

  /** Rows held and memory used, per table; `bytes` is what maxBytes bounds. */
  async size(): Promise<{ events: number; spans: number; attachments: number; memoryBytes: number; bytes: number }> {
    const rows = await this
      .rows(`SELECT (SELECT count(*) FROM kernel_events), (SELECT count(*) FROM spans), (SELECT count(*) FROM attachments),
      (SELECT sum(memory_usage_bytes) FROM duckdb_memory())`);
    const [events, spans, attachments, memory] = rows[0] ?? [];
    return {
      events: Number(events),
      spans: Number(spans),
      attachments: Number(attachments),
      memoryBytes: Number(memory),
      bytes: await this.bytes(Number(memory)),
    };
  }

  /** On disk: the blocks in use and the write-ahead log (freed blocks are reused); in memory: the memory. */
  private async bytes(memoryBytes: number): Promise<number> {
    if (this.settings.path === IN_MEMORY) return memoryBytes;
    const [used] = await this.rows(
      `SELECT used_blocks * block_size FROM pragma_database_size() WHERE database_name = 'causeway'`,
    );
    return Number(used?.[0] ?? 0) + fileBytes(`${this.settings.path}.wal`);
  }

  /** The file and its write-ahead log, as the file system counts them; 0 in memory. */
  private diskBytes(): number {
    const { path } = this.settings;
    return path === IN_MEMORY ? 0 : fileBytes(path) + fileBytes(`${path}.wal`);
  }

  private instrument(meter: Meter): void {
    observe(
      meter,
      {
        eventsStored: counter('causeway_store_events_stored', 'Kernel events written to the store.'),
        spansStored: counter('causeway_store_spans_stored', 'App spans written to the store.'),
        rowsShed: counter('causeway_store_rows_shed', 'Rows refused because the store fell behind.'),
        rowsExpired: counter('causeway_store_rows_expired', 'Rows deleted by the store retention.'),
        flushErrors: counter('causeway_store_flush_errors', 'Store writes that failed.'),
        rowsBuffered: gauge('causeway_store_rows_buffered', 'Rows waiting to be written to the store.'),
        lastFlush: gauge('causeway_store_last_flush_seconds', 'Time the last write to the store took.', 's'),
        rows: gauge('causeway_store_rows', 'Rows held in the store, per table.'),
        memory: gauge('causeway_store_memory_bytes', 'Memory the store uses.', 'By'),
        disk: gauge('causeway_store_disk_bytes', "The store's file and write-ahead log on disk.", 'By'),
      },
      async () => {
        const size = await this.size();
        const counters = this.counters();
        return {
          ...counters,
          lastFlush: counters.lastFlushMs / 1000,
          rows: [
            [size.events, { table: 'kernel_events' }],
            [size.spans, { table: 'spans' }],
            [size.attachments, { table: 'attachments' }],
          ],
          memory: size.memoryBytes,
          disk: this.diskBytes(),
        };
      },
    );
  }

  /** Appends everything buffered, then applies retention. Flushes never overlap. */
  flush(): Promise<void> {
    this.flushing = this.flushing
      .then(() => this.write())
      .catch(() => {
        this.count.flushErrors++;
      });
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
    for (const reader of this.readers) reader.closeSync();
    this.connection.closeSync();
    this.instance.closeSync();
  }

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

  /** Rows of an internal, parameterised query. */
  async rows(sql: string, params: DuckDBValue[] = []): Promise<DuckDBValue[][]> {
    const connection = this.readers[this.nextReader++ % this.readers.length] ?? this.connection;
    const reader = await connection.runAndReadAll(sql, params);
    return reader.getRows();
  }

  private async eventRows(where: string, params: DuckDBValue[]): Promise<KernelEvent[]> {
    const rows = await this.rows(
      `SELECT kind, pid, tid, comm, start_ns, end_ns, attributes FROM kernel_events WHERE ${where} ORDER BY start_ns`,
      params,
    );
    return rows.map(([kind, pid, tid, comm, start, end, attributes]) => ({
      kind: String(kind) as KernelEvent['kind'],
      pid: Number(pid),
      tid: Number(tid),
      comm: String(comm),
      startUnixNano: start as bigint,
      endUnixNano: end as bigint,
      attributes: JSON.parse(String(attributes)) as Attributes,
    }));
  }

  /** The rows that fit in the write buffer; the rest are shed and counted. */
  private admit<T>(rows: T[]): T[] {
    const room = Math.max(0, MAX_BUFFERED - this.buffered());
    if (rows.length <= room) return rows;
    this.count.rowsShed += rows.length - room;
    return rows.slice(0, room);
  }

  private buffered(): number {
    return this.eventsBuffer.length + this.spansBuffer.length + this.attachmentsBuffer.length;
  }

  private async write(): Promise<void> {
    const started = performance.now();
    const events = this.eventsBuffer;
    const spans = this.spansBuffer;
    const attachments = this.attachmentsBuffer;
    this.eventsBuffer = [];
    this.spansBuffer = [];
    this.attachmentsBuffer = [];
    if (events.length > 0) await this.appendEvents(events);
    if (spans.length > 0) await this.appendSpans(spans);
    if (attachments.length > 0) await this.appendAttachments(attachments);
    await this.expire();
    this.count.lastFlushMs = performance.now() - started;
  }

  private async appendEvents(events: KernelEvent[]): Promise<void> {
    const a = await this.connection.createAppender('kernel_events');
    for (const event of events) {
      const other = otherTask(event);
      a.appendBigInt(this.eventIds.get(event) ?? -1n);
      a.appendVarchar(event.kind);
      a.appendInteger(event.pid);
      a.appendInteger(event.tid);
      a.appendVarchar(event.comm);
      a.appendBigInt(event.startUnixNano);
      a.appendBigInt(event.endUnixNano);
      a.appendDouble(Number(event.endUnixNano - event.startUnixNano) / 1e6);
      appendIntegerOrNull(a, other?.pid);
      appendIntegerOrNull(a, other?.tid);
      appendVarcharOrNull(a, other?.comm);
      appendVarcharOrNull(a, cudaKernel(event));
      a.appendVarchar(json(ownAttributes(event.attributes)));
      a.endRow();
    }
    a.closeSync();
    this.count.eventsStored += events.length;
  }

  private async appendSpans(spans: PlacedSpan<AppSpan>[]): Promise<void> {
    const a = await this.connection.createAppender('spans');
    const processes: { pid: number; service: string; executable?: string; containerId?: string }[] = [];
    for (const { span, place } of spans) {
      const pid = place?.hostPid;
      a.appendBigInt(this.nextSpanSeq++);
      a.appendVarchar(span.traceId);
      a.appendVarchar(span.spanId);
      appendVarcharOrNull(a, span.parentSpanId);
      a.appendVarchar(span.serviceName ?? 'unknown_service');
      a.appendVarchar(span.name);
      a.appendTinyInt(span.kind);
      a.appendBigInt(span.startUnixNano);
      a.appendBigInt(span.endUnixNano);
      a.appendDouble(Number(span.endUnixNano - span.startUnixNano) / 1e6);
      appendIntegerOrNull(a, pid);
      appendIntegerOrNull(a, place?.hostTid);
      a.appendTinyInt(span.status?.code ?? 0);
      a.appendVarchar(json(span.attributes));
      a.endRow();
      const key = `${String(pid)}/${span.serviceName ?? ''}`;
      if (pid !== undefined && !this.processesSeen.has(key)) {
        if (this.processesSeen.size >= 65536) this.processesSeen.clear();
        this.processesSeen.add(key);
        processes.push({
          pid,
          service: span.serviceName ?? 'unknown_service',
          executable: text(span.resource[A.ATTR_PROCESS_EXECUTABLE_PATH]),
          containerId: text(span.resource[A.ATTR_CONTAINER_ID]),
        });
      }
    }
    a.closeSync();
    this.count.spansStored += spans.length;
    if (processes.length === 0) return;
    const p = await this.connection.createAppender('processes');
    for (const process of processes) {
      p.appendInteger(process.pid);
      p.appendVarchar(process.service);
      appendVarcharOrNull(p, process.executable);
      appendVarcharOrNull(p, process.containerId);
      p.appendBigInt(this.settings.now());
      p.endRow();
    }
    p.closeSync();
  }

  private async appendAttachments(attachments: Attachment<AppSpan>[]): Promise<void> {
    const a = await this.connection.createAppender('attachments');
    let n = 0;
    for (const { span, events } of attachments) {
      for (const event of events) {
        const id = this.eventIds.get(event);
        if (id === undefined) continue; // shed before it was stored
        a.appendVarchar(span.traceId);
        a.appendVarchar(span.spanId);
        a.appendBigInt(id);
        a.appendBigInt(span.endUnixNano);
        a.endRow();
        n++;
      }
    }
    a.closeSync();
    this.count.attachmentsStored += n;
  }

  /**
   * Deletes what is older than the retention, then the oldest rows beyond the row bounds, then,
   * past maxBytes, the oldest rows of each table down to SHRINK_TO of it (a checkpoint then
   * frees their blocks and empties the write-ahead log), again until it fits.
   */
  private async expire(): Promise<void> {
    const cutoff = this.settings.now() - BigInt(this.settings.retentionMs) * MS;
    await this.deleteBefore(
      cutoff,
      this.nextEventId - BigInt(this.settings.maxEvents),
      this.nextSpanSeq - BigInt(this.settings.maxSpans),
    );
    // Blocks are not freed in proportion to the rows deleted (a row group keeps its blocks until
    // the checkpoint rewrites it), so measure again: each round deletes a larger share.
    for (let round = 0; round < SHRINK_ROUNDS; round++) {
      const size = await this.size();
      if (size.bytes <= this.settings.maxBytes || size.events + size.spans === 0) return;
      const keep = (SHRINK_TO * this.settings.maxBytes) / size.bytes;
      await this.deleteBefore(
        cutoff,
        this.nextEventId - BigInt(Math.floor(size.events * keep)),
        this.nextSpanSeq - BigInt(Math.floor(size.spans * keep)),
      );
      if (this.settings.path !== IN_MEMORY) await this.connection.run('CHECKPOINT');
    }
  }

  private async deleteBefore(cutoff: bigint, oldestEvent: bigint, oldestSpan: bigint): Promise<void> {
    const events = await this.connection.run(`DELETE FROM kernel_events WHERE end_ns < $1 OR event_id < $2`, [
      cutoff,
      oldestEvent,
    ]);
    const spans = await this.connection.run(`DELETE FROM spans WHERE end_ns < $1 OR seq < $2`, [cutoff, oldestSpan]);
    await this.connection.run(`DELETE FROM attachments WHERE end_ns < $1 OR event_id < $2`, [cutoff, oldestEvent]);
    this.count.rowsExpired += events.rowsChanged + spans.rowsChanged;
  }
}

function fileBytes(path: string): number {
  try {
    return statSync(path).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0; // no write-ahead log after a checkpoint
    throw error;
  }
}
