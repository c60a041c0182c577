// How a thread's time splits by what it was doing in the kernel: each interval counts as the
// kind that explains it, and where intervals overlap the most specific kind wins the instant.
import { isBlockedLaunch, otherTask, type KernelEvent } from '../kernel/events.js';
import * as A from '../semconv/attributes.js';
import { byTime, earlier, later } from './time.js';

/**
 * Kinds that cover none of a thread's time: points (start equal to end), and the in-kernel
 * reduction's summaries, whose span is a window holding short events, not one wait. A retransmit
 * explains a wait it falls in (see causeOf); a message links a request to another process (linked.ts).
 */
type PointKind =
  | typeof A.CAUSEWAY_KIND_VALUE_TCP_RETRANSMIT
  | typeof A.CAUSEWAY_KIND_VALUE_IPC_MESSAGE
  | typeof A.CAUSEWAY_KIND_VALUE_CUDA_LAUNCHES
  | typeof A.CAUSEWAY_KIND_VALUE_SCHED_RUNQUEUES
  | typeof A.CAUSEWAY_KIND_VALUE_SCHED_BLOCKED_WAITS
  | typeof A.CAUSEWAY_KIND_VALUE_FUTEX_WAITS;
const POINT_KINDS: ReadonlySet<A.CausewayKindValue> = new Set<PointKind>([
  A.CAUSEWAY_KIND_VALUE_TCP_RETRANSMIT,
  A.CAUSEWAY_KIND_VALUE_IPC_MESSAGE,
  A.CAUSEWAY_KIND_VALUE_CUDA_LAUNCHES,
  A.CAUSEWAY_KIND_VALUE_SCHED_RUNQUEUES,
  A.CAUSEWAY_KIND_VALUE_SCHED_BLOCKED_WAITS,
  A.CAUSEWAY_KIND_VALUE_FUTEX_WAITS,
]);

/**
 * An event that covers time: every kind but the points. A launch covers time only when it
 * blocked (the launch queue was full); otherwise it is the CPU side of GPU work, on CPU.
 */
type IntervalEvent = KernelEvent & { kind: Exclude<A.CausewayKindValue, PointKind> };
const isInterval = (event: KernelEvent): event is IntervalEvent =>
  !POINT_KINDS.has(event.kind) && (event.kind !== A.CAUSEWAY_KIND_VALUE_CUDA_LAUNCH || isBlockedLaunch(event));

/** An event that explains a wait: a retransmit during it, or the block I/O it waited for. */
type Cause = KernelEvent & {
  kind: typeof A.CAUSEWAY_KIND_VALUE_TCP_RETRANSMIT | typeof A.CAUSEWAY_KIND_VALUE_BLOCK_IO;
};

/**
 * What an interval counts as: its own kind, or the kind of the event that explains it, or
 * `causeway`: the share of a run-queue wait during which Causeway itself (its sidecar or
 * loader) held the CPU. That is the tracer's own cost: shown, so that it is never hidden, and
 * never named as a cause.
 */
export type IntervalKind = IntervalEvent['kind'] | Cause['kind'] | 'causeway';

/**
 * An interval as the analysis counts it. A wait can be explained by another event, and then
 * counts as that event's kind: a blocked wait during which a retransmit fired is
 * tcp.retransmit; an uninterruptible sleep that no task woke, after the thread's own block
 * I/O (fsync waiting for the device to finish), is block.io.
 */
export interface Interval {
  event: IntervalEvent;
  kind: IntervalKind;
  /** The retransmit or block I/O that explains a wait. */
  cause?: Cause;
}

/**
 * Which kind an instant counts as when intervals overlap: the most specific wins. A thread in
 * cudaStreamSynchronize is also blocked in the kernel, and its GPU wait is the reason. Every
 * kind is ranked: a new one does not compile until it is placed here.
 */
const RANK: Readonly<Record<IntervalKind, number>> = {
  'cuda.sync': 8,
  'cuda.memcpy': 7,
  'cuda.malloc': 6,
  'block.io': 5,
  'tcp.retransmit': 4,
  'sched.runqueue': 3,
  causeway: 3,
  // Below the run queue: a launch call that waits for a CPU is held up by CPU contention, not the GPU.
  'cuda.launch': 2.5,
  'futex.wait': 2,
  'sched.blocked': 1,
};
/** Kinds that explain time only while the thread is off CPU: I/O issued by a thread that runs on. */
const NEEDS_OFF_CPU: ReadonlySet<IntervalKind> = new Set(['block.io']);
const OFF_CPU: ReadonlySet<IntervalKind> = new Set(['sched.blocked', 'futex.wait']);

/** How long before an uninterruptible sleep the thread's own block I/O may have begun and still explain it. */
const IO_BEFORE_SLEEP_NS = 1_000_000_000n;
/**
 * Wakers that are the kernel itself: an interrupt lands on whatever ran (often the idle task,
 * pid 0), and I/O completes in kernel threads (kworker, jbd2, ksoftirqd...). Records do not
 * say whether a waker is a kernel thread, so these are known by name.
 */
const KERNEL_THREAD = /^(swapper|kworker|ksoftirqd|jbd2|irq\/|kswapd|kcompactd|kblockd|writeback|rcu)/;

/** A task an event names: the one that held the CPU, or the one that ended the wait. */
export interface NamedTask {
  pid: number;
  tid: number | null;
  comm: string | null;
}

/** The task that held the CPU or ended the wait, when it is a task (pid 0 is an interrupt on an idle CPU). */
export function namedTask(event: KernelEvent): NamedTask | null {
  const t = otherTask(event);
  return t === undefined || t.pid <= 0 ? null : { pid: t.pid, tid: t.tid ?? null, comm: t.comm ?? null };
}

