// The span sender in front of an exporter: batches; a queue bounded in spans and in bytes that
// drops the oldest and counts them; batches that failed for a retryable reason kept and sent
// again with backoff, through a new exporter, until the collector is back; batches refused for
// good dropped and counted; the collector's going and coming said once each; and close(), which
// keeps trying until its deadline and counts what it leaves. The exporters are the SDK's
// in-memory one, in front of a collector double made to fail or to hold its answers on demand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Metadata, status } from '@grpc/grpc-js';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { SpanSender, encodedSize, type SenderOptions } from '../../src/export/sender.js';
import { RpcCode, encodeStatus } from '../../src/otlp/protos.js';
import { TestMeter } from './meter.js';

/** A gRPC error as the OTLP exporter hands it on: grpc-js's ServiceError. */
function grpcError(code: status, statusDetails?: Uint8Array): Error {
  const metadata = new Metadata();
  if (statusDetails !== undefined) metadata.set('grpc-status-details-bin', Buffer.from(statusDetails));
  return Object.assign(new Error(`${String(code)} ${status[code]}: from the collector double`), { code, metadata });
}

const UNAVAILABLE = grpcError(status.UNAVAILABLE);

/** The collector behind every exporter the sender makes: answers, fails with `failure`, or holds its answers until release(). */
class CollectorDouble {
  failure: Error | undefined;
  holding = false;
  readonly batches: number[] = [];
  readonly received: string[] = [];
  readonly exporters: ExporterDouble[] = [];
  readonly held: (() => void)[] = [];

  readonly exporter = () => {
    const exporter = new ExporterDouble(this);
    this.exporters.push(exporter);
    return exporter;
  };

  release(): void {
    this.holding = false;
    for (const answer of this.held.splice(0)) answer();
  }
}

class ExporterDouble extends InMemorySpanExporter {
  shutDown = false;

  constructor(private readonly collector: CollectorDouble) {
    super();
  }

  override export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    const collector = this.collector;
    collector.batches.push(spans.length);
    const failure = collector.failure;
    const answer = () => {
      if (failure !== undefined) {
        done({ code: ExportResultCode.FAILED, error: failure });
        return;
      }
      collector.received.push(...spans.map((s) => s.name));
      super.export(spans, done);
    };
    if (collector.holding) collector.held.push(answer);
    else answer();
  }

  override shutdown(): Promise<void> {
    this.shutDown = true;
    return super.shutdown();
  }
}

const tracer = new BasicTracerProvider().getTracer('sender-test');
const spans = (...names: string[]) =>
  names.map((name) => {
    const span = tracer.startSpan(name);
    span.end();
    return span as unknown as ReadableSpan;
  });
const named = (prefix: string, n: number) => spans(...Array.from({ length: n }, (_, i) => `${prefix}${String(i)}`));

function sender(options: Partial<SenderOptions> = {}) {
  const collector = new CollectorDouble();
  const statuses: [boolean, string][] = [];
  const s = new SpanSender({
    exporter: collector.exporter,
    maxQueueSpans: 1000,
    maxQueueBytes: 2 ** 20,
    retry: { initialMs: 5, maxMs: 20 },
    onStatus: (up, detail) => statuses.push([up, detail]),
    ...options,
  });
  return { s, collector, statuses };
}

async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await sleep(10);
  assert.ok(condition(), `timed out waiting for ${what}`);
}

const NOTHING_DROPPED = { queueFull: 0, rejected: 0, shutdown: 0 };

test('spans go out in batches of at most batchSize, in order', async () => {
  const { s, collector } = sender({ batchSize: 3 });
  s.send(spans('a', 'b', 'c', 'd', 'e', 'f', 'g'));
  await until('all sent', () => s.counters().spansSent === 7);
  assert.deepEqual(collector.batches, [3, 3, 1]);
  assert.deepEqual(collector.received, ['a', 'b', 'c', 'd', 'e', 'f', 'g']);
  assert.deepEqual(s.counters(), {
    spansSent: 7,
    spansDropped: 0,
    dropped: NOTHING_DROPPED,
    exportFailures: 0,
    queued: 0,
    queuedBytes: 0,
    collectorUp: true,
  });
});

