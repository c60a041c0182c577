// Turns decoded records into Causeway's public kernel events: the DESIGN vocabulary's
// kind, Unix epoch nanosecond times, and attributes named by semconv/.
import * as A from '../semconv/attributes.js';
import type { EpochClock } from './clock.js';
import type { CudaState, Inflight, Launched, Synced } from './cuda.js';
import type { BlockDevices } from './devices.js';
import type { ProcessInfo, ProcessTable } from './processes.js';
import {
  DEVICE_UNKNOWN,
  Kind,
  MESSAGE_PIPE,
  RECORD_SIZE,
  cudaApiName,
  commAt,
  decodeRecord,
  endAfter,
  kindAt,
  launchCall,
  readLaunchCall,
  otherPidAt,
  otherTaskAt,
  pidAt,
  spanContextAt,
  startAfter,
  startBase,
  tidAt,
  type KernelRecord,
  type MonoBase,
  type Message,
  type WaitSum,
  type WaitSumKind,
  type SpanContextStamp,
  type Task,
} from './record.js';
import { blockOp, futexOp, ipAddress, memcpyDirection, taskState, tcpState } from './vocabulary.js';

export type AttributeValue = string | number | boolean | string[] | number[];
export type Attributes = Record<string, AttributeValue>;

/** The strings of a list-valued attribute; none when it is absent or not a list of strings. */
export const strings = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];

export interface KernelEvent {
  kind: A.CausewayKindValue;
  pid: number;
  tid: number;
  comm: string;
  startUnixNano: bigint;
  /** Equal to startUnixNano for point events. */
  endUnixNano: bigint;
  attributes: Attributes;
  /** The app span active on the task when the event began, as its SDK published it: the span it belongs to. */
  spanContext?: SpanContextStamp | undefined;
  /**
   * The id the store gave the event when it took it (store/store.ts), carried here rather than in a
   * map for the cost of the main thread's path; undefined until then. A copy (a linked wait) gets its own.
   */
  storeId?: number | undefined;
}

/** Records that are events; the others are bookkeeping. */
type EventRecord = Exclude<
  KernelRecord,
  {
    kind:
      | typeof Kind.CUDA_REGISTER
      | typeof Kind.CUDA_NAME_MORE
      | typeof Kind.PROC_EXEC
      | typeof Kind.CUDA_OP
      | typeof Kind.CUDA_MAPPED
      | typeof Kind.PROC_EXIT;
  }
>;

/** The events described by kind (EventShaper.describe): not messages or summaries. */
type DescribedRecord = Exclude<
  EventRecord,
  {
    kind:
      | typeof Kind.IPC_MESSAGE
      | typeof Kind.CUDA_LAUNCHES
      | typeof Kind.SCHED_RUNQUEUE_SUM
      | typeof Kind.SCHED_BLOCKED_SUM
      | typeof Kind.FUTEX_WAIT_SUM;
  }
>;

/** The DESIGN name of each record kind that is an event. */
export const KIND_NAMES: Readonly<Record<EventRecord['kind'], A.CausewayKindValue>> = {
  [Kind.CUDA_LAUNCH]: A.CAUSEWAY_KIND_VALUE_CUDA_LAUNCH,
  [Kind.CUDA_SYNC]: A.CAUSEWAY_KIND_VALUE_CUDA_SYNC,
  [Kind.CUDA_MEMCPY]: A.CAUSEWAY_KIND_VALUE_CUDA_MEMCPY,
  [Kind.CUDA_MALLOC]: A.CAUSEWAY_KIND_VALUE_CUDA_MALLOC,
  [Kind.SCHED_RUNQUEUE]: A.CAUSEWAY_KIND_VALUE_SCHED_RUNQUEUE,
  [Kind.SCHED_BLOCKED]: A.CAUSEWAY_KIND_VALUE_SCHED_BLOCKED,
  [Kind.FUTEX_WAIT]: A.CAUSEWAY_KIND_VALUE_FUTEX_WAIT,
  [Kind.BLOCK_IO]: A.CAUSEWAY_KIND_VALUE_BLOCK_IO,
  [Kind.TCP_RETRANSMIT]: A.CAUSEWAY_KIND_VALUE_TCP_RETRANSMIT,
  [Kind.IPC_MESSAGE]: A.CAUSEWAY_KIND_VALUE_IPC_MESSAGE,
  [Kind.CUDA_LAUNCHES]: A.CAUSEWAY_KIND_VALUE_CUDA_LAUNCHES,
  [Kind.SCHED_RUNQUEUE_SUM]: A.CAUSEWAY_KIND_VALUE_SCHED_RUNQUEUES,
  [Kind.SCHED_BLOCKED_SUM]: A.CAUSEWAY_KIND_VALUE_SCHED_BLOCKED_WAITS,
  [Kind.FUTEX_WAIT_SUM]: A.CAUSEWAY_KIND_VALUE_FUTEX_WAITS,
};

/** The summaries of the in-kernel reduction, and the kind of the events each stands for. */
export const SUMMARIZED: Readonly<Partial<Record<A.CausewayKindValue, A.CausewayKindValue>>> = {
  [A.CAUSEWAY_KIND_VALUE_CUDA_LAUNCHES]: A.CAUSEWAY_KIND_VALUE_CUDA_LAUNCH,
  [A.CAUSEWAY_KIND_VALUE_SCHED_RUNQUEUES]: A.CAUSEWAY_KIND_VALUE_SCHED_RUNQUEUE,
  [A.CAUSEWAY_KIND_VALUE_SCHED_BLOCKED_WAITS]: A.CAUSEWAY_KIND_VALUE_SCHED_BLOCKED,
  [A.CAUSEWAY_KIND_VALUE_FUTEX_WAITS]: A.CAUSEWAY_KIND_VALUE_FUTEX_WAIT,
};

/** How many kernel events an event stands for: a summary's count, 1 for any other. */
export function eventsCovered(event: KernelEvent): number {
  if (SUMMARIZED[event.kind] === undefined) return 1;
  const count = event.attributes[A.ATTR_CAUSEWAY_SUMMARY_COUNT];
  return typeof count === 'number' ? count : 1;
}

/**
 * Handles (streams, functions, events, lock addresses) as hex, each written once while it
 * recurs: a busy thread names the same few in every record, and one string each is held, not
 * one per event. Bounded: emptied when full.
 */
const hexes = new Map<bigint, string>();
const HEXES_HELD = 4096;
function hex(value: bigint): string {
  let text = hexes.get(value);
  if (text === undefined) {
    if (hexes.size >= HEXES_HELD) hexes.clear();
    text = `0x${value.toString(16)}`;
    hexes.set(value, text);
  }
  return text;
}
/** How a pipe's connection id begins: a pipe is one-way, which linking needs to know. */
const PIPE_PREFIX = 'pipe:';
/** Whether a message's connection (causeway.ipc.connection) is a pipe. */
export const isPipe = (connection: string) => connection.startsWith(PIPE_PREFIX);
/** Kernel names a graph launch lists. */
const MAX_GRAPH_KERNELS = 32;
/**
 * A launch call this long blocked: a launch that queues returns in microseconds, one that
 * finds the launch queue full waits in the call for queued work to complete.
 */
