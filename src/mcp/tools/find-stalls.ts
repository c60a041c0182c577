// find_stalls: kernel stalls in the store, longest first, with the span each was attached to.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import * as z from 'zod';
import { quoted } from '../../correlate/summary.js';
import { KIND_NAMES } from '../../kernel/events.js';
import { findStalls } from '../../store/queries.js';
import type { StoreReader } from '../../store/reader.js';
import { READ_ONLY, UNTRUSTED, answer, minutesAgo, service, since } from './conventions.js';

const TITLE = 'Find kernel stalls';
const DESCRIPTION =
  'Kernel stalls (GPU waits, run-queue waits, blocked time, futex waits, block I/O, TCP retransmits) by kind, ' +
  'process, service, time window and minimum duration, longest first, with the trace and span each was attached to.';

const KINDS = Object.values(KIND_NAMES) as [string, ...string[]];

const inputSchema = {
  kind: z.enum(KINDS).optional(),
  pid: z.number().int().positive().optional(),
  service: service.optional(),
  since_minutes: since,
  min_duration_ms: z.number().min(0).default(1),
  limit: z.number().int().min(1).max(200).default(20),
};

const outputSchema = {
  stalls: z.array(
    z.object({
      kind: z.string(),
      pid: z.number(),
      tid: z.number(),
      comm: z.string(),
      start_time: z.string(),
      duration_ms: z.number(),
      other: z
        .object({ pid: z.number(), tid: z.number().nullable(), comm: z.string().nullable() })
        .nullable()
        .describe(
          'The waker (futex.wait, sched.blocked) or the task that held the CPU longest during the wait (sched.runqueue).',
        ),
      cuda_kernel: z.string().nullable(),
      trace_id: z.string().nullable(),
      span_id: z.string().nullable(),
      service: z.string().nullable(),
    }),
  ),
};

export function registerFindStalls(server: McpServer, store: StoreReader): void {
  server.registerTool(
    'find_stalls',
    { title: TITLE, description: DESCRIPTION, inputSchema, outputSchema, annotations: { ...READ_ONLY, title: TITLE } },
    async (input) => {
      const stalls = await findStalls(store, { ...input, from: minutesAgo(input.since_minutes) });
      const lines = stalls.slice(0, 10).map((s) => {
        const trace = s.trace_id === null ? '' : ` trace ${s.trace_id}`;
        return `${s.kind} ${s.duration_ms.toFixed(2)} ms pid ${String(s.pid)} tid ${String(s.tid)} ${quoted(s.comm)}${trace}`;
      });
      return answer(
        stalls.length === 0
          ? 'No stalls match.'
          : `${String(stalls.length)} stalls, longest first:\n${lines.join('\n')}\n${UNTRUSTED}`,
        { stalls },
      );
    },
  );
}
