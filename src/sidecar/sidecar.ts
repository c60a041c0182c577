// The sidecar's composition root: builds each part from the configuration and wires them
// together. App spans come in over OTLP (a copy from the collector), kernel events from the
// probes; each span's kernel events go back out as child spans of it, through the collector,
// to the backend, and into the store the MCP tools read. Kernel data never holds up the app's
// own spans: if Causeway is down, the collector's copy to it fails on its own and tracing goes on.
//
// Defaults, one rule: a part's setting that the configuration exposes is a required option of
// that part, and its default is defined once, in config.ts. A part keeps defaults of its own
// only for what the configuration does not expose (queue and batch sizes, the store's flush
// period, message limits, ...), and the configuration does not repeat them.
import type { Meter } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { Correlator } from '../correlate/correlator.js';
import { HostIds } from '../correlate/hostpid.js';
import { place } from '../correlate/place.js';
import { SidecarMetrics } from '../export/metrics.js';
import { SpanSender, type SenderCounters } from '../export/sender.js';
import { KernelSpanBuilder } from '../export/spans.js';
import { KernelWaits } from '../export/waits.js';
import { KernelCapture, captureParts } from '../kernel/capture.js';
import type { LoaderMessage } from '../kernel/loader.js';
import { ProcessTable } from '../kernel/processes.js';
import { startMcpThread } from '../mcp/thread.js';
import { startOtlpReceiver, type AppSpan, type OtlpReceiver } from '../otlp/index.js';
import { Store } from '../store/store.js';
import type { SidecarConfig } from './config.js';
import { Startup } from './startup.js';
import { sidecarStatus, type SidecarStatus } from './status.js';

export const DEFAULT_EXPORT_URL = 'http://127.0.0.1:4317';
/**
 * How often spans are joined on a timer: those that waited the longest join wait while the
 * capture's watermark does not come (capture down). The watermark joins the others.
 */
const JOIN_EVERY_MS = 100;

/** Where kernel spans go: the standard OTLP variables, else the local collector. */
export function exportUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT ?? DEFAULT_EXPORT_URL;
}

export interface SidecarOptions {
  /** A line for a person: the collector gone or back, the loader's news, a part that failed to close. */
  log: (line: string) => void;
  /** Read for the export endpoint; default process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface Sidecar {
  /** The bound ports (a configured port 0 picks a free one). */
  grpcPort: number;
  httpPort: number;
  metricsPort: number;
  mcpUrl: string;
  exportUrl: string;
  /** Cluster mode's backend, by name; undefined without one. */
  backend: string | undefined;
  /** Settles if capture ends on its own: the loader can no longer run. */
  ended: Promise<void>;
  status: () => Promise<SidecarStatus>;
  /**
   * Stops every part, the last started first, within the deadline (default: the configured
   * one): spans still waiting are joined, their kernel spans exported and the store flushed.
   * Resolves by the deadline, with what was done and what was left.
   */
  close: (deadlineMs?: number) => Promise<ShutdownReport>;
}

export interface ShutdownReport {
  /** Everything pending was exported and written before the deadline. */
  complete: boolean;
  /** The part still closing when the deadline passed; undefined when every part closed. */
  closing: string | undefined;
  export: SenderCounters;
  /** Kernel spans not exported: still queued or unanswered at the deadline. */
  spansLeft: number;
  /** Rows the store had not written. */
  storeRowsLeft: number;
}

/** Starts the parts in order; if one fails, those started are closed and a StartError names it. */
export async function startSidecar(config: SidecarConfig, options: SidecarOptions): Promise<Sidecar> {
  const { log } = options;
  const url = exportUrl(options.env);
  const startup = new Startup(log);
  // Each part records on instruments of this meter; served once every part runs.
  const metrics = new SidecarMetrics();
  const { meter } = metrics;
  /** When close() must be done by: the exporter, closed last, gets what time is left. Unset: a failed start unwinds. */
  let deadline: number | undefined;
  const sender = await startup.step(
    'the exporter',
    () => newSender(config, url, log, meter),
    (s) => s.close(deadline === undefined ? config.shutdownDeadlineMs : Math.max(0, deadline - Date.now())),
  );
  // Closed before the exporter: what the last spans joined is written before export takes the rest of the time.
  const store = await startup.step(
    'the store',
    () => Store.open({ ...config.store, meter, log }),
    (s) => s.close(),
  );
  const waits = new KernelWaits(meter, config.correlator.retentionMs);
  // Closed after capture and the receiver: no event or span is still to come, so every span waiting is joined.
  const correlator = await startup.step(
    'the correlator',
    () => newCorrelator(config, { store, sender, waits, meter }),
    (c) => {
      c.joinAll();
    },
  );
  const processes = new ProcessTable();
  const capture = await startup.step(
    'kernel capture',
    () => startCapture(config, processes, { correlator, store, waits, meter }, log),
    (c) => c.stop(),
  );
  const receiver = await startup.step(
    'the OTLP receiver',
    () => startReceiver(config, new HostIds(processes), capture, correlator, store, meter, log),
    (r) => r.close(),
  );
  const parts = { capture, receiver, correlator, sender, store, exportUrl: url };
  const metricsEndpoint = await startup.step(
    'the metrics server',
    () => metrics.serve(config.metrics.host, config.metrics.port),
    (m) => m.close(),
  );
  const status = () => sidecarStatus(parts);
  const mcp = await startup.step(
    'the MCP server',
    () => startMcpThread(config.mcp, config.queryBackend, { store, status, log, meter }),
    (m) => m.close(),
  );
  await startup.step(
    'joining',
    () =>
      setInterval(() => {
        correlator.join();
      }, JOIN_EVERY_MS),
    (timer) => {
      clearInterval(timer);
    },
  );
  return {
    grpcPort: receiver.grpcPort ?? config.receiver.grpc.port,
    httpPort: receiver.httpPort ?? config.receiver.http.port,
    metricsPort: metricsEndpoint.port,
    mcpUrl: mcp.url,
    exportUrl: url,
    backend: mcp.backend,
    ended: capture.ended.then(() => undefined),
    status,
    close: (deadlineMs = config.shutdownDeadlineMs) => {
      deadline = Date.now() + deadlineMs;
      return shutdownWithin(deadlineMs, startup, sender, store);
    },
  };
}

