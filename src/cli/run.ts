// `causeway run`: the sidecar. App spans come in over OTLP (a copy from the collector), kernel
// events from the probes; each span's kernel events go back out as child spans of it, through
// the collector, to the backend. Kernel data never holds up the app's own spans: if Causeway
// is down, the collector's copy to it fails on its own and tracing goes on.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { Correlator, type SpanPlace } from '../correlate/correlator.js';
import type { TraceSource } from '../correlate/source.js';
import { nowUnixNano } from '../correlate/time.js';
import { HostIds } from '../correlate/hostpid.js';
import { KernelCapture } from '../kernel/capture.js';
import { ProcessTable } from '../kernel/processes.js';
import { serveMetrics, type Sample } from '../export/metrics.js';
import { SpanSender, exportUrl } from '../export/sender.js';
import { KernelSpanBuilder } from '../export/spans.js';
import { startOtlpReceiver, type AppSpan } from '../otlp/index.js';
import * as A from '../semconv/attributes.js';
import { mcpBindProblem, serveMcp } from '../mcp/http.js';
import { querySource } from '../store/backend.js';
import { Store } from '../store/store.js';
import { UsageError, positiveInteger } from './usage.js';

export const RUN_HELP = `Usage: causeway run [--config FILE] [--otlp-grpc HOST:PORT] [--otlp-http HOST:PORT]
                    [--mcp HOST:PORT] [--mcp-token-file FILE] [--mcp-allow-origin ORIGIN]...
                    [--metrics HOST:PORT] [--pid PID]... [--comm NAME]...
                    [--thread-attribute NAME] [--retention-s N] [--max-events N]
                    [--store-retention-s N] [--store-max-events N] [--store-max-spans N]
                    [--query-backend jaeger=URL|tempo=URL]

The sidecar: receives a copy of the app's spans over OTLP, captures the kernel events of
the processes those spans come from (and of --pid / --comm), exports each span's kernel
events as its child spans over OTLP/gRPC to the collector, keeps spans and events in an
embedded store, and answers causal questions over MCP. Needs root.

Options (a YAML --config file takes the same keys; flags win):
  --otlp-grpc HOST:PORT     OTLP/gRPC receiver (default 127.0.0.1:4417)
  --otlp-http HOST:PORT     OTLP/HTTP receiver, /v1/traces (default 127.0.0.1:4418)
  --mcp HOST:PORT           the MCP server, Streamable HTTP at /mcp (default 127.0.0.1:4419);
                            anything but loopback needs a token
  --mcp-token-file FILE     bearer token MCP clients must send (or CAUSEWAY_MCP_TOKEN)
  --mcp-allow-origin ORIGIN a browser Origin allowed besides the server's own (repeatable)
  --metrics HOST:PORT       Prometheus metrics at /metrics (default 127.0.0.1:9464)
  --pid PID, --comm NAME    also follow these processes from the start (repeatable)
  --thread-attribute NAME   span attribute with the OS thread id (default causeway.thread.tid)
  --retention-s N           how long kernel events wait for late spans (default 30)
  --max-events N            kernel events held at most (default 1000000)
  --store-retention-s N     how long the store keeps spans and events (default 900)
  --store-max-events N      kernel events in the store at most (default 1000000)
  --store-max-spans N       app spans in the store at most (default 100000)
  --query-backend B         cluster mode: traces this node's store does not hold are read
                            from jaeger=http://HOST:16686 (its /api/v3) or tempo=http://HOST:3200

Export goes to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT,
default http://127.0.0.1:4317 (the local collector).
`;

