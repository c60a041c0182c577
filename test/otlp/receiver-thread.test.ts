// The receiver's servers run in a thread of their own (src/otlp/worker.ts): with the main thread
// blocked, new connections are still accepted and answered within the pending bound; the thread
// exits cleanly when stopped, and its failure is reported; its heap, an isolate of its own, is
// reported.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { getHeapStatistics } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { SharedCounters } from '../../src/otlp/ingest.js';
import { startOtlpReceiver } from '../../src/otlp/index.js';
import { startServerThread, type ServerSettings, type ServerThreadEvents } from '../../src/otlp/worker.js';
import { otlpRequest } from '../bench/pipeline.js';
import { TestMeter } from '../export/meter.js';
import { BUSY_MAIN_CELLS, BusyMainCell, type BusyMainClient } from './busy-main-client.js';

const HOST = '127.0.0.1';

test('with the main thread blocked, new HTTP connections are accepted and answered: 200 within the pending bound, 503 beyond it', async (t) => {
  const n = 40;
  const maxPendingSpans = 11;
  const cells = new Int32Array(new SharedArrayBuffer(BUSY_MAIN_CELLS * Int32Array.BYTES_PER_ELEMENT));
  let blockForMs = 0;
  const r = await startOtlpReceiver({
    grpc: false,
    http: { host: HOST, port: 0 },
    maxPendingSpans,
    onSpans: () => {
      if (blockForMs === 0) return;
      const until = performance.now() + blockForMs;
      blockForMs = 0;
      Atomics.store(cells, BusyMainCell.BLOCKED, 1);
      // Busy as the sidecar's main thread is under load: nothing else runs here until the client
      // has every answer (or the time it took unblocked, many times over, has passed).
      while (Atomics.load(cells, BusyMainCell.ANSWERED) < n && performance.now() < until);
      Atomics.store(cells, BusyMainCell.BLOCKED, 0);
    },
  });
  t.after(() => r.close());
  const settled = async (): Promise<void> => {
    while (r.counters().pendingSpans > 0) await new Promise((resolve) => setTimeout(resolve, 1));
  };
  const client = new Worker(new URL('busy-main-client.js', import.meta.url), {
    workerData: {
      port: r.httpPort ?? 0,
      body: otlpRequest(1, { pid: process.pid, durationNs: 1_000_000n }).body,
      n,
      shared: cells.buffer,
    } satisfies BusyMainClient,
  });
  t.after(() => client.terminate());
  const answer = (): Promise<unknown> => new Promise((resolve) => client.once('message', resolve));

  client.postMessage('free');
  const freeMs = (await answer()) as number;
  await settled();
  const before = r.counters();

  // The client's first request blocks the main thread in onSpans; its span stays pending there,
  // so exactly maxPendingSpans - 1 of the n one-span requests fit.
  blockForMs = Math.max(2000, 50 * freeMs);
  client.postMessage('blocked');
  assert.equal(await answer(), 'done');
  assert.equal(Atomics.load(cells, BusyMainCell.ANSWERED), n);
  assert.equal(
    Atomics.load(cells, BusyMainCell.ANSWERED_WHILE_BLOCKED),
    n,
    'every request was answered while the main thread was blocked',
  );
  assert.equal(Atomics.load(cells, BusyMainCell.OK), maxPendingSpans - 1);
  assert.equal(Atomics.load(cells, BusyMainCell.REFUSED), n - (maxPendingSpans - 1));
  assert.equal(Atomics.load(cells, BusyMainCell.OTHER), 0);

  await settled();
  const k = r.counters();
  assert.equal(k.spansAccepted - before.spansAccepted, maxPendingSpans);
  assert.equal(k.requestsRefused - before.requestsRefused, n - (maxPendingSpans - 1));
  assert.equal(k.spansDelivered, k.spansAccepted, 'once unblocked, every accepted span reached onSpans');
});

function settings(): ServerSettings {
  return {
    grpc: { host: HOST, port: 0 },
    http: { host: HOST, port: 0 },
    maxMessageBytes: 1 << 20,
    maxPendingSpans: 100,
    drainTimeoutMs: 1000,
    counters: new SharedCounters().buffer,
  };
}

test("the servers' thread exits cleanly when stopped, and a failure of it is reported, not silent", async () => {
  const failures: Error[] = [];
  const events: ServerThreadEvents = {
    onSpans: () => undefined,
    onError: () => undefined,
    onFailure: (err) => failures.push(err),
  };
  const clean = await startServerThread(settings(), events);
  const cleanExit = new Promise((resolve) => clean.worker.once('exit', resolve));
  await clean.stop();
  assert.equal(await cleanExit, 0);
  assert.equal(failures.length, 0);

  const failing = await startServerThread(settings(), events);
  const failedExit = new Promise((resolve) => failing.worker.once('exit', resolve));
  failing.worker.postMessage({ kind: 'no such message' });
  assert.notEqual(await failedExit, 0);
  assert.equal(failures.length, 1);
  assert.match(failures[0]?.message ?? '', /OTLP receiver thread failed: .*unknown message/);
  await failing.stop();
  await assert.rejects(
    fetch(`http://${HOST}:${failing.httpPort}/v1/traces`, { method: 'POST' }),
    'its servers are gone',
  );
});

