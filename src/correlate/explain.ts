// Why a trace was slow (DESIGN, "The MCP server"): the trace's critical path, each path
// segment's time split by what its thread was doing in the kernel, and for the time lost the
// root cause: a wait is followed to its waker and to what the waker was doing meanwhile (on
// the GPU, on I/O, on another lock...), to a bounded depth; the end of that chain is the root.
import { otherTask, type KernelEvent } from '../kernel/events.js';
import * as A from '../semconv/attributes.js';
import { criticalPath, rootSpan, type PathSegment } from './critical-path.js';
import type { TraceSource, TraceSpan } from './source.js';
import { byTime, earlier, later } from './time.js';

/**
 * `causeway`: time the request waited for a CPU held by Causeway itself (its sidecar or loader).
 * It is the tracer's own cost: shown, so that it is never hidden, and never named as a cause.
 */
export type BreakdownKind = KernelEvent['kind'] | 'causeway' | 'cpu' | 'unexplained';

export interface Culprit {
  pid: number | null;
  tid: number | null;
  comm: string | null;
  cuda_kernel?: string;
  /** tcp.retransmit: the peer, address:port. */
  peer?: string;
  /** block.io: the device and operation. */
  device?: string;
  op?: string;
}

export interface ChainLink {
  kind: string;
  pid: number;
  tid: number;
  comm: string;
  time_ms: number;
}

export interface RootCause {
  kind: KernelEvent['kind'] | 'none';
  time_ms: number;
  share: number;
  span_id: string;
  culprit: Culprit | null;
  chain: ChainLink[];
  /** The observations the answer rests on, one line each. */
  evidence: string[];
}

export interface Explanation {
  trace_id: string;
  source: string;
  duration_ms: number;
  root_span: { service: string; name: string };
  breakdown: { kind: BreakdownKind; time_ms: number; share: number }[];
  root_cause: RootCause | null;
  summary: string;
}

/** Below this share of the trace, kernel causes explain too little to name one. */
export const NONE_BELOW_SHARE = 0.2;
/** Wakers followed at most, from the request thread to the root. */
export const MAX_CHAIN_DEPTH = 4;
/** A waker's activity is a link only if it covers this share of the wait. */
const LINK_MIN_SHARE = 0.3;
/** Intervals on the path followed into chains at most (longest first); the rest name their direct culprit. */
const FOLLOWED_PER_TRACE = 12;

/**
 * Which kind an instant counts as when intervals overlap: the most specific wins. A thread in
 * cudaStreamSynchronize is also blocked in the kernel, and its GPU wait is the reason.
 */
const RANK: Readonly<Record<string, number>> = {
  'cuda.sync': 8,
  'cuda.memcpy': 7,
  'cuda.malloc': 6,
  'block.io': 5,
  'tcp.retransmit': 4,
  'sched.runqueue': 3,
  causeway: 3,
  'futex.wait': 2,
  'sched.blocked': 1,
};
/** Kinds that explain time only while the thread is off CPU: I/O issued by a thread that runs on. */
const NEEDS_OFF_CPU = new Set(['block.io']);
const OFF_CPU = new Set(['sched.blocked', 'futex.wait']);

const ms = (ns: bigint) => Number(ns) / 1e6;
const round = (x: number) => Math.round(x * 1000) / 1000;
const text = (v: unknown) => (typeof v === 'string' ? v : undefined);

/**
 * An interval as the analysis counts it. A wait can be explained by another event, and then
 * counts as that event's kind: a blocked wait during which a retransmit fired is
 * tcp.retransmit; an uninterruptible sleep that no task woke, after the thread's own block
 * I/O (fsync waiting for the device to finish), is block.io.
 */
interface Interval {
  event: KernelEvent;
  kind: KernelEvent['kind'] | 'causeway';
  /** The retransmit or block I/O that explains a wait. */
  cause?: KernelEvent;
}

