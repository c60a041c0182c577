// Kernel events attached to an app span, as OTLP spans of the same trace: each interval a
// child span of the app span, named for a human; per app span one summary child span whose
// attributes give the time per kind (so a TraceQL or Jaeger tag search finds "requests that
// waited > 100 ms on the GPU"), and whose span events carry the point events, launches
// aggregated (count, total, slowest few) rather than exported one by one.
import { randomBytes } from 'node:crypto';
import { SpanKind, SpanStatusCode, TraceFlags, type Attributes, type HrTime } from '@opentelemetry/api';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace-base';
import { SUMMARIZED, isBlockedLaunch, type KernelEvent } from '../kernel/events.js';
import * as A from '../semconv/attributes.js';
import {
  scopeOf,
  weakestScope,
  type Attachment,
  type AttachScope,
  type JoinableSpan,
} from '../correlate/correlator.js';
import { isLinked } from '../correlate/linked.js';

/** Child spans per app span at most: the longest intervals; the summary counts all. */
export const MAX_CHILD_SPANS = 128;
/** Span events on a summary at most (the SDK's default limit). */
export const MAX_SUMMARY_EVENTS = 128;
const SLOWEST_LAUNCHES = 5;
/** The instrumentation scope of kernel spans and of Causeway's own metrics. */
export const SCOPE = { name: 'causeway', version: '0.1.0' };

const hrTime = (unixNano: bigint): HrTime => [Number(unixNano / 1_000_000_000n), Number(unixNano % 1_000_000_000n)];
const ms = (ns: bigint) => Number(ns) / 1e6;
/**
 * Span ids are cut from one random draw for this many: a draw per id (a call into the crypto
 * library each) took a fifth of the main thread's busy time under a load of spans (issue 11).
 */
const IDS_PER_DRAW = 1024;
const ids = { drawn: Buffer.alloc(0), next: 0 };
function spanId(): string {
  if (ids.next >= ids.drawn.length) {
    ids.drawn = randomBytes(8 * IDS_PER_DRAW);
    ids.next = 0;
  }
  ids.next += 8;
  return ids.drawn.toString('hex', ids.next - 8, ids.next);
}
const durationNs = (e: KernelEvent) => e.endUnixNano - e.startUnixNano;
const longestFirst = (a: KernelEvent, b: KernelEvent) => Number(durationNs(b) - durationNs(a));

/** The name a person reads in the trace view; a linked wait (linked.ts) says whose it was. */
export function kernelSpanName(event: KernelEvent): string {
  const a = event.attributes;
  const name = ownName(event);
  if (!isLinked(event)) return name;
  const shared = Number(a[A.ATTR_CAUSEWAY_SHARED_COUNT]);
  return `${name} in pid ${String(a[A.ATTR_CAUSEWAY_REMOTE_PID])} '${String(a[A.ATTR_CAUSEWAY_REMOTE_COMM])}'${
    shared > 1 ? ` (shared by ${String(shared)} requests)` : ''
  }`;
}

function ownName(event: KernelEvent): string {
  const a = event.attributes;
  switch (event.kind) {
    case 'cuda.sync':
      // A thread spinning on a query: the query names it, and it was a wait, not one call.
      return a[A.ATTR_CAUSEWAY_CUDA_SYNC_POLLING] === true
        ? `${String(a[A.ATTR_CAUSEWAY_CUDA_API])} (polling)`
        : String(a[A.ATTR_CAUSEWAY_CUDA_API]);
    case 'cuda.launch':
      return isBlockedLaunch(event)
        ? `${String(a[A.ATTR_CAUSEWAY_CUDA_API])} (blocked: launch queue full)`
        : String(a[A.ATTR_CAUSEWAY_CUDA_API]);
    case 'cuda.memcpy':
    case 'cuda.malloc':
      return String(a[A.ATTR_CAUSEWAY_CUDA_API]);
    case 'sched.runqueue':
      return a[A.ATTR_CAUSEWAY_SCHED_HOLDER_CAUSEWAY] === true
        ? 'run queue wait (CPU held by Causeway)'
        : 'run queue wait';
    case 'sched.blocked':
      return 'off CPU (blocked)';
    case 'futex.wait':
      return 'futex wait';
    case 'block.io':
      return `block ${String(a[A.ATTR_CAUSEWAY_BLOCK_OP])} ${String(a[A.ATTR_CAUSEWAY_BLOCK_DEVICE])}`;
    case 'tcp.retransmit':
      return 'tcp retransmit';
    case 'ipc.message':
      return `socket ${String(a[A.ATTR_CAUSEWAY_IPC_DIRECTION])}`;
    case 'cuda.launches':
      return `${String(a[A.ATTR_CAUSEWAY_CUDA_API])} x${String(a[A.ATTR_CAUSEWAY_SUMMARY_COUNT])}`;
    case 'sched.runqueues':
      return `run queue waits x${String(a[A.ATTR_CAUSEWAY_SUMMARY_COUNT])}`;
    case 'sched.blocked_waits':
      return `off CPU (blocked) x${String(a[A.ATTR_CAUSEWAY_SUMMARY_COUNT])}`;
    case 'futex.waits':
      return `futex waits x${String(a[A.ATTR_CAUSEWAY_SUMMARY_COUNT])}`;
  }
}