test('past the span bound the oldest queued spans are dropped, and counted', async () => {
  const { s, collector } = sender({ maxQueueSpans: 4, batchSize: 2 });
  collector.holding = true;
  s.send(spans('a', 'b')); // in flight, and counted in the bound
  s.send(spans('c', 'd', 'e', 'f', 'g', 'h'));
  assert.equal(s.counters().queued, 4);
  assert.deepEqual(s.counters().dropped, { ...NOTHING_DROPPED, queueFull: 4 });
  collector.release();
  await until('all sent', () => s.counters().spansSent === 4);
  assert.deepEqual(collector.received, ['a', 'b', 'g', 'h']);
  assert.equal(s.counters().spansDropped, 4);
});

test('past the byte bound the oldest queued spans are dropped, and the bytes held are the queued spans', async () => {
  const batch = named('span-', 10);
  const each = encodedSize(batch[0] as ReadableSpan);
  assert.ok(
    batch.every((span) => encodedSize(span) === each),
    'names of one length: spans of one size',
  );
  const { s, collector } = sender({ maxQueueBytes: each * 3 + each / 2, batchSize: 100 });
  collector.holding = true;
  s.send(batch.slice(0, 1));
  s.send(batch.slice(1));
  assert.deepEqual(s.counters().dropped, { ...NOTHING_DROPPED, queueFull: 7 });
  assert.equal(s.counters().queued, 3);
  assert.equal(s.counters().queuedBytes, each * 3);
  collector.release();
  await until('all sent', () => s.counters().spansSent === 3);
  assert.deepEqual(collector.received, ['span-0', 'span-8', 'span-9']);
  assert.equal(s.counters().queuedBytes, 0);
});

test('while the collector is unreachable batches stay queued and are retried through a new exporter; all are delivered in order when it returns', async () => {
  const { s, collector, statuses } = sender({ batchSize: 2 });
  collector.failure = UNAVAILABLE;
  s.send(spans('a', 'b', 'c'));
  await until('retries', () => s.counters().exportFailures >= 3);
  s.send(spans('d'));
  assert.equal(s.counters().spansDropped, 0);
  assert.equal(s.counters().queued, 4);
  assert.equal(s.counters().collectorUp, false);
  assert.ok(
    collector.exporters.slice(0, -1).every((e) => e.shutDown),
    'each exporter that failed was shut down and replaced',
  );
  assert.ok(
    collector.batches.every((n) => n === 2),
    'the same first batch, sent again',
  );
  collector.failure = undefined;
  await until('all sent', () => s.counters().spansSent === 4);
  assert.deepEqual(collector.received, ['a', 'b', 'c', 'd']);
  assert.deepEqual(statuses, [
    [false, `${UNAVAILABLE.message} (kernel spans wait in the queue and are sent again)`],
    [true, 'collector reachable again'],
  ]);
  assert.deepEqual(s.counters().dropped, NOTHING_DROPPED);
});

test('an outage longer than the queue drops the oldest, and sent plus dropped is every span', async () => {
  const { s, collector } = sender({ maxQueueSpans: 10, batchSize: 4 });
  collector.failure = UNAVAILABLE;
  const all = named('s', 25);
  for (let i = 0; i < all.length; i += 5) {
    s.send(all.slice(i, i + 5));
    await until('a retry', () => collector.batches.length > i / 5);
  }
  collector.failure = undefined;
  await until('the queue delivered', () => s.counters().queued === 0);
  const { spansSent, dropped } = s.counters();
  assert.equal(spansSent, 10);
  assert.deepEqual(dropped, { ...NOTHING_DROPPED, queueFull: 15 });
  assert.deepEqual(
    collector.received,
    all.slice(15).map((span) => span.name),
    'the newest ten',
  );
});

test('a batch the collector refuses for good is dropped and counted, and the next batches go on', async () => {
  const { s, collector, statuses } = sender({ batchSize: 2 });
  collector.failure = grpcError(status.INVALID_ARGUMENT);
  s.send(spans('a', 'b'));
  await until('the refusal', () => s.counters().exportFailures === 1);
  collector.failure = undefined;
  s.send(spans('c'));
  await until('the next batch', () => s.counters().spansSent === 1);
  assert.deepEqual(collector.batches, [2, 1], 'the refused batch was not sent again');
  assert.deepEqual(s.counters().dropped, { ...NOTHING_DROPPED, rejected: 2 });
  assert.match(statuses[0]?.[1] ?? '', /INVALID_ARGUMENT.*not retryable: 2 kernel spans dropped/);
});

