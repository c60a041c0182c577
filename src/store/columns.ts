// Rows handed to the store's worker, packed by column: the numbers in an ArrayBuffer that moves
// to the worker without a copy (postMessage's transfer), the strings as the batch's distinct ones,
// which the rows point into by index (kinds, comms, span names, services, attribute keys and values
// repeat). An event's or span's attributes go as (key, value) entries, and the worker writes their JSON:
// the main thread, which also decodes and joins, pays only for packing. Structured-cloning row
// objects cost both threads more than the write itself; the worker appends a packed batch to
// DuckDB a data chunk at a time (database.ts) instead of a call per value.
import { attributesOnce, otherTask, type Attributes, type KernelEvent } from '../kernel/events.js';
import * as A from '../semconv/attributes.js';
import type { SpanRow } from './database.js';

/** How a column is packed; a varchar column holds indexes into the batch's strings. */
export type ColumnType = 'bigint' | 'integer' | 'double' | 'varchar';
export type Column = BigInt64Array | Int32Array | Float64Array;

/** In an integer or varchar column: SQL NULL (no pid, tid or string index is negative). */
export const NULL = -1;

export interface Packed {
  rows: number;
  /** The columns, one after the other, in the table's order (columnViews). */
  buffer: ArrayBuffer;
  strings: string[];
  /** Kernel events' or spans' attribute entries (ENTRY_COLUMNS), until the worker writes them as JSON (withJson). */
  entries?: { count: number; buffer: ArrayBuffer };
}

/** The columns of kernel_events and of attachments, in the tables' order (database.ts's SCHEMA). */
export const EVENT_COLUMNS = [
  'bigint', // event_id
  'varchar', // kind
  'integer', // pid
  'integer', // tid
  'varchar', // comm
  'bigint', // start_ns
  'bigint', // end_ns
  'double', // duration_ms
  'integer', // other_pid
  'integer', // other_tid
  'varchar', // other_comm
  'varchar', // cuda_kernel
  'varchar', // attributes (JSON); as packed, the row's count of attribute entries
  'varchar', // active_trace_id: the app span active on the thread when the event began (its stamp)
  'varchar', // active_span_id
] as const satisfies readonly ColumnType[];
/** The attributes column: the stamp's, added to the table later, follow it. */
const EVENT_ATTRIBUTES = 12;

/** An event's attribute entries, all events' one after the other: the key, and the value as its kind says. */
const ENTRY_COLUMNS = [
  'double', // the value, a number
  'integer', // the key, an index into strings
  'integer', // the value's kind (VALUE)
  'integer', // the value, an index into strings: a string, or JSON text
] as const satisfies readonly ColumnType[];
const VALUE = { number: 0, string: 1, json: 2 } as const;

/**
 * The columns of an app span's row, in the spans table's order, then its process's two
 * (database.ts appends the table's columns a data chunk at a time, and writes the processes
 * table from the rows). The worker numbers the rows (seq) as it appends them; span_kind and
 * status_code go as integers, which DuckDB casts to the table's TINYINT (refusing one that does not fit).
 */
export const SPAN_COLUMNS = [
  'bigint', // seq: the worker's
  'varchar', // trace_id
  'varchar', // span_id
  'varchar', // parent_span_id
  'varchar', // service
  'varchar', // name
  'integer', // span_kind
  'bigint', // start_ns
  'bigint', // end_ns
  'double', // duration_ms
  'integer', // pid
  'integer', // tid
  'integer', // status_code
  'varchar', // attributes (JSON); as packed, the row's count of attribute entries
  'varchar', // the process's executable
  'varchar', // the process's container_id
] as const satisfies readonly ColumnType[];
const SPAN_ATTRIBUTES = 13;

/** A spans batch's columns (SPAN_COLUMNS), by name. */
export function spanColumns(columns: Column[]) {
  const [
    seqs,
    traces,
    ids,
    parents,
    services,
    names,
    kinds,
    starts,
    ends,
    durations,
    pids,
    tids,
    statuses,
    attributes,
    executables,
    containers,
  ] = columns as [
    BigInt64Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
    BigInt64Array,
    BigInt64Array,
    Float64Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
  ];
  return {
    seqs,
    traces,
    ids,
    parents,
    services,
    names,
    kinds,
    starts,
    ends,
    durations,
    pids,
    tids,
    statuses,
    attributes,
    executables,
    containers,
  };
}

