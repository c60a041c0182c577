// The MCP tools' store queries over known events.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as A from '../../src/semconv/attributes.js';
import { gpuActivity } from '../../src/store/queries.js';
import { MS, T0, kernelEvent, storeWith } from './traces.js';

const at = (ms: number) => T0 + BigInt(ms) * MS;

test("gpu_activity names each process's top kernels, and counts as contention only launches on the waiter's device", async (t) => {
  const waiter = { pid: 10, tid: 10, comm: 'api' };
  const sameGpu = { pid: 20, tid: 20, comm: 'engine' };
  const otherGpu = { pid: 30, tid: 30, comm: 'trainer' };
  const unknownGpu = { pid: 40, tid: 40, comm: 'old' };
  const device = (d: number) => ({ [A.ATTR_CAUSEWAY_CUDA_DEVICE]: d });
  const launches = (task: typeof waiter, n: number, attributes = {}) =>
    Array.from({ length: n }, (_, i) => kernelEvent('cuda.launch', task, at(20 + i), at(20 + i), attributes));
  const store = await storeWith(
    [],
    [
      kernelEvent('cuda.sync', waiter, at(10), at(110), device(1)),
      ...launches(sameGpu, 3, { ...device(1), [A.ATTR_CAUSEWAY_CUDA_KERNEL]: 'mlp' }),
      ...launches(otherGpu, 5, device(0)),
      ...launches(unknownGpu, 2),
    ],
  );
  t.after(() => store.close());
  const all = await gpuActivity(store, { from: at(0) });
  assert.deepEqual(all.find((p) => p.pid === 20)?.top_kernels, [{ name: 'mlp', launches: 3 }]);
  const [api] = await gpuActivity(store, { pid: 10, from: at(0) });
  assert.deepEqual(api?.contention, [
    { pid: 20, comm: 'engine', launches_during_waits: 3 },
    { pid: 40, comm: 'old', launches_during_waits: 2 },
  ]);
});
