// An app in its own pid namespace and cgroup (as in a container) reports namespace pids and
// tids on its spans; the sidecar finds the host's through container.id and NSpid, and the
// app's kernel events still become children of its spans.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { startOtlpReceiver, type AppSpan } from '../../src/otlp/index.js';
import { kernelAvailable, privateGpu } from '../bpf/session.js';
import { startSidecar, until } from '../cli/sidecar.js';
import { runGpuService } from '../e2e/gpu-service.js';

const cgroup2Root = () => /^\S+ (\S+) cgroup2 /m.exec(readFileSync('/proc/mounts', 'utf8'))?.[1];

test('an app in its own pid namespace and cgroup still gets its kernel spans', async (t) => {
  if (!kernelAvailable(t)) return;
  const root = cgroup2Root();
  assert.ok(root, 'no cgroup2 mount');
  const containerId = randomBytes(32).toString('hex');
  const cgroup = join(root, containerId);
  mkdirSync(cgroup);
  t.after(() => {
    rmdirSync(cgroup);
  });

  const exported: AppSpan[] = [];
  const collector = await startOtlpReceiver({
    grpc: { host: '127.0.0.1', port: 0 },
    http: false,
    onSpans: (spans) => void exported.push(...spans),
  });
  t.after(() => collector.close());
  const sidecar = await startSidecar(`http://127.0.0.1:${String(collector.grpcPort)}`);
  t.after(() => sidecar.stop());

  const truth = await runGpuService(
    sidecar,
    100,
    {
      ...privateGpu(t),
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${String(sidecar.grpcPort)}`,
      OTEL_RESOURCE_ATTRIBUTES: `container.id=${containerId}`,
    },
    ['/bin/sh', '-c', `echo $$ > ${cgroup}/cgroup.procs && exec unshare --pid --fork --mount-proc "$@"`, 'sh'],
  );
  assert.equal(truth.pid, 1, 'the app sees itself as pid 1 of its namespace');

  const sync = await until('the cuda.sync child span', 20_000, () =>
    exported.find(
      (s) =>
        s.traceId === truth.trace_id &&
        s.parentSpanId === truth.span_id &&
        s.attributes['causeway.kind'] === 'cuda.sync',
    ),
  );
  assert.equal(sync.name, 'cudaStreamSynchronize');
  assert.notEqual(
    sync.attributes['causeway.thread.tid'],
    truth.tid,
    'the child span names the host tid, not the namespace one',
  );
  assert.equal(sync.attributes['causeway.attach.scope'], 'thread');
  assert.equal(sync.resource['container.id'], containerId);
});
