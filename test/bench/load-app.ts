// The app of the whole-sidecar load (load.ts), in a process of its own so that what it measures
// is the sidecar, not the bench: the bench also decodes the kernel spans coming back and asks
// MCP, and an app sharing its event loop timed that work as the sidecar's. Started through
// fork(): its first message is an AppSettings; it sends a request every spansPerRequest /
// spansPerS seconds, due by the clock whatever the answers take, each request's spans from one
// of the pids in turn. 'open' starts the window: from then on it sends the bench, every
// STREAM_EVERY_MS, the first trace of each request it sent and of each answered 200, with when
// it was sent (ms since the Unix epoch, as both processes read it). 'close' ends it: no more
// requests, those of the window in flight are waited for, and it answers with an AppReport.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { otlpRequest } from './pipeline.js';

export interface AppSettings {
  url: string;
  pids: number[];
  spansPerS: number;
  spansPerRequest: number;
  spanNs: string;
  timeoutMs: number;
}

/** Window requests' first traces since the last message: [trace id, sent at (epoch ms)]. */
export interface AppSent {
  sent: [string, number][];
  accepted: [string, number][];
}

export interface AppReport {
  sent: number;
  ok: number;
  /** Answered with another status than 200, by status. */
  refused: Record<string, number>;
  /** No answer: a connection error or the client's timeout. */
  failed: number;
  errors: string[];
  /** Every window request's time to its answer or failure. */
  ms: number[];
  /** The app's event-loop delay over the window. */
  loopDelay: { p99Ms: number; maxMs: number };
  /** The app's CPU over the window (user + system), in seconds, and the window's length. */
  cpuS: number;
  windowS: number;
}

const STREAM_EVERY_MS = 100;

if (process.send === undefined) throw new Error('load-app.js runs through fork()');
const send = process.send.bind(process);
/** Epoch milliseconds below the millisecond, the same clock in the bench process. */
const epochMs = () => performance.timeOrigin + performance.now();

const settings = await new Promise<AppSettings>((resolve) =>
  process.once('message', (message) => {
    resolve(message as AppSettings);
  }),
);
const everyMs = (1000 * settings.spansPerRequest) / settings.spansPerS;
const spanNs = BigInt(settings.spanNs);
const began = performance.now();
let posted = 0;
let window: 'before' | 'open' | 'closed' = 'before';
const counts = { sent: 0, ok: 0, refused: {} as Record<string, number>, failed: 0 };
const errors = new Set<string>();
const ms: number[] = [];
let unsent: AppSent = { sent: [], accepted: [] };
const inFlight = new Set<Promise<void>>();

function post(): void {
  const pid = settings.pids[posted % settings.pids.length] ?? 0;
  posted++;
  const { body, traceIds } = otlpRequest(settings.spansPerRequest, { pid, durationNs: spanNs });
  const counted = window === 'open';
  const start = performance.now();
  const first: [string, number] = [traceIds[0] ?? '', epochMs()];
  if (counted) {
    counts.sent++;
    unsent.sent.push(first);
  }
  const request = fetch(settings.url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-protobuf' },
    body,
    signal: AbortSignal.timeout(settings.timeoutMs),
  })
    .then(async (response) => {
      await response.arrayBuffer();
      if (!counted) return;
      if (response.status === 200) {
        counts.ok++;
        unsent.accepted.push(first);
      } else counts.refused[response.status] = (counts.refused[response.status] ?? 0) + 1;
    })
    .catch((error: unknown) => {
      if (!counted) return;
      counts.failed++;
      errors.add(String((error as { cause?: unknown }).cause ?? error));
    })
    .finally(() => {
      if (counted) ms.push(performance.now() - start);
      inFlight.delete(request);
    });
  inFlight.add(request);
}

const schedule = setInterval(
  () => {
    const due = Math.floor((performance.now() - began) / everyMs) + 1;
    while (posted < due) post();
  },
  Math.max(1, everyMs / 2),
);
const loop = monitorEventLoopDelay({ resolution: 10 });
let stream: NodeJS.Timeout | undefined;
const flushSent = () => {
  if (unsent.sent.length + unsent.accepted.length === 0) return;
  send(unsent);
  unsent = { sent: [], accepted: [] };
};
let opened = { at: 0, cpu: process.cpuUsage() };

process.on('message', (message) => {
  if (message === 'open') {
    loop.enable();
    opened = { at: performance.now(), cpu: process.cpuUsage() };
    window = 'open';
    stream = setInterval(flushSent, STREAM_EVERY_MS);
  } else if (message === 'close') {
    window = 'closed';
    clearInterval(schedule);
    const cpu = process.cpuUsage(opened.cpu);
    const windowS = (performance.now() - opened.at) / 1000;
    loop.disable();
    void Promise.all(inFlight).then(() => {
      clearInterval(stream);
      flushSent();
      send({
        ...counts,
        errors: [...errors],
        ms,
        loopDelay: { p99Ms: loop.percentile(99) / 1e6, maxMs: loop.max / 1e6 },
        cpuS: (cpu.user + cpu.system) / 1e6,
        windowS,
      } satisfies AppReport);
    });
  }
});
// The bench gone: nothing more to do.
process.on('disconnect', () => process.exit(0));
