// Why a trace was slow (DESIGN, "The MCP server"): the trace's critical path; each path
// segment's time split by what its thread was doing in the kernel (classify.ts); the longest
// pieces of lost time followed to the ends of their causal chains (chain.ts), grouped by the
// kind they lead to and then by culprit: the costliest is the root cause, worded by summary.ts.
// An event stamped with another trace's span, on the request's thread, is another request's
// work that held the thread (an event loop): that request is the culprit, not this one's own wait.
import type { KernelEvent } from '../kernel/events.js';
import type { SpanContextStamp } from '../kernel/record.js';
import * as A from '../semconv/attributes.js';
import { Analysis, MAX_CHAIN_DEPTH, type Resolution } from './chain.js';
import { classify, type Interval } from './classify.js';
import { weakestScope, type AttachScope } from './correlator.js';
import { criticalPath, rootSpan, type PathSegment } from './critical-path.js';
import type { BreakdownKind, Culprit, Explanation, RootCause } from './explanation.js';
import type { TraceSource, TraceSpan } from './source.js';
import { notACause, quoted, rounded, summarize, type NotACause } from './summary.js';
import { earlier, later, toMs } from './time.js';

/** Below this share of the trace, kernel causes explain too little to name one. */
const NONE_BELOW_SHARE = 0.2;
/** Intervals on the path followed into chains at most (longest first); the rest name their direct culprit. */
const FOLLOWED_PER_TRACE = 12;

/** A thread on the critical path, over the time it is on it, with its kernel events then. */
interface PathThread {
  pid: number;
  tid?: number;
  from: bigint;
  to: bigint;
  events?: KernelEvent[];
}

/** Time an interval was its thread's dominant kind, within one segment of the path. */
interface Piece {
  interval: Interval;
  time: bigint;
  segment: PathSegment;
  /** The other request whose work the interval was, by its event's stamp: it held the segment's thread. */
  heldBy?: SpanContextStamp;
}

interface Resolved {
  piece: Piece;
  resolution: Resolution;
}

type Breakdown = Explanation['breakdown'];

const threadKey = (span: TraceSpan) => `${String(span.pid)}/${String(span.tid ?? '')}`;

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
  const threads = await pathThreads(source, path);
  const { perKind, pieces } = splitPath(path, threads, traceId);
  const breakdown = [...perKind.entries()]
    .map(([kind, ns]) => ({
      kind,
      time_ms: rounded(toMs(ns)),
      share: duration > 0n ? rounded(Number(ns) / Number(duration)) : 0,
    }))
    .sort((a, b) => b.time_ms - a.time_ms);
  const analysis = new Analysis(source, { from: root.startUnixNano, to: root.endUnixNano });
  // With no span of this trace where kernel events were captured, there is no root cause to name.
  const rootCause =
    threads.size === 0 ? null : await rootCauseOf(analysis, pieces, { breakdown, root, duration, spans });
  const rootSpanInfo = { service: root.service, name: root.name };
  const shed = await source.shedDuring(root.startUnixNano, root.endUnixNano);
  return {
    trace_id: traceId,
    source: source.name,
    duration_ms: rounded(toMs(duration)),
    root_span: rootSpanInfo,
    breakdown,
    root_cause: rootCause,
    kernel_events_shed: shed,
    summary: summarize(traceId, rootSpanInfo, toMs(duration), breakdown, rootCause, shed),
  };
}