/** How long before an uninterruptible sleep the thread's own block I/O may have begun and still explain it. */
const IO_BEFORE_SLEEP_NS = 1_000_000_000n;
/**
 * Wakers that are the kernel itself: an interrupt lands on whatever ran (often the idle task,
 * pid 0), and I/O completes in kernel threads (kworker, jbd2, ksoftirqd...). Records do not
 * say whether a waker is a kernel thread, so these are known by name.
 */
const KERNEL_THREAD = /^(swapper|kworker|ksoftirqd|jbd2|irq\/|kswapd|kcompactd|kblockd|writeback|rcu)/;

/** The task that held the CPU or ended the wait, when it is a task (pid 0 is an interrupt on an idle CPU). */
function namedTask(event: KernelEvent): (Culprit & { pid: number }) | null {
  const t = otherTask(event);
  return t === undefined || t.pid <= 0 ? null : { pid: t.pid, tid: t.tid ?? null, comm: t.comm ?? null };
}

/** A wait ended by no other task: a timer or signal, an interrupt, or the thread itself. */
function wokenByNoTask(event: KernelEvent): boolean {
  const waker = namedTask(event);
  return waker?.tid == null || waker.tid === event.tid;
}

const wokenByKernel = (event: KernelEvent) => wokenByNoTask(event) || KERNEL_THREAD.test(namedTask(event)?.comm ?? '');

/**
 * The event that explains a wait: a retransmit during it; or, for an uninterruptible sleep
 * the kernel ended (fsync, page cache writeback, reads), I/O: the thread's own block request
 * just before it when there is one, else the sleep itself, with the device unknown (the
 * request was submitted by a kernel flusher, whose I/O is not captured).
 */
function causeOf(event: KernelEvent, retransmits: KernelEvent[], ios: KernelEvent[]): KernelEvent | undefined {
  if (!OFF_CPU.has(event.kind)) return undefined;
  const retransmit = retransmits.find(
    (r) => r.startUnixNano >= event.startUnixNano && r.startUnixNano <= event.endUnixNano,
  );
  if (retransmit !== undefined) return retransmit;
  if (event.kind !== 'sched.blocked' || event.attributes[A.ATTR_CAUSEWAY_SCHED_STATE] !== 'D' || !wokenByKernel(event))
    return undefined;
  const own = ios
    .filter(
      (io) =>
        io.tid === event.tid &&
        io.startUnixNano < event.endUnixNano &&
        io.startUnixNano >= event.startUnixNano - IO_BEFORE_SLEEP_NS,
    )
    .at(-1);
  return (
    own ?? {
      ...event,
      kind: 'block.io',
      attributes: { [A.ATTR_CAUSEWAY_BLOCK_DEVICE]: 'unknown', [A.ATTR_CAUSEWAY_BLOCK_OP]: 'wait' },
    }
  );
}

interface Classified {
  /** Time each interval was the dominant one. */
  time: Map<Interval, bigint>;
  /** Time no interval covered. */
  uncovered: bigint;
}

/** Splits [from, to) among the intervals by rank; what none covers is on CPU (or unknown). */
export function classify(events: KernelEvent[], from: bigint, to: bigint): Classified {
  const retransmits = events.filter((e) => e.kind === 'tcp.retransmit');
  const ios = events.filter((e) => e.kind === 'block.io');
  const intervals: (Interval & { s: bigint; e: bigint })[] = [];
  for (const event of events) {
    if (
      event.kind === 'tcp.retransmit' ||
      event.kind === 'cuda.launch' ||
      event.endUnixNano <= from ||
      event.startUnixNano >= to
    )
      continue;
    const cause = causeOf(event, retransmits, ios);
    const kind =
      event.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDER_CAUSEWAY] === true ? 'causeway' : (cause?.kind ?? event.kind);
    intervals.push({
      event,
      kind,
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
      if (best === undefined || (RANK[i.kind] ?? 0) > (RANK[best.kind] ?? 0)) best = i;
    }
    if (best === undefined) uncovered += b - a;
    else time.set(best, (time.get(best) ?? 0n) + (b - a));
  }
  return { time, uncovered };
}

