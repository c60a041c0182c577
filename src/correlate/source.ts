// What the causal analysis reads: a trace's app spans and the kernel events around them. The
// local store answers for traces this node saw; a tracing backend (cluster mode) answers for
// the rest, from the kernel spans Causeway exported into it.
import type { KernelEvent } from '../kernel/events.js';
import { MS } from './time.js';

/** An app span as the analysis sees it, with the host thread it ran on when known. */
export interface TraceSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  service: string;
  name: string;
  startUnixNano: bigint;
  endUnixNano: bigint;
  /** The process the span ran in, as the source knows it; undefined when not known. */
  pid?: number;
  /** The OS thread; undefined when only the process is known. */
  tid?: number;
}

export interface EventWindow {
  pid: number;
  /** Undefined: every thread of the process. */
  tid?: number;
  /** Events that overlap [from, to). */
  from: bigint;
  to: bigint;
}

/** A time (Unix ns) the capture shed kernel events in, because the sidecar was behind: the spans of that time miss some. */
export interface ShedTime {
  from: bigint;
  to: bigint;
}

/** Shed times closer than this are held as one, by the correlator and the store alike: frames shed one after another make one stretch. */
export const SHED_MERGE_NS = 10n * MS;

export interface TraceSummary {
  traceId: string;
  service: string;
  name: string;
  startUnixNano: bigint;
  durationMs: number;
}

export interface TraceQuery {
  /** Undefined: every service. */
  service?: string;
  from: bigint;
  to: bigint;
  minDurationMs?: number;
  limit: number;
}

export interface TraceSource {
  /** Shown in answers, so an agent knows where the evidence came from. */
  readonly name: string;
  /** The trace's app spans (not Causeway's own kernel spans); empty when the trace is unknown. */
  spans(traceId: string): Promise<TraceSpan[]>;
  /** Kernel events of a thread or process overlapping the window, ordered by start. */
  events(window: EventWindow): Promise<KernelEvent[]>;
  /** CUDA events (cuda.*) of every process but `exceptPid` overlapping [from, to), ordered by start. */
  gpuEvents(from: bigint, to: bigint, exceptPid: number): Promise<KernelEvent[]>;
  /** Whether kernel events were shed in a time overlapping [from, to): then some are missing from events(). */
  shedDuring(from: bigint, to: bigint): Promise<boolean>;
  /** Recent traces by their root span, slowest first. */
  slowTraces(query: TraceQuery): Promise<TraceSummary[]>;
}
