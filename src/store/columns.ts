// Rows handed to the store's worker, packed by column: the numbers in one ArrayBuffer that moves
// to the worker without a copy (postMessage's transfer), the strings as the batch's distinct ones,
// which the rows point into by index (kinds, comms, kernel names and attribute sets repeat).
// Structured-cloning row objects cost both threads more than the write itself; the worker appends
// a packed batch to DuckDB a data chunk at a time (database.ts) instead of a call per value.
import { otherTask, type Attributes, type KernelEvent } from '../kernel/events.js';
import * as A from '../semconv/attributes.js';

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
  'varchar', // attributes (JSON)
] as const satisfies readonly ColumnType[];

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

  /** A string unlikely to repeat (an event's attributes): not looked up. */
  unique(value: string): number {
    return this.strings.push(value) - 1;
  }

  packed(): Packed {
    return { rows: this.rows, buffer: this.buffer, strings: this.strings };
  }
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

function ownAttributes(attributes: Attributes): Attributes {
  const own: Attributes = {};
  for (const key in attributes) if (!PROCESS_KEYS.has(key)) own[key] = attributes[key] as Attributes[string];
  return own;
}

/** Kernel events as kernel_events rows, with consecutive ids from firstId. */
export function packEvents(events: KernelEvent[], firstId: bigint): Packed {
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
  ];
  let id = firstId;
  for (let i = 0; i < events.length; i++) {
    const event = events[i] as KernelEvent;
    const other = otherTask(event);
    const own = ownAttributes(event.attributes);
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
    // Their values are strings, numbers, booleans and lists of them: JSON needs no replacer.
    attributes[i] = packing.unique(JSON.stringify(own));
  }
  return packing.packed();
}

/** The kernel events joined to one span, by the ids the store gave them. */
export interface Joined {
  traceId: string;
  spanId: string;
  endUnixNano: bigint;
  eventIds: bigint[];
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
      ids[row] = id;
      ends[row++] = endUnixNano;
    }
  }
  return packing.packed();
}
