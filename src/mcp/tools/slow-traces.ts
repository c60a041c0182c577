// slow_traces: the slowest recent traces across the sources, each with its root cause.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import * as z from 'zod';
import { explainTrace } from '../../correlate/explain.js';
import type { TraceQuery, TraceSource, TraceSummary } from '../../correlate/source.js';
import { quoted } from '../../correlate/summary.js';
import { MS, nowUnixNano } from '../../correlate/time.js';
import { READ_ONLY, UNTRUSTED, answer, minutesAgo, service, since } from './conventions.js';
import { culprit } from './explain-trace.js';

const TITLE = 'Slowest recent traces';
const DESCRIPTION =
  'The slowest recent traces (of one service, or all), each with its dominant kernel-level cause from explain_trace, ' +
  'and kernel_events_shed when kernel events of its time were shed (the sidecar was behind), so its cause may be missing.';

const inputSchema = {
  service: service.optional(),
  since_minutes: since,
  min_duration_ms: z.number().min(0).optional().describe('Only traces at least this long.'),
  limit: z.number().int().min(1).max(50).default(10),
};

const outputSchema = {
  traces: z.array(
    z.object({
      trace_id: z.string(),
      service: z.string(),
      name: z.string(),
      start_time: z.string(),
      duration_ms: z.number(),
      source: z.string(),
      cause: z.string().nullable(),
      culprit: culprit.nullable(),
      kernel_events_shed: z
        .boolean()
        .describe(
          "Kernel events of the trace's time were shed because the sidecar was behind: its cause may be missing.",
        ),
    }),
  ),
  unavailable: z.array(z.string()).describe('Sources that could not be asked, with the reason.'),
};

/** The slowest traces of all sources, each once; a source that cannot be asked is listed in `unavailable`. */
async function slowest(sources: TraceSource[], query: TraceQuery) {
  const seen = new Set<string>();
  const found: { source: TraceSource; trace: TraceSummary }[] = [];
  const unavailable: string[] = [];
  for (const source of sources) {
    // A backend that is down leaves the other sources' answer standing, and says so.
    const traces = await source.slowTraces(query).catch((e: unknown) => {
      unavailable.push(`${source.name}: ${e instanceof Error ? e.message : String(e)}`);
      return [];
    });
    for (const trace of traces) {
      if (seen.has(trace.traceId)) continue;
      seen.add(trace.traceId);
      found.push({ source, trace });
    }
  }
  found.sort((a, b) => b.trace.durationMs - a.trace.durationMs);
  return { found: found.slice(0, query.limit), unavailable };
}

/** A trace with the root cause its own source finds for it, and whether kernel events of its time were shed (the explanation asked). */
async function withCause({ source, trace: t }: { source: TraceSource; trace: TraceSummary }) {
  const e = await explainTrace([source], t.traceId);
  return {
    trace_id: t.traceId,
    service: t.service,
    name: t.name,
    start_time: new Date(Number(t.startUnixNano / MS)).toISOString(),
    duration_ms: t.durationMs,
    source: source.name,
    cause: e?.root_cause?.kind ?? null,
    culprit: e?.root_cause?.culprit ?? null,
    kernel_events_shed: e?.kernel_events_shed ?? false,
  };
}

export function registerSlowTraces(server: McpServer, sources: TraceSource[]): void {
  server.registerTool(
    'slow_traces',
    { title: TITLE, description: DESCRIPTION, inputSchema, outputSchema, annotations: { ...READ_ONLY, title: TITLE } },
    async ({ service: svc, since_minutes, min_duration_ms, limit }) => {
      const { found, unavailable } = await slowest(sources, {
        ...(svc === undefined ? {} : { service: svc }),
        from: minutesAgo(since_minutes),
        to: nowUnixNano(),
        limit,
        ...(min_duration_ms === undefined ? {} : { minDurationMs: min_duration_ms }),
      });
      const traces = await Promise.all(found.map(withCause));
      const lines = traces.map(
        (t) =>
          `${t.trace_id} ${quoted(t.service)} ${quoted(t.name)} ${t.duration_ms.toFixed(1)} ms, cause ${t.cause ?? 'unknown'}` +
          (t.kernel_events_shed ? ' (kernel events shed: the cause may be missing)' : ''),
      );
      const listed =
        traces.length === 0
          ? `No traces${svc === undefined ? '' : ` of ${quoted(svc)}`} in the last ${String(since_minutes)} minutes.`
          : `${String(traces.length)} slowest traces:\n${lines.join('\n')}\n${UNTRUSTED}`;
      const skipped = unavailable.length === 0 ? '' : `\nNot asked: ${unavailable.join('; ')}`;
      return answer(`${listed}${skipped}`, { traces, unavailable });
    },
  );
}