/** Names from traced apps and processes are data: one line, bounded, quoted. */
export function quoted(value: string, limit = 80): string {
  const flat = value.replace(/[\p{Cc}\u2028\u2029]/gu, ' ');
  return JSON.stringify(flat.length > limit ? `${flat.slice(0, limit)}…` : flat);
}

interface Resolution {
  kind: Interval['kind'];
  culprit: Culprit | null;
  chain: ChainLink[];
  evidence: string[];
}

const link = (interval: Interval, time: bigint): ChainLink => ({
  kind: interval.kind,
  pid: interval.event.pid,
  tid: interval.event.tid,
  comm: interval.event.comm,
  time_ms: round(ms(time)),
});

function mostCommon(values: string[]): string | undefined {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
}

/** The kernels a GPU wait found in flight on its stream. */
function inflightKernels(event: KernelEvent): string[] {
  const kernels = event.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS];
  return Array.isArray(kernels) ? kernels.filter((k): k is string => typeof k === 'string') : [];
}

const gpuCulprit = (task: { pid: number; tid: number; comm: string }, kernel: string | undefined): Culprit => ({
  pid: task.pid,
  tid: task.tid,
  comm: task.comm,
  ...(kernel === undefined ? {} : { cuda_kernel: kernel }),
});

const overlapping = (events: KernelEvent[], from: bigint, to: bigint) =>
  events.filter((e) => e.startUnixNano < to && e.endUnixNano > from);

class Analysis {
  /** Events per thread over the whole trace, read once: many waits share a waker. */
  private readonly threads = new Map<string, Promise<KernelEvent[]>>();
  private readonly othersOnGpu = new Map<number, Promise<KernelEvent[]>>();

  constructor(
    private readonly source: TraceSource,
    private readonly window: { from: bigint; to: bigint },
  ) {}

  private threadEvents(pid: number, tid: number, from: bigint, to: bigint): Promise<KernelEvent[]> {
    const key = `${String(pid)}/${String(tid)}`;
    let events = this.threads.get(key);
    if (events === undefined)
      this.threads.set(key, (events = this.source.events({ pid, tid, from: this.window.from, to: this.window.to })));
    return events.then((all) => overlapping(all, from, to));
  }

  /** The GPU events of every process but `pid`, read once per trace. */
  private otherGpuEvents(pid: number, from: bigint, to: bigint): Promise<KernelEvent[]> {
    let events = this.othersOnGpu.get(pid);
    if (events === undefined)
      this.othersOnGpu.set(pid, (events = this.source.gpuEvents(this.window.from, this.window.to, pid)));
    return events.then((all) => overlapping(all, from, to));
  }