/**
 * Launches, retransmits and messages: points in time (a launch's duration is the API call's), not
 * waits; except a launch that blocked on a full launch queue, which is a wait and gets its own span.
 * The in-kernel reduction's summaries are not waits either: they go on the summary span.
 */
export const isPoint = (event: KernelEvent) =>
  (event.kind === 'cuda.launch' && !isBlockedLaunch(event)) ||
  event.kind === 'tcp.retransmit' ||
  event.kind === 'ipc.message' ||
  SUMMARIZED[event.kind] !== undefined;

const number = (value: unknown) => (typeof value === 'number' ? value : 0);

/** The summaries of waits, by kind, and the attribute holding their waits' total. */
const WAIT_SUM_MS: Readonly<Partial<Record<string, string>>> = {
  [A.CAUSEWAY_KIND_VALUE_SCHED_RUNQUEUES]: A.ATTR_CAUSEWAY_SCHED_WAIT_MS,
  [A.CAUSEWAY_KIND_VALUE_SCHED_BLOCKED_WAITS]: A.ATTR_CAUSEWAY_SCHED_WAIT_MS,
  [A.CAUSEWAY_KIND_VALUE_FUTEX_WAITS]: A.ATTR_CAUSEWAY_FUTEX_WAIT_MS,
};

function attributesOf(event: KernelEvent, scope: AttachScope): Attributes {
  return {
    ...(event.attributes as Attributes),
    [A.ATTR_CAUSEWAY_KIND]: event.kind,
    [A.ATTR_CAUSEWAY_THREAD_TID]: event.tid,
    [A.ATTR_CAUSEWAY_ATTACH_SCOPE]: scope,
    'thread.name': event.comm,
  };
}

function readable(
  resource: Resource,
  traceId: string,
  parentSpanId: string,
  name: string,
  start: bigint,
  end: bigint,
  attributes: Attributes,
  events: TimedEvent[] = [],
  droppedEvents = 0,
): ReadableSpan {
  const context = { traceId, spanId: spanId(), traceFlags: TraceFlags.SAMPLED };
  return {
    name,
    kind: SpanKind.INTERNAL,
    spanContext: () => context,
    parentSpanContext: { traceId, spanId: parentSpanId, traceFlags: TraceFlags.SAMPLED },
    startTime: hrTime(start),
    endTime: hrTime(end),
    duration: hrTime(end - start),
    status: { code: SpanStatusCode.UNSET },
    attributes,
    links: [],
    events,
    ended: true,
    resource,
    instrumentationScope: SCOPE,
    droppedAttributesCount: 0,
    droppedEventsCount: droppedEvents,
    droppedLinksCount: 0,
  };
}

