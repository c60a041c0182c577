// The embedded store: app spans, kernel events, which events were attached to which span, and
// the processes seen, in a DuckDB database (columnar and compressed, SQL with range joins) that
// the MCP tools query: a file, so that what was captured survives a restart (each write is a
// transaction in DuckDB's write-ahead log, replayed at the next open after a crash), or memory.
// The database lives in a worker thread (worker.ts, database.ts): the main thread only hands it
// the rows as they come and asks it to write them on a timer. Kernel events, spans and attachments
// are packed by column into a buffer that moves to the worker without a copy (columns.ts). The
// appends cost the worker, not capture nor OTLP intake, and queries (reader.ts: from this thread,
// or from the MCP server's on a port of its own, readerPort) are answered by the worker between
// chunks of an append. Retention is bounded by age, by row
// counts and by the bytes the database takes; the oldest rows past any bound are deleted.
// A worker that stops is reported (log, counters) and started again on the same database; the
// rows handed to it and not yet written are counted as lost.
import { statSync } from 'node:fs';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { Meter } from '@opentelemetry/api';
import type { Attachment, PlacedSpan } from '../correlate/correlator.js';
import { isLinked } from '../correlate/linked.js';
import { SHED_MERGE_NS, type ShedTime } from '../correlate/source.js';
import { MS, earlier, later, nowUnixNano } from '../correlate/time.js';
import type { EventBatch, KernelEvent } from '../kernel/events.js';
import { counter, gauge, observe } from '../export/metrics.js';
import type { AppSpan } from '../otlp/index.js';
import * as A from '../semconv/attributes.js';
import { packAttachments, packEvents, packSpans, type Joined, type Packed } from './columns.js';
import { IN_MEMORY, type DatabaseOptions, type SpanRow, type StoreRetention, type Written } from './database.js';
import { Answers, LOOKUP_WAIT_MS, StoreReader, type Question, type ReadQuestion, type WithoutId } from './reader.js';
import type { Opened, Reply, Request, WorkerData } from './worker.js';

export { IN_MEMORY, type StoreRetention } from './database.js';

export interface StoreOptions extends StoreRetention {
  /** The database file (created with its directory), or IN_MEMORY. */
  path: string;
  /** The counters and the rows held are read from here at each collection. */
  meter?: Meter;
  /** How often the rows handed over are written. */
  flushMs?: number;
  /** DuckDB's memory limit, e.g. '256MB'; default MEMORY_LIMIT. */
  memoryLimit?: string;
  /** How long a trace lookup waits at most for the rows handed over to be written; default LOOKUP_WAIT_MS; 0: it neither asks for a write nor waits. */
  lookupWaitMs?: number;
  now?: () => bigint;
  /** Where a stopped worker is reported. */
  log?: (line: string) => void;
}

/**
 * DuckDB's memory limit: an on-disk store needs memory only for its buffers and queries (blocks
 * past the limit are read back from the file); an in-memory one holds its rows there too. At
 * 128 MB on disk, DuckDB held 57 to 128 MB under the whole-sidecar load; at 64 MB the MCP tools'
 * latencies on a full store (1M events, 100k spans) were those at 128 (test/bench/HISTORY.md,
 * "Then (2026-12-03, 23:02 UTC on)").
 */
const MEMORY_LIMIT = { onDisk: '64MB', inMemory: '256MB' } as const;
/**
 * The worker's young generation, in MiB (V8's default is 3 semi-spaces of up to 16 MiB each):
 * the rows it is handed are short-lived, and a small nursery measured 23 to 31 MiB of worker
 * heap against 50 to 115 under the whole-sidecar load (README, "The whole sidecar under load").
 */
const WORKER_YOUNG_GENERATION_MB = 8;
const STORE_DEFAULTS = {
  flushMs: 250,
  lookupWaitMs: LOOKUP_WAIT_MS,
  log: (line: string) => process.stderr.write(`${line}\n`),
} as const;

