// explain_trace: why one trace was slow (src/correlate/explain.ts).
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import * as z from 'zod';
import { explainTrace } from '../../correlate/explain.js';
import type { TraceSource } from '../../correlate/source.js';
import { LOOKUP_WAIT_MS } from '../../store/reader.js';
import type { StoreView } from '../tools.js';
import { READ_ONLY, UNTRUSTED, answer, refusal } from './conventions.js';

const TITLE = 'Explain a slow trace';
const DESCRIPTION =
  'Why this trace was slow: time per kind on its critical path, and the root cause (kind, culprit, causal chain ' +
  'from the request thread to the root, evidence). root_cause.kind is "none" when kernel causes explain little of ' +
  'the time, null when no span ran where kernel events were captured. kernel_events_shed is true when kernel ' +
  'events of its time were shed (the sidecar was behind), so kernel causes may be missing. A trace sent moments ' +
  `ago and not yet written to the store is waited for (at most ${String(LOOKUP_WAIT_MS / 1000)} s); when the store is ` +
  'further behind, the answer says so: ask again.';

const inputSchema = {
  trace_id: z
    .string()
    .regex(/^[0-9a-fA-F]{32}$/, 'a trace id is 32 hex digits')
    .describe('The trace id, 32 hex digits.'),
};

/** The task, peer or device a root cause names (Culprit in src/correlate/explanation.ts). */
export const culprit = z.object({
  pid: z.number().nullable(),
  tid: z.number().nullable(),
  comm: z.string().nullable(),
  cuda_kernel: z.string().optional(),
  peer: z.string().optional(),
  device: z.string().optional(),
  op: z.string().optional(),
  trace_id: z
    .string()
    .optional()
    .describe('Another request that held the thread this one runs on (an event loop): its trace id.'),
  span_id: z.string().optional().describe("That request's span."),
});

/** Explanation in src/correlate/explanation.ts. */
const outputSchema = {
  trace_id: z.string(),
  source: z.string().describe('Where the evidence came from: the local store or the tracing backend.'),
  duration_ms: z.number(),
  root_span: z.object({ service: z.string(), name: z.string() }),
  breakdown: z.array(z.object({ kind: z.string(), time_ms: z.number(), share: z.number() })),
  root_cause: z
    .object({
      kind: z.string(),
      time_ms: z.number(),
      share: z.number(),
      span_id: z.string(),
      culprit: culprit.nullable(),
      chain: z.array(
        z.object({
          kind: z.string(),
          pid: z.number(),
          tid: z.number(),
          comm: z.string(),
          time_ms: z.number(),
          link: z
            .enum(['waker', 'connection', 'same_thread'])
            .optional()
            .describe(
              "How this step was linked to the request: a wait in another process (waker, connection), or another request's work on the thread this one runs on, which held it (same_thread).",
            ),
          shared_by: z.number().optional().describe('Requests that one wait served.'),
        }),
      ),
      evidence: z.array(z.string()),
      attach_scope: z
        .enum(['exact', 'thread', 'ambiguous', 'process'])
        .optional()
        .describe(
          "How surely the root cause's kernel events are this request's: exact (the app published the span as active), thread, ambiguous (other spans were open on the thread), process (thread unknown).",
        ),
    })
    .nullable(),
  kernel_events_shed: z
    .boolean()
    .describe(
      "Kernel events of the trace's time were shed because the sidecar was behind: kernel causes may be missing from the breakdown and the root cause.",
    ),
  summary: z.string(),
};

/**
 * The explanation from the first source that holds the trace. A trace not found while the store
 * still has rows to write may be among them (sent moments ago, the store behind): the store is
 * asked again once they are written, or told to be behind when they are not within its bound.
 */
async function explained(sources: TraceSource[], store: StoreView, traceId: string) {
  const result = await explainTrace(sources, traceId);
  if (result !== undefined || (await store.lag()).rows === 0) return { result };
  const caughtUp = await store.caughtUp();
  return { result: await explainTrace([store], traceId), caughtUp };
}

async function notFound(
  traceId: string,
  sources: TraceSource[],
  store: StoreView,
  caughtUp: boolean | undefined,
): Promise<string> {
  if (caughtUp !== false)
    return (
      `Trace ${traceId} is not in ${sources.map((s) => s.name).join(' or ')} ` +
      '(too old for the retention, not sampled, or not sent to Causeway).'
    );
  const { rows, behindMs } = await store.lag();
  const others = sources.filter((s) => s !== store).map((s) => s.name);
  return (
    `Trace ${traceId} is not in the ${store.name} yet: ${String(rows)} ${rows === 1 ? 'row is' : 'rows are'} waiting to be written ` +
    `(the store is ${(behindMs / 1000).toFixed(1)} s behind); ask again in a few seconds.` +
    (others.length === 0 ? '' : ` It is not in ${others.join(' or ')} either.`)
  );
}

export function registerExplainTrace(server: McpServer, sources: TraceSource[], store: StoreView): void {
  server.registerTool(
    'explain_trace',
    { title: TITLE, description: DESCRIPTION, inputSchema, outputSchema, annotations: { ...READ_ONLY, title: TITLE } },
    async ({ trace_id }) => {
      const { result, caughtUp } = await explained(sources, store, trace_id.toLowerCase());
      if (result === undefined) return refusal(await notFound(trace_id, sources, store, caughtUp));
      return answer(`${result.summary}\n${UNTRUSTED}`, { ...result });
    },
  );
}
