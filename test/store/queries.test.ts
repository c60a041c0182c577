// The MCP tools' store queries over known events.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as A from '../../src/semconv/attributes.js';
import { compareLatency, findStalls, gpuActivity } from '../../src/store/queries.js';
import { MS, T0, appSpan, kernelEvent, storeWith } from './traces.js';

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

test('gpu_activity counts the launches a cuda.launches summary stands for, per kernel, and summaries are not stalls', async (t) => {
  const engine = { pid: 20, tid: 20, comm: 'engine' };
  const store = await storeWith(
    [],
    [
      kernelEvent('cuda.launch', engine, at(5), at(5), { [A.ATTR_CAUSEWAY_CUDA_KERNEL]: 'mlp' }),
      kernelEvent('cuda.launches', engine, at(10), at(20), {
        [A.ATTR_CAUSEWAY_SUMMARY_COUNT]: 50,
        [A.ATTR_CAUSEWAY_CUDA_KERNELS]: ['attn', 'mlp'],
        [A.ATTR_CAUSEWAY_CUDA_KERNEL_COUNTS]: [40, 10],
      }),
    ],
  );
  t.after(() => store.close());
  const [engineActivity] = await gpuActivity(store, { pid: 20, from: at(0) });
  assert.equal(engineActivity?.launches, 51);
  assert.deepEqual(engineActivity.top_kernels, [
    { name: 'attn', launches: 40 },
    { name: 'mlp', launches: 11 },
  ]);
  assert.deepEqual(await findStalls(store, { from: at(0), min_duration_ms: 0, limit: 10 }), []);
});

test('summed waits are not stalls: find_stalls lists the whole waits, and a summary only when asked for by its kind', async (t) => {
  const app = { pid: 10, tid: 10, comm: 'api' };
  const summary = (kind: A.CausewayKindValue) =>
    kernelEvent(kind, app, at(10), at(20), { [A.ATTR_CAUSEWAY_SUMMARY_COUNT]: 40 });
  const store = await storeWith(
    [],
    [
      kernelEvent('futex.wait', app, at(30), at(35)),
      summary('futex.waits'),
      summary('sched.blocked_waits'),
      summary('sched.runqueues'),
    ],
  );
  t.after(() => store.close());
  const all = await findStalls(store, { from: at(0), min_duration_ms: 0, limit: 10 });
  assert.deepEqual(
    all.map((s) => s.kind),
    ['futex.wait'],
  );
  const asked = await findStalls(store, { kind: 'sched.blocked_waits', from: at(0), min_duration_ms: 0, limit: 10 });
  assert.deepEqual(
    asked.map((s) => s.kind),
    ['sched.blocked_waits'],
  );
});

test('compare_latency counts a wait shared by N requests 1/N in each, so GPU time adds up once', async (t) => {
  const request = { pid: 10, tid: 10, comm: 'frontend' };
  const slow = appSpan({ trace: 1, span: 1, service: 'front', start: at(0), end: at(300), pid: 10, tid: 10 });
  const typical = appSpan({ trace: 2, span: 2, service: 'front', start: at(400), end: at(450), pid: 10, tid: 10 });
  const io = kernelEvent('block.io', request, at(10), at(30));
  const linked = kernelEvent('cuda.sync', request, at(50), at(250), {
    [A.ATTR_CAUSEWAY_LINK]: 'connection',
    [A.ATTR_CAUSEWAY_REMOTE_PID]: 20,
    [A.ATTR_CAUSEWAY_REMOTE_TID]: 20,
    [A.ATTR_CAUSEWAY_REMOTE_COMM]: 'engine',
    [A.ATTR_CAUSEWAY_SHARED_COUNT]: 4,
  });
  const store = await storeWith([slow, typical], [io]);
  t.after(() => store.close());
  // The linked wait is made at joining: the store takes it with its attachment.
  store.addAttachments([{ span: slow.span, place: { hostPid: 10, hostTid: 10 }, events: [io, linked] }]);
  await store.flush();
  const c = await compareLatency(store, { service: 'front', from: at(0), slowQuantile: 0.9 });
  assert.equal(c.slow.traces, 1);
  const perTrace = Object.fromEntries(c.kinds.map((k) => [k.kind, k.slow_ms_per_trace]));
  assert.deepEqual(perTrace, { 'cuda.sync': 50, 'block.io': 20 });
});