export interface StoreCounters {
  eventsStored: number;
  spansStored: number;
  attachmentsStored: number;
  /** Rows refused because the write buffer was full (the database fell behind). */
  rowsShed: number;
  /** Rows deleted by retention. */
  rowsExpired: number;
  flushErrors: number;
  /** Rows taken and never written: their write failed, the worker stopped before writing them, or the store is down. */
  rowsLost: number;
  /** Times the worker stopped and was started again. */
  workerRestarts: number;
  /** Rows handed to the worker and not written yet. */
  rowsBuffered: number;
  /** Time the last flush took. */
  lastFlushMs: number;
  /** How long the oldest row not written yet has waited (0: none waits). */
  behindMs: number;
  /** Trace lookups that found nothing written and waited for the rows handed over to be written. */
  lookupsWaited: number;
  /** Trace lookups answered "not in the store yet": the rows handed over were not written within lookupWaitMs. */
  lookupsBehind: number;
}

/** Rows handed to the store and not written yet, and how long the oldest of them has waited. */
export interface WriteLag {
  rows: number;
  behindMs: number;
}

/** Rows packed into one batch for the worker: a data chunk's worth (DuckDB's vector size). */
export const PACKED_ROWS = 2048;
/** Rows buffered at most between flushes; beyond it, new rows are shed and counted. */
export const MAX_BUFFERED = 250_000;
/** A worker is started again this many times at most with no write in between; one more stop and the store is down. */
const MAX_RESTARTS_IN_A_ROW = 3;

const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The store's row of an app span. */
export function spanRow({ span, place }: PlacedSpan<AppSpan>): SpanRow {
  return {
    traceId: span.traceId,
    spanId: span.spanId,
    parentSpanId: span.parentSpanId,
    service: span.serviceName ?? 'unknown_service',
    name: span.name,
    kind: span.kind,
    startUnixNano: span.startUnixNano,
    endUnixNano: span.endUnixNano,
    pid: place?.hostPid,
    tid: place?.hostTid,
    statusCode: span.status?.code ?? 0,
    attributes: span.attributes,
    executable: text(span.resource[A.ATTR_PROCESS_EXECUTABLE_PATH]),
    containerId: text(span.resource[A.ATTR_CONTAINER_ID]),
  };
}

/** A packed batch's buffers, moved to the worker rather than copied. */
const moved = (batch: Packed): ArrayBuffer[] =>
  batch.entries === undefined ? [batch.buffer] : [batch.buffer, batch.entries.buffer];

export class Store extends StoreReader {
  /** Event ids are numbers here (exact to 2^53), bigints in the database. */
  private nextEventId = 0;
  private flushing: Promise<void> = Promise.resolve();
  /** The flush queued behind the one running, not started yet: later callers share it. */
  private queued: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly count = {
    eventsStored: 0,
    spansStored: 0,
    attachmentsStored: 0,
    rowsShed: 0,
    rowsExpired: 0,
    flushErrors: 0,
    rowsLost: 0,
    workerRestarts: 0,
    lastFlushMs: 0,
    lookupsWaited: 0,
    lookupsBehind: 0,
  };
  /** Rows handed to the worker since its last write began (those still pending included), and those that write holds. */
  private handed = 0;
  /** When the first of the rows `handed` and `writing` count was taken (Unix ns), for how far behind the store is. */
  private handedSince: bigint | undefined;
  private writingSince: bigint | undefined;
  /**
   * Kernel events (consecutive ids from firstId), app spans and attachments taken and not yet
   * packed: they go to the worker once PACKED_ROWS are pending, or before the next write, so that a
   * batch, its buffers and its data chunks are not made for a few rows at a time (capture hands
   * over small batches as it reads them, OTLP a request's spans; a message per request cost the
   * main thread more than packing its spans).
   */
  private pending = {
    events: [] as KernelEvent[],
    firstId: 0,
    spans: [] as PlacedSpan<AppSpan>[],
    joined: [] as Joined[],
    joinedRows: 0,
    shed: [] as ShedTime[],
  };
  private writing = 0;
  private readonly settings: Required<Omit<StoreOptions, 'meter' | 'memoryLimit'>>;
  private readonly database: DatabaseOptions;
  /** The worker, and the channel for queries, so that they do not queue behind the rows handed over. */
  private worker!: Worker;
  private queries!: MessagePort;
  private readonly answers = new Answers();
  private stopsInARow = 0;
  private closed = false;
  /** Why the store is down (its worker cannot run); undefined while it runs. */
  private down: string | undefined;

