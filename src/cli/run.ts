// `causeway run`: the sidecar from the command line. The flags and a YAML --config file become
// its configuration (src/sidecar/config.ts), the sidecar starts (src/sidecar/sidecar.ts), and
// it runs until SIGINT or SIGTERM, or until capture can no longer run.
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import {
  CONFIG_FLAGS,
  DEFAULT_CONFIG as D,
  DEFAULT_EXPORT_URL,
  StartError,
  sidecarConfig,
  startSidecar,
  type Sidecar,
  type SidecarConfig,
} from '../sidecar/index.js';

/** How far V8's heap grows past what is live before a full collection, in percent. */
const HEAP_GROWING_PERCENT = 50;

/**
 * The young generation bin/causeway starts `causeway run` with (V8's flag; test/cli/memory-settings
 * checks the command gives it): the bench measures the sidecar's code in process under it too.
 */
export const SIDECAR_YOUNG_GENERATION = '--max-semi-space-size=8';

/** The exit status when the shutdown deadline passed with kernel spans or store rows left. */
export const EXIT_CUT_SHORT = 3;

const at = (endpoint: { host: string; port: number }) => `${endpoint.host}:${String(endpoint.port)}`;

export const RUN_HELP = `Usage: causeway run [--config FILE] [--otlp-grpc HOST:PORT] [--otlp-http HOST:PORT]
                    [--mcp HOST:PORT] [--mcp-token-file FILE] [--mcp-allow-origin ORIGIN]...
                    [--metrics HOST:PORT] [--pid PID]... [--comm NAME]...
                    [--thread-attribute NAME] [--retention-s N] [--max-events N]
                    [--join-watermark-ms N] [--reduce-window-ms N] [--launch-whole-us N]
                    [--runqueue-whole-us N] [--wait-whole-us N] [--store-retention-s N]
                    [--store-max-events N] [--store-max-spans N] [--store-path FILE]
                    [--store-max-mib N] [--export-queue-spans N] [--export-queue-mib N]
                    [--shutdown-deadline-s N] [--query-backend jaeger=URL|tempo=URL]

The sidecar: receives a copy of the app's spans over OTLP, captures the kernel events of
the processes those spans come from (and of --pid / --comm), exports each span's kernel
events as its child spans over OTLP/gRPC to the collector, keeps spans and events in an
embedded store, and answers causal questions over MCP. Needs root, or the loader's file
capabilities (see \`causeway doctor\`): then it runs as any user, holding no capability.

Options (a YAML --config file takes the same keys, e.g. \`store-max-events: 500000\`;
flags win over the file, the file over the defaults):
  --otlp-grpc HOST:PORT     OTLP/gRPC receiver (default ${at(D.receiver.grpc)})
  --otlp-http HOST:PORT     OTLP/HTTP receiver, /v1/traces (default ${at(D.receiver.http)})
  --mcp HOST:PORT           the MCP server, Streamable HTTP at /mcp (default ${at(D.mcp)});
                            anything but loopback needs a token
  --mcp-token-file FILE     bearer token MCP clients must send (or CAUSEWAY_MCP_TOKEN)
  --mcp-allow-origin ORIGIN a browser Origin allowed besides the server's own (repeatable)
  --metrics HOST:PORT       Prometheus metrics at /metrics (default ${at(D.metrics)})
  --pid PID, --comm NAME    also follow these processes from the start (repeatable)
  --thread-attribute NAME   span attribute with the OS thread id (default ${D.threadAttribute})
  --retention-s N           how long kernel events wait for late spans (default ${D.correlator.retentionMs / 1000})
  --max-events N            kernel events held at most (default ${D.correlator.maxEvents})
  --join-watermark-ms N     a span is joined once capture has read up to its end; one known only
                            by its process then takes its other threads' events that began in it,
                            as they are read, until capture has read this long past its end; with
                            capture silent this long, spans are joined this long after their end
                            (default ${D.correlator.maxJoinWaitMs})
  --reduce-window-ms N      in-kernel reduction: per thread, per window of N ms, launches that
                            returned at once are summed into one cuda.launches event, short
                            run-queue waits into one sched.runqueues event, short blocked waits
                            into one sched.blocked_waits event and short futex waits into one
                            futex.waits event; 0 turns it off (default ${D.reduction.windowMs})
  --launch-whole-us N       a launch call this long (it blocked) or a failed one is kept whole
                            (default ${D.reduction.launchWholeUs})
  --runqueue-whole-us N     a run-queue wait this long is kept whole, with the tasks that held
                            the CPU (default ${D.reduction.runqueueWholeUs})
  --wait-whole-us N         a blocked or futex wait this long is kept whole, with its waker
                            (default ${D.reduction.waitWholeUs})
  --store-retention-s N     how long the store keeps spans and events (default ${D.store.retentionMs / 1000})
  --store-max-events N      kernel events in the store at most (default ${D.store.maxEvents})
  --store-max-spans N       app spans in the store at most (default ${D.store.maxSpans})
  --store-path FILE         the store's DuckDB file, kept across restarts and created with
                            its directory; :memory: keeps it in memory (default ${D.store.path})
  --store-max-mib N         the store's size at most: its blocks in use and write-ahead log
                            on disk, or its memory (default ${D.store.maxBytes / 2 ** 20})
  --export-queue-spans N    kernel spans waiting for the collector at most; past it, or past
                            --export-queue-mib, the oldest are dropped (default ${D.export.maxQueueSpans})
  --export-queue-mib N      their approximate OTLP-encoded size at most (default ${D.export.maxQueueBytes / 2 ** 20})
  --shutdown-deadline-s N   on SIGTERM or SIGINT, how long joining the spans still waiting,
                            exporting their kernel spans and writing the store may take
                            (default ${D.shutdownDeadlineMs / 1000})
  --query-backend B         cluster mode: traces this node's store does not hold are read
                            from jaeger=http://HOST:16686 (its /api/v3) or tempo=http://HOST:3200

Export goes to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT,
default ${DEFAULT_EXPORT_URL} (the local collector). While the collector is unreachable,
kernel spans wait in the queue and are sent again with backoff (at most 5 s apart).

Memory: started as the installed \`causeway\` command (bin/causeway), the sidecar's node runs
with MALLOC_ARENA_MAX=2 (glibc's malloc arenas, whose freed memory each thread's arena keeps)
and ${SIDECAR_YOUNG_GENERATION} (V8's young generation, 24 MiB at most rather than 48), which only
a process's start can set; a MALLOC_ARENA_MAX, or a --max-semi-space-size in NODE_OPTIONS,
of your own wins.

Exit status: 0 when it stopped with everything exported and written; 1 when a part could
not start; 2 for bad options or configuration; ${String(EXIT_CUT_SHORT)} when the shutdown deadline passed
first (the last line on stderr says what was left).
`;