export const LAUNCH_BLOCKED_NS = 100_000n;
const LAUNCH_BLOCKED = Number(LAUNCH_BLOCKED_NS);
const ms = (ns: bigint) => Number(ns) / 1e6;

/** A launch that blocked (the launch queue was full): a wait, unlike other launches. */
export const isBlockedLaunch = (event: KernelEvent) =>
  event.kind === 'cuda.launch' && event.attributes[A.ATTR_CAUSEWAY_CUDA_LAUNCH_BLOCKED] === true;

interface TaskKeys {
  pid: string;
  tid: string;
  comm: string;
}

const SCHED_WAKER: TaskKeys = {
  pid: A.ATTR_CAUSEWAY_SCHED_WAKER_PID,
  tid: A.ATTR_CAUSEWAY_SCHED_WAKER_TID,
  comm: A.ATTR_CAUSEWAY_SCHED_WAKER_COMM,
};
const FUTEX_WAKER: TaskKeys = {
  pid: A.ATTR_CAUSEWAY_FUTEX_WAKER_PID,
  tid: A.ATTR_CAUSEWAY_FUTEX_WAKER_TID,
  comm: A.ATTR_CAUSEWAY_FUTEX_WAKER_COMM,
};

/**
 * The other task an event names, by kind: who held the CPU it waited for, who ended its wait (of
 * a summary of waits, who ended the longest).
 */
const OTHER_TASK: Readonly<Partial<Record<A.CausewayKindValue, TaskKeys>>> = {
  [A.CAUSEWAY_KIND_VALUE_SCHED_RUNQUEUE]: {
    pid: A.ATTR_CAUSEWAY_SCHED_HOLDER_PID,
    tid: A.ATTR_CAUSEWAY_SCHED_HOLDER_TID,
    comm: A.ATTR_CAUSEWAY_SCHED_HOLDER_COMM,
  },
  [A.CAUSEWAY_KIND_VALUE_SCHED_BLOCKED]: SCHED_WAKER,
  [A.CAUSEWAY_KIND_VALUE_SCHED_BLOCKED_WAITS]: SCHED_WAKER,
  [A.CAUSEWAY_KIND_VALUE_FUTEX_WAIT]: FUTEX_WAKER,
  [A.CAUSEWAY_KIND_VALUE_FUTEX_WAITS]: FUTEX_WAKER,
};

function setOtherTask(attributes: Attributes, kind: A.CausewayKindValue, t: Task | undefined): void {
  const keys = OTHER_TASK[kind];
  if (keys === undefined || t === undefined) return;
  attributes[keys.pid] = t.pid;
  attributes[keys.tid] = t.tid;
  attributes[keys.comm] = t.comm;
}

/**
 * An event's attributes for a reader that reads them once (the store's packing): a shaped event
 * does not keep them then, and the correlator holding it holds no more than before.
 */
export const attributesOnce = (event: KernelEvent): Attributes =>
  event instanceof ShapedEvent ? event.attributesOnce() : event.attributes;

/**
 * The other task an event names: for sched.runqueue the task that held the CPU, for
 * sched.blocked and futex.wait the one that woke it (pid 0: an interrupt on an idle CPU).
 * Undefined when the kind names none or the event does not say.
 */
export function otherTask(event: KernelEvent): { pid: number; tid?: number; comm?: string } | undefined {
  // Linking asks this of every wait of every span joined: read from the record, its attributes not made for it.
  if (event instanceof ShapedEvent) return event.otherTask();
  const keys = OTHER_TASK[event.kind];
  const pid = keys === undefined ? undefined : event.attributes[keys.pid];
  if (keys === undefined || typeof pid !== 'number') return undefined;
  const tid = event.attributes[keys.tid];
  const comm = event.attributes[keys.comm];
  // Built in place, not from spreads.
  const task: { pid: number; tid?: number; comm?: string } = { pid };
  if (typeof tid === 'number') task.tid = tid;
  if (typeof comm === 'string') task.comm = comm;
  return task;
}

/** A send or receive: the connection in the same words at both ends; a pipe's says it is one. */
function describeMessage(message: Message, attributes: Attributes): void {
  attributes[A.ATTR_CAUSEWAY_IPC_DIRECTION] = message.send
    ? A.CAUSEWAY_IPC_DIRECTION_VALUE_SEND
    : A.CAUSEWAY_IPC_DIRECTION_VALUE_RECV;
  attributes[A.ATTR_CAUSEWAY_IPC_CONNECTION] =
    message.family === MESSAGE_PIPE
      ? `${PIPE_PREFIX}${hex(message.ends[0])}`
      : `${hex(message.ends[0])}-${hex(message.ends[1])}`;
  attributes[A.ATTR_CAUSEWAY_IPC_BYTES] = message.bytes;
}

/**
 * A window of a thread's short waits of one kind (in-kernel reduction): how many, how long in
 * all, the longest; for run-queue waits how many were preemptions, for the others the longest
 * one's waker (`other`).
 */
function describeWaitSum(
  kind: WaitSumKind,
  sum: WaitSum,
  cpu: number,
  other: Task | undefined,
  attributes: Attributes,
): void {
  attributes[A.ATTR_CAUSEWAY_SUMMARY_COUNT] = sum.count;
  if (kind === Kind.FUTEX_WAIT_SUM) {
    attributes[A.ATTR_CAUSEWAY_FUTEX_WAIT_MS] = ms(sum.waitNs);
    attributes[A.ATTR_CAUSEWAY_FUTEX_MAX_WAIT_MS] = ms(sum.maxNs);
    setOtherTask(attributes, A.CAUSEWAY_KIND_VALUE_FUTEX_WAITS, other);
    return;
  }
  attributes[A.ATTR_CAUSEWAY_SCHED_CPU] = cpu;
  attributes[A.ATTR_CAUSEWAY_SCHED_WAIT_MS] = ms(sum.waitNs);
  attributes[A.ATTR_CAUSEWAY_SCHED_MAX_WAIT_MS] = ms(sum.maxNs);
  if (kind === Kind.SCHED_RUNQUEUE_SUM) attributes[A.ATTR_CAUSEWAY_SCHED_PREEMPTED_COUNT] = sum.preempted;
  else setOtherTask(attributes, A.CAUSEWAY_KIND_VALUE_SCHED_BLOCKED_WAITS, other);
}

/** What a wait found in flight: on what a sync waited for, or queued ahead of a launch that blocked. */
function setInflight(attributes: Attributes, inflight: Inflight): void {
  attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT] = inflight.count;
  attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS] = inflight.kernels;
  if (inflight.graphs.length > 0) attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_GRAPHS] = inflight.graphs.map(hex);
  if (inflight.bytes > 0) attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_MEMCPY_BYTES] = inflight.bytes;
  if (inflight.streams.length > 0) attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_STREAMS] = inflight.streams.map(hex);
}

export interface EventShaperParts {
  clock: EpochClock;
  cuda: CudaState;
  processes: Pick<ProcessTable, 'get' | 'forget'>;
  devices: Pick<BlockDevices, 'name'>;
  /** Causeway's own processes (the sidecar or capture, and its loader): the tracer's cost is told apart. */
  self: Pick<ReadonlySet<number>, 'has'>;
}