test('RESOURCE_EXHAUSTED is retried only with RetryInfo, after the delay the collector asked for', async () => {
  const { s, collector } = sender({ batchSize: 5, retry: { initialMs: 60_000, maxMs: 60_000 } });
  collector.failure = grpcError(status.RESOURCE_EXHAUSTED);
  s.send(spans('a'));
  await until('the refusal', () => s.counters().exportFailures === 1);
  assert.deepEqual(s.counters().dropped, { ...NOTHING_DROPPED, rejected: 1 });

  const slowDown = encodeStatus(RpcCode.RESOURCE_EXHAUSTED, 'slow down', { retryDelaySeconds: 1 });
  collector.failure = grpcError(status.RESOURCE_EXHAUSTED, slowDown);
  s.send(spans('b'));
  await until('the first try', () => s.counters().exportFailures === 2);
  collector.failure = undefined;
  // Its own backoff would wait a minute: only the collector's one-second delay can bring this retry.
  await until('the retry', () => s.counters().spansSent === 1);
  assert.deepEqual(collector.received, ['b']);
});

test('close sends what is queued, then shuts the exporter down', async () => {
  const { s, collector } = sender({ batchSize: 2 });
  s.send(spans('a', 'b', 'c', 'd', 'e'));
  const counters = await s.close();
  assert.equal(counters.spansSent, 5);
  assert.equal(counters.spansDropped, 0);
  assert.ok(collector.exporters.every((e) => e.shutDown));
});

test('close keeps retrying until its deadline, then drops and counts what is left, and what is sent after', async () => {
  const { s, collector } = sender({ batchSize: 2 });
  collector.failure = UNAVAILABLE;
  s.send(spans('a', 'b', 'c'));
  const counters = await s.close(200);
  assert.ok(counters.exportFailures > 1, 'it kept trying');
  assert.deepEqual(counters.dropped, { ...NOTHING_DROPPED, shutdown: 3 });
  assert.equal(counters.queued, 0);
  s.send(spans('d'));
  assert.deepEqual(s.counters().dropped, { ...NOTHING_DROPPED, shutdown: 4 });
});

test('close returns at its deadline when an export hangs, and a late answer changes nothing', async () => {
  const { s, collector } = sender({ batchSize: 2 });
  collector.holding = true;
  s.send(spans('a', 'b', 'c', 'd', 'e'));
  const counters = await s.close(50);
  assert.deepEqual(counters.dropped, { ...NOTHING_DROPPED, shutdown: 5 });
  collector.release();
  await sleep(20);
  assert.equal(s.counters().spansSent, 0);
  assert.equal(s.counters().spansDropped, 5);
});

test('its counters are instruments of the meter it is given: sent, dropped by reason, failures, the queue, and the collector up as 1 or 0', async (t) => {
  const m = new TestMeter();
  t.after(() => m.close());
  const { s, collector } = sender({ batchSize: 2, maxQueueSpans: 3, meter: m.meter });
  collector.holding = true;
  s.send(spans('a', 'b')); // in flight
  s.send(spans('c', 'd', 'e', 'f'));
  assert.equal(await m.value('causeway_export_queue_spans'), s.counters().queued);
  assert.equal(await m.value('causeway_export_queue_bytes'), s.counters().queuedBytes);
  assert.equal(
    await m.value('causeway_export_spans_dropped', { reason: 'queue_full' }),
    s.counters().dropped.queueFull,
  );
  assert.ok(s.counters().dropped.queueFull > 0);
  assert.equal(await m.value('causeway_export_collector_up'), 1);
  collector.failure = grpcError(status.INVALID_ARGUMENT); // not retryable: what is sent from now on is dropped
  collector.release();
  await until('every batch answered', () => s.counters().queued === 0);
  const c = s.counters();
  assert.ok(c.dropped.rejected > 0 && c.exportFailures > 0);
  assert.equal(await m.value('causeway_export_collector_up'), 0);
  assert.equal(await m.value('causeway_export_spans_sent'), c.spansSent);
  assert.equal(await m.value('causeway_export_spans_dropped', { reason: 'rejected' }), c.dropped.rejected);
  assert.equal(await m.value('causeway_export_failures'), c.exportFailures);
  assert.equal(await m.value('causeway_export_queue_spans'), 0);
});
