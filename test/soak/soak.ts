// The soak: `causeway run` under moderate, bounded load for a while, with the collector stopped
// twice and the loader killed once in the middle. Kernel events come from a followed process
// passing a token between two threads (each hand-off a futex wait and an off-CPU interval),
// app spans from this process over OTLP/HTTP, kernel spans go to an OTLP/gRPC receiver here
// (the collector), closed and opened again on its port for each outage. The sidecar's RSS,
// heap (in use, and live after the latest full collection), handles, open files and store size
// are sampled every few seconds and reported as slopes over the second half of the run, when the
// bounds have filled; the counters say what was lost and where.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOtlpReceiver, type OtlpReceiver } from '../../src/otlp/index.js';
import { loaderPid, metricValue, startSidecar, until } from '../cli/sidecar.js';
import { startWorkload } from '../bpf/session.js';

export interface SoakOptions {
  durationMs: number;
  /** Context switches per second of the followed process: about as many kernel events. */
  switchesPerS: number;
  spansPerS: number;
  /** Each of the two collector outages. */
  outageMs: number;
  sampleEveryMs: number;
  log: (line: string) => void;
}

export interface Sample {
  atS: number;
  rssBytes: number;
  heapBytes: number;
  /** The heap in use after the latest full collection; null before the first. */
  liveHeapBytes: number | null;
  handles: number;
  openFiles: number;
  storeDiskBytes: number;
  storeEvents: number;
}

export interface SoakReport {
  samples: Sample[];
  /**
   * Per minute, by least squares over the samples of the second half: by then every bound has
   * filled (the first minutes are the correlator's and the store's rows filling up to them).
   */
  slopes: {
    rssMiB: number;
    heapMiB: number;
    liveHeapMiB: number;
    handles: number;
    openFiles: number;
    storeMiB: number;
  };
  /**
   * App spans sent to the sidecar; refused: those in requests answered 503 (overload, retryable);
   * unanswered: those in requests whose connection failed (as a collector would retry them).
   */
  spans: { posted: number; accepted: number; refused: number; unanswered: number; errors: string[] };
  kernelEvents: { decoded: number; perS: number; droppedInKernel: number; lostInLoaderGap: number };
  /** queuedInOutages: the spans waiting for the collector halfway through each outage. */
  kernelSpans: {
    sent: number;
    received: number;
    dropped: number;
    queuedAtEnd: number;
    exportFailures: number;
    queuedInOutages: number[];
  };
  store: { rowsShed: number; rowsExpired: number; flushErrors: number };
  loader: { restarts: number };
}

const metric = (text: string, name: string): number => metricValue(text, name) ?? 0;

/** Least-squares slope of y over x. */
export function slope(points: [x: number, y: number][]): number {
  const n = points.length;
  const mean = (f: (p: [number, number]) => number) => points.reduce((sum, p) => sum + f(p), 0) / n;
  const mx = mean((p) => p[0]);
  const my = mean((p) => p[1]);
  const sxy = points.reduce((sum, [x, y]) => sum + (x - mx) * (y - my), 0);
  const sxx = points.reduce((sum, [x]) => sum + (x - mx) ** 2, 0);
  return sxx === 0 ? 0 : sxy / sxx;
}

