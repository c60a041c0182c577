// The span sender in front of an exporter: batches, a bounded queue that drops the oldest and
// counts them, the collector's going and coming said once each, and close(). The exporter is
// the SDK's in-memory one, made to fail or to hold its answers on demand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { SpanSender, type SenderOptions } from '../../src/export/sender.js';
import { TestMeter } from './meter.js';

/** A collector on demand: answers, fails with `failure`, or holds its answers until release(). */
class CollectorDouble extends InMemorySpanExporter {
  failure: Error | undefined;
  holding = false;
  readonly batches: number[] = [];
  shutDown = false;
  private readonly held: (() => void)[] = [];

  override export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.batches.push(spans.length);
    const failure = this.failure;
    const answer = () => {
      if (failure === undefined) super.export(spans, done);
      else done({ code: ExportResultCode.FAILED, error: failure });
    };
    if (this.holding) this.held.push(answer);
    else answer();
  }

  release(): void {
    this.holding = false;
    for (const answer of this.held.splice(0)) answer();
  }

  override shutdown(): Promise<void> {
    this.shutDown = true;
    return super.shutdown();
  }

  names(): string[] {
    return this.getFinishedSpans().map((s) => s.name);
  }
}

const tracer = new BasicTracerProvider().getTracer('sender-test');
const spans = (...names: string[]) =>
  names.map((name) => {
    const span = tracer.startSpan(name);
    span.end();
    return span as unknown as ReadableSpan;
  });

function sender(options: Partial<SenderOptions> = {}) {
  const collector = new CollectorDouble();
  const statuses: [boolean, string][] = [];
  const s = new SpanSender({ exporter: collector, onStatus: (up, detail) => statuses.push([up, detail]), ...options });
  return { s, collector, statuses };
}

async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await sleep(10);
  assert.ok(condition(), `timed out waiting for ${what}`);
}

test('spans go out in batches of at most batchSize, in order', async () => {
  const { s, collector } = sender({ batchSize: 3 });
  s.send(spans('a', 'b', 'c', 'd', 'e', 'f', 'g'));
  await until('all sent', () => s.counters().spansSent === 7);
  assert.deepEqual(collector.batches, [3, 3, 1]);
  assert.deepEqual(collector.names(), ['a', 'b', 'c', 'd', 'e', 'f', 'g']);
  assert.deepEqual(s.counters(), { spansSent: 7, spansDropped: 0, exportFailures: 0, queued: 0, collectorUp: true });
});

test('at the bound the oldest queued spans are dropped, and counted', async () => {
  const { s, collector } = sender({ maxQueue: 4, batchSize: 2 });
  collector.holding = true;
  s.send(spans('a', 'b')); // in flight
  s.send(spans('c', 'd', 'e', 'f', 'g', 'h'));
  assert.deepEqual(s.counters(), { spansSent: 0, spansDropped: 2, exportFailures: 0, queued: 4, collectorUp: true });
  collector.release();
  await until('all sent', () => s.counters().spansSent === 6);
  assert.deepEqual(collector.names(), ['a', 'b', 'e', 'f', 'g', 'h']);
  assert.equal(s.counters().spansDropped, 2);
});

test('the collector going down and coming back is said once each; failed batches are counted as dropped', async () => {
  const { s, collector, statuses } = sender({ batchSize: 2 });
  collector.failure = new Error('connect ECONNREFUSED 127.0.0.1:4317');
  s.send(spans('a', 'b', 'c'));
  await until('both batches failed', () => s.counters().exportFailures === 2);
  assert.deepEqual(statuses, [[false, 'connect ECONNREFUSED 127.0.0.1:4317']]);
  assert.deepEqual(s.counters(), { spansSent: 0, spansDropped: 3, exportFailures: 2, queued: 0, collectorUp: false });
  collector.failure = undefined;
  s.send(spans('d'));
  s.send(spans('e'));
  await until('sent again', () => s.counters().spansSent === 2);
  assert.deepEqual(statuses, [
    [false, 'connect ECONNREFUSED 127.0.0.1:4317'],
    [true, 'collector reachable again'],
  ]);
  assert.equal(s.counters().collectorUp, true);
});

test('close sends what is queued, then shuts the exporter down', async () => {
  const { s, collector } = sender({ batchSize: 2 });
  s.send(spans('a', 'b', 'c', 'd', 'e'));
  await s.close();
  assert.equal(s.counters().spansSent, 5);
  assert.equal(s.counters().spansDropped, 0);
  assert.ok(collector.shutDown);
});

test('close drops and counts what the collector did not answer in time, and what is sent after', async () => {
  const { s, collector } = sender({ batchSize: 2 });
  collector.holding = true;
  s.send(spans('a', 'b', 'c', 'd', 'e'));
  await s.close(50);
  assert.deepEqual(s.counters(), { spansSent: 0, spansDropped: 5, exportFailures: 0, queued: 0, collectorUp: true });
  assert.ok(collector.shutDown);
  s.send(spans('f'));
  collector.release(); // a late answer changes nothing
  await sleep(20);
  assert.deepEqual(s.counters(), { spansSent: 0, spansDropped: 6, exportFailures: 0, queued: 0, collectorUp: true });
});

test('its counters are instruments of the meter it is given: sent, dropped, queued, and the collector up as 1 or 0', async (t) => {
  const m = new TestMeter();
  t.after(() => m.close());
  const { s, collector } = sender({ batchSize: 2, maxQueue: 3, meter: m.meter });
  collector.holding = true;
  s.send(spans('a', 'b')); // in flight
  s.send(spans('c', 'd', 'e', 'f'));
  assert.equal(await m.value('causeway_export_spans_queued'), 3);
  assert.equal(await m.value('causeway_export_spans_dropped'), 1);
  assert.equal(await m.value('causeway_export_collector_up'), 1);
  collector.failure = new Error('unavailable'); // the batch in flight was handed over before: it goes through
  collector.release();
  await until('every batch answered', () => s.counters().queued === 0 && s.counters().exportFailures === 2);
  assert.equal(await m.value('causeway_export_collector_up'), 0);
  assert.equal(await m.value('causeway_export_spans_sent'), 2);
  assert.equal(await m.value('causeway_export_spans_dropped'), 4);
  assert.equal(await m.value('causeway_export_spans_queued'), 0);
});