  /** Follows an interval to the end of its causal chain; at MAX_CHAIN_DEPTH, names its direct culprit without reading more. */
  async resolve(interval: Interval, time: bigint, depth: number): Promise<Resolution> {
    const { event } = interval;
    const own = link(interval, time);
    switch (interval.kind) {
      case 'futex.wait':
      case 'sched.blocked':
        return this.wait(interval, time, depth);
      case 'causeway':
        return {
          kind: interval.kind,
          culprit: null,
          chain: [own],
          evidence: [`waited ${own.time_ms} ms for a CPU held by Causeway itself (its sidecar or loader)`],
        };
      case 'sched.runqueue': {
        const holder = namedTask(event);
        return {
          kind: interval.kind,
          culprit: holder,
          chain: [own],
          evidence: [
            `waited ${own.time_ms} ms for CPU ${String(event.attributes[A.ATTR_CAUSEWAY_SCHED_CPU])} held by ${holder === null ? 'an unknown task' : `pid ${String(holder.pid)} ${quoted(holder.comm ?? '')}`}`,
          ],
        };
      }
      case 'cuda.sync':
      case 'cuda.memcpy':
      case 'cuda.malloc':
        return this.gpu(interval, own, depth);
      case 'block.io': {
        const io = interval.cause ?? event;
        const device = text(io.attributes[A.ATTR_CAUSEWAY_BLOCK_DEVICE]) ?? 'unknown';
        const op = text(io.attributes[A.ATTR_CAUSEWAY_BLOCK_OP]) ?? 'unknown';
        const evidence =
          interval.cause === undefined
            ? `${op} on ${device}: ${String(io.attributes[A.ATTR_CAUSEWAY_BLOCK_BYTES])} bytes, ${round(ms(io.endUnixNano - io.startUnixNano))} ms`
            : `uninterruptible sleep of ${own.time_ms} ms ended by the kernel (${otherTask(event)?.comm ?? 'an interrupt'})${device === 'unknown' ? ': waiting for I/O it did not submit itself' : `, after its own ${op} on ${device}: waiting for the device`}`;
        return {
          kind: interval.kind,
          culprit: { pid: io.pid, tid: io.tid, comm: io.comm, device, op },
          chain: [own],
          evidence: [evidence],
        };
      }
      case 'tcp.retransmit': {
        const r = interval.cause ?? event;
        const peer = `${text(r.attributes[A.ATTR_NETWORK_PEER_ADDRESS]) ?? '?'}:${String(r.attributes[A.ATTR_NETWORK_PEER_PORT])}`;
        return {
          kind: 'tcp.retransmit',
          culprit: { pid: null, tid: null, comm: null, peer },
          chain: [own],
          evidence: [
            `blocked ${own.time_ms} ms until a TCP retransmit to ${peer} (state ${String(r.attributes[A.ATTR_CAUSEWAY_TCP_STATE])}) got through`,
          ],
        };
      }
      default:
        return {
          kind: interval.kind,
          culprit: { pid: event.pid, tid: event.tid, comm: event.comm },
          chain: [own],
          evidence: [],
        };
    }
  }

  /** A wait leads to its waker, and to what the waker was doing while we waited. */
  private async wait(interval: Interval, time: bigint, depth: number): Promise<Resolution> {
    const { event } = interval;
    const own = link(interval, time);
    const waker = namedTask(event);
    if (waker?.tid == null || wokenByNoTask(event)) {
      // No task woke it (a timeout, a timer, an interrupt on an idle CPU): not a cause we can name.
      return {
        kind: interval.kind,
        culprit: null,
        chain: [own],
        evidence: [`${interval.kind} of ${own.time_ms} ms ended without a waking task`],
      };
    }
    const evidence = [
      `${interval.kind} of ${own.time_ms} ms in tid ${String(event.tid)}, woken by pid ${String(waker.pid)} tid ${String(waker.tid)} ${quoted(waker.comm ?? '')}`,
    ];
    if (depth < MAX_CHAIN_DEPTH) {
      const from = event.startUnixNano;
      const to = event.endUnixNano;
      // What the waker did meanwhile, by kind; the link is that kind's longest interval.
      const activity = classify(await this.threadEvents(waker.pid, waker.tid, from, to), from, to);
      const perKind = new Map<string, { total: bigint; longest: Interval; longestNs: bigint }>();
      for (const [i, ns] of activity.time) {
        const k = perKind.get(i.kind);
        if (k === undefined) perKind.set(i.kind, { total: ns, longest: i, longestNs: ns });
        else {
          k.total += ns;
          if (ns > k.longestNs) Object.assign(k, { longest: i, longestNs: ns });
        }
      }
      const busiest = [...perKind.values()].sort((a, b) => Number(b.total - a.total))[0];
      if (busiest !== undefined && Number(busiest.total) >= LINK_MIN_SHARE * Number(to - from)) {
        const next = await this.resolve(busiest.longest, busiest.total, depth + 1);
        // A link that names nobody (a sleep no task ended) ends the chain here: the waker is the culprit.
        if (next.culprit !== null)
          return {
            kind: next.kind,
            culprit: next.culprit,
            chain: [own, ...next.chain],
            evidence: [...evidence, ...next.evidence],
          };
        evidence.push(...next.evidence);
      } else {
        evidence.push(`the waker was on CPU (or not traced) for ${round(ms(activity.uncovered))} ms of that wait`);
      }
    }
    return { kind: interval.kind, culprit: waker, chain: [own], evidence };
  }

