// The MCP server's thread. The server (http.ts) runs in a worker_threads Worker with an event
// loop of its own, as the OTLP servers do, so that an agent's questions do not wait for the main
// thread's loop, busy with kernel events: on the main thread, under the whole sidecar's load,
// explain_trace's p99 was 300 to 430 ms in most runs, and 430 ms under the flood; here about 230
// ms in both (issue 11; test/bench/HISTORY.md, "Then (2026-12-04, 20:30 to 21:15 UTC)"). The
// tools read the store over a port of their own to its worker (PortStoreReader), and a tracing
// backend directly; what only the main thread knows (the sidecar's status, how far the store's
// writing is behind, a port to a store worker started again) they ask it.
//
// Messages, thread to main: 'listening' or 'failed' once, then 'ask' (each answered by an
// 'answer' with its id), 'heap' (answering main's), and, once asked to stop, 'closed'. Main to
// thread: 'answer', 'heap' (the thread's own heap, an isolate of its own that the main thread's
// memory figures do not include) and 'stop'.
import { getHeapStatistics } from 'node:v8';
import { isMainThread, parentPort, Worker, workerData, type MessagePort } from 'node:worker_threads';
import type { Meter } from '@opentelemetry/api';
import type { TraceSource } from '../correlate/source.js';
import { counter, gauge, observe } from '../export/metrics.js';
import { Answers, PortStoreReader } from '../store/reader.js';
import type { Store, WriteLag } from '../store/store.js';
import { errorFields, withFields } from '../thread-error.js';
import type { Reply } from '../store/worker.js';
import type { McpHttpOptions, McpHttpServer } from './http.js';

/** What the thread needs to serve; all plain data. */
interface ThreadSettings {
  http: McpHttpOptions;
  /** Cluster mode's tracing backend (querySource's spec); undefined without one. */
  backend: string | undefined;
}

/** What the main thread answers the server's thread, where it tells of a thread that failed, and where it counts. */
export interface McpMainSide {
  store: Store;
  status: () => Promise<Record<string, unknown>>;
  log: (line: string) => void;
  meter?: Meter;
}

export interface McpThread extends McpHttpServer {
  /** Cluster mode's backend, by name; undefined without one. */
  backend: string | undefined;
  /** The thread itself, for tests that make it fail. */
  readonly worker: Worker;
}

/** What the thread asks the main thread. */
type Asked = 'status' | 'lag' | 'caughtUp' | 'storePort';

type FromThread =
  | { kind: 'listening'; port: number; url: string; backend: string | undefined }
  | { kind: 'failed'; error: unknown; fields: Record<string, unknown> }
  | { kind: 'ask'; id: number; what: Asked }
  | { kind: 'heap'; reply: Reply }
  | { kind: 'closed' };

type ToThread = { kind: 'answer'; reply: Reply } | { kind: 'heap'; id: number } | { kind: 'stop' };

/** Marks this module's own Worker, so importing it from another worker runs nothing. */
const ROLE = 'causeway-mcp-server';
/** The thread's young generation, in MiB, as the other threads' (otlp/worker.ts): what it allocates is garbage once a request is answered. */
const YOUNG_GENERATION_MB = 8;
/** A thread that fails is started again on its port, unless it failed this many times in a row, each before it had run FAILED_EARLY_MS. */
const MAX_EARLY_FAILURES = 3;
const FAILED_EARLY_MS = 60_000;

/**
 * Serves MCP from a thread of its own; rejects, with the thread gone, when it cannot (the port
 * taken). A thread that fails later is reported and started again on the same port.
 */
