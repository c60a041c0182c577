// status: the sidecar's own health, as its counters say.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import * as z from 'zod';
import { READ_ONLY, answer } from './conventions.js';

const TITLE = 'Sidecar status';
const DESCRIPTION =
  'Probes attached, processes followed, the loader (restarts, failures in a row, capture gaps), the GPU processes found (every process using CUDA, with its libraries), events, drops and events shed per kind, correlation lag (the event watermark, the join delays), export health, store size on disk and in memory, and its retention (bounds, oldest rows, rows expired).';

const counters = z.record(z.string(), z.unknown());
const outputSchema = {
  capture: counters,
  loader: z
    .object({
      running: z.boolean(),
      pid: z.number().nullable(),
      restarts: z.number(),
      failuresInARow: z.number().describe('Exits since its last run of 30 s or more: above zero, it keeps failing.'),
      lastExit: z.string().nullable(),
      gapMs: z.number().describe('Time without capture while it was restarted.'),
      eventsLostInGaps: z.number().describe('Kernel events lost in those gaps, estimated from the rate before.'),
    })
    .nullable()
    .describe('The loader supervision; null when capture replays a file.'),
  gpu: z.object({
    processes: z
      .array(
        z.object({
          pid: z.number(),
          comm: z.string(),
          libraries: z.array(z.string()).describe('The CUDA libraries it uses (its executable, for a static runtime).'),
          since: z.string().describe('running: found when capture started; started: seen starting to use CUDA since.'),
        }),
      )
      .describe('Processes using CUDA, by pid, at most 64; whether or not they send spans, they are followed.'),
    listed: z.number().describe('GPU processes known.'),
    unlisted: z.number().describe('Found past the capacity of the list: probed and followed, not listed.'),
  }),
  correlator: counters,
  store: counters,
  export: counters,
  receiver: counters,
  lag: counters,
};

const total = (counts: unknown) =>
  typeof counts === 'object' && counts !== null
    ? Object.values(counts).reduce((sum: number, v) => sum + (typeof v === 'number' ? v : 0), 0)
    : 0;

/** What a person checks first about the loader: whether it runs, and whether it keeps failing. */
function loaderLine(loader: unknown): string {
  if (typeof loader !== 'object' || loader === null) return 'loader: none (replay)';
  const { running, restarts, failuresInARow, lastExit, eventsLostInGaps } = loader as Record<string, unknown>;
  const last = typeof lastExit === 'string' ? `, the last ${lastExit}` : '';
  const failing = Number(failuresInARow) > 0 ? `, failing: ${String(failuresInARow)} exits in a row${last}` : '';
  return `loader ${running === true ? 'running' : 'down, restarting'}${failing}, ${String(restarts)} restarts, about ${String(eventsLostInGaps)} events lost in their gaps`;
}

function joinDelayLine(delay: unknown): string {
  if (typeof delay !== 'object' || delay === null) return 'no span joined yet';
  const { p50, p99 } = delay as Record<string, unknown>;
  return `spans joined ${Number(p50).toFixed(0)} ms after their end (p50; p99 ${Number(p99).toFixed(0)} ms)`;
}

/** The status in one line: what a person checks first. */
function statusLine(s: Record<string, unknown>): string {
  const get = (part: string, key: string) => (s[part] as Record<string, unknown> | undefined)?.[key];
  const n = (part: string, key: string) => String(Number(get(part, key) ?? 0));
  const mib = (key: string) => (Number(get('store', key) ?? 0) / 2 ** 20).toFixed(1);
  const oldest = get('store', 'oldestSpanAgeMs');
  const newest = get('lag', 'newestEventAgeMs');
  const collector = get('export', 'collectorUp') === true ? 'collector up' : 'collector down or not yet reached';
  return [
    loaderLine(s.loader),
    `following ${n('capture', 'followed')} processes, ${n('gpu', 'listed')} of them using CUDA, ${n('capture', 'libraries')} CUDA libraries probed`,
    `${String(total(get('capture', 'events')))} kernel events, ${String(total(get('capture', 'drops')))} dropped in the kernel, ${String(total(get('capture', 'shed')) + total(get('capture', 'shedDelivered')))} shed while behind${get('capture', 'shedding') === true ? ' (shedding now)' : ''}, ${String(total(get('capture', 'shedLate')))} shed too late to join${get('capture', 'sheddingLate') === true ? ' (shedding now)' : ''}`,
    `store: ${n('store', 'events')} events and ${n('store', 'spans')} spans, ${mib('memoryBytes')} MiB in memory, ${mib('diskBytes')} MiB on disk (at most ${mib('maxBytes')} MiB in use), oldest span ${oldest == null ? 'none' : `${(Number(oldest) / 1000).toFixed(0)} s old`} (kept ${Number(get('store', 'retentionMs') ?? 0) / 1000} s), ${n('store', 'rowsExpired')} rows expired, ${n('store', 'rowsShed')} shed`,
    `newest kernel event ${newest == null ? 'none yet' : `${Number(newest).toFixed(0)} ms ago`}`,
    joinDelayLine(get('lag', 'joinDelayMs')),
    `export: ${collector}, ${n('export', 'spansDropped')} kernel spans dropped`,
  ].join('; ');
}

export function registerStatus(server: McpServer, status: () => Promise<Record<string, unknown>>): void {
  server.registerTool(
    'status',
    {
      title: TITLE,
      description: DESCRIPTION,
      inputSchema: {},
      outputSchema,
      annotations: { ...READ_ONLY, title: TITLE },
    },
    async () => {
      const s = await status();
      return answer(statusLine(s), s);
    },
  );
}