  /** A GPU wait: the kernels in flight on the stream, and other processes' GPU work overlapping it. */
  private async gpu(interval: Interval, own: ChainLink, depth: number): Promise<Resolution> {
    const { event } = interval;
    const a = event.attributes;
    const api = text(a[A.ATTR_CAUSEWAY_CUDA_API]) ?? interval.kind;
    const inflight = inflightKernels(event);
    const evidence = [
      `${api} waited ${own.time_ms} ms${
        inflight.length > 0
          ? ` with ${String(a[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT] ?? inflight.length)} kernels in flight: ${[
              ...new Set(inflight),
            ]
              .slice(0, 5)
              .map((k) => quoted(k))
              .join(', ')}`
          : ''
      }`,
    ];

    if (depth >= MAX_CHAIN_DEPTH)
      return { kind: interval.kind, culprit: gpuCulprit(event, mostCommon(inflight)), chain: [own], evidence };
    // Other GPU users: how much of our wait their own GPU waits and copies overlapped.
    const others = new Map<
      number,
      { overlap: bigint; launches: number; kernels: string[]; tid: number; comm: string }
    >();
    for (const e of await this.otherGpuEvents(event.pid, event.startUnixNano, event.endUnixNano)) {
      const o = others.get(e.pid) ?? { overlap: 0n, launches: 0, kernels: [], tid: e.tid, comm: e.comm };
      if (e.kind === 'cuda.launch') {
        o.launches++;
        const kernel = text(e.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL]);
        if (kernel !== undefined) o.kernels.push(kernel);
      } else {
        o.overlap += earlier(e.endUnixNano, event.endUnixNano) - later(e.startUnixNano, event.startUnixNano);
        o.kernels.push(...inflightKernels(e));
      }
      others.set(e.pid, o);
    }
    const waitNs = event.endUnixNano - event.startUnixNano;
    const [topPid, top] =
      [...others.entries()].sort((x, y) => Number(y[1].overlap - x[1].overlap) || y[1].launches - x[1].launches)[0] ??
      [];
    for (const [pid, o] of [...others.entries()].slice(0, 3))
      evidence.push(
        `pid ${String(pid)} ${quoted(o.comm)} used the GPU meanwhile: ${String(o.launches)} launches, ${round(ms(o.overlap))} ms of its own GPU waits overlapping`,
      );
    if (
      topPid !== undefined &&
      top !== undefined &&
      (inflight.length === 0 || Number(top.overlap) >= 0.5 * Number(waitNs))
    ) {
      return {
        kind: interval.kind,
        culprit: gpuCulprit({ pid: topPid, tid: top.tid, comm: top.comm }, mostCommon(top.kernels)),
        chain: [own],
        evidence,
      };
    }
    const kernel = mostCommon(inflight);
    // The thread that launched it: the last launch of that kernel in the process before the wait.
    let launcher: KernelEvent = event;
    if (kernel !== undefined) {
      const before = await this.source.events({
        pid: event.pid,
        from: event.startUnixNano - 2_000_000_000n,
        to: event.startUnixNano,
      });
      launcher =
        before.filter((e) => e.kind === 'cuda.launch' && e.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL] === kernel).at(-1) ??
        event;
    }
    return { kind: interval.kind, culprit: gpuCulprit(launcher, kernel), chain: [own], evidence };
  }
}

interface Piece {
  interval: Interval;
  time: bigint;
  segment: PathSegment;
}

/** Explains the trace from the first source that holds it; undefined when none does. */
export async function explainTrace(sources: TraceSource[], traceId: string): Promise<Explanation | undefined> {
  for (const source of sources) {
    const spans = await source.spans(traceId);
    if (spans.length > 0) return explain(source, traceId, spans);
  }
  return undefined;
}

