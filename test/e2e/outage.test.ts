// A collector outage with real parts: a Node service doing fsync in its requests sends its
// spans to `causeway run`, which exports their kernel spans to a real otelcol
// (otel-config/collector.yaml) and on to Jaeger. The collector is stopped right after a
// request, for 20 s while requests go on, then started again on the same port: every kernel
// span the sidecar made reaches Jaeger, and its counters say that nothing was dropped.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, kernelAvailable, startWorkload } from '../bpf/session.js';
import { startSidecar, until } from '../cli/sidecar.js';
import { freePort, serviceSpans, startCollector, startJaeger, type Collector, type OtlpSpan } from './backends.js';

const NODE_APP = join(ROOT, 'test', 'fixtures', 'apps', 'node_fsync_service.mjs');
const SERVICE = 'node-fsync-service';
const OUTAGE_MS = 20_000;

const isKernelSpan = (span: OtlpSpan) => span.attributes?.some((a) => a.key === 'causeway.attach.scope') === true;
const metric = (text: string, line: string) => Number(new RegExp(`^${line} (\\d+)$`, 'm').exec(text)?.[1]);

test('the kernel spans of requests made before and during a 20 s collector outage all reach Jaeger when it returns', async (t) => {
  if (!kernelAvailable(t)) return;
  const since = new Date();
  const jaeger = await startJaeger();
  t.after(() => jaeger.stop());
  const kernelGrpc = `127.0.0.1:${String(await freePort())}`;
  const env = {
    JAEGER_OTLP_GRPC: jaeger.otlpGrpc,
    OTELCOL_KERNEL_GRPC: kernelGrpc,
    CAUSEWAY_OTLP_GRPC: `127.0.0.1:${String(await freePort())}`,
  };
  const config = join(ROOT, 'otel-config', 'collector.yaml');
  let collector: Collector | undefined = await startCollector(config, env);
  t.after(() => collector?.stop());
  const sidecar = await startSidecar(`http://${kernelGrpc}`);
  t.after(() => sidecar.stop());
  // The app sends to the sidecar directly: the collector is what goes away.
  const request = async () => {
    const app = startWorkload(process.execPath, [NODE_APP, '/var/tmp', '8'], {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${String(sidecar.grpcPort)}`,
    });
    return (await app.truth) as { trace_id: string; span_id: string };
  };

  const requests = [await request()];
  // Just before the outage: this request's kernel spans may still be on their way to the collector.
  await collector.stop();
  collector = undefined;
  const outageEnds = Date.now() + OUTAGE_MS;
  while (Date.now() < outageEnds) requests.push(await request());
  const during = await sidecar.metrics();
  assert.ok(metric(during, 'causeway_export_queue_spans') > 0, during);
  assert.match(during, /^causeway_export_collector_up 0$/m);
  collector = await startCollector(config, env);

  const metrics = await until('the queue to be delivered', 60_000, async () => {
    const text = await sidecar.metrics();
    const done =
      metric(text, 'causeway_export_queue_spans') === 0 && metric(text, 'causeway_correlator_spans_pending') === 0;
    return done ? text : undefined;
  });
  assert.match(metrics, /^causeway_export_collector_up 1$/m);
  assert.ok(metric(metrics, 'causeway_export_failures_total') > 0, 'exports failed during the outage');
  for (const reason of ['queue_full', 'rejected', 'shutdown'])
    assert.equal(metric(metrics, `causeway_export_spans_dropped_total\\{reason="${reason}"\\}`), 0, reason);
  const sent = metric(metrics, 'causeway_export_spans_sent_total');

  // Collector and Jaeger batch: wait until Jaeger holds as many kernel spans as were sent.
  const kernelSpans = await until('Jaeger to hold every kernel span sent', 30_000, async () => {
    const spans = (await serviceSpans(jaeger.queryUrl, SERVICE, since)).filter(isKernelSpan);
    return spans.length >= sent ? spans : undefined;
  }).catch(async () => (await serviceSpans(jaeger.queryUrl, SERVICE, since)).filter(isKernelSpan));
  t.diagnostic(
    `${String(requests.length)} requests, ${String(sent)} kernel spans sent, ${String(metric(metrics, 'causeway_export_failures_total'))} failed exports`,
  );
  assert.equal(kernelSpans.length, sent, sidecar.log());
  for (const r of requests)
    assert.ok(
      kernelSpans.some((s) => s.traceId === r.trace_id && s.parentSpanId === r.span_id && s.name === 'kernel activity'),
      `request ${r.trace_id} (${String(requests.indexOf(r))} of ${String(requests.length)}) has its kernel spans in Jaeger`,
    );
  assert.ok(requests.length > 2, 'requests were made during the outage');
  assert.match(sidecar.log(), /cannot export to the collector at .*UNAVAILABLE[^]*collector reachable again/);
});