  private constructor(options: StoreOptions) {
    super();
    const { meter, memoryLimit, ...settings } = options;
    this.settings = { ...STORE_DEFAULTS, now: nowUnixNano, ...settings };
    const { path, retentionMs, maxEvents, maxSpans, maxBytes } = options;
    const onDisk = path !== IN_MEMORY;
    this.database = {
      path,
      retentionMs,
      maxEvents,
      maxSpans,
      maxBytes,
      memoryLimit: memoryLimit ?? (onDisk ? MEMORY_LIMIT.onDisk : MEMORY_LIMIT.inMemory),
    };
    if (meter !== undefined) this.instrument(meter);
  }

  static async open(options: StoreOptions): Promise<Store> {
    const store = new Store(options);
    await store.start();
    store.timer = setInterval(() => {
      void store.flush();
    }, store.settings.flushMs);
    store.timer.unref();
    return store;
  }

  /**
   * A capture batch's events, each given its id in the batch (the correlator reads it there), but
   * messages: they only link a request to the process serving it, at joining, not worth a row each.
   */
  addBatch(batch: EventBatch): void {
    const rows: number[] = [];
    for (let i = 0; i < batch.length; i++) if (batch.kind(i) !== A.CAUSEWAY_KIND_VALUE_IPC_MESSAGE) rows.push(i);
    const events = rows.map((i) => batch.event(i));
    this.addEvents(events);
    rows.forEach((row, i) => {
      const id = events[i]?.storeId;
      if (id !== undefined) batch.setStoreId(row, id);
    });
  }

  addEvents(events: KernelEvent[]): void {
    const admitted = this.admit(events);
    if (admitted.length === 0) return;
    const { events: held, firstId } = this.pending;
    // Ids jump when a restarted worker's database held more: a packed batch's ids are consecutive.
    if (held.length > 0 && firstId + held.length !== this.nextEventId) this.handPackedEvents();
    if (this.pending.events.length === 0) this.pending.firstId = this.nextEventId;
    for (const event of admitted) event.storeId = this.nextEventId++;
    if (!this.take(admitted.length)) return;
    for (const event of admitted) this.pending.events.push(event);
    if (this.pending.events.length >= PACKED_ROWS) this.handPackedEvents();
  }

  addSpans(spans: PlacedSpan<AppSpan>[]): void {
    const admitted = this.admit(spans);
    if (admitted.length === 0 || !this.take(admitted.length)) return;
    for (const span of admitted) this.pending.spans.push(span);
    if (this.pending.spans.length >= PACKED_ROWS) this.handPackedSpans();
  }

  addAttachments(attachments: Attachment<AppSpan>[]): void {
    const admitted = this.admit(attachments);
    if (admitted.length === 0) return;
    // Linked waits (correlate/linked.ts) are made at joining: stored with the span they were linked to.
    // They are copies: the id spread from the event they copy is not theirs (one shed keeps none).
    const linked = admitted.flatMap((a) => a.events.filter(isLinked));
    for (const event of linked) event.storeId = undefined;
    this.addEvents(linked);
    const joined = admitted.map(({ span, events }): Joined => ({
      traceId: span.traceId,
      spanId: span.spanId,
      endUnixNano: span.endUnixNano,
      // An event without an id was shed before it was stored.
      eventIds: events.flatMap((event) => event.storeId ?? []),
    }));
    if (!this.take(admitted.length)) return;
    for (const one of joined) {
      this.pending.joined.push(one);
      this.pending.joinedRows += one.eventIds.length;
    }
    if (this.pending.joinedRows >= PACKED_ROWS) this.handPackedAttachments();
  }