/** The records the shaper, or the CUDA state before it (learnNames), reads whole: the others are read from their bytes. */
const READ_WHOLE = new Set<number>([
  Kind.CUDA_SYNC,
  Kind.CUDA_MEMCPY,
  Kind.CUDA_MALLOC,
  Kind.CUDA_OP,
  Kind.CUDA_LAUNCHES,
  Kind.CUDA_REGISTER,
  Kind.CUDA_NAME_MORE,
  Kind.PROC_EXEC,
]);
/** Whether records of this kind (enum cw_kind) are decoded whole for EventShaper.shape (decodeRecordsOf). */
export const readWhole = (kind: number) => READ_WHOLE.has(kind);

/** A batch of records (one EVENTS frame's), shared by the events shaped from it: their attributes are read from it. */
export interface RecordBytes {
  buf: Buffer;
  view: DataView;
  /** The memory it is in (buf.buffer, read once: the getter is not cheap), which it keeps. */
  chunk: ArrayBufferLike;
}

export const recordBytes = (buf: Buffer): RecordBytes => ({
  buf,
  view: new DataView(buf.buffer, buf.byteOffset, buf.byteLength),
  chunk: buf.buffer,
});

/**
 * Once the events held from a chunk of memory (the loader's output a frame came in, or an earlier
 * move's) are fewer than this share of the records it has room for, they are copied out and the
 * chunk let go: the bytes held events keep stay within this many times their records'.
 */
const LEAST_HELD_SHARE = 1 / 4;

/**
 * The bytes that the held events keep in memory (each the chunk its record is in), after moving
 * the records of those held from chunks they are too few of (LEAST_HELD_SHARE) into one new
 * chunk. Linear in the events: the correlator calls it once per as many events received as held.
 */
export const compactRecords = (lists: Iterable<EventList>): number => ShapedEvent.compact(lists);

/** What the CUDA state said of a record when it was shaped, by kind: what its attributes need besides its bytes. */
type Said = Launched | Synced | LaunchesNamed | number | undefined;
type LaunchesNamed = ReturnType<CudaState['launches']>;
/**
 * Where shaped events' records are and what shapes them: their batch's bytes, the shaper, the
 * process as known then, and the batch's clock. One per run of a process's records in a batch,
 * shared by the events shaped from them (an event held referred to each part: 3 references more
 * than this one).
 */
interface RecordSource {
  shaper: EventShaper;
  bytes: RecordBytes;
  process: ProcessInfo;
  /** Unix ns of the monotonic time `mono`, as the clock said when the batch was shaped. */
  base: bigint;
  mono: MonoBase;
}
/** What a shaped event is made from besides what its record says. */
interface ShapedParts {
  source: RecordSource;
  at: number;
  said: Said;
}

/**
 * A kernel event as shaped from its record. Its attributes are made when first read, from the
 * record's bytes in its batch, the process as known when it was shaped, and what the CUDA state
 * said then: most events held for joining are never read, and an object of attributes each
 * (with its lists) was most of what the correlator held and the collector traced. Its kind, task
 * and times are read from the record too, the times when first asked: the events a join hands on
 * are made again from the held lists, one object each, and their fields (the kind, task, times and
 * the times' base, and the times' boxed numbers) were most of the join's garbage (issue 11: 310 MB
 * made per million events joined, 230 MB without them).
 */
class ShapedEvent implements KernelEvent {
  // Private (#), and the kind, task, times and attributes getters: a copy made by spreading (a
  // linked wait) holds none of them, and sets those it has.
  /** Its record's source and offset in its bytes: moved when few of its chunk are held (compactRecords). */
  #source: RecordSource;
  #at: number;
  readonly #said: Said;
  #attributes: Attributes | undefined;
  /** Read from the record when first asked. */
  #start: bigint | undefined;
  #end: bigint | undefined;
  storeId: number | undefined = undefined;

  constructor(
    readonly spanContext: SpanContextStamp | undefined,
    from: ShapedParts,
  ) {
    this.#source = from.source;
    this.#at = from.at;
    this.#said = from.said;
  }