/** The summary of one app span's kernel activity: time per kind, launches, point events, whether some were shed. */
function summary(
  resource: Resource,
  app: JoinableSpan,
  events: KernelEvent[],
  scopeOfEvent: (event: KernelEvent) => AttachScope,
  shed: boolean,
): ReadableSpan {
  const perKind = new Map<string, bigint>();
  // Launches, blocked or not, are summed with the launch count below.
  for (const event of events)
    if (!isPoint(event) && event.kind !== 'cuda.launch')
      perKind.set(event.kind, (perKind.get(event.kind) ?? 0n) + durationNs(event));
  // The span-level scope is the weakest of its events': "exact" only when every one was.
  const scope = weakestScope(events.map(scopeOfEvent)) ?? A.CAUSEWAY_ATTACH_SCOPE_VALUE_PROCESS;
  const attributes: Attributes = { [A.ATTR_CAUSEWAY_ATTACH_SCOPE]: scope };
  if (shed) attributes[A.ATTR_CAUSEWAY_ATTACH_SHED] = true;
  // Summed waits count as time of the kind they sum: their total, not their window's length.
  const summedMs = new Map<string, number>();
  for (const e of events) {
    const total = WAIT_SUM_MS[e.kind];
    const kind = SUMMARIZED[e.kind];
    if (total !== undefined && kind !== undefined)
      summedMs.set(kind, (summedMs.get(kind) ?? 0) + number(e.attributes[total]));
  }
  for (const kind of new Set([...perKind.keys(), ...summedMs.keys()]))
    attributes[`causeway.${kind}.duration_ms`] = ms(perKind.get(kind) ?? 0n) + (summedMs.get(kind) ?? 0);

  const launches = events.filter((e) => e.kind === 'cuda.launch');
  const summaries = events.filter((e) => e.kind === 'cuda.launches');
  const launchCount =
    launches.length + summaries.reduce((sum, e) => sum + number(e.attributes[A.ATTR_CAUSEWAY_SUMMARY_COUNT]), 0);
  if (launchCount > 0) {
    attributes[A.ATTR_CAUSEWAY_CUDA_LAUNCH_COUNT] = launchCount;
    attributes[A.ATTR_CAUSEWAY_CUDA_LAUNCH_DURATION_MS] =
      ms(launches.reduce((sum, e) => sum + durationNs(e), 0n)) +
      summaries.reduce((sum, e) => sum + number(e.attributes[A.ATTR_CAUSEWAY_CUDA_LAUNCH_CALL_MS]), 0);
  }
  const slowest = [...launches].sort(longestFirst).slice(0, SLOWEST_LAUNCHES);
  const points = [
    ...slowest,
    ...events.filter((e) => e.kind === 'tcp.retransmit'),
    ...summaries,
    ...events.filter((e) => WAIT_SUM_MS[e.kind] !== undefined),
  ];
  const timed: TimedEvent[] = points.slice(0, MAX_SUMMARY_EVENTS).map((e) => ({
    name: e.kind,
    time: hrTime(e.startUnixNano),
    attributes: { ...attributesOf(e, scopeOfEvent(e)), [A.ATTR_CAUSEWAY_DURATION_MS]: ms(durationNs(e)) },
  }));
  return readable(
    resource,
    app.traceId,
    app.spanId,
    'kernel activity',
    app.startUnixNano,
    app.endUnixNano,
    attributes,
    timed,
    Math.max(0, points.length - MAX_SUMMARY_EVENTS),
  );
}

/** Resources by the app resource they copy: kernel spans show under the app's own service. */
export class KernelSpanBuilder {
  private readonly resources = new Map<string, Resource>();
  /**
   * By the app resource object itself, which the spans of one ResourceSpans share: its JSON key
   * is then made once per request, not once per span (it cost a tenth of joining, issue 11).
   */
  private readonly byObject = new WeakMap<object, Resource>();

  build(attachment: Attachment): ReadableSpan[] {
    const { span: app, events } = attachment;
    const scope = (event: KernelEvent) => scopeOf(attachment, event);
    const resource = this.resource(app.resource);
    const intervals = events
      .filter((e) => !isPoint(e))
      .sort(longestFirst)
      .slice(0, MAX_CHILD_SPANS);
    // Events read after the span was joined (late) are its kernel spans only: it has its summary.
    return [
      ...(attachment.late === true ? [] : [summary(resource, app, events, scope, attachment.shed === true)]),
      ...intervals.map((e) =>
        readable(
          resource,
          app.traceId,
          app.spanId,
          kernelSpanName(e),
          e.startUnixNano,
          e.endUnixNano,
          attributesOf(e, scope(e)),
        ),
      ),
    ];
  }

  private resource(attributes: Record<string, unknown>): Resource {
    const known = this.byObject.get(attributes);
    if (known !== undefined) return known;
    const key = JSON.stringify(attributes, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    let resource = this.resources.get(key);
    if (resource === undefined) {
      if (this.resources.size >= 1024) this.resources.clear(); // bounded: one per app process seen recently
      resource = resourceFromAttributes(attributes as Attributes);
      this.resources.set(key, resource);
    }
    this.byObject.set(attributes, resource);
    return resource;
  }
}