  /**
   * The capture shed kernel events from `from` to `to` (Unix ns), so explain_trace can say that a
   * trace of that time lacks some. It tells of each batch it sheds: times that overlap, or nearly,
   * the latest one held are held as one with it.
   */
  addShed(from: bigint, to: bigint): void {
    const last = this.pending.shed.at(-1);
    if (last !== undefined && from <= last.to + SHED_MERGE_NS && to >= last.from - SHED_MERGE_NS) {
      last.from = earlier(last.from, from);
      last.to = later(last.to, to);
      return;
    }
    const [time] = this.admit([{ from, to }]);
    if (time !== undefined && this.take(1)) this.pending.shed.push(time);
  }

  counters(): StoreCounters {
    const { rows, behindMs } = this.lag();
    return { ...this.count, rowsBuffered: rows, behindMs };
  }

  lag(): WriteLag {
    const since = this.writing > 0 ? this.writingSince : this.handedSince;
    const behindMs = since === undefined ? 0 : Math.max(0, Number((this.settings.now() - since) / MS));
    return { rows: this.buffered(), behindMs };
  }

  /**
   * For a lookup that found nothing while rows wait to be written: has them written (after the
   * write in progress) and waits for it, at most lookupWaitMs. True when nothing handed over before
   * is left unwritten, so that a second look is final; false when the wait ran out first.
   */
  async caughtUp(): Promise<boolean> {
    if (this.buffered() === 0) return true;
    const { lookupWaitMs } = this.settings;
    let written = false;
    if (lookupWaitMs > 0) {
      this.count.lookupsWaited++;
      let timer: NodeJS.Timeout | undefined;
      written = await Promise.race([
        this.flush().then(() => true),
        new Promise<false>((resolve) => (timer = setTimeout(resolve, lookupWaitMs, false))),
      ]);
      clearTimeout(timer);
    }
    if (!written) this.count.lookupsBehind++;
    return written;
  }

  /** Counters, rows held, memory and disk used, the oldest rows, the retention bounds, and whether it is down. */
  async status() {
    const { path, retentionMs, maxEvents, maxSpans, maxBytes } = this.settings;
    const now = this.settings.now();
    const running = this.down === undefined;
    const [oldest] = running
      ? await this.rows(`SELECT (SELECT min(end_ns) FROM kernel_events), (SELECT min(end_ns) FROM spans)`)
      : [];
    const age = (ns: unknown) => (typeof ns === 'bigint' ? Number((now - ns) / MS) : null);
    return {
      ...this.counters(),
      ...(running
        ? await this.size()
        : { events: 0, spans: 0, attachments: 0, memoryBytes: 0, bytes: 0, workerHeapBytes: 0 }),
      path,
      diskBytes: this.diskBytes(),
      oldestEventAgeMs: age(oldest?.[0]),
      oldestSpanAgeMs: age(oldest?.[1]),
      retentionMs,
      maxEvents,
      maxSpans,
      maxBytes,
      down: this.down ?? null,
    };
  }

  /**
   * A port of its own to the worker, for reading the store from another thread (PortStoreReader):
   * its questions are answered on it, not on the main thread. The worker closes it when it stops.
   */
  readerPort(): MessagePort {
    const unusable = this.unusable();
    if (unusable !== undefined) throw unusable;
    const { port1, port2 } = new MessageChannel();
    this.queries.postMessage({ op: 'port', port: port2 } satisfies Request, [port2]);
    return port1;
  }

  /**
   * Writes everything handed over, then applies retention. Flushes never overlap, and at most one
   * waits behind the one running: it takes every row handed over by the time it starts, so the
   * timer's ticks during a long write do not pile up writes.
   */
  flush(): Promise<void> {
    this.queued ??= this.flushing = this.flushing
      .then(() => {
        this.queued = undefined;
        return this.write();
      })
      .catch(() => {
        this.count.flushErrors++;
      });
    return this.queued;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
    if (this.closed || this.down !== undefined) return;
    const answered = this.request({ op: 'close' });
    this.closed = true;
    await answered;
    await this.worker.terminate();
  }

  /** The rows that fit in the write buffer; the rest are shed and counted. */
  private admit<T>(rows: T[]): T[] {
    const room = Math.max(0, MAX_BUFFERED - this.buffered());
    if (rows.length <= room) return rows;
    this.count.rowsShed += rows.length - room;
    return rows.slice(0, room);
  }

