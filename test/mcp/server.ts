// An MCP HTTP server over a store holding one known trace, for the tests of the clients; and the
// same served from the MCP server's thread, as the sidecar serves it.
import type { TestContext } from 'node:test';
import type { Meter } from '@opentelemetry/api';
import type { TraceSource } from '../../src/correlate/source.js';
import { serveMcp, type McpHttpOptions } from '../../src/mcp/http.js';
import { startMcpThread } from '../../src/mcp/thread.js';
import * as A from '../../src/semconv/attributes.js';
import type { StoreOptions } from '../../src/store/store.js';
import { MS, appSpan, ids, kernelEvent, storeWith, waker } from '../store/traces.js';

/** Trace 1: a request (pid 10, tid 11) waiting 380 ms on a futex that tid 12 ("holder") released. */
export const KNOWN_TRACE = ids(1).traceId;

/** The status tool's answer here: every part's counters empty. */
const status = () =>
  Promise.resolve({
    capture: {},
    loader: null,
    gpu: { processes: [], listed: 0, unlisted: 0 },
    correlator: {},
    store: {},
    export: {},
    receiver: {},
    lag: {},
  });

/** A store holding the known trace, and its time (Unix ns). */
async function knownTraceStore(storeOptions: Partial<StoreOptions>) {
  const start = BigInt(Date.now()) * MS - 2000n * MS;
  const store = await storeWith(
    [appSpan({ trace: 1, span: 1, start, end: start + 400n * MS, pid: 10, tid: 11 })],
    [
      kernelEvent(
        'futex.wait',
        { pid: 10, tid: 11 },
        start + 10n * MS,
        start + 390n * MS,
        waker('futex', { pid: 10, tid: 12, comm: 'holder' }),
      ),
      kernelEvent('cuda.launch', { pid: 10, tid: 12 }, start, start + MS, { [A.ATTR_CAUSEWAY_CUDA_KERNEL]: 'gemm' }),
    ],
    storeOptions,
  );
  return { store, trace: { start, end: start + 400n * MS } };
}

/** `backends` are asked after the store, as in cluster mode; the store's own options are those of storeWith (no timed write) unless `storeOptions` says. */
export async function serveKnownTrace(
  t: TestContext,
  options: Partial<McpHttpOptions> = {},
  backends: TraceSource[] = [],
  storeOptions: Partial<StoreOptions> = {},
) {
  const { store, trace } = await knownTraceStore(storeOptions);
  const server = await serveMcp(
    { host: '127.0.0.1', port: 0, ...options },
    { store, sources: [store, ...backends], status },
  );
  t.after(async () => {
    await server.close();
    await store.close();
  });
  return { server, store, trace, url: `http://127.0.0.1:${String(server.port)}/mcp` };
}

/** The same from the MCP server's thread; what the main thread is told of a failed thread goes to `logged`. */
export async function serveKnownTraceFromThread(t: TestContext, meter?: Meter) {
  const { store, trace } = await knownTraceStore({});
  const logged: string[] = [];
  const server = await startMcpThread({ host: '127.0.0.1', port: 0 }, undefined, {
    store,
    status,
    log: (line) => logged.push(line),
    ...(meter === undefined ? {} : { meter }),
  });
  t.after(async () => {
    await server.close();
    await store.close();
  });
  return { server, store, trace, logged, url: server.url };
}