/** A wait ended by no other task: a timer or signal, an interrupt, or the thread itself. */
export function wokenByNoTask(event: KernelEvent): boolean {
  const waker = namedTask(event);
  return waker?.tid == null || waker.tid === event.tid;
}

const wokenByKernel = (event: KernelEvent) => wokenByNoTask(event) || KERNEL_THREAD.test(namedTask(event)?.comm ?? '');

/**
 * The event that explains a wait: a retransmit during it; or, for an uninterruptible sleep
 * the kernel ended (fsync, page cache writeback, reads), I/O: the thread's own block request
 * just before it when there is one, else the sleep itself, with the device unknown (the
 * request was submitted by a kernel flusher, whose I/O is not captured). Of its own requests,
 * the last one still in flight when the sleep began, which the sleep may have waited for,
 * goes before one already complete (a metadata read the fsync did before its writes).
 */
function causeOf(event: IntervalEvent, retransmits: Cause[], ios: Cause[]): Cause | undefined {
  if (!OFF_CPU.has(event.kind)) return undefined;
  const retransmit = retransmits.find(
    (r) => r.startUnixNano >= event.startUnixNano && r.startUnixNano <= event.endUnixNano,
  );
  if (retransmit !== undefined) return retransmit;
  if (event.kind !== 'sched.blocked' || event.attributes[A.ATTR_CAUSEWAY_SCHED_STATE] !== 'D' || !wokenByKernel(event))
    return undefined;
  const own = ios.filter(
    (io) =>
      io.tid === event.tid &&
      io.startUnixNano < event.endUnixNano &&
      io.startUnixNano >= event.startUnixNano - IO_BEFORE_SLEEP_NS,
  );
  return (
    own.findLast((io) => io.endUnixNano > event.startUnixNano) ??
    own.at(-1) ?? {
      kind: 'block.io',
      pid: event.pid,
      tid: event.tid,
      comm: event.comm,
      startUnixNano: event.startUnixNano,
      endUnixNano: event.endUnixNano,
      attributes: { [A.ATTR_CAUSEWAY_BLOCK_DEVICE]: 'unknown', [A.ATTR_CAUSEWAY_BLOCK_OP]: 'wait' },
    }
  );
}

const causes = (events: KernelEvent[], kind: Cause['kind']) => events.filter((e): e is Cause => e.kind === kind);

interface Classified {
  /** Time each interval was the dominant one. */
  time: Map<Interval, bigint>;
  /** Time no interval covered. */
  uncovered: bigint;
}

/** Splits [from, to) among the intervals by rank; what none covers is on CPU (or unknown). */
export function classify(events: KernelEvent[], from: bigint, to: bigint): Classified {
  const retransmits = causes(events, 'tcp.retransmit');
  const ios = causes(events, 'block.io');
  const intervals: (Interval & { s: bigint; e: bigint })[] = [];
  for (const event of events) {
    if (!isInterval(event) || event.endUnixNano <= from || event.startUnixNano >= to) continue;
    const cause = causeOf(event, retransmits, ios);
    intervals.push({
      event,
      kind: cause?.kind ?? event.kind,
      ...(cause === undefined ? {} : { cause }),
      s: later(event.startUnixNano, from),
      e: earlier(event.endUnixNano, to),
    });
  }
  intervals.sort((a, b) => byTime(a.s, b.s));
  const cuts = [...new Set([from, to, ...intervals.flatMap((i) => [i.s, i.e])])].sort(byTime);
  const time = new Map<Interval, bigint>();
  let uncovered = 0n;
  let active: typeof intervals = [];
  let next = 0;
  for (let k = 0; k + 1 < cuts.length; k++) {
    const a = cuts[k] ?? 0n;
    const b = cuts[k + 1] ?? 0n;
    while (next < intervals.length && (intervals[next]?.s ?? b) <= a)
      active.push(intervals[next++] as (typeof intervals)[number]);
    active = active.filter((i) => i.e > a);
    const offCpu = active.some((i) => OFF_CPU.has(i.event.kind));
    let best: Interval | undefined;
    for (const i of active) {
      if (NEEDS_OFF_CPU.has(i.kind) && !offCpu) continue;
      if (best === undefined || RANK[i.kind] > RANK[best.kind]) best = i;
    }
    if (best === undefined) uncovered += b - a;
    else time.set(best, (time.get(best) ?? 0n) + (b - a));
  }
  return { time: withTracerShare(time), uncovered };
}

/** The share of a run-queue wait Causeway's own processes held the CPU: 0 to 1. */
function tracerShare(event: KernelEvent): number {
  const ownMs = event.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_CAUSEWAY_MS];
  const waitNs = Number(event.endUnixNano - event.startUnixNano);
  if (typeof ownMs !== 'number' || waitNs <= 0) return 0;
  return Math.min(1, (ownMs * 1e6) / waitNs);
}

/** Each run-queue wait's time, less the share Causeway held its CPU, which counts as `causeway`. */
function withTracerShare(time: Map<Interval, bigint>): Map<Interval, bigint> {
  for (const [interval, ns] of [...time]) {
    const share = interval.kind === 'sched.runqueue' ? tracerShare(interval.event) : 0;
    if (share === 0) continue;
    const own = BigInt(Math.round(Number(ns) * share));
    if (own === ns) time.delete(interval);
    else time.set(interval, ns - own);
    time.set({ event: interval.event, kind: 'causeway' }, own);
  }
  return time;
}
