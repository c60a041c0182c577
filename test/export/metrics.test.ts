// Causeway's metrics through the OpenTelemetry SDK: observe() turns a part's counters into
// instruments read from one snapshot per collection, and /metrics renders them in the
// Prometheus text format with label values escaped and histograms with their buckets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { DataPointType } from '@opentelemetry/sdk-metrics';
import { SidecarMetrics, counter, gauge, observe } from '../../src/export/metrics.js';
import { TestMeter } from './meter.js';

test('observe reads a part once per collection: counters, gauges, values per attribute set, nothing when undefined', async (t) => {
  const m = new TestMeter();
  t.after(() => m.close());
  let reads = 0;
  const state = {
    sent: 3,
    queued: 7,
    perKind: { 'cuda.sync': 2, 'futex.wait': 5 },
    age: undefined as number | undefined,
  };
  observe(
    m.meter,
    {
      sent: counter('sent', 'Spans sent.'),
      queued: gauge('queued', 'Spans queued.'),
      perKind: counter('events', 'Events per kind.'),
      age: gauge('age_seconds', 'Age.', 's'),
    },
    () => {
      reads++;
      return {
        sent: state.sent,
        queued: state.queued,
        perKind: Object.entries(state.perKind).map(([kind, n]) => [n, { kind }]),
        age: state.age,
      };
    },
  );
  const first = await m.collect();
  assert.equal(reads, 1, 'one read serves every instrument');
  const sent = first.get('sent');
  assert.ok(sent?.dataPointType === DataPointType.SUM && sent.isMonotonic, 'a counter');
  assert.equal(first.get('queued')?.dataPointType, DataPointType.GAUGE);
  assert.equal(first.get('age_seconds'), undefined, 'no value, no data point');
  assert.deepEqual(await m.points('events'), [
    [{ kind: 'cuda.sync' }, 2],
    [{ kind: 'futex.wait' }, 5],
  ]);
  Object.assign(state, { sent: 10, queued: 1, age: 0.25 });
  assert.equal(await m.value('sent'), 10);
  assert.equal(await m.value('queued'), 1);
  assert.equal(await m.value('age_seconds'), 0.25);
  assert.equal((await m.collect()).get('age_seconds')?.descriptor.unit, 's');
});

test('/metrics escapes quotes, backslashes and newlines in label values, and shows histograms with their buckets', async (t) => {
  const metrics = new SidecarMetrics();
  const endpoint = await metrics.serve('127.0.0.1', 0);
  t.after(() => endpoint.close());
  const service = 'say "hi"\nC:\\app';
  metrics.meter.createCounter('causeway_test_waits', { description: 'Waits.' }).add(2, { service });
  const histogram = metrics.meter.createHistogram('causeway_test_wait_seconds', {
    description: 'Wait durations.',
    unit: 's',
    advice: { explicitBucketBoundaries: [0.001, 0.1] },
  });
  histogram.record(0.05, { service });
  histogram.record(3, { service });

  const response = await fetch(`http://127.0.0.1:${String(endpoint.port)}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await response.text();
  const label = 'service="say \\"hi\\"\\nC:\\\\app"';
  const lines = text.split('\n');
  assert.ok(lines.includes(`causeway_test_waits_total{${label}} 2`), text);
  assert.ok(lines.includes('# TYPE causeway_test_waits_total counter'));
  assert.ok(lines.includes('# TYPE causeway_test_wait_seconds histogram'));
  for (const [le, n] of [
    ['0.001', 0],
    ['0.1', 1],
    ['+Inf', 2],
  ] as const)
    assert.ok(
      lines.includes(`causeway_test_wait_seconds_bucket{${label},le="${le}"} ${String(n)}`),
      `le ${le}:\n${text}`,
    );
  assert.ok(lines.includes(`causeway_test_wait_seconds_count{${label}} 2`));
  assert.ok(lines.includes(`causeway_test_wait_seconds_sum{${label}} 3.05`));
  assert.ok(lines.includes('target_info{service_name="causeway",service_version="0.1.0"} 1'));
  assert.ok(!text.includes('otel_scope_name'), 'no scope labels: series keep the names the alert rules use');

  assert.equal((await fetch(`http://127.0.0.1:${String(endpoint.port)}/`)).status, 404);
});

test('/metrics shows the resident memory, the heap and what lies outside it, and the heap live after a full collection once one ran', async (t) => {
  const metrics = new SidecarMetrics();
  const endpoint = await metrics.serve('127.0.0.1', 0);
  t.after(() => endpoint.close());
  const read = async () => {
    const text = await (await fetch(`http://127.0.0.1:${String(endpoint.port)}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    return {
      rss: value('causeway_resident_memory_bytes'),
      live: value('causeway_heap_live_bytes'),
      used: value('causeway_heap_used_bytes'),
      total: value('causeway_heap_total_bytes'),
      external: value('causeway_external_memory_bytes'),
    };
  };
  const first = await read();
  assert.ok(first.rss > 0);
  assert.ok(first.used > 0 && first.total >= first.used, `heap used ${String(first.used)} of ${String(first.total)}`);
  assert.ok(first.external > 0 && first.rss > first.total, `external ${String(first.external)}`);
  v8.setFlagsFromString('--expose-gc');
  const collect = runInNewContext('gc') as () => void;
  collect();
  // A collection's entry reaches observers after it, not within it.
  let live = Number.NaN;
  for (let tries = 0; tries < 100 && Number.isNaN(live); tries++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    live = (await read()).live;
  }
  assert.ok(live > 0 && live <= v8.getHeapStatistics().total_heap_size, `live heap ${String(live)}`);
});
