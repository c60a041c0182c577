// JaegerSource against a real Jaeger: an app trace and the kernel spans Causeway makes for it go
// in over OTLP gRPC (as the sidecar exports them), and come back through /api/v3 as the app
// spans and kernel events the analysis reads.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { SpanKind, SpanStatusCode, TraceFlags, type Attributes, type HrTime } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { KernelEvent } from '../../src/kernel/events.js';
import { SpanSender } from '../../src/export/sender.js';
import { KernelSpanBuilder } from '../../src/export/spans.js';
import { JaegerSource } from '../../src/store/jaeger.js';
import { freePort, getTrace, spansOf, startJaeger } from '../e2e/backends.js';

const MS = 1_000_000n;
const US = 1_000n;
const hrTime = (unixNano: bigint): HrTime => [Number(unixNano / 1_000_000_000n), Number(unixNano % 1_000_000_000n)];
const hex = (bytes: number) => randomBytes(bytes).toString('hex');

function appSpan(
  traceId: string,
  spanId: string,
  parent: string | undefined,
  name: string,
  start: bigint,
  end: bigint,
  resource: Attributes,
  attributes: Attributes,
): ReadableSpan {
  const context = { traceId, spanId, traceFlags: TraceFlags.SAMPLED };
  return {
    name,
    kind: SpanKind.SERVER,
    spanContext: () => context,
    ...(parent === undefined ? {} : { parentSpanContext: { traceId, spanId: parent, traceFlags: TraceFlags.SAMPLED } }),
    startTime: hrTime(start),
    endTime: hrTime(end),
    duration: hrTime(end - start),
    status: { code: SpanStatusCode.UNSET },
    attributes,
    links: [],
    events: [],
    ended: true,
    resource: resourceFromAttributes(resource),
    instrumentationScope: { name: 'opentelemetry.instrumentation.flask' },
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}

/** Jaeger keeps microseconds at least (its v1 model); the memory store here keeps nanoseconds. */
function assertNear(actual: bigint | undefined, expected: bigint, what: string) {
  assert.ok(
    actual !== undefined && actual - expected < US && expected - actual < US,
    `${what}: ${String(actual)} vs ${String(expected)}`,
  );
}

test('JaegerSource reads back app spans and the kernel events exported as kernel spans', async (t) => {
  const jaeger = await startJaeger();
  t.after(() => jaeger.stop());

  const traceId = hex(16);
  const gatewayId = hex(8);
  const handlerId = hex(8);
  const start = BigInt(Date.now()) * MS - 2000n * MS + 123n; // odd nanoseconds, to see what Jaeger keeps
  const gatewayEnd = start + 600n * MS;
  const handlerStart = start + 50n * MS + 7n;
  const handlerEnd = start + 550n * MS;
  const pid = 4242;
  const tid = 4243;
  const python = { 'service.name': 'checkout-py', 'process.pid': pid, 'telemetry.sdk.language': 'python' };
  const node = { 'service.name': 'gateway-node', 'process.pid': 777, 'telemetry.sdk.language': 'nodejs' };

  const event = (
    kind: KernelEvent['kind'],
    from: bigint,
    to: bigint,
    attributes: KernelEvent['attributes'],
  ): KernelEvent => ({ kind, pid, tid, comm: 'python3', startUnixNano: from, endUnixNano: to, attributes });
  const sync = event('cuda.sync', handlerStart + 10n * MS + 123n, handlerStart + 210n * MS + 456n, {
    'causeway.cuda.api': 'cudaStreamSynchronize',
    'causeway.cuda.error': 0,
    'causeway.cuda.stream': '0x7f00',
    'causeway.cuda.inflight.count': 2,
    'causeway.cuda.inflight.kernels': ['matmul(float*)', 'softmax'],
  });
  const futex = event('futex.wait', handlerStart + 220n * MS, handlerStart + 300n * MS + 999n, {
    'causeway.futex.uaddr': '0x55d0c0de',
    'causeway.futex.op': 'FUTEX_WAIT_BITSET_PRIVATE',
    'causeway.futex.waker.pid': pid,
    'causeway.futex.waker.tid': 4250,
    'causeway.futex.waker.comm': 'worker',
    'causeway.futex.result': 0,
  });
  const launch = event('cuda.launch', handlerStart + 5n * MS, handlerStart + 5n * MS + 35n * US, {
    'causeway.cuda.api': 'cudaLaunchKernel',
    'causeway.cuda.error': 0,
    'causeway.cuda.kernel': 'matmul(float*)',
    'causeway.cuda.grid': [64, 1, 1],
    'causeway.cuda.block': [256, 1, 1],
    'causeway.cuda.stream': '0x7f00',
  });
  const retransmit = event('tcp.retransmit', handlerStart + 400n * MS, handlerStart + 400n * MS, {
    'network.peer.address': '10.0.0.7',
    'network.peer.port': 5432,
    'network.local.port': 40000,
    'causeway.tcp.state': 'ESTABLISHED',
    'causeway.tcp.owner_known': true,
  });
  const events = [launch, sync, futex, retransmit];

  const handlerAttributes = { 'causeway.thread.tid': tid, 'http.route': '/checkout' };
  const kernelSpans = new KernelSpanBuilder().build({
    span: {
      traceId,
      spanId: handlerId,
      name: 'POST /checkout',
      startUnixNano: handlerStart,
      endUnixNano: handlerEnd,
      attributes: handlerAttributes,
      resource: python,
    },
    place: { hostPid: pid, hostTid: tid },
    events,
  });
  const sender = new SpanSender({
    exporter: () => new OTLPTraceExporter({ url: `http://${jaeger.otlpGrpc}` }),
    maxQueueSpans: 1000,
    maxQueueBytes: 2 ** 20,
    onStatus: () => undefined,
  });
  sender.send([
    appSpan(traceId, gatewayId, undefined, 'GET /checkout', start, gatewayEnd, node, {}),
    appSpan(traceId, handlerId, gatewayId, 'POST /checkout', handlerStart, handlerEnd, python, handlerAttributes),
    ...kernelSpans,
  ]);
  await sender.close();
  assert.equal(sender.counters().spansSent, 2 + kernelSpans.length);
  // Jaeger batches before it stores: wait until the whole trace can be read.
  const stored = await getTrace(jaeger.queryUrl, traceId, {
    until: (trace) => spansOf(trace).length === 2 + kernelSpans.length,
  });
  assert.equal(stored && spansOf(stored).length, 2 + kernelSpans.length);

  const source = new JaegerSource(jaeger.queryUrl);

  await t.test('spans: the app spans with their process and thread, not the kernel spans', async () => {
    const spans = await source.spans(traceId.toUpperCase());
    assert.deepEqual(spans.map((s) => s.name).sort(), ['GET /checkout', 'POST /checkout']);
    const handler = spans.find((s) => s.spanId === handlerId);
    const gateway = spans.find((s) => s.spanId === gatewayId);
    assert.ok(handler && gateway);
    assert.equal(handler.traceId, traceId);
    assert.equal(handler.parentSpanId, gatewayId);
    assert.equal(handler.service, 'checkout-py');
    assert.equal(handler.pid, pid);
    assert.equal(handler.tid, tid);
    assertNear(handler.startUnixNano, handlerStart, 'handler start');
    assertNear(handler.endUnixNano, handlerEnd, 'handler end');
    assert.equal(gateway.parentSpanId, undefined);
    assert.equal(gateway.service, 'gateway-node');
    // A Node span without causeway.thread.tid ran on the main thread, whose tid is the pid.
    assert.equal(gateway.pid, 777);
    assert.equal(gateway.tid, 777);
  });

  await t.test('events: the kernel events of the thread in the window, as they were captured', async () => {
    const got = await source.events({ pid, tid, from: handlerStart, to: handlerEnd });
    assert.deepEqual(
      got.map((e) => e.kind),
      ['cuda.launch', 'cuda.sync', 'futex.wait', 'tcp.retransmit'],
    );
    for (const [i, expected] of events.entries()) {
      const actual = got[i];
      assert.ok(actual);
      assert.equal(actual.pid, pid);
      assert.equal(actual.tid, tid);
      assert.equal(actual.comm, 'python3');
      assertNear(actual.startUnixNano, expected.startUnixNano, `${expected.kind} start`);
      assertNear(actual.endUnixNano, expected.endUnixNano, `${expected.kind} end`);
      // Same values and types (ints, arrays, booleans), and no bookkeeping keys.
      assert.deepEqual(actual.attributes, expected.attributes, expected.kind);
    }
    assert.deepEqual(
      (await source.events({ pid, tid, from: sync.endUnixNano, to: handlerEnd })).map((e) => e.kind),
      ['futex.wait', 'tcp.retransmit'],
    );
    assert.deepEqual((await source.events({ pid, from: handlerStart, to: handlerEnd })).length, 4);
    assert.deepEqual(await source.events({ pid, tid: 4250, from: handlerStart, to: handlerEnd }), []);
    assert.deepEqual(await source.events({ pid: 777, from: start, to: gatewayEnd }), []);
  });

  await t.test('gpuEvents: CUDA events of the other processes only', async () => {
    assert.deepEqual(
      (await source.gpuEvents(start, gatewayEnd, 777)).map((e) => e.kind),
      ['cuda.launch', 'cuda.sync'],
    );
    assert.deepEqual(await source.gpuEvents(start, gatewayEnd, pid), []);
  });

  await t.test('slowTraces: found by service and window, by its root span; filtered by duration', async () => {
    const window = { from: start - 60_000n * MS, to: start + 60_000n * MS, limit: 5 };
    const found = await source.slowTraces({ ...window, service: 'gateway-node' });
    assert.equal(found.length, 1);
    const [summary] = found;
    assert.equal(summary?.traceId, traceId);
    assert.equal(summary.service, 'gateway-node');
    assert.equal(summary.name, 'GET /checkout');
    assert.ok(Math.abs(summary.durationMs - 600) < 0.01, `duration ${summary.durationMs}`);
    assertNear(summary.startUnixNano, start, 'root start');
    // The root span is the gateway's even when searching by the handler's service.
    assert.equal((await source.slowTraces({ ...window, service: 'checkout-py' }))[0]?.service, 'gateway-node');
    assert.deepEqual(await source.slowTraces({ ...window, service: 'gateway-node', minDurationMs: 601 }), []);
    assert.equal((await source.slowTraces({ ...window, minDurationMs: 599 })).length, 1);
    assert.deepEqual(await source.slowTraces({ ...window, service: 'no-such-service' }), []);
    assert.deepEqual(await source.slowTraces({ ...window, from: start + 1000n * MS }), []);
  });

  await t.test('an unknown trace has no spans; a malformed id is refused before any request', async () => {
    assert.deepEqual(await source.spans(hex(16)), []);
    await assert.rejects(source.spans('../api/v3/services'), /not a trace id/);
  });

  await t.test("Jaeger's error answers are reported with its message", async () => {
    // The memory store refuses a search deeper than the traces it holds (100000 here).
    await assert.rejects(source.slowTraces({ from: start, to: gatewayEnd, limit: 200_000 }), (error: Error) => {
      assert.match(
        error.message,
        /^jaeger at http:\/\/127\.0\.0\.1:\d+\/: GET \/api\/v3\/traces answered HTTP 500: search depth/,
      );
      return true;
    });
    // A URL that is not the query API is an error, not an unknown trace (Jaeger's UI answers any path).
    await assert.rejects(
      new JaegerSource(`${jaeger.queryUrl}/not-jaeger`).spans(traceId),
      /answered with something other than JSON \(is the URL its query API\?\): "<!DOCTYPE html>/,
    );
  });
});

test('JaegerSource says when Jaeger is unreachable or too slow', async (t) => {
  const closed = await freePort();
  await assert.rejects(
    new JaegerSource(`http://127.0.0.1:${closed}`).spans(hex(16)),
    /^Error: jaeger at http:\/\/127\.0\.0\.1:\d+\/ is unreachable: connect ECONNREFUSED/,
  );

  // Accepts the request and never answers.
  const silent = createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    silent.closeAllConnections();
    silent.close();
  });
  const { port } = silent.address() as AddressInfo;
  const began = Date.now();
  await assert.rejects(
    new JaegerSource(`http://127.0.0.1:${port}`, { timeoutMs: 300 }).spans(hex(16)),
    /did not answer within 300 ms/,
  );
  assert.ok(Date.now() - began < 5000);
});

test('JaegerSource refuses an answer larger than its bound, whether or not it is announced', async (t) => {
  const answer = JSON.stringify({ result: { resourceSpans: [], padding: 'x'.repeat(100_000) } });
  const big = createServer((request, response) => {
    // Behind /streamed/ the answer comes in chunks with no Content-Length.
    if (request.url?.startsWith('/streamed/api/v3/traces/') === true) {
      for (let at = 0; at < answer.length; at += 4096) response.write(answer.slice(at, at + 4096));
      response.end();
    } else if (request.url?.startsWith('/api/v3/traces/') === true) response.end(answer);
    else response.writeHead(500).end();
  });
  await new Promise<void>((resolve) => big.listen(0, '127.0.0.1', resolve));
  t.after(() => big.close());
  const { port } = big.address() as AddressInfo;
  for (const url of [`http://127.0.0.1:${port}`, `http://127.0.0.1:${port}/streamed`]) {
    await assert.rejects(new JaegerSource(url, { maxResponseBytes: 10_000 }).spans(hex(16)), /larger than 10000 bytes/);
    // Under the bound, the same answer is a trace Jaeger does not hold.
    assert.deepEqual(await new JaegerSource(url).spans(hex(16)), []);
  }
});
