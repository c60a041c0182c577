// Issue 3's part of `npm run bench`: app spans through the real OTLP receiver (HTTP,
// protobuf) into the correlator, on one core; and the delay from a span's arrival to its
// join with kernel events, at 5k spans/s with 100k kernel events/s.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Correlator } from '../../src/correlate/correlator.js';
import { wallClockUnixNano } from '../../src/kernel/clock.js';
import type { KernelEvent } from '../../src/kernel/events.js';
import { otlpTypes, startOtlpReceiver, type AppSpan } from '../../src/otlp/index.js';
import { DEFAULT_CONFIG } from '../../src/sidecar/index.js';

const MS = 1_000_000n;
const TID = process.pid + 1;
/** Every span runs here, on thread TID. */
const placedHere = (span: AppSpan) => ({ span, place: { hostPid: process.pid, hostTid: TID } });

/**
 * One OTLP/HTTP protobuf request of `n` root spans of process `pid` (of thread `tid` if given),
 * each `durationNs` long, each its own trace; with their trace ids in hex. They end over the last
 * millisecond, evenly: a paced workload bursts once a millisecond, and spans ending together
 * would all catch a burst or all miss it.
 */
export function otlpRequest(
  n: number,
  { pid, tid, durationNs }: { pid: number; tid?: number; durationNs: bigint },
): { body: Uint8Array; traceIds: string[] } {
  // Below the millisecond: Date.now()'s whole milliseconds would put every request's spans at one
  // phase of the millisecond, where a paced workload's bursts may never fall.
  const now = wallClockUnixNano();
  // One draw for every id of the request: a draw per id cost the load's app (issue 11) a sixth
  // of its CPU, and an app that lags its own clock measures its own delay, not the receiver's.
  const ids = randomBytes(24 * n);
  const spans = Array.from({ length: n }, (_, i) => {
    const end = now - (BigInt(i) * MS) / BigInt(n);
    return {
      traceId: ids.subarray(24 * i, 24 * i + 16),
      spanId: ids.subarray(24 * i + 16, 24 * i + 24),
      name: 'GET /predict',
      kind: 2,
      startTimeUnixNano: (end - durationNs).toString(),
      endTimeUnixNano: end.toString(),
      attributes: tid === undefined ? [] : [{ key: 'causeway.thread.tid', value: { intValue: tid } }],
    };
  });
  const types = otlpTypes();
  const message = types.ExportTraceServiceRequest.fromObject({
    resourceSpans: [
      {
        resource: {
          attributes: [
            { key: 'process.pid', value: { intValue: pid } },
            { key: 'service.name', value: { stringValue: 'bench' } },
          ],
        },
        scopeSpans: [{ spans }],
      },
    ],
  });
  return {
    body: types.ExportTraceServiceRequest.encode(message).finish(),
    traceIds: spans.map((span) => span.traceId.toString('hex')),
  };
}

/** One OTLP request of `n` spans of this process's thread TID, 20 ms each, ending just now. */
const request = (n: number) => otlpRequest(n, { pid: process.pid, tid: TID, durationNs: 20n * MS }).body;

function kernelEvents(n: number, spreadMs: number): KernelEvent[] {
  const end = wallClockUnixNano();
  return Array.from({ length: n }, (_, i) => {
    const start = end - BigInt(Math.floor((i / n) * spreadMs)) * MS - MS;
    return {
      kind: 'sched.runqueue',
      pid: process.pid,
      tid: TID,
      comm: 'bench',
      startUnixNano: start,
      endUnixNano: start + 50_000n,
      attributes: {},
    };
  });
}

export const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function post(port: number, body: Uint8Array): Promise<void> {
  const send = () =>
    fetch(`http://127.0.0.1:${String(port)}/v1/traces`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-protobuf' },
      body,
    });
  // A kept-alive connection the server is closing as idle fails once; a new one then succeeds.
  const response = await send().catch(send);
  if (response.status !== 200) throw new Error(`receiver answered ${String(response.status)}`);
  await response.arrayBuffer();
}

/** Receiver and correlator throughput, one core (the load generator shares it). */
async function throughput(): Promise<string> {
  const correlator = new Correlator<AppSpan>({
    ...DEFAULT_CONFIG.correlator,
    onJoined: () => undefined,
    maxPendingSpans: 1_000_000,
  });
  correlator.addEvents(kernelEvents(100_000, 10_000));
  const receiver = await startOtlpReceiver({
    grpc: false,
    http: { host: '127.0.0.1', port: 0 },
    onSpans: (spans) => void correlator.addSpans(spans.map(placedHere)),
  });
  const body = request(100);
  const requests = Number(process.env.BENCH_REQUESTS ?? 1000);
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let sent = 0; sent < requests; sent += 4)
    await Promise.all([0, 1, 2, 3].map(() => post(receiver.httpPort ?? 0, body)));
  correlator.join();
  const wallS = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  await receiver.close();
  const spans = requests * 100;
  return `| app spans received (OTLP/HTTP protobuf, 100 per request) and queued for joining, 100k kernel events held | ${Math.round(spans / ((used.user + used.system) / 1e6)).toLocaleString('en-US')} spans/s per core (${spans.toLocaleString('en-US')} in ${wallS.toFixed(2)} s) |`;
}

/** Arrival at the receiver to join with kernel events, at 5k spans/s and 100k events/s. */
async function delay(): Promise<string> {
  const arrived = new Map<string, number>();
  const delays: number[] = [];
  const correlator = new Correlator<AppSpan>({
    ...DEFAULT_CONFIG.correlator,
    onJoined: (attachments) => {
      const now = performance.now();
      for (const a of attachments) delays.push(now - (arrived.get(a.span.spanId) ?? now));
    },
  });
  const receiver = await startOtlpReceiver({
    grpc: false,
    http: { host: '127.0.0.1', port: 0 },
    onSpans: (spans) => {
      const now = performance.now();
      for (const span of spans) arrived.set(span.spanId, now);
      correlator.addSpans(spans.map(placedHere));
    },
  });
  const joining = setInterval(() => {
    correlator.join();
  }, 100);
  const seconds = 5;
  for (let tick = 0; tick < seconds * 10; tick++) {
    const tickStart = performance.now();
    correlator.addEvents(kernelEvents(10_000, 100)); // 100k events/s
    await Promise.all(Array.from({ length: 5 }, () => post(receiver.httpPort ?? 0, request(100)))); // 5k spans/s
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 100 - (performance.now() - tickStart))));
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
  clearInterval(joining);
  await receiver.close();
  const sorted = delays.sort((a, b) => a - b);
  return `| span arrival to joined with its kernel events, 5k spans/s and 100k kernel events/s (no watermark: joined by the clock, the 500 ms longest join wait after its end; export not included) | p50 ${percentile(sorted, 50).toFixed(0)} ms, p99 ${percentile(sorted, 99).toFixed(0)} ms over ${sorted.length.toLocaleString('en-US')} spans |`;
}

export async function pipelineRows(): Promise<string[]> {
  return [await throughput(), await delay()];
}