/** Closes every part, or stops waiting at the deadline; says what was left either way. */
async function shutdownWithin(
  deadlineMs: number,
  startup: Startup,
  sender: SpanSender,
  store: Store,
): Promise<ShutdownReport> {
  let timer: NodeJS.Timeout | undefined;
  const closed = await Promise.race([
    startup.shutdown().then(() => true),
    new Promise<false>((resolve) => (timer = setTimeout(resolve, deadlineMs, false))),
  ]);
  clearTimeout(timer);
  const exported = sender.counters();
  const spansLeft = exported.queued + exported.dropped.shutdown;
  const storeRowsLeft = store.counters().rowsBuffered;
  return {
    complete: closed && spansLeft === 0 && storeRowsLeft === 0,
    closing: closed ? undefined : startup.closing,
    export: exported,
    spansLeft,
    storeRowsLeft,
  };
}

function newSender(config: SidecarConfig, url: string, log: (line: string) => void, meter: Meter): SpanSender {
  return new SpanSender({
    exporter: () => new OTLPTraceExporter({ url }),
    ...config.export,
    meter,
    onStatus: (up, detail) => {
      log(up ? `collector at ${url}: ${detail}` : `cannot export to the collector at ${url}: ${detail}`);
    },
  });
}

/** Joined spans' kernel events go out as kernel spans, into the store, and into the wait metrics. */
function newCorrelator(
  config: SidecarConfig,
  { store, sender, waits, meter }: { store: Store; sender: SpanSender; waits: KernelWaits; meter: Meter },
): Correlator<AppSpan> {
  const builder = new KernelSpanBuilder();
  return new Correlator<AppSpan>({
    ...config.correlator,
    meter,
    onJoined: (attachments) => {
      sender.send(attachments.flatMap((a) => builder.build(a)));
      store.addAttachments(attachments);
      waits.attached(attachments);
    },
  });
}

/** Capture with every probe attached, or an error with the reason it cannot run. */
async function startCapture(
  config: SidecarConfig,
  processes: ProcessTable,
  {
    correlator,
    store,
    waits,
    meter,
  }: { correlator: Correlator<AppSpan>; store: Store; waits: KernelWaits; meter: Meter },
  log: (line: string) => void,
): Promise<KernelCapture> {
  // Of the loader's news, warnings and errors, the libraries and GPU processes it finds, how it
  // probes pipes and attaches CUDA entry points, which processes publish their active span
  // (thread contexts), and when shedding starts and stops.
  const told = new Set<unknown>([
    'library',
    'gpu_process',
    'gpu_process_exit',
    'pipes',
    'cuda_attach',
    'thread_ctx',
    'shed',
    'shed_late',
  ]);
  const onMessage = (m: LoaderMessage) => {
    if (m.level !== 'info' || told.has(m.fields.event)) log(`${m.level === 'info' ? '' : `${m.level}: `}${m.msg}`);
  };
  const capture = new KernelCapture(
    {
      ...config.follow,
      reduction: config.reduction,
      libs: [],
      followAll: false,
      onMessage,
      meter,
      onWatermark: (unixNano) => {
        correlator.advanceWatermark(unixNano);
      },
      onShed: (from, to) => {
        correlator.addShed(from, to);
        store.addShed(from, to);
      },
      onEvents: (batch) => {
        waits.captured(batch);
        // Stored before the correlator has them: an event it attaches at once (read late, for a span
        // already joined) is stored as attached only with the id the store gives it.
        store.addBatch(batch);
        correlator.addEvents(batch);
      },
    },
    captureParts(processes, onMessage),
  );
  capture.start();
  const ready = await Promise.race([capture.ready, capture.ended]);
  if ('failure' in ready) {
    await capture.stop();
    throw new Error(ready.failure ?? 'stopped');
  }
  return capture;
}

/** App spans are placed on this host, their processes followed, and queued for joining and the store. */
function startReceiver(
  config: SidecarConfig,
  hostIds: HostIds,
  capture: KernelCapture,
  correlator: Correlator<AppSpan>,
  store: Store,
  meter: Meter,
  log: (line: string) => void,
): Promise<OtlpReceiver> {
  // Each different error once (up to 100): they are counted (deliveryErrors, workerFailures); one line per batch would flood the log.
  const told = new Set<string>();
  return startOtlpReceiver({
    ...config.receiver,
    meter,
    onError: (error) => {
      const line = `OTLP receiver: ${error instanceof Error ? error.message : String(error)}`;
      if (told.has(line) || told.size >= 100) return;
      told.add(line);
      log(line);
    },
    onSpans: (spans) => {
      const placed = spans.map((span) => ({ span, place: place(span, hostIds, config.threadAttribute) }));
      for (const { place: where } of placed) if (where !== undefined) capture.follow(where.hostPid);
      // The store first: the correlator joins at once the spans the watermark has passed, and the store
      // takes their attachments.
      store.addSpans(placed);
      correlator.addSpans(placed);
    },
  });
}