async function explain(source: TraceSource, traceId: string, spans: TraceSpan[]): Promise<Explanation> {
  const root = rootSpan(spans) as TraceSpan;
  const path = criticalPath(spans);
  const duration = root.endUnixNano - root.startUnixNano;

  // One query per thread on the path, over the time that thread is on it.
  const threads = new Map<string, { pid: number; tid?: number; from: bigint; to: bigint; events?: KernelEvent[] }>();
  for (const { span, start, end } of path) {
    if (span.pid === undefined) continue;
    const key = `${String(span.pid)}/${String(span.tid ?? '')}`;
    const t = threads.get(key);
    threads.set(
      key,
      t === undefined
        ? { pid: span.pid, ...(span.tid === undefined ? {} : { tid: span.tid }), from: start, to: end }
        : { ...t, from: earlier(t.from, start), to: later(t.to, end) },
    );
  }
  await Promise.all(
    [...threads.values()].map(async (t) => {
      t.events = await source.events(t);
    }),
  );

  const perKind = new Map<BreakdownKind, bigint>();
  const add = (kind: BreakdownKind, ns: bigint) => perKind.set(kind, (perKind.get(kind) ?? 0n) + ns);
  const pieces: Piece[] = [];
  for (const segment of path) {
    const { span, start, end } = segment;
    const thread = span.pid === undefined ? undefined : threads.get(`${String(span.pid)}/${String(span.tid ?? '')}`);
    if (thread === undefined) {
      add('unexplained', end - start);
      continue;
    }
    const { time, uncovered } = classify(thread.events ?? [], start, end);
    // With the thread known, time off no kernel interval was spent running; with only the process, it is unknown.
    add(span.tid === undefined ? 'unexplained' : 'cpu', uncovered);
    for (const [interval, ns] of time) {
      add(interval.kind, ns);
      pieces.push({ interval, time: ns, segment });
    }
  }

  // Resolve the longest intervals into chains; group what they lead to by root kind, then culprit.
  pieces.sort((a, b) => Number(b.time - a.time));
  const analysis = new Analysis(source, { from: root.startUnixNano, to: root.endUnixNano });
  const resolved = await Promise.all(
    pieces.map(async (p, i) => ({
      piece: p,
      resolution: await analysis.resolve(p.interval, p.time, i < FOLLOWED_PER_TRACE ? 0 : MAX_CHAIN_DEPTH),
    })),
  );
  const byKind = new Map<string, { time: bigint; items: typeof resolved }>();
  for (const item of resolved) {
    // A wait nobody woke names no cause, and the tracer's own cost is not the app's.
    if (
      item.resolution.kind === 'causeway' ||
      (item.resolution.culprit === null &&
        (item.resolution.kind === 'sched.blocked' || item.resolution.kind === 'futex.wait'))
    )
      continue;
    const group = byKind.get(item.resolution.kind) ?? { time: 0n, items: [] };
    group.time += item.piece.time;
    group.items.push(item);
    byKind.set(item.resolution.kind, group);
  }
  const breakdown = [...perKind.entries()]
    .map(([kind, ns]) => ({
      kind,
      time_ms: round(ms(ns)),
      share: duration > 0n ? round(Number(ns) / Number(duration)) : 0,
    }))
    .sort((a, b) => b.time_ms - a.time_ms);

  const [winnerKind, winner] = [...byKind.entries()].sort((a, b) => Number(b[1].time - a[1].time))[0] ?? [];
  const share = winner === undefined || duration === 0n ? 0 : Number(winner.time) / Number(duration);
  const rootSpanInfo = { service: root.service, name: root.name };
  let rootCause: RootCause | null;
  if (threads.size === 0) {
    rootCause = null; // no span of this trace ran where kernel events were captured
  } else if (winner === undefined || winnerKind === undefined || share < NONE_BELOW_SHARE) {
    const rest = breakdown.filter((b) => b.kind === 'cpu' || b.kind === 'unexplained');
    const tracer = breakdown.filter((b) => b.kind === 'causeway');
    const restMs = rest.reduce((sum, b) => sum + b.time_ms, 0);
    rootCause = {
      kind: 'none',
      time_ms: round(restMs),
      share: duration > 0n ? round(restMs / ms(duration)) : 0,
      span_id: root.spanId,
      culprit: null,
      chain: [],
      evidence: [...rest, ...tracer].map((b) => `${NOT_A_CAUSE[b.kind as keyof typeof NOT_A_CAUSE]}: ${b.time_ms} ms`),
    };
  } else {
    // The culprit that cost the most within the winning kind.
    const perCulprit = new Map<string, { time: bigint; items: typeof resolved }>();
    for (const item of winner.items) {
      const c = item.resolution.culprit;
      const key = `${String(c?.pid)}/${c?.peer ?? ''}/${c?.cuda_kernel ?? ''}/${c?.device ?? ''}/${c?.op ?? ''}`;
      const g = perCulprit.get(key) ?? { time: 0n, items: [] };
      g.time += item.piece.time;
      g.items.push(item);
      perCulprit.set(key, g);
    }
    const top = [...perCulprit.values()].sort((a, b) => Number(b.time - a.time))[0] ?? winner;
    const main = top.items[0] ?? winner.items[0];
    rootCause = {
      kind: winnerKind as KernelEvent['kind'],
      time_ms: round(ms(winner.time)),
      share: round(share),
      span_id: main?.piece.segment.span.spanId ?? root.spanId,
      culprit: main?.resolution.culprit ?? null,
      chain: main?.resolution.chain ?? [],
      evidence: [...new Set(top.items.slice(0, 3).flatMap((i) => i.resolution.evidence))].slice(0, 10),
    };
  }
  return {
    trace_id: traceId,
    source: source.name,
    duration_ms: round(ms(duration)),
    root_span: rootSpanInfo,
    breakdown,
    root_cause: rootCause,
    summary: summarize(traceId, rootSpanInfo, ms(duration), breakdown, rootCause),
  };
}

