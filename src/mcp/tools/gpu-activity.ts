// gpu_activity: per process using CUDA, its launches, waits, copies, kernels and contention.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import * as z from 'zod';
import { quoted } from '../../correlate/summary.js';
import { gpuActivity } from '../../store/queries.js';
import type { StoreReader } from '../../store/reader.js';
import { READ_ONLY, UNTRUSTED, answer, minutesAgo, since } from './conventions.js';

const TITLE = 'GPU activity per process';
const DESCRIPTION =
  'Per process using CUDA: launches, synchronisation waits, memcpy, its top kernels, and cross-process contention ' +
  '(other processes launching while it waited on the GPU).';

const inputSchema = { pid: z.number().int().positive().optional(), since_minutes: since };

const outputSchema = {
  processes: z.array(
    z.object({
      pid: z.number(),
      comm: z.string(),
      launches: z.number(),
      sync_waits: z.number(),
      sync_wait_ms: z.number(),
      memcpy_count: z.number(),
      memcpy_bytes: z.number(),
      memcpy_ms: z.number(),
      top_kernels: z.array(z.object({ name: z.string(), launches: z.number() })),
      contention: z.array(z.object({ pid: z.number(), comm: z.string(), launches_during_waits: z.number() })),
    }),
  ),
};

type Process = Awaited<ReturnType<typeof gpuActivity>>[number];

function processLine(p: Process): string {
  const contended =
    p.contention.length > 0 ? `, contended by ${p.contention.map((c) => `pid ${String(c.pid)}`).join(', ')}` : '';
  return (
    `pid ${String(p.pid)} ${quoted(p.comm)}: ${String(p.launches)} launches, ` +
    `${p.sync_wait_ms.toFixed(1)} ms in ${String(p.sync_waits)} syncs${contended}`
  );
}

export function registerGpuActivity(server: McpServer, store: StoreReader): void {
  server.registerTool(
    'gpu_activity',
    { title: TITLE, description: DESCRIPTION, inputSchema, outputSchema, annotations: { ...READ_ONLY, title: TITLE } },
    async (input) => {
      const processes = await gpuActivity(store, {
        ...(input.pid === undefined ? {} : { pid: input.pid }),
        from: minutesAgo(input.since_minutes),
      });
      return answer(
        processes.length === 0
          ? 'No CUDA activity captured in that window.'
          : `${processes.map(processLine).join('\n')}\n${UNTRUSTED}`,
        { processes },
      );
    },
  );
}