/** The threads on the path with their kernel events: one query per thread, over the time it is on the path. */
async function pathThreads(source: TraceSource, path: PathSegment[]): Promise<Map<string, PathThread>> {
  const threads = new Map<string, PathThread>();
  for (const { span, start, end } of path) {
    if (span.pid === undefined) continue;
    const key = threadKey(span);
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
  return threads;
}

/** Another trace's span, when the event was stamped with one: another request's work. */
function otherRequest(event: KernelEvent, traceId: string): SpanContextStamp | undefined {
  const stamp = event.spanContext;
  return stamp === undefined || stamp.traceId === traceId ? undefined : stamp;
}

/** Each segment's time by kind, and the pieces of it that kernel intervals explain. */
function splitPath(path: PathSegment[], threads: Map<string, PathThread>, traceId: string) {
  const perKind = new Map<BreakdownKind, bigint>();
  const add = (kind: BreakdownKind, ns: bigint) => perKind.set(kind, (perKind.get(kind) ?? 0n) + ns);
  const pieces: Piece[] = [];
  for (const segment of path) {
    const { span, start, end } = segment;
    const thread = span.pid === undefined ? undefined : threads.get(threadKey(span));
    if (thread === undefined) {
      add('unexplained', end - start);
      continue;
    }
    // With only the process known, other requests' work is on threads not the span's: not its time.
    const events = (thread.events ?? []).filter(
      (e) => span.tid !== undefined || otherRequest(e, traceId) === undefined,
    );
    const { time, uncovered } = classify(events, start, end);
    // With the thread known, time off no kernel interval was spent running; with only the process, it is unknown.
    add(span.tid === undefined ? 'unexplained' : 'cpu', uncovered);
    for (const [interval, ns] of time) {
      add(interval.kind, ns);
      const heldBy = otherRequest(interval.event, traceId);
      pieces.push({ interval, time: ns, segment, ...(heldBy === undefined ? {} : { heldBy }) });
    }
  }
  return { perKind, pieces };
}

/**
 * Resolves the longest pieces into chains and groups what they lead to by root kind, then by
 * culprit: the kind that cost the most, and within it the costliest culprit, is the root cause.
 */
async function rootCauseOf(
  analysis: Analysis,
  pieces: Piece[],
  trace: { breakdown: Breakdown; root: TraceSpan; duration: bigint; spans: TraceSpan[] },
): Promise<RootCause> {
  pieces.sort((a, b) => Number(b.time - a.time));
  const resolved = await Promise.all(
    pieces.map(async (piece, i) => {
      const resolution = await analysis.resolve(
        piece.interval,
        piece.time,
        i < FOLLOWED_PER_TRACE ? 0 : MAX_CHAIN_DEPTH,
      );
      return { piece, resolution: piece.heldBy === undefined ? resolution : heldBy(piece, piece.heldBy, resolution) };
    }),
  );
  const byKind = new Map<RootCause['kind'], { time: bigint; items: Resolved[] }>();
  for (const item of resolved) {
    const { kind, culprit } = item.resolution;
    // A wait nobody woke names no cause, and the tracer's own cost is not the app's.
    if (kind === 'causeway' || (culprit === null && (kind === 'sched.blocked' || kind === 'futex.wait'))) continue;
    const group = byKind.get(kind) ?? { time: 0n, items: [] };
    group.time += item.piece.time;
    group.items.push(item);
    byKind.set(kind, group);
  }
  const { root, duration } = trace;
  const [winnerKind, winner] = [...byKind.entries()].sort((a, b) => Number(b[1].time - a[1].time))[0] ?? [];
  const share = winner === undefined || duration === 0n ? 0 : Number(winner.time) / Number(duration);
  if (winner === undefined || winnerKind === undefined || share < NONE_BELOW_SHARE) return noCause(trace);
  // The culprit that cost the most within the winning kind. A piece with several culprits (the
  // tasks that held the CPU during a run-queue wait) counts for each by its share.
  const perCulprit = new Map<
    string,
    { time: bigint; items: { item: Resolved; time: bigint; culprit: Culprit | null }[] }
  >();
  for (const item of winner.items) {
    const { culprit, shares } = item.resolution;
    for (const { culprit: c, share } of shares ?? [{ culprit, share: 1 }]) {
      const key = `${String(c?.pid)}/${c?.peer ?? ''}/${c?.cuda_kernel ?? ''}/${c?.device ?? ''}/${c?.op ?? ''}/${c?.span_id ?? ''}`;
      const time = share === 1 ? item.piece.time : BigInt(Math.round(Number(item.piece.time) * share));
      const g = perCulprit.get(key) ?? { time: 0n, items: [] };
      g.time += time;
      g.items.push({ item, time, culprit: c });
      perCulprit.set(key, g);
    }
  }
  const top = [...perCulprit.values()].sort((a, b) => Number(b.time - a.time))[0];
  // Its costliest piece shows the chain, and the culprit as that piece names it (its thread).
  const items = (top?.items ?? []).sort((a, b) => Number(b.time - a.time));
  const main = items[0];
  const within = descendantOf(trace.spans);
  const attachScope = weakestScope(items.map(({ item }) => scopeOfPiece(item.piece, within)));
  return {
    kind: winnerKind,
    time_ms: rounded(toMs(winner.time)),
    share: rounded(share),
    span_id: main?.item.piece.segment.span.spanId ?? root.spanId,
    culprit: main?.culprit ?? null,
    chain: main?.item.resolution.chain ?? [],
    evidence: [
      ...(main?.item.resolution.shares === undefined || top === undefined
        ? []
        : [heldFor(main.culprit, top.time, winner.time)]),
      ...new Set(items.slice(0, 3).flatMap((i) => i.item.resolution.evidence)),
    ].slice(0, 10),
    ...(attachScope === undefined ? {} : { attach_scope: attachScope }),
  };
}

/**
 * The other request's work, stamped with its span, on the thread this request runs on: the time
 * went to that request holding the thread, and this one made no call. Its chain (what that
 * work waited for) is kept as the evidence of what held the thread.
 */
function heldBy({ interval, time }: Piece, other: SpanContextStamp, resolution: Resolution): Resolution {
  const { event } = interval;
  const [first, ...rest] = resolution.chain;
  const api = event.attributes[A.ATTR_CAUSEWAY_CUDA_API];
  const call = typeof api === 'string' ? api : interval.kind;
  return {
    kind: resolution.kind,
    culprit: { pid: event.pid, tid: event.tid, comm: event.comm, trace_id: other.traceId, span_id: other.spanId },
    chain: first === undefined ? [] : [{ ...first, link: 'same_thread' }, ...rest],
    evidence: [
      `the thread this request runs on (pid ${String(event.pid)} tid ${String(event.tid)} ${quoted(event.comm)}) was held ${String(
        rounded(toMs(time)),
      )} ms by request ${other.traceId} (span ${other.spanId}) in ${quoted(call)}: this request did not make the call`,
      ...resolution.evidence,
    ],
  };
}

/** Whether a span of the trace is `ancestor` or one of its descendants. */
function descendantOf(spans: TraceSpan[]): (spanId: string, ancestor: string) => boolean {
  const parents = new Map(spans.map((s) => [s.spanId, s.parentSpanId]));
  return (spanId, ancestor) => {
    const seen = new Set<string>();
    for (let at: string | undefined = spanId; at !== undefined && !seen.has(at); at = parents.get(at)) {
      if (at === ancestor) return true;
      seen.add(at);
    }
    return false;
  };
}

/**
 * How surely a piece's event is its segment's span's: exact when its stamp is that span or one of
 * its descendants (or another request's, whose the event then surely is); else by the span's place.
 */
function scopeOfPiece(
  { interval, segment, heldBy }: Piece,
  within: (spanId: string, ancestor: string) => boolean,
): AttachScope {
  const stamp = interval.event.spanContext;
  if (heldBy !== undefined || (stamp !== undefined && within(stamp.spanId, segment.span.spanId)))
    return A.CAUSEWAY_ATTACH_SCOPE_VALUE_EXACT;
  return segment.span.tid === undefined ? A.CAUSEWAY_ATTACH_SCOPE_VALUE_PROCESS : A.CAUSEWAY_ATTACH_SCOPE_VALUE_THREAD;
}

/** How much of the run-queue time a holder accounts for, over all the waits. */
const heldFor = (c: Culprit | null, time: bigint, of: bigint) =>
  `pid ${String(c?.pid)} ${quoted(c?.comm ?? '')} held the CPU for ${String(rounded(toMs(time)))} ms of the ${String(
    rounded(toMs(of)),
  )} ms waited, weighted by its on-CPU time within each wait`;

/** Breakdown entries of the kinds given, in the breakdown's order. */
const entriesOf =
  (kinds: readonly NotACause[]) =>
  (b: Breakdown[number]): b is Breakdown[number] & { kind: NotACause } =>
    (kinds as readonly BreakdownKind[]).includes(b.kind);

/** Root cause none: kernel causes explain too little; the evidence is where the time went instead. */
function noCause({
  breakdown,
  root,
  duration,
}: {
  breakdown: Breakdown;
  root: TraceSpan;
  duration: bigint;
}): RootCause {
  const rest = breakdown.filter(entriesOf(['cpu', 'unexplained']));
  const tracer = breakdown.filter(entriesOf(['causeway']));
  const restMs = rest.reduce((sum, b) => sum + b.time_ms, 0);
  return {
    kind: 'none',
    time_ms: rounded(restMs),
    share: duration > 0n ? rounded(restMs / toMs(duration)) : 0,
    span_id: root.spanId,
    culprit: null,
    chain: [],
    evidence: [...rest, ...tracer].map((b) => notACause(b.kind, b.time_ms)),
  };
}
