// The main thread's CPU per app span along the sidecar's whole path for it, in this process:
// OTLP/HTTP protobuf bodies decoded as the receiver decodes them, placed, queued in the
// correlator and handed to an in-memory store, with kernel events on the process's threads;
// the watermark advanced after each request as the loader's would be, so spans join; each
// joined span built into its kernel spans (not sent) and its attachments handed to the store.
// The receiver's HTTP and the exporter's sending are left out: the pipeline and sidecar-load
// rows measure those. Time is simulated (the correlator's and the store's clocks), so the run
// goes as fast as the main thread does.
import { performance } from 'node:perf_hooks';
import { setImmediate as turn } from 'node:timers/promises';
import { Correlator, type PlacedSpan } from '../../src/correlate/correlator.js';
import { HostIds } from '../../src/correlate/hostpid.js';
import { place } from '../../src/correlate/place.js';
import { KernelSpanBuilder } from '../../src/export/spans.js';
import type { KernelEvent } from '../../src/kernel/events.js';
import { ProcessTable } from '../../src/kernel/processes.js';
import { decodeProtobufRequest, otlpTypes, type AppSpan } from '../../src/otlp/index.js';
import { DEFAULT_CONFIG } from '../../src/sidecar/index.js';
import { IN_MEMORY, Store } from '../../src/store/store.js';
import { mainThreadCpuMs } from './store.js';

const MS = 1_000_000n;
/** Requests in all; the first WARMUP_REQUESTS warm the JIT, the correlator and the store up and are not measured. */
const REQUESTS = 1500;
const WARMUP_REQUESTS = 500;
/** As the load's app sends them (issue 11). */
const SPANS_PER_REQUEST = 100;
/** The simulated time from one request to the next: 10k spans/s, the load's rate. */
const REQUEST_INTERVAL_NS = 10n * MS;
/** Each span lasts this long, and the next ends this much later: a request's spans fill its interval. */
const SPAN_NS = 100_000n;
/** 20k kernel events/s per 10k spans/s: each span has events of its time to join. */
const EVENTS_PER_REQUEST = 200;
const EVENT_SPACING_NS = 50_000n;
const EVENT_NS = 40_000n;
/** A request's events begin this long before its time: they are those its spans, sent after they end, overlap. */
const EVENTS_LEAD_NS = 20n * MS;
/** How far the watermark is behind the request's time, as a loader's read lags the clock. */
const WATERMARK_LAG_NS = 5n * MS;
/** A turn of the event loop every this many requests, so that the store's worker hand-offs go out as in the sidecar. */
const REQUESTS_PER_TURN = 10;
/** The kernel events run on this many threads of this process (ids after its pid), in turn. */
const THREADS = 4;
/** A real app's resource and scope: the kernel spans' Resource is found from it per joined span. */
const RESOURCE_ATTRIBUTES = [
  { key: 'process.pid', value: { intValue: process.pid } },
  { key: 'service.name', value: { stringValue: 'bench' } },
  { key: 'telemetry.sdk.language', value: { stringValue: 'python' } },
  { key: 'telemetry.sdk.name', value: { stringValue: 'opentelemetry' } },
  { key: 'telemetry.sdk.version', value: { stringValue: '1.27.0' } },
  { key: 'host.name', value: { stringValue: 'bench-host' } },
  { key: 'process.executable.path', value: { stringValue: '/usr/bin/python3' } },
];
const SCOPE = { name: 'opentelemetry.instrumentation.flask', version: '0.48b0' };

type Stage =
  'events' | 'decode' | 'place' | 'correlator.addSpans' | 'store.addSpans' | 'join' | 'build' | 'store.addAttachments';

/** Request `r`'s body: SPANS_PER_REQUEST server spans, each its own trace, ending over its interval from `start`. */
function requestBody(r: number, start: bigint): Uint8Array {
  const spans = Array.from({ length: SPANS_PER_REQUEST }, (_, i) => {
    // Ids from the span's number, never zero: unique over the run.
    const n = r * SPANS_PER_REQUEST + i + 1;
    const ids = Buffer.alloc(24);
    ids.writeUInt32BE(n, 12);
    ids.writeUInt32BE(n, 20);
    const end = start + BigInt(i) * SPAN_NS;
    return {
      traceId: ids.subarray(0, 16),
      spanId: ids.subarray(16, 24),
      name: 'GET /predict',
      kind: 2,
      startTimeUnixNano: (end - SPAN_NS).toString(),
      endTimeUnixNano: end.toString(),
      attributes: [{ key: 'http.route', value: { stringValue: '/predict' } }],
    };
  });
  const type = otlpTypes().ExportTraceServiceRequest;
  const message = type.fromObject({
    resourceSpans: [{ resource: { attributes: RESOURCE_ATTRIBUTES }, scopeSpans: [{ scope: SCOPE, spans }] }],
  });
  return type.encode(message).finish();
}

/** The run-queue waits that arrive with the request of time `now`: EVENTS_PER_REQUEST over the threads, from EVENTS_LEAD_NS before. */
function kernelEvents(now: bigint): KernelEvent[] {
  const from = now - EVENTS_LEAD_NS;
  return Array.from({ length: EVENTS_PER_REQUEST }, (_, i) => {
    const start = from + BigInt(i) * EVENT_SPACING_NS;
    return {
      kind: 'sched.runqueue',
      pid: process.pid,
      tid: process.pid + 1 + (i % THREADS),
      comm: 'bench',
      startUnixNano: start,
      endUnixNano: start + EVENT_NS,
      attributes: {},
    };
  });
}

