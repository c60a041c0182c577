// The MCP server (DESIGN, "The MCP server"): read-only questions over the store and, in cluster
// mode, a tracing backend. One module per tool under tools/, each registered the way the SDK's
// examples do it: a zod input schema, an output schema matched by its structuredContent, a
// short text answer, read-only annotations. Span names, attributes and process names come from
// the traced apps: they are data, quoted and bounded wherever they enter text.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { TraceSource } from '../correlate/source.js';
import type { StoreReader } from '../store/reader.js';
import type { WriteLag } from '../store/store.js';
import { registerCompareLatency } from './tools/compare-latency.js';
import { UNTRUSTED } from './tools/conventions.js';
import { registerDiagnoseSlowRequest } from './tools/diagnose-slow-request.js';
import { registerExplainTrace } from './tools/explain-trace.js';
import { registerFindStalls } from './tools/find-stalls.js';
import { registerGpuActivity } from './tools/gpu-activity.js';
import { registerQuerySql } from './tools/query-sql.js';
import { registerSlowTraces } from './tools/slow-traces.js';
import { registerStatus } from './tools/status.js';

/**
 * The store as the tools read it: its queries, and how far its writing is behind (in the MCP
 * server's thread, asked of the main thread, which writes).
 */
export type StoreView = StoreReader & {
  lag(): WriteLag | Promise<WriteLag>;
  /** Store.caughtUp. */
  caughtUp(): Promise<boolean>;
};

/** What the tools read: the store, the sources in the order they are asked, and the sidecar's counters. */
export interface Diagnostics {
  store: StoreView;
  /** The local store first; then, in cluster mode, the tracing backend. */
  sources: TraceSource[];
  status: () => Promise<Record<string, unknown>>;
}

const INSTRUCTIONS =
  'Causeway explains slow requests by joining OpenTelemetry traces with kernel events (GPU syncs, CPU run-queue ' +
  'waits, futex waits, block I/O, TCP retransmits). Start with slow_traces, then explain_trace. ' +
  UNTRUSTED;

export function createMcpServer(d: Diagnostics): McpServer {
  const server = new McpServer({ name: 'causeway', version: '0.1.0' }, { instructions: INSTRUCTIONS });
  registerExplainTrace(server, d.sources, d.store);
  registerSlowTraces(server, d.sources);
  registerFindStalls(server, d.store);
  registerCompareLatency(server, d.store);
  registerGpuActivity(server, d.store);
  registerStatus(server, d.status);
  registerQuerySql(server, d.store);
  registerDiagnoseSlowRequest(server);
  return server;
}