export const ATTACHMENT_COLUMNS = [
  'varchar', // trace_id
  'varchar', // span_id
  'bigint', // event_id
  'bigint', // end_ns
] as const satisfies readonly ColumnType[];

const WIDE = new Set<ColumnType>(['bigint', 'double']);

/** Where each column starts in a batch's buffer (an 8-byte column 8-byte aligned), and the buffer's size. */
function offsets(layout: readonly ColumnType[], rows: number): { starts: number[]; bytes: number } {
  let offset = 0;
  const starts = layout.map((type) => {
    const width = WIDE.has(type) ? 8 : 4;
    const start = Math.ceil(offset / width) * width;
    offset = start + width * rows;
    return start;
  });
  return { starts, bytes: offset };
}

/** The columns' views on a batch's buffer. */
export function columnViews(layout: readonly ColumnType[], rows: number, buffer: ArrayBuffer): Column[] {
  const { starts } = offsets(layout, rows);
  return layout.map((type, i) => {
    const start = starts[i] ?? 0;
    if (type === 'bigint') return new BigInt64Array(buffer, start, rows);
    if (type === 'double') return new Float64Array(buffer, start, rows);
    return new Int32Array(buffer, start, rows);
  });
}

/** A batch being packed: its columns, and its strings each stored once. */
class Packing {
  readonly buffer: ArrayBuffer;
  readonly columns: Column[];
  private readonly strings: string[] = [];
  private readonly index = new Map<string, number>();

  constructor(
    layout: readonly ColumnType[],
    private readonly rows: number,
  ) {
    this.buffer = new ArrayBuffer(offsets(layout, rows).bytes);
    this.columns = columnViews(layout, rows, this.buffer);
  }

  /** A string that repeats: stored once. */
  string(value: string | undefined): number {
    if (value === undefined) return NULL;
    let at = this.index.get(value);
    if (at === undefined) {
      at = this.strings.push(value) - 1;
      this.index.set(value, at);
    }
    return at;
  }

  packed(): Packed {
    return { rows: this.rows, buffer: this.buffer, strings: this.strings };
  }
}

/** Attribute entries as they are packed, reused from batch to batch (packing runs on one thread). */
const entries = { count: 0, numbers: new Float64Array(4096), ints: new Int32Array(3 * 4096) };

function addEntry(key: number, kind: number, number: number, text: number): void {
  if (entries.count === entries.numbers.length) {
    const numbers = new Float64Array(entries.count * 2);
    const ints = new Int32Array(entries.count * 6);
    numbers.set(entries.numbers);
    ints.set(entries.ints);
    Object.assign(entries, { numbers, ints });
  }
  const at = entries.count++;
  entries.numbers[at] = number;
  entries.ints[3 * at] = key;
  entries.ints[3 * at + 1] = kind;
  entries.ints[3 * at + 2] = text;
}

/** The entries packed so far, in a buffer of their own; the scratch is emptied. */
function takeEntries(): { count: number; buffer: ArrayBuffer } {
  const { count } = entries;
  const buffer = new ArrayBuffer(offsets(ENTRY_COLUMNS, count).bytes);
  const [numbers, keys, kinds, texts] = columnViews(ENTRY_COLUMNS, count, buffer) as [
    Float64Array,
    Int32Array,
    Int32Array,
    Int32Array,
  ];
  numbers.set(entries.numbers.subarray(0, count));
  for (let i = 0; i < count; i++) {
    keys[i] = entries.ints[3 * i] ?? NULL;
    kinds[i] = entries.ints[3 * i + 1] ?? NULL;
    texts[i] = entries.ints[3 * i + 2] ?? NULL;
  }
  entries.count = 0;
  return { count, buffer };
}

const text = (v: unknown) => (typeof v === 'string' ? v : undefined);