test('a receiver whose port is taken fails to start, saying why', async (t) => {
  const first = await startOtlpReceiver({ grpc: false, http: { host: HOST, port: 0 }, onSpans: () => undefined });
  t.after(() => first.close());
  await assert.rejects(
    startOtlpReceiver({ grpc: false, http: { host: HOST, port: first.httpPort ?? 0 }, onSpans: () => undefined }),
    (e: unknown) => {
      const err = e as NodeJS.ErrnoException & { port?: number };
      assert.ok(err instanceof Error);
      assert.equal(err.code, 'EADDRINUSE');
      assert.equal(err.syscall, 'listen');
      assert.equal(err.port, first.httpPort);
      return true;
    },
  );
});

test("a failed servers' thread is started again on the same ports; one that keeps failing with no span accepted between leaves the receiver down, saying so", async (t) => {
  const errors: string[] = [];
  const delivered: number[] = [];
  const r = await startOtlpReceiver({
    grpc: { host: HOST, port: 0 },
    http: { host: HOST, port: 0 },
    onSpans: (spans) => {
      delivered.push(spans.length);
    },
    onError: (err) => errors.push(err instanceof Error ? err.message : String(err)),
  });
  t.after(() => r.close());
  // As the receiver-level failure of the test above: a message the thread does not know makes it throw.
  const fail = async (): Promise<void> => {
    const failures = r.counters().workerFailures;
    await until(() => r.counters().workerRestarts === failures); // the thread now serving has started
    const thread = (r as unknown as { servers: { worker: Worker } }).servers.worker;
    thread.postMessage({ kind: 'no such message' });
    await new Promise((resolve) => thread.once('exit', resolve));
    await until(() => errors.length > failures);
  };
  const until = async (done: () => boolean): Promise<void> => {
    const deadline = performance.now() + 10_000;
    while (!done()) {
      assert.ok(
        performance.now() < deadline,
        `timed out; counters ${JSON.stringify(r.counters())}, errors ${JSON.stringify(errors)}`,
      );
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  const post = async (): Promise<number> => {
    const response = await fetch(`http://${HOST}:${String(r.httpPort)}/v1/traces`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-protobuf' },
      body: otlpRequest(3, { pid: process.pid, durationNs: 1_000_000n }).body,
    });
    await response.arrayBuffer();
    return response.status;
  };

  assert.equal(await post(), 200);
  await fail();
  await until(() => r.counters().workerRestarts === 1);
  assert.match(
    errors[0] ?? '',
    /OTLP receiver thread failed: .*unknown message.*; 0 spans accepted and not handed over are lost; starting it again$/,
  );
  assert.equal(await post(), 200, 'the same HTTP port answers');
  await until(() => delivered.length === 2);

  // Spans were accepted since the first failure, so the next is the first in a row; the fourth
  // in a row with no span accepted in between is not restarted.
  for (let i = 0; i < 4; i++) await fail();
  assert.match(errors[4] ?? '', /failed 4 times with no span accepted in between: the receiver is down$/);
  const counters = r.counters();
  assert.deepEqual(
    [
      counters.workerFailures,
      counters.workerRestarts,
      counters.spansAccepted,
      counters.spansDelivered,
      counters.pendingSpans,
    ],
    [5, 4, 6, 6, 0],
  );
  await assert.rejects(post(), 'no server listens once the receiver is down');
});

test("the receiver reports its servers' thread's own heap, on request and as a gauge, and none once closed", async () => {
  const m = new TestMeter();
  const r = await startOtlpReceiver({
    grpc: false,
    http: { host: HOST, port: 0 },
    onSpans: () => undefined,
    meter: m.meter,
  });
  // 40 MiB live on the main thread, which the servers' thread's heap must not include.
  const held = Array.from({ length: 40 }, () => new Array<number>(128 * 1024).fill(0.5));
  const heap = await r.heap();
  assert.ok(heap !== undefined);
  assert.ok(heap.used > 0 && heap.total >= heap.used, JSON.stringify(heap));
  assert.ok(
    heap.used < 40 * 2 ** 20 && getHeapStatistics().used_heap_size > 40 * 2 ** 20,
    'the thread\u2019s heap, not the main thread\u2019s',
  );
  assert.equal(heap.collected, false, 'no collection without --expose-gc');
  const gauge = await m.value('causeway_receiver_heap_bytes');
  assert.ok(gauge !== undefined && gauge > 0 && gauge < 40 * 2 ** 20, `gauge ${String(gauge)}`);
  assert.equal(held.length, 40);
  await r.close();
  assert.equal(await r.heap(), undefined);
});
