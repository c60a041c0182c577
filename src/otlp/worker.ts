// The OTLP servers' thread and its protocol with the receiver. The servers (gRPC and HTTP) run
// in a worker_threads Worker with an event loop of their own, so accepting, reading,
// decompressing, decoding and answering requests never wait for the main thread: under the
// whole sidecar's load the main loop turns only a few times a second, and Node accepts one
// connection per turn, so new connections waited hundreds deep in the kernel's accept queue.
//
// How a request's spans cross to the main thread is chosen for the main thread's cost, per span,
// measured on one machine (issue 11; the load's app's spans, 100 and 10 a request): the protobuf
// decode it no longer does 6.0-6.3 us; a structured clone of the AppSpans costs it 3.9 us to
// deserialize; JSON of them, the nanosecond times as strings made bigints again and the shared
// resource cloned once, 1.6-3.0 us. So spans cross as JSON when every attribute value is one
// JSON carries unchanged; a batch with a bigint, bytes or a non-finite number in its span
// attributes crosses as a clone.
//
// Messages, worker to receiver: one 'listening' or 'failed' at start, then 'spans' (one per
// accepted request, in acceptance order) and 'error' (unexpected server errors). Receiver to
// worker: 'heap', answered by a 'heap' with the thread's own heap (an isolate of its own, which
// the main thread's memory figures do not include); 'stop', after which the servers finish their
// in-flight requests and the thread ends. Node delivers every message a worker posted before its
// 'exit' event, so once the thread has exited every batch has been handed over. The counters are
// shared memory (SharedCounters).

import { getHeapStatistics } from 'node:v8';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { errorFields, withFields } from '../thread-error.js';
import { startGrpcServer, stopGrpcServer } from './grpc.js';
import { startHttpServer, stopHttpServer } from './http.js';
import { IngestGate, SharedCounters } from './ingest.js';
import type { AppSpan, Attributes, AttrValue } from './spans.js';

/** What the worker needs to run the servers; all plain data. */
export interface ServerSettings {
  grpc: { host: string; port: number } | false;
  http: { host: string; port: number } | false;
  maxMessageBytes: number;
  maxPendingSpans: number;
  drainTimeoutMs: number;
  counters: SharedArrayBuffer;
}

type FromWorker =
  | { kind: 'listening'; grpcPort: number | undefined; httpPort: number | undefined }
  | { kind: 'failed'; error: unknown; fields: Record<string, unknown> }
  | { kind: 'spans'; batch: SpanBatch }
  | { kind: 'error'; error: unknown }
  | ({ kind: 'heap' } & ServerHeap);

type ToWorker = { kind: 'stop' } | { kind: 'heap'; collect: boolean };

/** The servers' thread's JavaScript heap, in bytes. */
export interface ServerHeap {
  used: number;
  /** As allocated and backed by memory: in use, garbage not yet collected and free space. */
  total: number;
  /** Whether a full collection ran first (asked for, and the process runs with --expose-gc), so that `used` is what is live. */
  collected: boolean;
}

/** A request's spans on their way to the main thread (see above). */
type SpanBatch = { json: string; resources: Attributes[] } | { spans: AppSpan[] };

/** Whether JSON carries this value unchanged: no bigint, bytes, non-finite number or -0. */
function plain(v: AttrValue | Attributes): boolean {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(v) && !Object.is(v, -0);
    case 'bigint':
      return false;
    default:
      if (v instanceof Uint8Array) return false;
      return Array.isArray(v) ? v.every(plain) : Object.values(v).every(plain);
  }
}

function packSpans(spans: AppSpan[]): SpanBatch {
  const resources: Attributes[] = [];
  const index = new Map<Attributes, number>();
  const rows = [];
  for (const span of spans) {
    if (!plain(span.attributes)) return { spans };
    let r = index.get(span.resource);
    if (r === undefined) {
      r = resources.length;
      resources.push(span.resource);
      index.set(span.resource, r);
    }
    rows.push({
      ...span,
      resource: r,
      startUnixNano: String(span.startUnixNano),
      endUnixNano: String(span.endUnixNano),
    });
  }
  return { json: JSON.stringify(rows), resources };
}

interface PackedSpan extends Omit<AppSpan, 'resource' | 'startUnixNano' | 'endUnixNano'> {
  resource: number | Attributes;
  startUnixNano: string | bigint;
  endUnixNano: string | bigint;
}

function unpackSpans(batch: SpanBatch): AppSpan[] {
  if ('spans' in batch) return batch.spans;
  const rows = JSON.parse(batch.json) as PackedSpan[];
  for (const row of rows) {
    row.resource = batch.resources[row.resource as number] ?? {};
    row.startUnixNano = BigInt(row.startUnixNano);
    row.endUnixNano = BigInt(row.endUnixNano);
  }
  return rows as AppSpan[];
}

/**
 * The thread's young generation, in MiB (V8's default is 3 semi-spaces of up to 16 MiB each):
 * what it allocates, a request's decoded spans, is garbage once handed over; the store's
 * worker measured a small nursery's heap at a third of the default's (src/store/store.ts).
 */
const YOUNG_GENERATION_MB = 8;

/** Marks this module's own Worker, so importing it from another worker runs nothing. */
const ROLE = 'causeway-otlp-servers';