function cudaKernel(a: Attributes): string | undefined {
  const inflight = a[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS];
  return text(a[A.ATTR_CAUSEWAY_CUDA_KERNEL]) ?? (Array.isArray(inflight) ? text(inflight[0]) : undefined);
}

/** Process metadata is in the processes table: each event carries only its own attributes. */
const PROCESS_KEYS = new Set<string>([
  A.ATTR_PROCESS_EXECUTABLE_PATH,
  A.ATTR_CONTAINER_ID,
  A.ATTR_CAUSEWAY_PROCESS_NSPID,
]);

/** Attributes as entries, but the keys left out; other values than numbers and strings as `jsonOf` writes them. Returns how many. */
function packAttributes(
  attributes: Record<string, unknown>,
  packing: Packing,
  leftOut: ReadonlySet<string>,
  jsonOf: (value: unknown) => string,
): number {
  let count = 0;
  for (const key in attributes) {
    if (leftOut.has(key)) continue;
    const value: unknown = attributes[key];
    if (value === undefined) continue; // as JSON.stringify leaves it out
    count++;
    if (typeof value === 'number') addEntry(packing.string(key), VALUE.number, value, NULL);
    else if (typeof value === 'string') addEntry(packing.string(key), VALUE.string, 0, packing.string(value));
    else addEntry(packing.string(key), VALUE.json, 0, packing.string(jsonOf(value)));
  }
  return count;
}

const NONE = new Set<string>();

/** Booleans and lists of strings or numbers, as the type says; anything else as json() writes it. */
function valueJson(value: unknown): string {
  try {
    if (!ArrayBuffer.isView(value)) return JSON.stringify(value);
  } catch {
    // a bigint
  }
  return json(value);
}

/** JSON with bigints as their decimal text and bytes as hex. */
export const json = (value: unknown) =>
  JSON.stringify(value, (_, v: unknown) =>
    typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
  );

/** Kernel events as kernel_events rows, with consecutive ids from firstId. */
export function packEvents(events: KernelEvent[], firstId: number): Packed {
  const packing = new Packing(EVENT_COLUMNS, events.length);
  const [
    ids,
    kinds,
    pids,
    tids,
    comms,
    starts,
    ends,
    durations,
    otherPids,
    otherTids,
    otherComms,
    kernels,
    attributes,
    activeTraces,
    activeSpans,
  ] = packing.columns as [
    BigInt64Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
    BigInt64Array,
    BigInt64Array,
    Float64Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
  ];
  let id = BigInt(firstId);
  for (let i = 0; i < events.length; i++) {
    const event = events[i] as KernelEvent;
    const other = otherTask(event);
    const own = attributesOnce(event);
    ids[i] = id++;
    kinds[i] = packing.string(event.kind);
    pids[i] = event.pid;
    tids[i] = event.tid;
    comms[i] = packing.string(event.comm);
    starts[i] = event.startUnixNano;
    ends[i] = event.endUnixNano;
    durations[i] = Number(event.endUnixNano - event.startUnixNano) / 1e6;
    otherPids[i] = other?.pid ?? NULL;
    otherTids[i] = other?.tid ?? NULL;
    otherComms[i] = packing.string(other?.comm);
    kernels[i] = packing.string(cudaKernel(own));
    attributes[i] = packAttributes(own, packing, PROCESS_KEYS, valueJson);
    activeTraces[i] = packing.string(event.spanContext?.traceId);
    activeSpans[i] = packing.string(event.spanContext?.spanId);
  }
  return { ...packing.packed(), entries: takeEntries() };
}

/**
 * App spans as spans rows, with their processes' executable and container. Packed rather than
 * structured-cloned: cloning the row objects cost the main thread a fifth of a span's whole way
 * through the sidecar (issue 11). Their attributes are written as json() writes the object.
 */
