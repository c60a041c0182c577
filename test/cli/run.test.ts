// `causeway run` end to end on this host, with real probes: a Node service on
// @opentelemetry/sdk-node sends its spans to the sidecar, which exports each span's kernel
// events as its children to an OTLP peer standing in for the collector.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { startOtlpReceiver, type AppSpan } from '../../src/otlp/index.js';
import { Capture, ROOT, kernelAvailable, startWorkload } from '../bpf/session.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('a Node service doing fsync in a span gets block I/O and blocked time as child spans of that span', async (t) => {
  if (!kernelAvailable(t)) return;
  const exported: AppSpan[] = [];
  const collector = await startOtlpReceiver({ grpc: { host: '127.0.0.1', port: 0 }, http: false, onSpans: (spans) => void exported.push(...spans) });
  t.after(() => collector.close());

  const sidecar = spawn(process.execPath, [CLI, 'run', '--otlp-grpc', '127.0.0.1:0', '--otlp-http', '127.0.0.1:0', '--metrics', '127.0.0.1:0'], {
    env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${String(collector.grpcPort)}` },
  });
  let log = '';
  sidecar.stderr.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  const exited = new Promise((resolve) => sidecar.on('exit', resolve));
  t.after(async () => {
    sidecar.kill('SIGINT');
    await exited;
  });
  const [, grpcPort, metricsPort] = await until('the sidecar to listen', 15_000, () => /receiving OTLP on 127\.0\.0\.1:(\d+) \(gRPC\).*metrics on 127\.0\.0\.1:(\d+)/.exec(log) ?? undefined);

  const app = startWorkload(process.execPath, [join(ROOT, 'test', 'fixtures', 'apps', 'node_fsync_service.mjs'), '/var/tmp', '32'], {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${String(grpcPort)}`,
  });
  const truth = (await app.truth) as { trace_id: string; span_id: string; pid: number };

  const children = () => exported.filter((s) => s.traceId === truth.trace_id && s.parentSpanId === truth.span_id);
  const summary = await until('the kernel summary span', 20_000, () => children().find((s) => s.name === 'kernel activity'));
  assert.ok(Number(summary.attributes['causeway.block.io.duration_ms']) > 0, JSON.stringify(summary.attributes));
  assert.equal(summary.attributes['causeway.attach.scope'], 'thread');
  assert.equal(summary.resource['service.name'], 'node-fsync-service');

  const writes = children().filter((s) => s.attributes['causeway.kind'] === 'block.io' && s.attributes['causeway.block.op'] === 'write');
  assert.ok(writes.length > 0, `no block write child spans; log: ${log}`);
  assert.match(writes[0]?.name ?? '', /^block write \S+$/);
  for (const w of writes) {
    assert.equal(w.attributes['causeway.thread.tid'], truth.pid, 'a Node span runs on the main thread, whose tid is the pid');
    assert.ok(w.startUnixNano >= summary.startUnixNano && w.endUnixNano <= summary.endUnixNano + 1_000_000_000n);
  }
  assert.ok(children().some((s) => s.attributes['causeway.kind'] === 'sched.blocked'), 'the fsync blocked the thread');

  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  assert.match(metrics, /^causeway_export_spans_sent_total [1-9]\d*$/m);
  assert.match(metrics, /^causeway_correlator_spans_with_events_total [1-9]\d*$/m);
});

test('with the collector down, the sidecar keeps running, counts what it drops, and says so', async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = new Capture(['--comm', 'nothing-runs-this']); // the probes work here at all
  await capture.ready();
  await capture.stop();
  const sidecar = spawn(process.execPath, [CLI, 'run', '--otlp-grpc', '127.0.0.1:0', '--otlp-http', '127.0.0.1:0', '--metrics', '127.0.0.1:0'], {
    env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' },
  });
  let log = '';
  sidecar.stderr.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  const exited = new Promise((resolve) => sidecar.on('exit', resolve));
  const [, grpcPort, metricsPort] = await until('the sidecar to listen', 15_000, () => /receiving OTLP on 127\.0\.0\.1:(\d+) \(gRPC\).*metrics on 127\.0\.0\.1:(\d+)/.exec(log) ?? undefined);
  const app = startWorkload(process.execPath, [join(ROOT, 'test', 'fixtures', 'apps', 'node_fsync_service.mjs'), '/var/tmp', '8'], {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${String(grpcPort)}`,
  });
  await app.truth;
  await until('the sidecar to report the collector down', 30_000, () => (/cannot export to the collector/.test(log) ? true : undefined));
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  assert.match(metrics, /^causeway_export_spans_dropped_total [1-9]\d*$/m);
  assert.match(metrics, /^causeway_export_collector_up 0$/m);
  sidecar.kill('SIGINT');
  assert.equal(await exited, 0);
});