export async function soak(options: SoakOptions): Promise<SoakReport> {
  const { log } = options;
  const dir = mkdtempSync(join(tmpdir(), 'causeway-soak-'));
  const received = new Set<string>();
  const collect = (port: number) =>
    startOtlpReceiver({
      grpc: { host: '127.0.0.1', port },
      http: false,
      onSpans: (spans) => {
        for (const span of spans) received.add(span.spanId);
      },
    });
  let collector: OtlpReceiver | undefined = await collect(0);
  const collectorPort = collector.grpcPort ?? 0;
  const sidecar = await startSidecar(`http://127.0.0.1:${String(collectorPort)}`, '127.0.0.1:0', [
    '--store-path',
    join(dir, 'store.duckdb'),
  ]);
  const seconds = String(Math.ceil(options.durationMs / 1000) + 60);
  const worker = startWorkload('switch_pingpong', ['--rate', String(options.switchesPerS), '--seconds', seconds]);
  worker.truth.catch(() => undefined); // stopped at the end
  const samples: Sample[] = [];
  const started = Date.now();
  const queuedInOutages: number[] = [];
  let posted = 0;
  let refused = 0;
  let unanswered = 0;
  const errors = new Set<string>();
  const requests = new Set<Promise<void>>();
  try {
    // App spans of the worker, 10 requests a second, each span 100 µs ending as it is sent: at the
    // process level, each is attached a few of the worker's events, a few kernel spans to export.
    const perRequest = Math.max(1, Math.round(options.spansPerS / 10));
    const poster = setInterval(() => {
      posted += perRequest;
      const request = sidecar
        .postSpans(worker.pid, perRequest, 100_000n)
        .then(
          ({ status }) => {
            if (status !== 200) refused += perRequest;
          },
          (error: unknown) => {
            unanswered += perRequest;
            errors.add(String((error as { cause?: unknown }).cause ?? error));
          },
        )
        .finally(() => requests.delete(request));
      requests.add(request);
    }, 100);
    const sampler = setInterval(() => {
      void sample(sidecar.pid, sidecar.metrics, (Date.now() - started) / 1000).then((s) => samples.push(s));
    }, options.sampleEveryMs);
    const at = (share: number) => started + share * options.durationMs;
    const waitUntil = (time: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, time - Date.now())));
    for (const [share, what] of [
      [0.25, 'outage'],
      [0.5, 'loader'],
      [0.65, 'outage'],
    ] as const) {
      await waitUntil(at(share));
      if (what === 'loader') {
        const pid = await loaderPid(sidecar.pid);
        log(`killing the loader (pid ${String(pid)}) with SIGKILL`);
        process.kill(pid, 'SIGKILL');
      } else {
        log(`stopping the collector for ${String(options.outageMs / 1000)} s`);
        await collector.close();
        collector = undefined;
        const back = Date.now() + options.outageMs;
        await waitUntil(back - options.outageMs / 2);
        queuedInOutages.push(metric(await sidecar.metrics(), 'causeway_export_queue_spans'));
        await waitUntil(back);
        collector = await collect(collectorPort);
        log('collector back');
      }
    }
    await waitUntil(at(1));
    clearInterval(poster);
    clearInterval(sampler);
    await Promise.all(requests);
    log('load stopped; waiting for the export queue to drain');
    await until('the export queue to drain', 120_000, async () => {
      const text = await sidecar.metrics();
      return metric(text, 'causeway_export_queue_spans') === 0 &&
        metric(text, 'causeway_correlator_spans_pending') === 0
        ? true
        : undefined;
    });
    const text = await sidecar.metrics();
    const secondHalf = samples.filter((s) => s.atS >= options.durationMs / 1000 / 2);
    const perMinute = (f: (s: Sample) => number | null) =>
      slope(
        secondHalf.flatMap((s): [number, number][] => {
          const y = f(s);
          return y === null ? [] : [[s.atS / 60, y]];
        }),
      );
    const decoded = metric(text, 'causeway_kernel_events_total');
    return {
      samples,
      slopes: {
        rssMiB: perMinute((s) => s.rssBytes / 2 ** 20),
        heapMiB: perMinute((s) => s.heapBytes / 2 ** 20),
        liveHeapMiB: perMinute((s) => (s.liveHeapBytes === null ? null : s.liveHeapBytes / 2 ** 20)),
        handles: perMinute((s) => s.handles),
        openFiles: perMinute((s) => s.openFiles),
        storeMiB: perMinute((s) => s.storeDiskBytes / 2 ** 20),
      },
      spans: {
        posted,
        accepted: metric(text, 'causeway_receiver_spans_accepted_total'),
        refused,
        unanswered,
        errors: [...errors],
      },
      kernelEvents: {
        decoded,
        perS: decoded / ((Date.now() - started) / 1000),
        droppedInKernel: metric(text, 'causeway_kernel_drops_total'),
        lostInLoaderGap: metric(text, 'causeway_kernel_events_lost_in_gaps_total'),
      },
      kernelSpans: {
        sent: metric(text, 'causeway_export_spans_sent_total'),
        received: received.size,
        dropped: metric(text, 'causeway_export_spans_dropped_total'),
        queuedAtEnd: metric(text, 'causeway_export_queue_spans'),
        exportFailures: metric(text, 'causeway_export_failures_total'),
        queuedInOutages,
      },
      store: {
        rowsShed: metric(text, 'causeway_store_rows_shed_total'),
        rowsExpired: metric(text, 'causeway_store_rows_expired_total'),
        flushErrors: metric(text, 'causeway_store_flush_errors_total'),
      },
      loader: { restarts: metric(text, 'causeway_loader_restarts_total') },
    };
  } finally {
    worker.child.kill();
    await sidecar.stop();
    await collector?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function sample(pid: number, metrics: () => Promise<string>, atS: number): Promise<Sample> {
  const status = readFileSync(`/proc/${String(pid)}/status`, 'utf8');
  const text = await metrics();
  return {
    atS,
    rssBytes: Number(/^VmRSS:\s*(\d+) kB$/m.exec(status)?.[1]) * 1024,
    heapBytes: metric(text, 'causeway_heap_used_bytes'),
    liveHeapBytes: /^causeway_heap_live_bytes /m.test(text) ? metric(text, 'causeway_heap_live_bytes') : null,
    handles: metric(text, 'causeway_active_handles'),
    openFiles: readdirSync(`/proc/${String(pid)}/fd`).length,
    storeDiskBytes: metric(text, 'causeway_store_disk_bytes'),
    storeEvents: Number(/^causeway_store_rows\{table="kernel_events"\} (\S+)$/m.exec(text)?.[1]),
  };
}

/** The report for a person: the slopes, then what was lost and where it is counted. */
export function describe(report: SoakReport): string[] {
  const { slopes, spans, kernelEvents: k, kernelSpans: out, store, samples } = report;
  const last = samples.at(-1);
  const mib = (bytes: number | undefined) => ((bytes ?? 0) / 2 ** 20).toFixed(1);
  const peak = (f: (s: Sample) => number | null) => Math.max(0, ...samples.map((s) => f(s) ?? 0));
  return [
    `slopes per minute over the second half: RSS ${slopes.rssMiB.toFixed(2)} MiB, heap ${slopes.heapMiB.toFixed(2)} MiB, live heap ${slopes.liveHeapMiB.toFixed(2)} MiB, handles ${slopes.handles.toFixed(2)}, open files ${slopes.openFiles.toFixed(2)}, store on disk ${slopes.storeMiB.toFixed(2)} MiB`,
    `at the end: RSS ${mib(last?.rssBytes)} MiB, heap ${mib(last?.heapBytes)} MiB (${mib(last?.liveHeapBytes ?? undefined)} MiB live after the last full collection), ${String(last?.handles)} handles, ${String(last?.openFiles)} open files, store ${mib(last?.storeDiskBytes)} MiB on disk with ${String(last?.storeEvents)} events`,
    `peaks: RSS ${mib(peak((s) => s.rssBytes))} MiB, heap ${mib(peak((s) => s.heapBytes))} MiB, live heap ${mib(peak((s) => s.liveHeapBytes))} MiB`,
    `app spans: ${String(spans.posted)} posted, ${String(spans.accepted)} accepted, ${String(spans.refused)} refused (503, counted), ${String(spans.unanswered)} in requests without an answer (${spans.errors.join('; ') || 'none'})`,
    `kernel events: ${String(k.decoded)} decoded (${k.perS.toFixed(0)}/s), ${String(k.droppedInKernel)} dropped in the kernel, about ${String(k.lostInLoaderGap)} lost while the loader restarted (${String(report.loader.restarts)} restart)`,
    `kernel spans: ${String(out.sent)} sent, ${String(out.received)} received by the collector, ${String(out.dropped)} dropped, ${String(out.queuedAtEnd)} still queued, ${String(out.exportFailures)} failed exports (retried), ${out.queuedInOutages.join(' and ')} waiting halfway through the outages`,
    `store: ${String(store.rowsShed)} rows shed, ${String(store.rowsExpired)} expired, ${String(store.flushErrors)} flush errors`,
  ];
}
