// The OTLP servers' thread and its protocol with the receiver. The servers (gRPC and HTTP) run
// in a worker_threads Worker with an event loop of their own, so accepting, reading,
// decompressing, decoding and answering requests never wait for the main thread: under the
// whole sidecar's load the main loop turns only a few times a second, and Node accepts one
// connection per turn, so new connections waited hundreds deep in the kernel's accept queue.
//
// Batches cross as structured clones of the decoded AppSpan arrays. Measured per span on one
// machine (issue 11, 10- and 100-span requests of the load's app): protobuf decode 5.9-6.4 us,
// v8 deserialize of the same spans 3.9 us, so the main thread pays about 0.6 of the decode it
// no longer does, and the clone keeps every AttrValue kind (bigint, bytes, nesting) and the
// resource object shared between a request's spans. (JSON with the nanosecond times as strings
// parses in 2 us but loses those, so it would need a codec of its own.)
//
// Messages, worker to receiver: one 'listening' or 'failed' at start, then 'spans' (one per
// accepted request, in acceptance order) and 'error' (unexpected server errors), and 'stopped'
// after close, once the servers have finished their in-flight requests; every 'spans' precedes
// it. Receiver to worker: 'stop'. The counters are shared memory (SharedCounters), not messages.

import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { startGrpcServer, stopGrpcServer } from './grpc.js';
import { startHttpServer, stopHttpServer } from './http.js';
import { IngestGate, SharedCounters } from './ingest.js';
import type { AppSpan } from './spans.js';

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
  | { kind: 'failed'; error: unknown }
  | { kind: 'spans'; spans: AppSpan[] }
  | { kind: 'error'; error: unknown }
  | { kind: 'stopped' };

type ToWorker = { kind: 'stop' };

/** Marks this module's own Worker, so importing it from another worker runs nothing. */
const ROLE = 'causeway-otlp-servers';

export interface ServerThread {
  readonly grpcPort: number | undefined;
  readonly httpPort: number | undefined;
  /** Stops the servers (in-flight requests finish); resolves once every batch has been handed over and the thread has exited. */
  stop(): Promise<void>;
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
  const worker = new Worker(new URL(import.meta.url), { workerData: { role: ROLE, settings } });
  let stopping = false;
  let failure: Error | undefined;
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
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
    let stopped: () => void = () => undefined;
    const handedOver = new Promise<void>((r) => {
      stopped = r;
    });
    worker.on('message', (m: FromWorker) => {
      switch (m.kind) {
        case 'spans':
          events.onSpans(m.spans);
          return;
        case 'error':
          events.onError(m.error);
          return;
        case 'listening':
          started = true;
          resolve({
            grpcPort: m.grpcPort,
            httpPort: m.httpPort,
            worker,
            stop: async () => {
              stopping = true;
              if (failure === undefined) {
                worker.postMessage({ kind: 'stop' } satisfies ToWorker);
                await Promise.race([handedOver, exited]);
              }
              await exited;
            },
          });
          return;
        case 'failed':
          stopping = true;
          reject(m.error instanceof Error ? m.error : new Error(String(m.error)));
          return;
        case 'stopped':
          stopped();
          return;
      }
    });
  });
}

async function serve(settings: ServerSettings): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('the OTLP servers run in a worker');
  const send = (m: FromWorker): void => {
    port.postMessage(m);
  };
  const gate = new IngestGate(new SharedCounters(settings.counters), settings.maxPendingSpans, (spans) => {
    send({ kind: 'spans', spans });
  });
  const onError = (error: unknown): void => {
    send({ kind: 'error', error });
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
    send({ kind: 'failed', error });
    port.close();
    return;
  }
  port.on('message', (m: unknown) => {
    if ((m as Partial<ToWorker> | null)?.kind !== 'stop')
      throw new Error(`OTLP receiver thread: unknown message ${JSON.stringify(m)}`);
    void stopAll().then(() => {
      send({ kind: 'stopped' });
      port.close();
    });
  });
  send({ kind: 'listening', grpcPort, httpPort });
}

if (!isMainThread && (workerData as { role?: unknown } | null)?.role === ROLE)
  await serve((workerData as { settings: ServerSettings }).settings);
