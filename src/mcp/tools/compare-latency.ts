// compare_latency: kernel time per trace and kind, a service's slow traces against its typical ones.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import * as z from 'zod';
import { quoted } from '../../correlate/summary.js';
import { compareLatency } from '../../store/queries.js';
import type { StoreReader } from '../../store/reader.js';
import { READ_ONLY, answer, minutesAgo, service, since } from './conventions.js';

const TITLE = 'Compare slow and typical requests';
const DESCRIPTION =
  "What differs at kernel level between a service's slow traces (at or above the percentile) and its typical ones " +
  '(at or below the median): kernel time per trace, per kind.';

const inputSchema = {
  service,
  since_minutes: since.default(60),
  slow_percentile: z.number().min(50).max(99.9).default(90),
};

const group = z.object({
  traces: z.number(),
  threshold_ms: z.number().nullable(),
  mean_duration_ms: z.number().nullable(),
});

const outputSchema = {
  service: z.string(),
  slow: group,
  typical: group,
  kinds: z.array(
    z.object({
      kind: z.string(),
      slow_ms_per_trace: z.number(),
      typical_ms_per_trace: z.number(),
      difference_ms: z.number(),
    }),
  ),
};

type Comparison = Awaited<ReturnType<typeof compareLatency>>;

function compared(c: Comparison, svc: string, sinceMinutes: number): string {
  if (c.slow.traces === 0) return `No traces of ${quoted(svc)} in the last ${String(sinceMinutes)} minutes.`;
  const top = c.kinds[0];
  const difference =
    top === undefined
      ? ' No kernel time attached to either.'
      : ` Largest difference: ${top.kind}, ${top.difference_ms.toFixed(1)} ms more per slow trace.`;
  return (
    `${String(c.slow.traces)} slow traces (>= ${String(c.slow.threshold_ms)} ms) ` +
    `against ${String(c.typical.traces)} typical (<= ${String(c.typical.threshold_ms)} ms).${difference}`
  );
}

export function registerCompareLatency(server: McpServer, store: StoreReader): void {
  server.registerTool(
    'compare_latency',
    { title: TITLE, description: DESCRIPTION, inputSchema, outputSchema, annotations: { ...READ_ONLY, title: TITLE } },
    async (input) => {
      const c = await compareLatency(store, {
        service: input.service,
        from: minutesAgo(input.since_minutes),
        slowQuantile: input.slow_percentile / 100,
      });
      return answer(compared(c, input.service, input.since_minutes), { ...c });
    },
  );
}