const OPTIONS = {
  config: { type: 'string' },
  'otlp-grpc': { type: 'string' },
  'otlp-http': { type: 'string' },
  mcp: { type: 'string' },
  'mcp-token-file': { type: 'string' },
  'mcp-allow-origin': { type: 'string', multiple: true },
  metrics: { type: 'string' },
  pid: { type: 'string', multiple: true },
  comm: { type: 'string', multiple: true },
  'thread-attribute': { type: 'string' },
  'retention-s': { type: 'string' },
  'max-events': { type: 'string' },
  'store-retention-s': { type: 'string' },
  'store-max-events': { type: 'string' },
  'store-max-spans': { type: 'string' },
  'query-backend': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Settings = Partial<Record<Exclude<keyof typeof OPTIONS, 'help' | 'config'>, string | string[]>>;

function endpoint(flag: string, value: string): { host: string; port: number } {
  const match = /^(.+):(\d+)$/.exec(value);
  if (match === null) throw new UsageError(`${flag} ${value}: expected HOST:PORT`);
  return { host: (match[1] ?? '').replace(/^\[(.*)\]$/, '$1'), port: Number(match[2]) };
}

/** Flags over the config file over the defaults. */
function settings(argv: string[]): Settings & { help?: boolean } {
  const { values } = parseArgs({ args: argv, options: OPTIONS, strict: true });
  let file: Settings = {};
  if (values.config !== undefined) {
    const parsed: unknown = parseYaml(readFileSync(values.config, 'utf8'));
    if (parsed !== null && (typeof parsed !== 'object' || Array.isArray(parsed)))
      throw new UsageError(`--config ${values.config}: expected a mapping of option names to values`);
    file = Object.fromEntries(
      Object.entries(parsed ?? {}).map(([k, v]) => [k, Array.isArray(v) ? v.map(String) : String(v)]),
    );
    for (const key of Object.keys(file))
      if (!(key in OPTIONS) || key === 'config' || key === 'help')
        throw new UsageError(`--config ${values.config}: unknown key ${key}`);
  }
  return { ...file, ...values };
}

const text = (v: string | string[] | undefined, fallback: string) => (typeof v === 'string' ? v : fallback);
const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const integer = (v: unknown) => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined);