/** How the time that names no cause is said. */
const NOT_A_CAUSE = {
  cpu: 'on CPU',
  unexplained: 'unexplained (no thread id or not on this host)',
  causeway: "waiting for a CPU held by Causeway itself (the tracer's own cost)",
} as const;

function describeCulprit(c: Culprit): string {
  if (c.peer !== undefined) return `the peer ${c.peer}`;
  const who = `pid ${String(c.pid)}${c.tid === null ? '' : ` tid ${String(c.tid)}`}${c.comm === null ? '' : ` ${quoted(c.comm)}`}`;
  if (c.cuda_kernel !== undefined) return `kernel ${quoted(c.cuda_kernel)} launched by ${who}`;
  if (c.device !== undefined) return `${c.op ?? 'I/O'} on ${c.device} by ${who}`;
  return who;
}

function summarize(
  traceId: string,
  root: { service: string; name: string },
  durationMs: number,
  breakdown: Explanation['breakdown'],
  cause: RootCause | null,
): string {
  const head = `Trace ${traceId} (${quoted(root.service)} ${quoted(root.name)}) took ${round(durationMs)} ms.`;
  const parts = breakdown
    .slice(0, 4)
    .map((b) => `${b.kind} ${b.time_ms} ms (${Math.round(b.share * 100)}%)`)
    .join(', ');
  if (cause === null)
    return `${head} None of its spans ran in a process this node captured, so there is no kernel evidence for it.`;
  const tracer = breakdown.find((b) => b.kind === 'causeway');
  const tracerCost =
    tracer === undefined
      ? ''
      : ` Causeway itself held the CPU for ${tracer.time_ms} ms of it: the tracer's own cost, not counted as a cause.`;
  if (cause.kind === 'none')
    return `${head} No kernel-level cause accounts for much of it (a wait that no task ended, such as a sleep or a timeout, names none): ${parts}. Root cause: none.${tracerCost}`;
  const chain =
    cause.chain.length > 1
      ? ` Chain: ${cause.chain.map((l) => `${l.kind} in tid ${String(l.tid)} (${l.time_ms} ms)`).join(' -> ')}.`
      : '';
  return `${head} On its critical path: ${parts}. Root cause: ${cause.kind}, ${cause.time_ms} ms (${Math.round(cause.share * 100)}%), caused by ${cause.culprit === null ? 'an unknown task' : describeCulprit(cause.culprit)}.${chain}${tracerCost}`;
}