export async function spanPathRows(): Promise<string[]> {
  // Simulated time starts far enough back that the last request is still before the wall clock.
  const t0 = BigInt(Date.now()) * MS - BigInt(REQUESTS + 200) * REQUEST_INTERVAL_NS;
  const requestTime = (r: number) => t0 + BigInt(r) * REQUEST_INTERVAL_NS;
  // Encoded beforehand: the app's encoding is not the sidecar's work.
  const bodies = Array.from({ length: REQUESTS }, (_, r) => requestBody(r, requestTime(r)));
  let now = t0;
  const wallMs: Record<Stage, number> = {
    events: 0,
    decode: 0,
    place: 0,
    'correlator.addSpans': 0,
    'store.addSpans': 0,
    join: 0,
    build: 0,
    'store.addAttachments': 0,
  };
  /** Runs `work`, adding its wall time to `stage`. */
  const timed = <T>(stage: Stage, work: () => T): T => {
    const began = performance.now();
    const result = work();
    wallMs[stage] += performance.now() - began;
    return result;
  };

  const store = await Store.open({ ...DEFAULT_CONFIG.store, path: IN_MEMORY, now: () => now });
  const builder = new KernelSpanBuilder();
  let built = 0;
  const correlator = new Correlator<AppSpan>({
    ...DEFAULT_CONFIG.correlator,
    now: () => now,
    // Bounded by the run, not by the default: no span is refused, so every one takes the whole path.
    maxPendingSpans: REQUESTS * SPANS_PER_REQUEST,
    // What the sidecar does with joined spans, less sending them: timed apart, inside the join stage.
    onJoined: (attachments) => {
      timed('build', () => {
        for (const attachment of attachments) built += builder.build(attachment).length;
      });
      timed('store.addAttachments', () => {
        store.addAttachments(attachments);
      });
    },
  });
  const hostIds = new HostIds(new ProcessTable());

  /** Requests [from, to), each with its events first, as they would arrive. */
  const run = async (from: number, to: number) => {
    for (const [i, body] of bodies.slice(from, to).entries()) {
      const r = from + i;
      now = requestTime(r);
      const events = kernelEvents(now);
      timed('events', () => {
        correlator.addEvents(events);
        store.addEvents(events);
      });
      const { spans } = timed('decode', () => decodeProtobufRequest(body));
      const placed = timed('place', () =>
        spans.map((span): PlacedSpan<AppSpan> => ({
          span,
          place: place(span, hostIds, DEFAULT_CONFIG.threadAttribute),
        })),
      );
      timed('correlator.addSpans', () => correlator.addSpans(placed));
      timed('store.addSpans', () => {
        store.addSpans(placed);
      });
      timed('join', () => {
        correlator.advanceWatermark(now - WATERMARK_LAG_NS);
      });
      if (r % REQUESTS_PER_TURN === 0) await turn();
    }
  };

  try {
    await run(0, WARMUP_REQUESTS);
    for (const stage of Object.keys(wallMs) as Stage[]) wallMs[stage] = 0;
    built = 0;
    const before = correlator.counters();
    const cpuBegan = mainThreadCpuMs();
    const wallBegan = performance.now();
    await run(WARMUP_REQUESTS, REQUESTS);
    const cpuMs = mainThreadCpuMs() - cpuBegan;
    const wallS = (performance.now() - wallBegan) / 1000;
    const after = correlator.counters();
    const spans = (REQUESTS - WARMUP_REQUESTS) * SPANS_PER_REQUEST;
    const joined = after.spansJoined - before.spansJoined;
    const withEvents = after.spansWithEvents - before.spansWithEvents;
    // A run where spans did not join would measure a shorter path than the sidecar's.
    if (withEvents === 0) throw new Error(`span-path: no span joined with kernel events (${String(joined)} joined)`);
    const perSpan = (ms: number) => ((ms * 1000) / spans).toFixed(2);
    const count = (n: number) => n.toLocaleString('en-US');
    return [
      `| main thread's CPU per app span along its whole path, in process: ${String(SPANS_PER_REQUEST)}-span OTLP protobuf requests decoded, placed, queued in the correlator and the in-memory store with ${String(EVENTS_PER_REQUEST)} kernel events each, joined spans built into kernel spans (not sent) and their attachments stored; ${count(spans)} spans after ${count(WARMUP_REQUESTS * SPANS_PER_REQUEST)} of warm-up | ${perSpan(cpuMs)} µs per span (${wallS.toFixed(2)} s; ${count(joined)} spans joined, ${count(withEvents)} with events, ${count(after.eventsAttached - before.eventsAttached)} events attached, ${count(built)} kernel spans built) |`,
      `| its wall time per span by stage | events ${perSpan(wallMs.events)}, decode ${perSpan(wallMs.decode)}, place ${perSpan(wallMs.place)}, correlator.addSpans ${perSpan(wallMs['correlator.addSpans'])}, store.addSpans ${perSpan(wallMs['store.addSpans'])}, join ${perSpan(wallMs.join)} (of which build ${perSpan(wallMs.build)}, store.addAttachments ${perSpan(wallMs['store.addAttachments'])}) µs |`,
    ];
  } finally {
    await store.close();
  }
}
