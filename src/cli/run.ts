// `causeway run`: the sidecar from the command line. The flags and a YAML --config file become
// its configuration (src/sidecar/config.ts), the sidecar starts (src/sidecar/sidecar.ts), and
// it runs until SIGINT or SIGTERM, or until capture can no longer run.
import { parseArgs } from 'node:util';
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

const at = (endpoint: { host: string; port: number }) => `${endpoint.host}:${String(endpoint.port)}`;

export const RUN_HELP = `Usage: causeway run [--config FILE] [--otlp-grpc HOST:PORT] [--otlp-http HOST:PORT]
                    [--mcp HOST:PORT] [--mcp-token-file FILE] [--mcp-allow-origin ORIGIN]...
                    [--metrics HOST:PORT] [--pid PID]... [--comm NAME]...
                    [--thread-attribute NAME] [--retention-s N] [--max-events N]
                    [--join-watermark-ms N] [--store-retention-s N] [--store-max-events N]
                    [--store-max-spans N] [--query-backend jaeger=URL|tempo=URL]

The sidecar: receives a copy of the app's spans over OTLP, captures the kernel events of
the processes those spans come from (and of --pid / --comm), exports each span's kernel
events as its child spans over OTLP/gRPC to the collector, keeps spans and events in an
embedded store, and answers causal questions over MCP. Needs root.

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
  --join-watermark-ms N     how long after its end a span waits for its kernel events to
                            arrive before it is joined with them (default ${D.correlator.watermarkLagMs})
  --store-retention-s N     how long the store keeps spans and events (default ${D.store.retentionMs / 1000})
  --store-max-events N      kernel events in the store at most (default ${D.store.maxEvents})
  --store-max-spans N       app spans in the store at most (default ${D.store.maxSpans})
  --query-backend B         cluster mode: traces this node's store does not hold are read
                            from jaeger=http://HOST:16686 (its /api/v3) or tempo=http://HOST:3200

Export goes to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT,
default ${DEFAULT_EXPORT_URL} (the local collector).
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
  let sidecar: Sidecar;
  try {
    sidecar = await startSidecar(config, { log });
  } catch (error) {
    if (!(error instanceof StartError)) throw error;
    log(error.message);
    return 1;
  }
  log(listening(config, sidecar));
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    void sidecar.ended.then(resolve);
  });
  const exported = await sidecar.close();
  log(`exported ${exported.spansSent} kernel spans, dropped ${exported.spansDropped}`);
  return 0;
}

function listening(config: SidecarConfig, s: Sidecar): string {
  const { grpc, http } = config.receiver;
  return `receiving OTLP on ${at({ ...grpc, port: s.grpcPort })} (gRPC) and ${at({ ...http, port: s.httpPort })} (HTTP), exporting to ${s.exportUrl}, metrics on ${at({ ...config.metrics, port: s.metricsPort })}/metrics, MCP on ${s.mcpUrl}${s.backend === undefined ? '' : ` (cluster mode: also ${s.backend})`}`;
}