  private buffered(): number {
    return this.handed + this.writing;
  }

  /** Counts rows as handed over; false when the store is down or closed, and they are counted lost. */
  private take(rows: number): boolean {
    if (this.down !== undefined || this.closed) {
      this.count.rowsLost += rows;
      return false;
    }
    if (this.handed === 0) this.handedSince = this.settings.now();
    this.handed += rows;
    return true;
  }

  private handPackedEvents(): void {
    const batch = packEvents(this.pending.events, this.pending.firstId);
    this.pending.events = [];
    this.worker.postMessage({ op: 'events', batch } satisfies Request, moved(batch));
  }

  private handPackedSpans(): void {
    const batch = packSpans(this.pending.spans.map(spanRow));
    this.pending.spans = [];
    this.worker.postMessage({ op: 'spans', batch } satisfies Request, moved(batch));
  }

  private handPackedAttachments(): void {
    const batch = packAttachments(this.pending.joined);
    this.pending.joined = [];
    this.pending.joinedRows = 0;
    this.worker.postMessage({ op: 'attachments', batch } satisfies Request, moved(batch));
  }

  private async write(): Promise<void> {
    if (this.down !== undefined || this.closed) return;
    if (this.pending.events.length > 0) this.handPackedEvents();
    if (this.pending.spans.length > 0) this.handPackedSpans();
    if (this.pending.joined.length > 0) this.handPackedAttachments();
    if (this.pending.shed.length > 0) {
      this.worker.postMessage({ op: 'shed', times: this.pending.shed } satisfies Request);
      this.pending.shed = [];
    }
    this.writing = this.handed;
    this.writingSince = this.handedSince;
    this.handed = 0;
    this.handedSince = undefined;
    try {
      const written = await this.request<Written>({ op: 'write', now: this.settings.now() });
      this.count.eventsStored += written.eventsStored;
      this.count.spansStored += written.spansStored;
      this.count.attachmentsStored += written.attachmentsStored;
      this.count.rowsExpired += written.rowsExpired;
      this.count.lastFlushMs = written.ms;
      this.stopsInARow = 0;
    } catch (error) {
      this.count.rowsLost += this.writing;
      throw error;
    } finally {
      this.writing = 0;
    }
  }

  protected ask<T>(query: ReadQuestion): Promise<T> {
    return this.request(query);
  }

  private request<T>(request: WithoutId<Question>): Promise<T> {
    const unusable = this.unusable();
    if (unusable !== undefined) return Promise.reject(unusable);
    const [id, answer] = this.answers.ask<T>();
    // A write must come after the rows handed over before it; a query need not wait for them.
    const channel = request.op === 'write' || request.op === 'close' ? this.worker : this.queries;
    channel.postMessage({ ...request, id });
    return answer;
  }

  /** Why no question can be asked now (the store is down or closed); undefined when one can. */
  private unusable(): Error | undefined {
    if (this.down !== undefined) return new Error(`the store is down: ${this.down}`);
    if (this.closed) return new Error('the store is closed');
    return undefined;
  }

