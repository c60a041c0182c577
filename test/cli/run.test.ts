// `causeway run` on this host, with real probes, when the collector it exports to is down.
// (With a real collector and Jaeger: test/e2e/pipeline.test.)
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, kernelAvailable, startWorkload } from '../bpf/session.js';
import { startSidecar, until } from './sidecar.js';

const NODE_APP = join(ROOT, 'test', 'fixtures', 'apps', 'node_fsync_service.mjs');

test('with the collector down, the sidecar keeps running, counts what it drops, and says so', async (t) => {
  if (!kernelAvailable(t)) return;
  const sidecar = await startSidecar('http://127.0.0.1:9'); // nothing listens on the discard port
  t.after(() => sidecar.stop());
  const app = startWorkload(process.execPath, [NODE_APP, '/var/tmp', '8'], {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${String(sidecar.grpcPort)}`,
  });
  await app.truth;
  await until('the sidecar to report the collector down', 30_000, () =>
    /cannot export to the collector/.test(sidecar.log()) ? true : undefined,
  );
  const metrics = await sidecar.metrics();
  assert.match(metrics, /^causeway_export_spans_dropped_total [1-9]\d*$/m);
  assert.match(metrics, /^causeway_export_collector_up 0$/m);
  assert.equal(await sidecar.stop(), 0);
});