export interface ServerThread {
  readonly grpcPort: number | undefined;
  readonly httpPort: number | undefined;
  /** Stops the servers (in-flight requests finish); resolves once every batch has been handed over and the thread has exited. */
  stop(): Promise<void>;
  /** The thread's heap, after a full collection when `collect` (and gc is exposed); undefined once the thread has ended. */
  heap(collect: boolean): Promise<ServerHeap | undefined>;
  /** The thread itself, for tests that make it fail. */
  readonly worker: Worker;
}

export interface ServerThreadEvents {
  onSpans: (spans: AppSpan[]) => void;
  onError: (err: unknown) => void;
  /** The thread ended without being stopped (an uncaught error, or terminated). */
  onFailure: (err: Error) => void;
}

/** Starts the servers' thread; rejects, with the thread gone, when a server cannot start. */
export function startServerThread(settings: ServerSettings, events: ServerThreadEvents): Promise<ServerThread> {
  const worker = new Worker(new URL(import.meta.url), {
    workerData: { role: ROLE, settings },
    resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
  });
  let stopping = false;
  let failure: Error | undefined;
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  // The thread answers in the order asked; one that ended answers nothing more.
  const heapAnswers: ((heap: ServerHeap | undefined) => void)[] = [];
  let ended = false;
  void exited.then(() => {
    ended = true;
    for (const answer of heapAnswers.splice(0)) answer(undefined);
  });
  return new Promise((resolve, reject) => {
    let started = false;
    const failed = (err: Error): void => {
      if (failure !== undefined) return;
      failure = err;
      if (started) events.onFailure(err);
      else reject(err);
    };
    worker.on('error', (err) => {
      failed(
        new Error(`OTLP receiver thread failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err }),
      );
    });
    worker.on('exit', (code) => {
      if (!stopping) failed(new Error(`OTLP receiver thread exited unexpectedly (code ${code})`));
    });
    worker.on('message', (m: FromWorker) => {
      switch (m.kind) {
        case 'spans':
          events.onSpans(unpackSpans(m.batch));
          return;
        case 'error':
          events.onError(m.error);
          return;
        case 'heap':
          heapAnswers.shift()?.({ used: m.used, total: m.total, collected: m.collected });
          return;
        case 'listening':
          started = true;
          resolve({
            grpcPort: m.grpcPort,
            httpPort: m.httpPort,
            worker,
            stop: async () => {
              stopping = true;
              if (failure === undefined) worker.postMessage({ kind: 'stop' } satisfies ToWorker);
              await exited;
            },
            heap: (collect) => {
              if (ended) return Promise.resolve(undefined);
              const answered = new Promise<ServerHeap | undefined>((answer) => heapAnswers.push(answer));
              worker.postMessage({ kind: 'heap', collect } satisfies ToWorker);
              return answered;
            },
          });
          return;
        case 'failed': {
          stopping = true;
          const error = withFields(m.error, m.fields);
          // Once the thread is gone, as promised: a caller may retry at once.
          void exited.then(() => {
            reject(error);
          });
          return;
        }
      }
    });
  });
}

function measureHeap(collect: boolean): ServerHeap {
  const gc = collect ? (globalThis as { gc?: () => void }).gc : undefined;
  // Twice: the first collection's finalizers can leave garbage only a second one finds.
  gc?.();
  gc?.();
  const { used_heap_size: used, total_physical_size: total } = getHeapStatistics();
  return { used, total, collected: gc !== undefined };
}

async function serve(settings: ServerSettings): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('the OTLP servers run in a worker');
  const send = (m: FromWorker): void => {
    port.postMessage(m);
  };
  const gate = new IngestGate(new SharedCounters(settings.counters), settings.maxPendingSpans, (spans) => {
    send({ kind: 'spans', batch: packSpans(spans) });
  });
  const onError = (error: unknown): void => {
    try {
      send({ kind: 'error', error });
    } catch {
      // An error that cannot be cloned (a function in it) still reaches onError, as its text.
      send({ kind: 'error', error: new Error(String(error)) });
    }
  };
  const servers: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(servers.map((stop) => stop()));
  };
  let grpcPort: number | undefined;
  let httpPort: number | undefined;
  try {
    if (settings.grpc !== false) {
      const g = await startGrpcServer(settings.grpc.host, settings.grpc.port, settings.maxMessageBytes, gate);
      servers.push(() => stopGrpcServer(g.server, settings.drainTimeoutMs));
      grpcPort = g.port;
    }
    if (settings.http !== false) {
      const h = await startHttpServer(settings.http.host, settings.http.port, settings.maxMessageBytes, gate, onError);
      servers.push(() => stopHttpServer(h.server, settings.drainTimeoutMs));
      httpPort = h.port;
    }
  } catch (error) {
    await stopAll();
    send({ kind: 'failed', error, fields: errorFields(error) });
    port.close();
    return;
  }
  port.on('message', (m: ToWorker) => {
    switch (m.kind) {
      case 'heap':
        send({ kind: 'heap', ...measureHeap(m.collect) });
        return;
      case 'stop':
        void stopAll().then(() => {
          gate.close();
          port.close();
        });
        return;
      default:
        throw new Error(`OTLP receiver thread: unknown message ${JSON.stringify(m)}`);
    }
  });
  send({ kind: 'listening', grpcPort, httpPort });
}

if (!isMainThread && (workerData as { role?: unknown } | null)?.role === ROLE)
  await serve((workerData as { settings: ServerSettings }).settings);