function backendOf(spec: string): TraceSource {
  try {
    return querySource(spec);
  } catch (e) {
    throw new UsageError(`--query-backend: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export async function run(argv: string[]): Promise<number> {
  const s = settings(argv);
  if (s.help === true) {
    process.stdout.write(RUN_HELP);
    return 0;
  }
  const grpc = endpoint('--otlp-grpc', text(s['otlp-grpc'], '127.0.0.1:4417'));
  const httpEndpoint = endpoint('--otlp-http', text(s['otlp-http'], '127.0.0.1:4418'));
  const metricsEndpoint = endpoint('--metrics', text(s.metrics, '127.0.0.1:9464'));
  const mcpEndpoint = endpoint('--mcp', text(s.mcp, '127.0.0.1:4419'));
  const mcpTokenFile = text(s['mcp-token-file'], '');
  const mcpToken = mcpTokenFile === '' ? process.env.CAUSEWAY_MCP_TOKEN : readFileSync(mcpTokenFile, 'utf8').trim();
  // Checked before capture starts, so a refused bind costs nothing.
  const bindProblem = mcpBindProblem(mcpEndpoint.host, mcpToken);
  if (bindProblem !== undefined) throw new UsageError(bindProblem);
  const backend = s['query-backend'] === undefined ? undefined : backendOf(text(s['query-backend'], ''));
  const storeOptions = {
    retentionMs: positiveInteger('--store-retention-s', text(s['store-retention-s'], '900')) * 1000,
    maxEvents: positiveInteger('--store-max-events', text(s['store-max-events'], '1000000')),
    maxSpans: positiveInteger('--store-max-spans', text(s['store-max-spans'], '100000')),
  };
  const tidAttribute = text(s['thread-attribute'], A.ATTR_CAUSEWAY_THREAD_TID);
  const retentionMs = positiveInteger('--retention-s', text(s['retention-s'], '30')) * 1000;
  const maxEvents = positiveInteger('--max-events', text(s['max-events'], '1000000'));
  const log = (line: string) => process.stderr.write(`causeway: ${line}\n`);

  const processes = new ProcessTable();
  const hostIds = new HostIds(processes);
  const place = (span: AppSpan): SpanPlace | undefined => {
    const pid = integer(span.resource['process.pid']);
    if (pid === undefined) return undefined;
    const containerId = span.resource['container.id'];
    const hostPid = hostIds.pid(pid, typeof containerId === 'string' ? containerId : undefined);
    if (hostPid === undefined) return undefined;
    const tid = integer(span.attributes[tidAttribute]);
    if (tid !== undefined) {
      const hostTid = hostIds.tid(hostPid, tid);
      return hostTid === undefined ? { hostPid } : { hostPid, hostTid };
    }
    // A Node process runs its spans on its main thread, whose tid is its pid.
    return span.resource['telemetry.sdk.language'] === 'nodejs' ? { hostPid, hostTid: hostPid } : { hostPid };
  };

  const sender = new SpanSender({
    onStatus: (up, detail) => {
      log(
        up
          ? `collector at ${exportUrl()}: ${detail}`
          : `cannot export to the collector at ${exportUrl()} (spans are queued, then dropped and counted): ${detail}`,
      );
    },
  });
  const builder = new KernelSpanBuilder();
  const store = await Store.open(storeOptions);
  let newestEventEnd: bigint | undefined;
  const correlator = new Correlator<AppSpan>({
    retentionMs,
    maxEvents,
    onJoined: (attachments) => {
      sender.send(attachments.flatMap((a) => builder.build(a)));
      store.addAttachments(attachments);
    },
  });
  const capture = new KernelCapture({
    pids: list(s.pid).map((p) => positiveInteger('--pid', p)),
    comms: list(s.comm),
    libs: [],
    followAll: false,
    onMessage: (m) => {
      if (m.level !== 'info' || m.fields.event === 'library')
        log(`${m.level === 'info' ? '' : `${m.level}: `}${m.msg}`);
    },
    onEvents: (events) => {
      correlator.addEvents(events);
      store.addEvents(events);
      newestEventEnd = events.at(-1)?.endUnixNano ?? newestEventEnd;
    },
  });
  const followed = new Set<number>();
  const receiver = await startOtlpReceiver({
    grpc,
    http: httpEndpoint,
    onSpans: (spans) => {
      const placed = spans.map((span) => ({ span, place: place(span) }));
      for (const { place: where } of placed) {
        if (where !== undefined && !followed.has(where.hostPid)) {
          followed.add(where.hostPid);
          capture.loader.follow(where.hostPid);
        }
      }
      correlator.addSpans(placed);
      store.addSpans(placed);
    },
  });
  capture.start();
  const ready = await Promise.race([capture.ready, capture.ended]);
  if ('failure' in ready) {
    await receiver.close();
    await store.close();
    log(`cannot capture: ${ready.failure ?? 'stopped'}`);
    return 1;
  }
  const metrics = await serveMetrics(metricsEndpoint.host, metricsEndpoint.port, () =>
    samples(capture, receiver.counters(), correlator, sender, store),
  );
  const status = async () => ({
    capture: { ...capture.counters() },
    correlator: { ...correlator.counters() },
    store: { ...store.counters(), ...(await store.size()), ...storeOptions },
    export: { ...sender.counters(), url: exportUrl() },
    receiver: { ...receiver.counters() },
    lag: {
      newestEventAgeMs: newestEventEnd === undefined ? null : Number(nowUnixNano() - newestEventEnd) / 1e6,
      joinWatermarkMs: 500,
      spansWaitingToJoin: correlator.counters().spansPending,
      storeRowsBuffered: store.counters().rowsBuffered,
      storeLastFlushMs: store.counters().lastFlushMs,
    },
  });
  const mcp = await serveMcp(
    {
      ...mcpEndpoint,
      ...(mcpToken === undefined ? {} : { token: mcpToken }),
      allowedOrigins: list(s['mcp-allow-origin']),
    },
    { store, sources: backend === undefined ? [store] : [store, backend], status },
  );
  const joining = setInterval(() => {
    correlator.join();
  }, 100);
  log(
    `receiving OTLP on ${grpc.host}:${String(receiver.grpcPort)} (gRPC) and ${httpEndpoint.host}:${String(receiver.httpPort)} (HTTP), exporting to ${exportUrl()}, metrics on ${metricsEndpoint.host}:${metrics.port}/metrics, MCP on ${mcp.url}${backend === undefined ? '' : ` (cluster mode: also ${backend.name})`}`,
  );

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    void capture.ended.then(() => {
      resolve();
    });
  });
  clearInterval(joining);
  await receiver.close();
  correlator.join();
  await capture.stop();
  await sender.close();
  await metrics.close();
  await mcp.close();
  await store.close();
  const c = sender.counters();
  log(`exported ${c.spansSent} kernel spans, dropped ${c.spansDropped}`);
  return 0;
}

function samples(
  capture: KernelCapture,
  receiver: ReturnType<Awaited<ReturnType<typeof startOtlpReceiver>>['counters']>,
  correlator: Correlator<AppSpan>,
  sender: SpanSender,
  store: Store,
): Sample[] {
  const k = capture.counters();
  const c = correlator.counters();
  const e = sender.counters();
  const st = store.counters();
  return [
    ...Object.entries(k.events).map(([kind, n]): Sample => [
      'causeway_kernel_events_total',
      'Kernel events decoded, per kind.',
      n,
      { kind },
    ]),
    ...Object.entries(k.drops).map(([kind, n]): Sample => [
      'causeway_kernel_drops_total',
      'Kernel events lost to a full ring buffer, per kind.',
      n,
      { kind },
    ]),
    ['causeway_receiver_spans_accepted_total', 'App spans accepted over OTLP.', receiver.spansAccepted],
    ['causeway_receiver_spans_rejected_total', 'App spans rejected as invalid.', receiver.spansRejected],
    [
      'causeway_receiver_requests_refused_total',
      'OTLP requests refused for overload (retryable).',
      receiver.requestsRefused,
    ],
    ['causeway_receiver_bad_requests_total', 'OTLP requests answered with a client error.', receiver.badRequests],
    ['causeway_correlator_spans_joined_total', 'App spans joined with kernel events.', c.spansJoined],
    ['causeway_correlator_spans_with_events_total', 'App spans that had kernel events.', c.spansWithEvents],
    ['causeway_correlator_spans_not_here_total', 'App spans from processes not on this host.', c.spansNotHere],
    ['causeway_correlator_events_attached_total', 'Kernel events attached to app spans.', c.eventsAttached],
    [
      'causeway_correlator_events_evicted_unjoined_total',
      'Kernel events evicted before any span took them.',
      c.eventsEvictedUnjoined,
    ],
    ['causeway_correlator_events_held', 'Kernel events waiting for late spans.', c.eventsHeld],
    ['causeway_correlator_spans_pending', 'App spans waiting for the kernel watermark.', c.spansPending],
    ['causeway_export_spans_sent_total', 'Kernel spans exported.', e.spansSent],
    ['causeway_export_spans_dropped_total', 'Kernel spans dropped (queue full or export failed).', e.spansDropped],
    ['causeway_export_collector_up', '1 when the last export succeeded.', e.collectorUp ? 1 : 0],
    ['causeway_store_events_stored_total', 'Kernel events written to the store.', st.eventsStored],
    ['causeway_store_spans_stored_total', 'App spans written to the store.', st.spansStored],
    ['causeway_store_rows_shed_total', 'Rows refused because the store fell behind.', st.rowsShed],
    ['causeway_store_rows_expired_total', 'Rows deleted by the store retention.', st.rowsExpired],
    ['causeway_store_flush_errors_total', 'Store writes that failed.', st.flushErrors],
    ['causeway_store_rows_buffered', 'Rows waiting to be written to the store.', st.rowsBuffered],
  ];
}