  get kind(): A.CausewayKindValue {
    return KIND_NAMES[kindAt(this.#source.bytes.view, this.#at) as EventRecord['kind']];
  }

  get pid(): number {
    return pidAt(this.#source.bytes.view, this.#at);
  }

  get tid(): number {
    return tidAt(this.#source.bytes.view, this.#at);
  }

  get comm(): string {
    const { buf, view } = this.#source.bytes;
    return commAt(buf, view, this.#at);
  }

  get startUnixNano(): bigint {
    const { view } = this.#source.bytes;
    return (this.#start ??= this.#source.base + BigInt(startAfter(view, this.#at, this.#source.mono)));
  }

  get endUnixNano(): bigint {
    const { view } = this.#source.bytes;
    return (this.#end ??= this.#source.base + BigInt(endAfter(view, this.#at, this.#source.mono)));
  }

  static compact(lists: Iterable<EventList>): number {
    // Events held one after another are mostly of one batch: counted by runs, a lookup per run.
    const heldIn = new Map<ArrayBufferLike, number>();
    let batch: RecordBytes | undefined;
    let run = 0;
    const counted = () => {
      if (batch !== undefined) heldIn.set(batch.chunk, (heldIn.get(batch.chunk) ?? 0) + run);
    };
    const all = [...lists];
    for (const list of all)
      list.forEachRecord((bytes) => {
        if (bytes !== batch) {
          counted();
          batch = bytes;
          run = 0;
        }
        run++;
      });
    counted();
    const sparse = (chunk: ArrayBufferLike) =>
      (heldIn.get(chunk) ?? 0) < LEAST_HELD_SHARE * (chunk.byteLength / RECORD_SIZE);
    let kept = 0;
    let moving = 0;
    for (const [chunk, n] of heldIn) {
      if (sparse(chunk)) moving += n;
      else kept += chunk.byteLength;
    }
    if (moving === 0) return kept;
    const to = recordBytes(Buffer.allocUnsafeSlow(moving * RECORD_SIZE));
    let next = 0;
    // Each source of a record moved has one into the new chunk, the same but for its bytes.
    const sourcesIn = new Map<RecordSource, RecordSource>();
    const move: RecordMove = {
      to: (from, at) => {
        if (!sparse(from.bytes.chunk)) return undefined;
        from.bytes.buf.copy(to.buf, next, at, at + RECORD_SIZE);
        next += RECORD_SIZE;
        return next - RECORD_SIZE;
      },
      sourceOf: (from) => {
        let source = sourcesIn.get(from);
        if (source === undefined) sourcesIn.set(from, (source = { ...from, bytes: to }));
        return source;
      },
    };
    for (const list of all) list.moveRecords(move);
    return kept + to.buf.byteLength;
  }

  /** The record a shaped event is made from, where it is now; undefined for any other event. */
  static recordOf(event: KernelEvent): { source: RecordSource; at: number } | undefined {
    return event instanceof ShapedEvent ? { source: event.#source, at: event.#at } : undefined;
  }

  /** Moves a shaped event's record (compaction). */
  static moveRecord(event: KernelEvent, move: RecordMove): void {
    if (!(event instanceof ShapedEvent)) return;
    const at = move.to(event.#source, event.#at);
    if (at === undefined) return;
    event.#source = move.sourceOf(event.#source);
    event.#at = at;
  }

  /**
   * Sets what a shaped event is held as besides its times and what its record says (EventList's
   * references, from index `to`), and gives its record's offset; undefined for any other event.
   */
  static setParts(event: KernelEvent, refs: unknown[], to: number): number | undefined {
    if (!(event instanceof ShapedEvent)) return undefined;
    refs[to + R_SOURCE] = event.#source;
    refs[to + R_SAID] = event.#said;
    return event.#at;
  }

  /** The pid of the other task an event names (otherTask), read from its record when shaped from one. */
  static otherPid(event: KernelEvent): number | undefined {
    return event instanceof ShapedEvent ? otherPidAt(event.#source.bytes.view, event.#at) : otherTask(event)?.pid;
  }

  /** A held event made again, as it was shaped. */
  static made(parts: ShapedParts, storeId: number | undefined): ShapedEvent {
    const event = new ShapedEvent(undefined, parts);
    event.storeId = storeId;
    return event;
  }

  get attributes(): Attributes {
    return (this.#attributes ??= this.shapedAttributes());
  }

  /** Its attributes, kept if already made, else made and not kept: for a reader that reads them once. */
  attributesOnce(): Attributes {
    return this.#attributes ?? this.shapedAttributes();
  }

  /** Its attributes made from its record, the process and what the CUDA state said. */
  private shapedAttributes(): Attributes {
    const { shaper, process } = this.#source;
    return shaper.attributes(this.record(), process, this.#said, this.otherTask());
  }

  otherTask(): Task | undefined {
    const { buf, view } = this.#source.bytes;
    return otherTaskAt(buf, view, this.#at);
  }

  private record(): EventRecord {
    const { buf, view } = this.#source.bytes;
    return decodeRecord(buf, view, this.#at, this.#at / RECORD_SIZE) as EventRecord;
  }
}

/**
 * A shaped event's parts as they are handed over: filled and copied out at once (an event takes
 * its fields, a batch its references), one object for all, not one per event made.
 */
const handedOver = {} as ShapedParts;

/** A shaped event made again from its references (REFS, from index `r`), its record's offset and store id. */
function madeFrom(refs: readonly unknown[], r: number, at: number, storeId: number): KernelEvent {
  handedOver.source = refs[r + R_SOURCE] as RecordSource;
  handedOver.at = at;
  handedOver.said = refs[r + R_SAID] as Said;
  return ShapedEvent.made(handedOver, Number.isNaN(storeId) ? undefined : storeId);
}

/**
 * Numbers per batch row (EventBatch): start and end (ns after the batch's base), its record's
 * offset, its kind (KINDS), pid, tid, the store's id (NaN: none).
 */
const ROW_NUMS = 7;
const B_START = 0;
const B_END = 1;
const B_AT = 2;
const B_KIND = 3;
const B_PID = 4;
const B_TID = 5;
const B_STORE_ID = 6;

/**
 * Kernel events by column, as the capture hands them on: an EVENTS frame's, shaped from its
 * records' bytes with no object per event (issue 11: an object each, its BigInt times and its
 * record decoded whole were most of the decode path's garbage). An event is made when asked
 * (`event`); one stamped with its span, or given made (`of`) and not shaped, is held whole. A row's
 * references are EventList's (REFS).
 */
export class EventBatch {
  private readonly nums: Float64Array;
  /** Made at their size: pushed onto, they were copied as they grew. */
  private readonly refs: unknown[];
  private count = 0;

  /** Room for `rows`; its times are ns after `base` (Unix ns). */
  constructor(
    readonly base: bigint,
    rows: number,
  ) {
    this.nums = new Float64Array(rows * ROW_NUMS);
    this.refs = new Array<unknown>(rows * REFS).fill(undefined);
  }

  /** Events already made, as a batch: each shaped and unstamped is held by its parts (as EventList holds it), any other whole. */
  static of(events: readonly KernelEvent[]): EventBatch {
    const batch = new EventBatch(events[0]?.startUnixNano ?? 0n, events.length);
    for (const event of events) {
      const at =
        event.spanContext === undefined ? ShapedEvent.setParts(event, batch.refs, batch.count * REFS) : undefined;
      if (at === undefined) holdWhole(batch.refs, batch.count * REFS, event);
      batch.row(event.kind, event.pid, event.tid, batch.time(event.startUnixNano), batch.time(event.endUnixNano), at);
      if (event.storeId !== undefined) batch.setStoreId(batch.count - 1, event.storeId);
    }
    return batch;
  }

  get length(): number {
    return this.count;
  }

  /** A time as this batch holds them: ns after its base. */
  time(t: bigint): number {
    return Number(t - this.base);
  }

  /** Adds an event shaped from record `at` of its source's bytes, held by its parts. */
  addShaped(
    kind: A.CausewayKindValue,
    pid: number,
    tid: number,
    start: number,
    end: number,
    { source, at, said }: ShapedParts,
  ): void {
    const r = this.count * REFS;
    this.refs[r + R_SOURCE] = source;
    this.refs[r + R_SAID] = said;
    this.row(kind, pid, tid, start, end, at);
  }

  /** Adds an event held whole (stamped with its span), its times as this batch's. */
  addWhole(event: KernelEvent, start: number, end: number): void {
    holdWhole(this.refs, this.count * REFS, event);
    this.row(event.kind, event.pid, event.tid, start, end);
  }

  private row(kind: A.CausewayKindValue, pid: number, tid: number, start: number, end: number, at = 0): void {
    const n = this.count++ * ROW_NUMS;
    this.nums[n + B_START] = start;
    this.nums[n + B_END] = end;
    this.nums[n + B_AT] = at;
    this.nums[n + B_KIND] = KIND_NUMBERS.get(kind) ?? -1;
    this.nums[n + B_PID] = pid;
    this.nums[n + B_TID] = tid;
    this.nums[n + B_STORE_ID] = NaN;
  }

  kind(i: number): A.CausewayKindValue | undefined {
    return KINDS[this.kindNumber(i)];
  }

  /** Its kind as EventList keeps it. */
  kindNumber(i: number): number {
    return this.nums[i * ROW_NUMS + B_KIND] ?? -1;
  }

  pid(i: number): number {
    return this.nums[i * ROW_NUMS + B_PID] ?? 0;
  }

  tid(i: number): number {
    return this.nums[i * ROW_NUMS + B_TID] ?? 0;
  }

  comm(i: number): string {
    const whole = this.whole(i);
    if (whole !== undefined) return whole.comm;
    const { buf, view } = (this.refs[i * REFS + R_SOURCE] as RecordSource).bytes;
    return commAt(buf, view, this.recordOffset(i));
  }

  start(i: number): number {
    return this.nums[i * ROW_NUMS + B_START] ?? NaN;
  }

  end(i: number): number {
    return this.nums[i * ROW_NUMS + B_END] ?? NaN;
  }

  /** The offset of its record in its bytes (0 for one held whole). */
  recordOffset(i: number): number {
    return this.nums[i * ROW_NUMS + B_AT] ?? 0;
  }

  storeId(i: number): number | undefined {
    const id = this.nums[i * ROW_NUMS + B_STORE_ID] ?? NaN;
    return Number.isNaN(id) ? undefined : id;
  }

  /** The store took event i as `id` (KernelEvent.storeId): the events made from it from now on carry it. */
  setStoreId(i: number, id: number): void {
    this.nums[i * ROW_NUMS + B_STORE_ID] = id;
    const whole = this.whole(i);
    if (whole !== undefined) whole.storeId = id;
  }

  /** The event, when held whole: stamped with its span, or given made and not shaped. */
  whole(i: number): KernelEvent | undefined {
    return wholeAt(this.refs, i * REFS);
  }

  /** The span event i was stamped with (KernelEvent.spanContext). */
  spanContext(i: number): SpanContextStamp | undefined {
    return this.whole(i)?.spanContext;
  }

  /** Event i: the one held whole, or one made from its record, another object each time. */
  event(i: number): KernelEvent {
    const whole = this.whole(i);
    if (whole !== undefined) return whole;
    const n = i * ROW_NUMS;
    return madeFrom(this.refs, i * REFS, this.nums[n + B_AT] ?? 0, this.nums[n + B_STORE_ID] ?? NaN);
  }

  /** Every event, made (event). */
  events(): KernelEvent[] {
    return Array.from({ length: this.count }, (_, i) => this.event(i));
  }

  /** Copies event i's references (REFS) into `refs` from index `to`: EventList's. */
  copyRefs(i: number, refs: unknown[], to: number): void {
    refs[to + R_SOURCE] = this.refs[i * REFS + R_SOURCE];
    refs[to + R_SAID] = this.refs[i * REFS + R_SAID];
  }
}

/**
 * Numbers per held event (EventList): start and end, its record's offset, the store's id (NaN:
 * none), its kind (KINDS), the start of the span that took it (NaN: none has), the pid of the
 * other task it names (otherTask; NaN: none, NOT_READ until first asked).
 */
const NUMS = 7;
const N_START = 0;
const N_END = 1;
const N_AT = 2;
const N_STORE_ID = 3;
const N_KIND = 4;
const N_TAKEN = 5;
const N_OTHER_PID = 6;
const NOT_READ = -1;
/** The kinds, by the number a held event's is kept as. */
const KINDS: readonly A.CausewayKindValue[] = [...new Set(Object.values(KIND_NAMES))];
const KIND_NUMBERS = new Map(KINDS.map((kind, i) => [kind, i]));
/**
 * References per held event: its record's source and what the CUDA state said when it was
 * shaped; or none and the event, held whole, in the second's place.
 */
const REFS = 2;
const R_SOURCE = 0;
const R_SAID = 1;
const R_WHOLE = 1;

/** The event held whole at index r of references (REFS); undefined when it is held by its parts. */
const wholeAt = (refs: readonly unknown[], r: number): KernelEvent | undefined =>
  refs[r + R_SOURCE] === undefined ? (refs[r + R_WHOLE] as KernelEvent | undefined) : undefined;

/** Holds an event whole at index r of references (REFS). */
function holdWhole(refs: unknown[], r: number, event: KernelEvent): void {
  refs[r + R_SOURCE] = undefined;
  refs[r + R_WHOLE] = event;
}

/** How compaction moves a record: to its offset in the new chunk (undefined: left where it is), and its source to one there. */
interface RecordMove {
  to(from: RecordSource, at: number): number | undefined;
  sourceOf(from: RecordSource): RecordSource;
}
/**
 * Kernel events held by column, in the order they are put, with no object per event. Held as
 * objects (the correlator's lists were), they were most of the main heap under load, an object
 * and two BigInts each (about 180 bytes, besides the record); here about 80 bytes of arrays, and
 * the events the capture hands on die young. An event is made again from its record when read
 * (`event`); one not shaped from a record, or stamped with its span (the correlator keeps those by
 * span as well), is held whole, and so is one read again and again (holdWhole).
 */
export class EventList {
  /** Events [head, head + count) of the columns are held: those before head were removed. */
  private nums = new Float64Array(NUMS * 64);
  private readonly refs: unknown[] = [];
  private head = 0;
  private count = 0;
  /**
   * The base of the batch last added from, and it in this list's time: worked out once per batch,
   * not per event (the base, not the batch: a list of a quiet thread would keep its last batch).
   */
  private lastBase: bigint | undefined;
  private lastOffset = 0;

  /**
   * Times are held as ns after `base`, exact as numbers within 104 days of it; its owner moves the
   * base up (moveBase), so that lists sharing a base share their times.
   */
  constructor(private base: bigint) {}

  get length(): number {
    return this.count;
  }

  /** A time as this list holds them: ns after its base. */
  time(t: bigint): number {
    return Number(t - this.base);
  }

  start(i: number): number {
    return this.nums[(this.head + i) * NUMS + N_START] ?? NaN;
  }

  end(i: number): number {
    return this.nums[(this.head + i) * NUMS + N_END] ?? NaN;
  }

  kind(i: number): A.CausewayKindValue | undefined {
    return KINDS[this.nums[(this.head + i) * NUMS + N_KIND] ?? -1];
  }

  /** The start (this list's time) of the span that took event i; NaN while none has. */
  takenAt(i: number): number {
    return this.nums[(this.head + i) * NUMS + N_TAKEN] ?? NaN;
  }

  /** Index of the first event that began at or after `start` (this list's time). */
  firstStartingAt(start: number): number {
    let low = 0;
    let high = this.count;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.start(middle) < start) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** Event i was taken by a span that began at `spanStart` (this list's time). */
  take(i: number, spanStart: number): void {
    this.nums[(this.head + i) * NUMS + N_TAKEN] = spanStart;
  }

  /** The pid of the other task event i names (otherTask), read once from its record: no event made. */
  otherPid(i: number): number | undefined {
    const n = (this.head + i) * NUMS + N_OTHER_PID;
    if (this.nums[n] === NOT_READ) this.nums[n] = this.readOtherPid(i) ?? NaN;
    const pid = this.nums[n] ?? NaN;
    return Number.isNaN(pid) ? undefined : pid;
  }

  private readOtherPid(i: number): number | undefined {
    const whole = this.whole(i);
    if (whole !== undefined) return ShapedEvent.otherPid(whole);
    const { bytes } = this.refs[(this.head + i) * REFS + R_SOURCE] as RecordSource;
    return otherPidAt(bytes.view, this.nums[(this.head + i) * NUMS + N_AT] ?? 0);
  }

  /** The event, when held whole: stamped with its span, not shaped from a record, or held so since (holdWhole). */
  whole(i: number): KernelEvent | undefined {
    return wholeAt(this.refs, (this.head + i) * REFS);
  }

  /** Event i, made again from its record unless held whole: another object each time. */
  event(i: number): KernelEvent {
    const whole = this.whole(i);
    if (whole !== undefined) return whole;
    const n = (this.head + i) * NUMS;
    return madeFrom(this.refs, (this.head + i) * REFS, this.nums[n + N_AT] ?? 0, this.nums[n + N_STORE_ID] ?? NaN);
  }

  /**
   * From now on event i is held as `event` (made from it, `event(i)`), not made again when read:
   * for one read again and again (spans open together each taking it over), where making it
   * each time would cost more than holding it.
   */
  holdWhole(i: number, event: KernelEvent): void {
    holdWhole(this.refs, (this.head + i) * REFS, event);
  }

  /**
   * Puts row `row` of a batch at its place by start, after those that began with it; returns its
   * index. Records arrive in the order their intervals ended: nearly, not quite, in start order,
   * so that place is nearly always the end.
   */
  add(batch: EventBatch, row: number): number {
    if (batch.base !== this.lastBase) {
      this.lastBase = batch.base;
      this.lastOffset = this.time(batch.base);
    }
    const start = batch.start(row) + this.lastOffset;
    // Times are whole ns: after those that began with it is at the first that began 1 ns later.
    const i = this.count === 0 || this.start(this.count - 1) <= start ? this.count : this.firstStartingAt(start + 1);
    this.makeRoom();
    const at = (this.head + i) * NUMS;
    const last = (this.head + this.count) * NUMS;
    const r = (this.head + i) * REFS;
    if (i < this.count) {
      this.nums.copyWithin(at + NUMS, at, last);
      const lastRef = (this.head + this.count) * REFS;
      while (this.refs.length < lastRef + REFS) this.refs.push(undefined);
      this.refs.copyWithin(r + REFS, r, lastRef);
    }
    batch.copyRefs(row, this.refs, r);
    this.nums[at + N_START] = start;
    this.nums[at + N_END] = batch.end(row) + this.lastOffset;
    this.nums[at + N_AT] = batch.recordOffset(row);
    this.nums[at + N_STORE_ID] = batch.storeId(row) ?? NaN;
    this.nums[at + N_KIND] = batch.kindNumber(row);
    this.nums[at + N_TAKEN] = NaN;
    this.nums[at + N_OTHER_PID] = NOT_READ;
    this.count++;
    return i;
  }

  /** Drops the first n events. */
  removeFront(n: number): void {
    const gone = Math.min(n, this.count);
    // Their references let go at once: a chunk held by no event is not kept.
    this.refs.fill(undefined, this.head * REFS, (this.head + gone) * REFS);
    this.head += gone;
    this.count -= gone;
    if (this.head >= this.count) this.moveDown();
  }

  /** Moves the base `by` ns later, the times held (this list's) with it. */
  moveBase(by: number): void {
    this.base += BigInt(by);
    this.lastBase = undefined;
    for (let n = this.head * NUMS; n < (this.head + this.count) * NUMS; n += NUMS) {
      this.nums[n + N_START] = (this.nums[n + N_START] ?? by) - by;
      this.nums[n + N_END] = (this.nums[n + N_END] ?? by) - by;
      this.nums[n + N_TAKEN] = (this.nums[n + N_TAKEN] ?? NaN) - by;
    }
  }

  /** Each event's record chunk, in order (those held whole and shaped included). */
  forEachRecord(f: (bytes: RecordBytes) => void): void {
    for (let i = 0; i < this.count; i++) {
      const whole = this.whole(i);
      const source =
        whole === undefined
          ? (this.refs[(this.head + i) * REFS + R_SOURCE] as RecordSource)
          : ShapedEvent.recordOf(whole)?.source;
      if (source !== undefined) f(source.bytes);
    }
  }

  /** Moves the records `move` says to (compaction). */
  moveRecords(move: RecordMove): void {
    for (let i = 0; i < this.count; i++) {
      const whole = this.whole(i);
      if (whole !== undefined) {
        ShapedEvent.moveRecord(whole, move);
        continue;
      }
      const r = (this.head + i) * REFS + R_SOURCE;
      const n = (this.head + i) * NUMS + N_AT;
      const from = this.refs[r] as RecordSource;
      const at = move.to(from, this.nums[n] ?? 0);
      if (at === undefined) continue;
      this.refs[r] = move.sourceOf(from);
      this.nums[n] = at;
    }
  }

  /**
   * Room for one more event: the held moved down over those removed, or the numbers' array
   * doubled when that would leave room for fewer than half as many again: each move is then paid
   * for by as many events added since (a list evicting as fast as it adds, nearly full, moved all
   * it held every few events).
   */
  private makeRoom(): void {
    if ((this.head + this.count + 1) * NUMS <= this.nums.length) return;
    if (this.head > 0) this.moveDown();
    if ((this.count + 1 + (this.count >> 1)) * NUMS <= this.nums.length) return;
    const grown = new Float64Array(this.nums.length * 2);
    grown.set(this.nums.subarray(0, this.count * NUMS));
    this.nums = grown;
  }

  /** Moves the held events to the start of the columns. */
  private moveDown(): void {
    if (this.head === 0) return;
    this.nums.copyWithin(0, this.head * NUMS, (this.head + this.count) * NUMS);
    // Spliced off the front, which keeps the array's room for more (a slice made it grow again;
    // copyWithin, element by element on an array of references, cost ten times as much).
    this.refs.splice(0, this.head * REFS);
    this.head = 0;
  }
}

export class EventShaper {
  /** Each launch is read into this, then told to the CUDA state, which keeps none of it. */
  private readonly call = launchCall();

  constructor(private readonly parts: EventShaperParts) {}

  /**
   * The events of a batch of records (one EVENTS frame's), as decodeRecordsOf checked them and
   * decoded those of the kinds readWhole says (`records`, by index): the others are shaped from
   * their bytes, with no object made but for one stamped with its span. Records must have gone
   * through CudaState.learnNames first; the CUDA state is updated here, in record order.
   */
  shape(bytes: RecordBytes, records: readonly (KernelRecord | undefined)[]): EventBatch {
    const { buf, view } = bytes;
    const base = records.length === 0 ? undefined : startBase(view, 0);
    const batch = new EventBatch(base === undefined ? 0n : this.parts.clock.toUnixNano(base.ns), records.length);
    if (base === undefined) return batch;
    let pid = -1;
    let source: RecordSource | undefined;
    // A batch is mostly one process's or a few's: a source each, looked up once per run of one.
    const sources = new Map<number, RecordSource>();
    for (let i = 0, at = 0; i < records.length; i++, at += RECORD_SIZE) {
      const kind = kindAt(view, at);
      const record = records[i];
      switch (kind) {
        case Kind.PROC_EXEC:
        case Kind.PROC_EXIT: {
          // A new program, or a pid that may be used again by a process that need not exec:
          // nothing known of the old one carries over to the records after this one.
          const ended = pidAt(view, at);
          this.parts.processes.forget(ended);
          if (kind === Kind.PROC_EXEC) this.parts.cuda.execed(ended);
          else this.parts.cuda.exited(ended);
          sources.delete(ended);
          pid = -1;
          continue;
        }
        case Kind.CUDA_OP:
          if (record?.kind === Kind.CUDA_OP) this.parts.cuda.operation(record);
          continue;
        case Kind.CUDA_REGISTER:
        case Kind.CUDA_NAME_MORE:
        case Kind.CUDA_MAPPED:
          continue;
      }
      if (pidAt(view, at) !== pid) {
        pid = pidAt(view, at);
        source = sources.get(pid);
        if (source === undefined)
          sources.set(
            pid,
            (source = { shaper: this, bytes, process: this.parts.processes.get(pid), base: batch.base, mono: base }),
          );
      }
      const name = KIND_NAMES[kind as EventRecord['kind']];
      const parts = handedOver;
      parts.source = source as RecordSource;
      parts.at = at;
      const start = startAfter(view, at, base);
      const end = endAfter(view, at, base);
      parts.said =
        kind === Kind.CUDA_LAUNCH
          ? this.parts.cuda.launch(readLaunchCall(view, at, this.call), end - start >= LAUNCH_BLOCKED)
          : record === undefined
            ? undefined
            : this.update(record as EventRecord);
      // A record decoded whole has read its stamp (and comm) already.
      const stamp = record === undefined ? spanContextAt(buf, view, at) : record.spanContext;
      if (stamp === undefined) {
        batch.addShaped(name, pid, tidAt(view, at), start, end, parts);
        continue;
      }
      const event = new ShapedEvent(stamp, parts);
      batch.addWhole(event, start, end);
    }
    return batch;
  }

  /** Updates the CUDA state a record changes; returns what its attributes need of it. */
  private update(record: EventRecord): Said {
    const { cuda } = this.parts;
    switch (record.kind) {
      case Kind.CUDA_SYNC:
        return cuda.synced(record);
      case Kind.CUDA_MEMCPY:
        cuda.copied(record);
        return undefined;
      case Kind.CUDA_MALLOC: {
        const { malloc } = record;
        if (malloc.free) return cuda.freed(record.pid, malloc.ptr);
        const bytes = Number(malloc.bytes);
        if (malloc.ret === 0) cuda.allocated(record.pid, malloc.ptr, bytes);
        return bytes;
      }
      case Kind.CUDA_LAUNCHES:
        return cuda.launches(record);
      default:
        return undefined;
    }
  }

  /** A shaped event's attributes: from its record, read again from its batch, and what was known of it when it was shaped. */
  attributes(record: EventRecord, process: ProcessInfo, said: Said, other: Task | undefined): Attributes {
    const attributes = processAttributes(process);
    if (record.kind === Kind.IPC_MESSAGE) describeMessage(record.message, attributes);
    else if (record.kind === Kind.CUDA_LAUNCHES) this.launches(record, said as LaunchesNamed, attributes);
    else if ('waitSum' in record) describeWaitSum(record.kind, record.waitSum, record.cpu, other, attributes);
    else this.describe(record, said, other, attributes);
    return attributes;
  }

  /** Adds the attributes of the record's kind. */
  private describe(record: DescribedRecord, said: Said, other: Task | undefined, attributes: Attributes): void {
    switch (record.kind) {
      case Kind.CUDA_LAUNCH:
        this.launch(record, said as Launched, attributes);
        break;
      case Kind.CUDA_SYNC:
        this.sync(record, said as Synced, attributes);
        break;
      case Kind.CUDA_MEMCPY: {
        const { memcpy } = record;
        this.cuda(attributes, record, memcpy.ret, memcpy.device);
        attributes[A.ATTR_CAUSEWAY_CUDA_MEMCPY_BYTES] = Number(memcpy.bytes);
        attributes[A.ATTR_CAUSEWAY_CUDA_MEMCPY_DIRECTION] = memcpyDirection(memcpy.direction);
        attributes[A.ATTR_CAUSEWAY_CUDA_MEMCPY_ASYNC] = memcpy.async;
        if (memcpy.async) attributes[A.ATTR_CAUSEWAY_CUDA_STREAM] = hex(memcpy.stream);
        break;
      }
      case Kind.CUDA_MALLOC: {
        const { malloc } = record;
        this.cuda(attributes, record, malloc.ret, malloc.device);
        attributes[A.ATTR_CAUSEWAY_CUDA_MALLOC_OP] = malloc.free
          ? A.CAUSEWAY_CUDA_MALLOC_OP_VALUE_FREE
          : A.CAUSEWAY_CUDA_MALLOC_OP_VALUE_ALLOC;
        attributes[A.ATTR_CAUSEWAY_CUDA_MALLOC_PTR] = hex(malloc.ptr);
        const bytes = said as number | undefined;
        if (bytes !== undefined) attributes[A.ATTR_CAUSEWAY_CUDA_MALLOC_BYTES] = bytes;
        break;
      }
      case Kind.SCHED_RUNQUEUE:
        this.runqueue(record, other, attributes);
        break;
      case Kind.SCHED_BLOCKED:
        attributes[A.ATTR_CAUSEWAY_SCHED_CPU] = record.cpu;
        setOtherTask(attributes, A.CAUSEWAY_KIND_VALUE_SCHED_BLOCKED, other);
        attributes[A.ATTR_CAUSEWAY_SCHED_STATE] = taskState(record.blocked.state);
        break;
      case Kind.FUTEX_WAIT: {
        const { futex } = record;
        attributes[A.ATTR_CAUSEWAY_FUTEX_UADDR] = hex(futex.uaddr);
        attributes[A.ATTR_CAUSEWAY_FUTEX_OP] = futexOp(futex.op);
        setOtherTask(attributes, A.CAUSEWAY_KIND_VALUE_FUTEX_WAIT, other);
        attributes[A.ATTR_CAUSEWAY_FUTEX_RESULT] = futex.ret;
        break;
      }
      case Kind.BLOCK_IO: {
        const { block } = record;
        attributes[A.ATTR_CAUSEWAY_BLOCK_DEVICE] = this.parts.devices.name(block.dev);
        attributes[A.ATTR_CAUSEWAY_BLOCK_OP] = blockOp(block.rwbs);
        attributes[A.ATTR_CAUSEWAY_BLOCK_RWBS] = block.rwbs;
        attributes[A.ATTR_CAUSEWAY_BLOCK_BYTES] = block.bytes;
        attributes[A.ATTR_CAUSEWAY_BLOCK_SECTOR] = Number(block.sector);
        attributes[A.ATTR_CAUSEWAY_BLOCK_ERROR] = block.error;
        attributes[A.ATTR_CAUSEWAY_BLOCK_ATTRIBUTION] = block.submitter
          ? A.CAUSEWAY_BLOCK_ATTRIBUTION_VALUE_SUBMITTER
          : A.CAUSEWAY_BLOCK_ATTRIBUTION_VALUE_ISSUER;
        break;
      }
      case Kind.TCP_RETRANSMIT: {
        const { tcp } = record;
        const local = ipAddress(tcp.family, tcp.saddr);
        const peer = ipAddress(tcp.family, tcp.daddr);
        if (local !== undefined) attributes[A.ATTR_NETWORK_TYPE] = local.type;
        if (local !== undefined) attributes[A.ATTR_NETWORK_LOCAL_ADDRESS] = local.address;
        attributes[A.ATTR_NETWORK_LOCAL_PORT] = tcp.sport;
        if (peer !== undefined) attributes[A.ATTR_NETWORK_PEER_ADDRESS] = peer.address;
        attributes[A.ATTR_NETWORK_PEER_PORT] = tcp.dport;
        attributes[A.ATTR_CAUSEWAY_TCP_STATE] = tcpState(tcp.state);
        attributes[A.ATTR_CAUSEWAY_TCP_OWNER_KNOWN] = tcp.ownerKnown;
        break;
      }
    }
  }

  /**
   * A run-queue wait: the task that held its CPU longest (the holder, Causeway or not); the
   * others that held it, most on-CPU time first; and the time Causeway's own processes held it,
   * the tracer's share, apart from that list.
   */
  private runqueue(
    record: Extract<EventRecord, { kind: typeof Kind.SCHED_RUNQUEUE }>,
    top: Task | undefined,
    attributes: Attributes,
  ): void {
    const { holders, seenNs, preempted } = record.runqueue;
    attributes[A.ATTR_CAUSEWAY_SCHED_CPU] = record.cpu;
    if (top !== undefined) {
      setOtherTask(attributes, A.CAUSEWAY_KIND_VALUE_SCHED_RUNQUEUE, top);
      if (this.parts.self.has(top.pid)) attributes[A.ATTR_CAUSEWAY_SCHED_HOLDER_CAUSEWAY] = true;
    }
    // One pass, no intermediate lists: most waits have a holder or two, none of them Causeway.
    let pids: number[] | undefined;
    let tids: number[] = [];
    let comms: string[] = [];
    let oncpuMs: number[] = [];
    let own = 0n;
    for (const h of holders) {
      if (this.parts.self.has(h.pid)) {
        own += h.oncpuNs;
        continue;
      }
      if (pids === undefined) {
        pids = attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_PID] = [];
        tids = attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_TID] = [];
        comms = attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_COMM] = [];
        oncpuMs = attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_ONCPU_MS] = [];
      }
      pids.push(h.pid);
      tids.push(h.tid);
      comms.push(h.comm);
      oncpuMs.push(ms(h.oncpuNs));
    }
    if (own > 0n) attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_CAUSEWAY_MS] = ms(own);
    attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_SEEN_MS] = ms(seenNs);
    attributes[A.ATTR_CAUSEWAY_SCHED_PREEMPTED] = preempted;
  }

  /** A kernel or graph launch: what ran (or was captured), where; for one that blocked, what was queued ahead. */
  private launch(
    record: Extract<EventRecord, { kind: typeof Kind.CUDA_LAUNCH }>,
    launched: Launched,
    attributes: Attributes,
  ): void {
    const { launch } = record;
    this.cuda(attributes, record, launch.ret, launch.device);
    attributes[A.ATTR_CAUSEWAY_CUDA_STREAM] = hex(launch.stream);
    if (launched.captured) attributes[A.ATTR_CAUSEWAY_CUDA_CAPTURED] = true;
    if (launched.ahead !== undefined) {
      attributes[A.ATTR_CAUSEWAY_CUDA_LAUNCH_BLOCKED] = true;
      setInflight(attributes, launched.ahead);
    }
    if (launched.graph !== undefined) {
      const { graph, kernels } = launched.graph;
      attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH_EXEC] = hex(launch.func);
      if (graph !== undefined) attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH] = hex(graph);
      if (kernels !== undefined) {
        attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH_KERNELS] = kernels.names.slice(0, MAX_GRAPH_KERNELS);
        attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH_KERNEL_COUNT] = kernels.count;
      }
      return;
    }
    attributes[A.ATTR_CAUSEWAY_CUDA_FUNCTION] = hex(launch.func);
    if (launched.kernel !== undefined) {
      attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL] = launched.kernel.name;
      attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_SYMBOL] = launched.kernel.symbol;
    }
    attributes[A.ATTR_CAUSEWAY_CUDA_GRID] = launch.grid;
    attributes[A.ATTR_CAUSEWAY_CUDA_BLOCK] = launch.block;
    attributes[A.ATTR_CAUSEWAY_CUDA_SHARED_MEM_BYTES] = Number(launch.sharedMem);
  }

  /** A window of a thread's quick launches (in-kernel reduction): each kernel with its count, queued on the stream. */
  private launches(
    record: Extract<EventRecord, { kind: typeof Kind.CUDA_LAUNCHES }>,
    { names, counts, captured }: LaunchesNamed,
    attributes: Attributes,
  ): void {
    const { launches } = record;
    this.cuda(attributes, record, 0, launches.device);
    attributes[A.ATTR_CAUSEWAY_CUDA_STREAM] = hex(launches.stream);
    if (captured) attributes[A.ATTR_CAUSEWAY_CUDA_CAPTURED] = true;
    attributes[A.ATTR_CAUSEWAY_SUMMARY_COUNT] = launches.count;
    attributes[A.ATTR_CAUSEWAY_CUDA_KERNELS] = names;
    attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_COUNTS] = counts;
    attributes[A.ATTR_CAUSEWAY_CUDA_LAUNCH_CALL_MS] = ms(launches.callNs);
    attributes[A.ATTR_CAUSEWAY_CUDA_LAUNCH_MAX_CALL_MS] = ms(launches.maxCallNs);
  }

  /** A wait for the GPU, blocking or polling: on what, and what it found in flight. */
  private sync(
    record: Extract<EventRecord, { kind: typeof Kind.CUDA_SYNC }>,
    synced: Synced,
    attributes: Attributes,
  ): void {
    const { sync } = record;
    this.cuda(attributes, record, sync.ret, synced.device ?? sync.device);
    if (synced.event !== undefined) attributes[A.ATTR_CAUSEWAY_CUDA_EVENT] = hex(synced.event);
    if (synced.stream !== undefined) attributes[A.ATTR_CAUSEWAY_CUDA_STREAM] = hex(synced.stream);
    if (sync.polls > 0) {
      attributes[A.ATTR_CAUSEWAY_CUDA_SYNC_POLLING] = true;
      attributes[A.ATTR_CAUSEWAY_CUDA_SYNC_POLLS] = sync.polls;
    }
    if (synced.inflight !== undefined) setInflight(attributes, synced.inflight);
  }

  private cuda(attributes: Attributes, record: KernelRecord, ret: number, device: number): void {
    attributes[A.ATTR_CAUSEWAY_CUDA_API] = cudaApiName(record.api, record.perThread);
    attributes[A.ATTR_CAUSEWAY_CUDA_ERROR] = ret;
    if (device !== DEVICE_UNKNOWN) attributes[A.ATTR_CAUSEWAY_CUDA_DEVICE] = device;
  }
}

/** The process's attributes, as known when its event was shaped. */
function processAttributes(info: ProcessInfo): Attributes {
  const attributes: Attributes = {};
  if (info.executable !== undefined) attributes[A.ATTR_PROCESS_EXECUTABLE_PATH] = info.executable;
  if (info.containerId !== undefined) attributes[A.ATTR_CONTAINER_ID] = info.containerId;
  // Only worth saying when the process sees itself under another pid.
  if (info.nspid !== undefined && info.nspid.length > 1) attributes[A.ATTR_CAUSEWAY_PROCESS_NSPID] = info.nspid;
  return attributes;
}
