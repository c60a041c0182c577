// `causeway run` end to end on this host, with real probes: a Node service on
// @opentelemetry/sdk-node sends its spans to the sidecar, which exports each span's kernel
// events as its children to an OTLP peer standing in for the collector.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { startOtlpReceiver, type AppSpan } from '../../src/otlp/index.js';
import { ROOT, kernelAvailable, startWorkload } from '../bpf/session.js';
import { startSidecar, until } from './sidecar.js';

const NODE_APP = join(ROOT, 'test', 'fixtures', 'apps', 'node_fsync_service.mjs');

test('a Node service doing fsync in a span gets block I/O and blocked time as child spans of that span', async (t) => {
  if (!kernelAvailable(t)) return;
  const exported: AppSpan[] = [];
  const collector = await startOtlpReceiver({ grpc: { host: '127.0.0.1', port: 0 }, http: false, onSpans: (spans) => void exported.push(...spans) });
  t.after(() => collector.close());
  const sidecar = await startSidecar(`http://127.0.0.1:${String(collector.grpcPort)}`);
  t.after(() => sidecar.stop());

  const app = startWorkload(process.execPath, [NODE_APP, '/var/tmp', '32'], { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${String(sidecar.grpcPort)}` });
  const truth = (await app.truth) as { trace_id: string; span_id: string; pid: number };

  const children = () => exported.filter((s) => s.traceId === truth.trace_id && s.parentSpanId === truth.span_id);
  const summary = await until('the kernel summary span', 20_000, () => children().find((s) => s.name === 'kernel activity'));
  assert.ok(Number(summary.attributes['causeway.block.io.duration_ms']) > 0, JSON.stringify(summary.attributes));
  assert.equal(summary.attributes['causeway.attach.scope'], 'thread');
  assert.equal(summary.resource['service.name'], 'node-fsync-service');

  const writes = children().filter((s) => s.attributes['causeway.kind'] === 'block.io' && s.attributes['causeway.block.op'] === 'write');
  assert.ok(writes.length > 0, `no block write child spans; log: ${sidecar.log()}`);
  assert.match(writes[0]?.name ?? '', /^block write \S+$/);
  for (const w of writes) {
    assert.equal(w.attributes['causeway.thread.tid'], truth.pid, 'a Node span runs on the main thread, whose tid is the pid');
    assert.ok(w.startUnixNano >= summary.startUnixNano && w.startUnixNano < summary.endUnixNano);
  }
  assert.ok(children().some((s) => s.attributes['causeway.kind'] === 'sched.blocked'), 'the fsync blocked the thread');

  const metrics = await sidecar.metrics();
  assert.match(metrics, /^causeway_export_spans_sent_total [1-9]\d*$/m);
  assert.match(metrics, /^causeway_correlator_spans_with_events_total [1-9]\d*$/m);
});

test('with the collector down, the sidecar keeps running, counts what it drops, and says so', async (t) => {
  if (!kernelAvailable(t)) return;
  const sidecar = await startSidecar('http://127.0.0.1:9'); // nothing listens on the discard port
  t.after(() => sidecar.stop());
  const app = startWorkload(process.execPath, [NODE_APP, '/var/tmp', '8'], { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${String(sidecar.grpcPort)}` });
  await app.truth;
  await until('the sidecar to report the collector down', 30_000, () => (/cannot export to the collector/.test(sidecar.log()) ? true : undefined));
  const metrics = await sidecar.metrics();
  assert.match(metrics, /^causeway_export_spans_dropped_total [1-9]\d*$/m);
  assert.match(metrics, /^causeway_export_collector_up 0$/m);
  assert.equal(await sidecar.stop(), 0);
});