  /** A worker on the database; resolves once it is open, and the ids go on from the rows it holds. */
  private async start(): Promise<void> {
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: { database: this.database, queries: port2 } satisfies WorkerData,
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
      transferList: [port2],
    });
    this.worker = worker;
    this.queries = port1;
    const opened = await new Promise<Opened>((resolve, reject) => {
      const failed = (error: Error) => {
        worker.off('exit', ended);
        reject(error);
      };
      const ended = (code: number) => {
        worker.off('error', failed);
        reject(new Error(`its worker ended before the database was open (exit code ${String(code)})`));
      };
      worker.once('message', (first: Opened) => {
        worker.off('error', failed);
        worker.off('exit', ended);
        resolve(first);
      });
      worker.once('error', failed);
      worker.once('exit', ended);
    });
    const next = Number(opened.nextEventId);
    if (next > this.nextEventId) this.nextEventId = next;
    let failure: Error | undefined;
    // Writes are answered on the worker's own port, queries on theirs.
    for (const answering of [worker, this.queries])
      answering.on('message', (reply: Reply) => {
        this.answers.settle(reply);
      });
    worker.on('error', (error) => (failure = error));
    worker.on('exit', (code) => {
      if (this.closed) this.answers.failAll(new Error('the store is closed'));
      else this.stopped(failure?.message ?? `exit code ${String(code)}`);
    });
  }

  /** Reports a stopped worker, fails what waited on it, and starts another unless it keeps stopping. */
  private stopped(reason: string): void {
    const lost = this.handed + this.writing;
    this.count.rowsLost += this.handed; // the write's own rows are counted when it fails, just below
    this.handed = 0;
    this.handedSince = undefined;
    this.pending = { events: [], firstId: 0, spans: [], joined: [], joinedRows: 0, shed: [] };
    this.answers.failAll(new Error(`the store's worker stopped: ${reason}`));
    const held = this.settings.path === IN_MEMORY ? ' and every row it held (the store is in memory)' : '';
    if (++this.stopsInARow > MAX_RESTARTS_IN_A_ROW) {
      this.down = `its worker stopped ${String(this.stopsInARow)} times with no write in between (${reason})`;
      this.settings.log(`store: ${this.down}; ${String(lost)} rows not written${held} are lost; the store is down`);
      return;
    }
    this.count.workerRestarts++;
    this.settings.log(
      `store: its worker stopped (${reason}); ${String(lost)} rows not written${held} are lost; starting it again`,
    );
    this.start().catch((e: unknown) => {
      this.down = `its worker cannot start again: ${message(e)}`;
      this.settings.log(
        `store: ${this.down}; ${String(this.handed)} more rows not written are lost; the store is down`,
      );
      this.count.rowsLost += this.handed;
      this.handed = 0;
      this.handedSince = undefined;
      this.answers.failAll(new Error(`the store is down: ${this.down}`));
    });
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
        rowsLost: counter(
          'causeway_store_rows_lost',
          'Rows taken and never written: their write failed, the store worker stopped first, or the store is down.',
        ),
        workerRestarts: counter(
          'causeway_store_worker_restarts',
          'Times the store worker stopped and was started again.',
        ),
        rowsBuffered: gauge('causeway_store_rows_buffered', 'Rows waiting to be written to the store.'),
        behind: gauge(
          'causeway_store_behind_seconds',
          'How long the oldest row waiting to be written to the store has waited.',
          's',
        ),
        lookupsWaited: counter(
          'causeway_store_lookups_waited',
          'Trace lookups that found nothing written while rows waited, and waited for their write.',
        ),
        lookupsBehind: counter(
          'causeway_store_lookups_behind',
          'Trace lookups answered that the store is behind: the rows waiting were not written within the wait.',
        ),
        lastFlush: gauge('causeway_store_last_flush_seconds', 'Time the last write to the store took.', 's'),
        rows: gauge('causeway_store_rows', 'Rows held in the store, per table.'),
        memory: gauge('causeway_store_memory_bytes', 'Memory the store uses.', 'By'),
        workerHeap: gauge(
          'causeway_store_worker_heap_bytes',
          "The store worker's JavaScript heap (its own isolate) as allocated.",
          'By',
        ),
        disk: gauge('causeway_store_disk_bytes', "The store's file and write-ahead log on disk.", 'By'),
        up: gauge('causeway_store_up', 'Whether the store runs: 0 when its worker cannot (see the log).'),
      },
      async () => {
        const size = this.down === undefined ? await this.size() : undefined;
        const counters = this.counters();
        return {
          ...counters,
          lastFlush: counters.lastFlushMs / 1000,
          behind: counters.behindMs / 1000,
          rows:
            size === undefined
              ? []
              : [
                  [size.events, { table: 'kernel_events' }],
                  [size.spans, { table: 'spans' }],
                  [size.attachments, { table: 'attachments' }],
                ],
          memory: size?.memoryBytes,
          workerHeap: size?.workerHeapBytes,
          up: size === undefined ? 0 : 1,
          disk: this.diskBytes(),
        };
      },
    );
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
