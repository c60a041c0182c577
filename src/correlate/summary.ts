// How an explanation is worded: names from traced apps quoted as data, milliseconds rounded,
// culprits described, and the one-paragraph summary an agent reads first.
import type { AttachScope } from './correlator.js';
import type { BreakdownKind, Culprit, Explanation, RootCause } from './explanation.js';

/** Names from traced apps and processes are data: one line, bounded, quoted. */
export function quoted(value: string, limit = 80): string {
  const flat = value.replace(/[\p{Cc}\u2028\u2029]/gu, ' ');
  return JSON.stringify(flat.length > limit ? `${flat.slice(0, limit)}…` : flat);
}

/** To three decimals: microseconds for milliseconds, a tenth of a percent for shares. */
export const rounded = (x: number) => Math.round(x * 1000) / 1000;

/** Time that names no cause. */
export type NotACause = Extract<BreakdownKind, 'cpu' | 'unexplained' | 'causeway'>;
const NOT_A_CAUSE: Readonly<Record<NotACause, string>> = {
  cpu: 'on CPU',
  unexplained: 'unexplained (no thread id or not on this host)',
  causeway: "waiting for a CPU held by Causeway itself (the tracer's own cost)",
};

/** An evidence line for time that names no cause. */
export const notACause = (kind: NotACause, timeMs: number) => `${NOT_A_CAUSE[kind]}: ${String(timeMs)} ms`;

function describeCulprit(c: Culprit): string {
  if (c.peer !== undefined) return `the peer ${c.peer}`;
  const who = `pid ${String(c.pid)}${c.tid === null ? '' : ` tid ${String(c.tid)}`}${c.comm === null ? '' : ` ${quoted(c.comm)}`}`;
  if (c.trace_id !== undefined)
    return `another request, trace ${c.trace_id} span ${c.span_id ?? '?'}, which held the thread this one runs on (${who}): this request did not make the call`;
  if (c.cuda_kernel !== undefined) return `kernel ${quoted(c.cuda_kernel)} launched by ${who}`;
  if (c.device !== undefined) return `${c.op ?? 'I/O'} on ${c.device} by ${who}`;
  return who;
}

/** How surely the root cause's waits are the request's, in the answer's words. */
const SURENESS: Readonly<Record<AttachScope, string>> = {
  exact: "Its waits are this request's for certain: the app published the span as active when they began.",
  thread: "Its waits are matched to the request by the span's thread and time.",
  ambiguous:
    "Its waits may be another request's: other spans were open on the same thread (an event loop) and the app published no active span to tell them apart.",
  process: 'Its waits are attributed by process only: the span did not say its thread.',
};

/** Sureness when the culprit is another request, known by the stamps of its events. */
const HELD_FOR_CERTAIN =
  "Those waits were the other request's for certain: the app published that request's span as active when they began.";

/** Kernel events of the trace's time were shed (Explanation.kernel_events_shed). */
const SHED =
  "Kernel events of this trace's time were shed because Causeway's sidecar was behind, so kernel causes may be missing.";

export function summarize(
  traceId: string,
  root: { service: string; name: string },
  durationMs: number,
  breakdown: Explanation['breakdown'],
  cause: RootCause | null,
  shed: boolean,
): string {
  const said = findings(traceId, root, durationMs, breakdown, cause);
  return shed ? `${said} ${SHED}` : said;
}

function findings(
  traceId: string,
  root: { service: string; name: string },
  durationMs: number,
  breakdown: Explanation['breakdown'],
  cause: RootCause | null,
): string {
  const head = `Trace ${traceId} (${quoted(root.service)} ${quoted(root.name)}) took ${rounded(durationMs)} ms.`;
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
    return (
      `${head} No kernel-level cause accounts for much of it ` +
      `(a wait that no task ended, such as a sleep or a timeout, names none): ${parts}. Root cause: none.${tracerCost}`
    );
  const chain =
    cause.chain.length > 1
      ? ` Chain: ${cause.chain
          .map(
            (l) =>
              `${l.link === undefined ? '' : `(linked by ${l.link}) `}${l.kind} in ${
                l.link === undefined ? '' : `pid ${String(l.pid)} ${quoted(l.comm)} `
              }tid ${String(l.tid)} (${l.time_ms} ms)`,
          )
          .join(' -> ')}.`
      : '';
  const by = cause.culprit === null ? 'an unknown task' : describeCulprit(cause.culprit);
  return (
    `${head} On its critical path: ${parts}. ` +
    `Root cause: ${cause.kind}, ${cause.time_ms} ms (${Math.round(cause.share * 100)}%), caused by ${by}.${chain}${tracerCost}` +
    (cause.attach_scope === undefined
      ? ''
      : ` ${cause.culprit?.trace_id !== undefined && cause.attach_scope === 'exact' ? HELD_FOR_CERTAIN : SURENESS[cause.attach_scope]}`)
  );
}
