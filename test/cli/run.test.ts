// `causeway run` on this host, with real probes, when the collector it exports to is down.
// (With a real collector and Jaeger: test/e2e/pipeline.test.)
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, kernelAvailable, startWorkload } from '../bpf/session.js';
import { EXIT_CUT_SHORT } from '../../src/cli/run.js';
import { startSidecar, until } from './sidecar.js';

const NODE_APP = join(ROOT, 'test', 'fixtures', 'apps', 'node_fsync_service.mjs');

test('with the collector down, the sidecar keeps running, queues what it cannot export and says so; stopped, it says what it leaves', async (t) => {
  if (!kernelAvailable(t)) return;
  // Nothing listens on the discard port.
  const sidecar = await startSidecar('http://127.0.0.1:9', '127.0.0.1:0', ['--shutdown-deadline-s', '1']);
  t.after(() => sidecar.stop());
  const app = startWorkload(process.execPath, [NODE_APP, '/var/tmp', '8'], {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${String(sidecar.grpcPort)}`,
  });
  await app.truth;
  await until('the sidecar to report the collector down', 30_000, () =>
    /cannot export to the collector at http:\/\/127\.0\.0\.1:9: .*UNAVAILABLE.*kernel spans wait in the queue/.test(
      sidecar.log(),
    )
      ? true
      : undefined,
  );
  // Every span joined: nothing more will be queued.
  const metrics = await until('every span joined', 10_000, async () => {
    const text = await sidecar.metrics();
    return /^causeway_correlator_spans_pending 0$/m.test(text) ? text : undefined;
  });
  const queued = Number(/^causeway_export_queue_spans (\d+)$/m.exec(metrics)?.[1]);
  assert.ok(queued > 0, metrics);
  assert.match(metrics, /^causeway_export_spans_dropped_total\{reason="queue_full"\} 0$/m);
  assert.match(metrics, /^causeway_export_collector_up 0$/m);
  assert.equal(await sidecar.stop(), EXIT_CUT_SHORT);
  assert.match(
    sidecar.log(),
    new RegExp(
      `shutdown deadline of 1 s passed( while closing the exporter)?: ${String(queued)} kernel spans not exported, 0 store rows not written`,
    ),
  );
});