export async function startMcpThread(
  http: McpHttpOptions,
  backend: string | undefined,
  main: McpMainSide,
): Promise<McpThread> {
  let running = await startThread({ http, backend }, main);
  // Started again on the port first bound: clients were told its URL.
  const settings = { http: { ...http, port: running.port }, backend };
  let stopping = false;
  let earlyFailures = 0;
  const count = { threadFailures: 0, threadRestarts: 0 };
  const restart = (why: string): void => {
    if (stopping) return;
    count.threadFailures++;
    earlyFailures = Date.now() - running.since < FAILED_EARLY_MS ? earlyFailures + 1 : 1;
    if (earlyFailures > MAX_EARLY_FAILURES) {
      main.log(`the MCP server's thread failed (${why}), ${String(earlyFailures)} times in a row: MCP is down`);
      return;
    }
    main.log(`the MCP server's thread failed (${why}); starting it again`);
    startThread(settings, main).then(
      (next) => {
        running = next;
        count.threadRestarts++;
        running.failed.then(restart, () => undefined);
      },
      (e: unknown) => {
        main.log(`the MCP server's thread cannot start again (${message(e)}): MCP is down`);
      },
    );
  };
  running.failed.then(restart, () => undefined);
  if (main.meter !== undefined)
    observe(
      main.meter,
      {
        heap: gauge(
          'causeway_mcp_heap_bytes',
          "The MCP server's thread's JavaScript heap (its own isolate) as allocated.",
          'By',
        ),
        threadFailures: counter('causeway_mcp_thread_failures', "Times the MCP server's thread failed."),
        threadRestarts: counter(
          'causeway_mcp_thread_restarts',
          "Times a failed MCP server's thread was replaced by a new one on the same port.",
        ),
      },
      async () => ({ ...count, heap: await running.heap() }),
    );
  return {
    port: running.port,
    url: running.url,
    backend: running.backend,
    get worker() {
      return running.worker;
    },
    close: async () => {
      stopping = true;
      await running.stop();
    },
  };
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

interface Running {
  port: number;
  url: string;
  backend: string | undefined;
  worker: Worker;
  since: number;
  /** Resolves with why, if the thread ends without being stopped. */
  failed: Promise<string>;
  /** The thread's heap as allocated, in bytes; undefined once it has ended. */
  heap: () => Promise<number | undefined>;
  stop: () => Promise<void>;
}

/** One thread, listening; rejects, with the thread gone, when its server cannot start. */
function startThread(settings: ThreadSettings, main: McpMainSide): Promise<Running> {
  const worker = new Worker(new URL(import.meta.url), {
    workerData: { role: ROLE, settings },
    resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
  });
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  const heaps = new Answers();
  let ended = false;
  void exited.then(() => {
    ended = true;
    heaps.failAll(new Error("the MCP server's thread ended"));
  });
  let stopping = false;
  let error: Error | undefined;
  worker.on('error', (e) => (error = e));
  const failed = exited.then((code) => {
    if (stopping) return new Promise<string>(() => undefined);
    return error?.message ?? `exit code ${String(code)}`;
  });
  const closed = new Promise<void>((resolve) => {
    worker.on('message', (m: FromThread) => {
      if (m.kind === 'ask') answer(worker, m.id, m.what, main);
      else if (m.kind === 'heap') heaps.settle(m.reply);
      else if (m.kind === 'closed') resolve();
    });
  });
  return new Promise((resolve, reject) => {
    void failed.then((why) => {
      reject(new Error(`the MCP server's thread ended as it started: ${why}`));
    });
    worker.on('message', (m: FromThread) => {
      if (m.kind === 'failed') {
        stopping = true;
        const cause = withFields(m.error, m.fields);
        void exited.then(() => {
          reject(cause);
        });
      } else if (m.kind === 'listening')
        resolve({
          port: m.port,
          url: m.url,
          backend: m.backend,
          worker,
          since: Date.now(),
          failed,
          heap: async () => {
            if (ended) return undefined;
            const [id, heap] = heaps.ask<number>();
            worker.postMessage({ kind: 'heap', id } satisfies ToThread);
            return heap.catch(() => undefined);
          },
          stop: async () => {
            if (stopping) return;
            stopping = true;
            worker.postMessage({ kind: 'stop' } satisfies ToThread);
            await Promise.race([closed, exited]);
            await worker.terminate();
          },
        });
    });
  });
}

/** Answers the thread's question, or tells it why not. */
function answer(worker: Worker, id: number, what: Asked, main: McpMainSide): void {
  const reply = (r: Reply, transfer: MessagePort[] = []) => {
    worker.postMessage({ kind: 'answer', reply: r } satisfies ToThread, transfer);
  };
  (async () => {
    switch (what) {
      case 'status':
        reply({ id, result: await main.status() });
        return;
      case 'lag':
        reply({ id, result: main.store.lag() });
        return;
      case 'caughtUp':
        reply({ id, result: await main.store.caughtUp() });
        return;
      case 'storePort': {
        const port = main.store.readerPort();
        reply({ id, result: port }, [port]);
        return;
      }
    }
  })().catch((e: unknown) => {
    reply({ id, error: message(e), refused: false });
  });
}

/** The store as the tools read it here: its queries over a port to its worker, the rest asked of the main thread. */
class StoreOfMain extends PortStoreReader {
  constructor(private readonly askMain: <T>(what: Asked) => Promise<T>) {
    super(() => askMain<MessagePort>('storePort'));
  }

  lag(): Promise<WriteLag> {
    return this.askMain('lag');
  }

  caughtUp(): Promise<boolean> {
    return this.askMain('caughtUp');
  }
}

async function serve(settings: ThreadSettings): Promise<void> {
  const main = parentPort;
  if (main === null) throw new Error('the MCP server runs in a worker');
  const send = (m: FromThread): void => {
    main.postMessage(m);
  };
  const answers = new Answers();
  const ask = <T>(what: Asked): Promise<T> => {
    const [id, answer] = answers.ask<T>();
    send({ kind: 'ask', id, what });
    return answer;
  };
  const store = new StoreOfMain(ask);
  let backend: TraceSource | undefined;
  let server: McpHttpServer;
  try {
    // Loaded here, not by the main thread: the SDK, the tools and the analysis took 16 MB of a
    // worker's heap (21 MB in use against 5 for a worker that loads nothing).
    const [{ serveMcp }, { querySource }] = await Promise.all([import('./http.js'), import('../store/backend.js')]);
    backend = settings.backend === undefined ? undefined : querySource(settings.backend);
    server = await serveMcp(settings.http, {
      store,
      sources: backend === undefined ? [store] : [store, backend],
      status: () => ask('status'),
    });
  } catch (error) {
    send({ kind: 'failed', error, fields: errorFields(error) });
    main.close();
    return;
  }
  main.on('message', (m: ToThread) => {
    if (m.kind === 'answer') answers.settle(m.reply);
    else if (m.kind === 'heap')
      send({ kind: 'heap', reply: { id: m.id, result: getHeapStatistics().total_physical_size } });
    else
      void server.close().then(() => {
        send({ kind: 'closed' });
      });
  });
  send({ kind: 'listening', port: server.port, url: server.url, backend: backend?.name });
}

if (!isMainThread && (workerData as { role?: unknown } | null)?.role === ROLE)
  await serve((workerData as { settings: ThreadSettings }).settings);
