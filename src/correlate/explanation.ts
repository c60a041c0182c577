// The answer explain_trace gives, as the MCP tool returns it (src/mcp/tools.ts mirrors it in
// its output schema).
import type { IntervalKind } from './classify.js';
import type { AttachScope } from './correlator.js';
import type { LinkKind } from './linked.js';

/** Time on the critical path: per interval kind, on CPU, or unexplained (no thread, or not on this host). */
export type BreakdownKind = IntervalKind | 'cpu' | 'unexplained';

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
  /** Another request that held the thread this one runs on (an event loop): its trace and span, from the events' stamps. */
  trace_id?: string;
  span_id?: string;
}

/**
 * How a chain's step was linked to the request: a wait in another process (linked.ts), or
 * `same_thread`: work of another request on the thread this one runs on, which held it.
 */
export type ChainLinkKind = LinkKind | 'same_thread';

/** One step from the request thread towards the root: a wait, and the thread it waited in. */
export interface ChainLink {
  kind: IntervalKind;
  pid: number;
  tid: number;
  comm: string;
  time_ms: number;
  /** A wait in another process that the request waited on, or another request's work on its thread: how it was linked. */
  link?: ChainLinkKind;
  /** Requests that one wait served, when more than one. */
  shared_by?: number;
}

export interface RootCause {
  /** Never `causeway`: the tracer's own cost is not a cause. */
  kind: Exclude<IntervalKind, 'causeway'> | 'none';
  time_ms: number;
  share: number;
  span_id: string;
  culprit: Culprit | null;
  chain: ChainLink[];
  /** The observations the answer rests on, one line each. */
  evidence: string[];
  /**
   * How surely the root cause's kernel events are the request's (causeway.attach.scope): the
   * weakest of its pieces'. exact: the app published the span as active (thread context) when the
   * events began, or, for a culprit that is another request, published that request's span;
   * thread: its thread, no other span open there; ambiguous: another span was open on the thread
   * too (an event loop), so the waits may be another request's; process: the thread is unknown.
   * Absent for root cause none.
   */
  attach_scope?: AttachScope;
}

export interface Explanation {
  trace_id: string;
  source: string;
  duration_ms: number;
  root_span: { service: string; name: string };
  breakdown: { kind: BreakdownKind; time_ms: number; share: number }[];
  root_cause: RootCause | null;
  /**
   * Kernel events of the trace's time were shed because the sidecar was behind (the lag bound,
   * src/kernel/capture.ts): kernel causes may be missing from the breakdown and the root cause.
   */
  kernel_events_shed: boolean;
  summary: string;
}