export function packSpans(spans: SpanRow[]): Packed {
  const packing = new Packing(SPAN_COLUMNS, spans.length);
  const {
    traces,
    ids,
    parents,
    services,
    names,
    kinds,
    starts,
    ends,
    durations,
    pids,
    tids,
    statuses,
    attributes,
    executables,
    containers,
  } = spanColumns(packing.columns);
  for (let i = 0; i < spans.length; i++) {
    const span = spans[i] as SpanRow;
    traces[i] = packing.string(span.traceId);
    ids[i] = packing.string(span.spanId);
    parents[i] = packing.string(span.parentSpanId);
    services[i] = packing.string(span.service);
    names[i] = packing.string(span.name);
    kinds[i] = span.kind;
    starts[i] = span.startUnixNano;
    ends[i] = span.endUnixNano;
    durations[i] = Number(span.endUnixNano - span.startUnixNano) / 1e6;
    pids[i] = span.pid ?? NULL;
    tids[i] = span.tid ?? NULL;
    statuses[i] = span.statusCode;
    attributes[i] = packAttributes(span.attributes, packing, NONE, json);
    executables[i] = packing.string(span.executable);
    containers[i] = packing.string(span.containerId);
  }
  return { ...packing.packed(), entries: takeEntries() };
}

/** The kernel events joined to one span, by the ids the store gave them. */
export interface Joined {
  traceId: string;
  spanId: string;
  endUnixNano: bigint;
  eventIds: number[];
}

/** Attachments as attachments rows, one per event joined. */
export function packAttachments(joined: Joined[]): Packed {
  let rows = 0;
  for (const { eventIds } of joined) rows += eventIds.length;
  const packing = new Packing(ATTACHMENT_COLUMNS, rows);
  const [traces, spans, ids, ends] = packing.columns as [Int32Array, Int32Array, BigInt64Array, BigInt64Array];
  let row = 0;
  for (const { traceId, spanId, endUnixNano, eventIds } of joined) {
    const trace = packing.string(traceId);
    const span = packing.string(spanId);
    for (const id of eventIds) {
      traces[row] = trace;
      spans[row] = span;
      ids[row] = BigInt(id);
      ends[row++] = endUnixNano;
    }
  }
  return packing.packed();
}

/** Kernel events' attributes as JSON (withJson). */
export const eventsWithJson = (batch: Packed) => withJson(batch, EVENT_COLUMNS, EVENT_ATTRIBUTES);
/** App spans' attributes as JSON (withJson). */
export const spansWithJson = (batch: Packed) => withJson(batch, SPAN_COLUMNS, SPAN_ATTRIBUTES);

/**
 * Writes each row's attributes as JSON, as JSON.stringify writes the object of its entries, and
 * points its attributes column at it.
 */
function withJson(batch: Packed, layout: readonly ColumnType[], column: number): Packed {
  if (batch.entries === undefined) return batch;
  const { strings, rows } = batch;
  const attributes = columnViews(layout, rows, batch.buffer)[column] as Int32Array;
  const [numbers, keys, kinds, texts] = columnViews(ENTRY_COLUMNS, batch.entries.count, batch.entries.buffer) as [
    Float64Array,
    Int32Array,
    Int32Array,
    Int32Array,
  ];
  const quoted: string[] = [];
  const quote = (at: number) => (quoted[at] ??= JSON.stringify(strings[at]));
  const named: string[] = [];
  const name = (at: number) => (named[at] ??= `${quote(at)}:`);
  // Each row's text is joined once from its parts, flat: a string built by += is a chain that
  // is copied again when DuckDB takes it.
  const parts: string[] = [];
  let entry = 0;
  for (let row = 0; row < rows; row++) {
    parts.length = 0;
    for (let n = attributes[row] ?? 0; n > 0; n--, entry++) {
      const kind = kinds[entry];
      const number = numbers[entry] ?? 0;
      const at = texts[entry] ?? NULL;
      // As JSON.stringify writes a number: NaN and the infinities as null.
      const value =
        kind === VALUE.number
          ? Number.isFinite(number)
            ? String(number)
            : 'null'
          : kind === VALUE.string
            ? quote(at)
            : (strings[at] ?? 'null');
      parts.push(name(keys[entry] ?? NULL) + value);
    }
    attributes[row] = strings.push(`{${parts.join(',')}}`) - 1;
  }
  return { rows, buffer: batch.buffer, strings };
}