const log = (line: string) => process.stderr.write(`causeway: ${line}\n`);

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { ...CONFIG_FLAGS, config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  const { config: file, help, ...flags } = values;
  if (help === true) {
    process.stdout.write(RUN_HELP);
    return 0;
  }
  const config = sidecarConfig({ flags, ...(typeof file === 'string' ? { file } : {}) });
  // V8 lets the heap grow up to 4x what a full collection left live before the next one (a soak
  // measured 3x: a 615 MiB heap for 193 MiB live), and the sidecar's churn of short-lived events
  // sits in RSS as that garbage. 1.5x keeps the heap near what is live, for more full collections.
  v8.setFlagsFromString(`--heap-growing-percent=${String(HEAP_GROWING_PERCENT)}`);
  // Heard from the start: a SIGTERM while the parts start (the metrics endpoint, which a health
  // check reads, is up before the MCP server's thread) stops the sidecar once they have started.
  const stopAsked = new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  let sidecar: Sidecar;
  try {
    sidecar = await startSidecar(config, { log });
  } catch (error) {
    if (!(error instanceof StartError)) throw error;
    log(error.message);
    return 1;
  }
  log(listening(config, sidecar));
  await Promise.race([stopAsked, sidecar.ended]);
  const report = await sidecar.close();
  const { spansSent, spansDropped } = report.export;
  if (report.complete) {
    log(`stopped: exported ${spansSent} kernel spans, dropped ${spansDropped}`);
    return 0;
  }
  const where = report.closing === undefined ? '' : ` while closing ${report.closing}`;
  const droppedBefore = spansDropped - report.export.dropped.shutdown;
  log(
    `shutdown deadline of ${config.shutdownDeadlineMs / 1000} s passed${where}: ${report.spansLeft} kernel spans not exported, ${report.storeRowsLeft} store rows not written; earlier, exported ${spansSent} kernel spans and dropped ${droppedBefore}`,
  );
  // A part still closing holds the event loop open (an export waiting on its own timeout): the deadline is the deadline.
  process.exit(EXIT_CUT_SHORT);
}

function listening(config: SidecarConfig, s: Sidecar): string {
  const { grpc, http } = config.receiver;
  return `receiving OTLP on ${at({ ...grpc, port: s.grpcPort })} (gRPC) and ${at({ ...http, port: s.httpPort })} (HTTP), exporting to ${s.exportUrl}, metrics on ${at({ ...config.metrics, port: s.metricsPort })}/metrics, MCP on ${s.mcpUrl}${s.backend === undefined ? '' : ` (cluster mode: also ${s.backend})`}`;
}
