// Issue 3's part of `npm run bench`: app spans through the real OTLP receiver (HTTP,
// protobuf) into the correlator, on one core; and the delay from a span's arrival to its
// join with kernel events, at 5k spans/s with 100k kernel events/s. Under the `flood` key: the
// OTLP request latency of a real `causeway run`, without and then with an unthrottled ping-pong
// that it follows.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Correlator } from '../../src/correlate/correlator.js';
import type { KernelEvent } from '../../src/kernel/events.js';
import { otlpTypes, startOtlpReceiver, type AppSpan } from '../../src/otlp/index.js';
import { DEFAULT_CONFIG } from '../../src/sidecar/index.js';
import { WORKLOADS } from '../bpf/session.js';
import { startSidecar, type Sidecar } from '../cli/sidecar.js';

const MS = 1_000_000n;
const TID = process.pid + 1;
/** Every span runs here, on thread TID. */
const placedHere = (span: AppSpan) => ({ span, place: { hostPid: process.pid, hostTid: TID } });
const nowNs = () => BigInt(Date.now()) * MS;

/** One OTLP request of `n` spans of this process's thread TID, ending just now. */
function request(n: number): Uint8Array {
  const end = nowNs();
  const spans = Array.from({ length: n }, () => ({
    traceId: randomBytes(16),
    spanId: randomBytes(8),
    name: 'GET /predict',
    kind: 2,
    startTimeUnixNano: (end - 20n * MS).toString(),
    endTimeUnixNano: end.toString(),
    attributes: [{ key: 'causeway.thread.tid', value: { intValue: TID } }],
  }));
  const types = otlpTypes();
  const message = types.ExportTraceServiceRequest.fromObject({
    resourceSpans: [
      {
        resource: {
          attributes: [
            { key: 'process.pid', value: { intValue: process.pid } },
            { key: 'service.name', value: { stringValue: 'bench' } },
          ],
        },
        scopeSpans: [{ spans }],
      },
    ],
  });
  return types.ExportTraceServiceRequest.encode(message).finish();
}

function kernelEvents(n: number, spreadMs: number): KernelEvent[] {
  const end = nowNs();
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
  return `| span arrival to joined with its kernel events, 5k spans/s and 100k kernel events/s (no watermark: the 500 ms longest join wait, as for a span known only by its process; export not included) | p50 ${percentile(sorted, 50).toFixed(0)} ms, p99 ${percentile(sorted, 99).toFixed(0)} ms over ${sorted.length.toLocaleString('en-US')} spans |`;
}

export async function pipelineRows(): Promise<string[]> {
  return [await throughput(), await delay()];
}

/** OTLP/HTTP requests of 100 spans, one at a time, for `seconds`: their latencies in ms, sorted. */
async function requestLatencies(sidecar: Sidecar, pid: number, seconds: number): Promise<number[]> {
  const latencies: number[] = [];
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    const sent = performance.now();
    const { status } = await sidecar.postSpans(pid, 100);
    if (status !== 200) throw new Error(`the sidecar answered ${String(status)} to a request of spans`);
    latencies.push(performance.now() - sent);
  }
  return latencies.sort((a, b) => a - b);
}

const FLOOD_SECONDS = 10;

/**
 * A real `causeway run` following switch_pingpong: OTLP request latency with a throttled
 * ping-pong (1k switches/s), then with an unthrottled one, and what the flood made it shed.
 */
export async function floodRows(): Promise<string[]> {
  const collector = await startOtlpReceiver({ grpc: { host: '127.0.0.1', port: 0 }, http: false, onSpans: () => {} });
  const sidecar = await startSidecar(`http://127.0.0.1:${String(collector.grpcPort)}`, '127.0.0.1:0', [
    '--comm',
    'switch_pingpong',
  ]);
  const run = async (rate: string[]) => {
    const app = spawn(`${WORKLOADS}/switch_pingpong`, [...rate, '--seconds', String(FLOOD_SECONDS + 2)], {
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => app.on('exit', resolve));
    const latencies = await requestLatencies(sidecar, app.pid ?? 0, FLOOD_SECONDS);
    await exited;
    return latencies;
  };
  const row = (what: string, sorted: number[]) =>
    `| OTLP/HTTP request of 100 spans, one at a time, to \`causeway run\` following ${what} | p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms over ${String(sorted.length)} requests |`;
  try {
    const calm = await run(['--rate', '1000']);
    const flood = await run([]);
    // The shed counts come in the loader's STATS frames, once a second.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const metrics = await sidecar.metrics();
    const sum = (pattern: RegExp) =>
      [...metrics.matchAll(pattern)].reduce((total, match) => total + Number(match[1]), 0);
    const shedKernel = sum(/^causeway_kernel_shed_total\{[^}]*where="kernel"[^}]*\} (\d+)/gm);
    const shedSidecar = sum(/^causeway_kernel_shed_total\{[^}]*where="sidecar"[^}]*\} (\d+)/gm);
    const drops = sum(/^causeway_kernel_drops_total\{[^}]*\} (\d+)/gm);
    const episodes = sum(/^causeway_kernel_shed_episodes_total (\d+)/gm);
    return [
      row('a ping-pong at 1k switches/s', calm),
      row('an unthrottled ping-pong (a kernel flood)', flood),
      `| what the flood made the sidecar shed (${String(FLOOD_SECONDS)} s) | ${shedKernel.toLocaleString('en-US')} events shed in the kernel, ${shedSidecar.toLocaleString('en-US')} in the sidecar, over ${String(episodes)} episodes; ${drops.toLocaleString('en-US')} ring-buffer drops |`,
    ];
  } finally {
    await sidecar.stop();
    await collector.close();
  }
}
