// The kernel wait metrics, read back through the SDK: each attached wait once in the histogram
// of its kind and service, what was behind the waits (CUDA API and kernel, the task that held
// the CPU, the other processes on the GPU), and labels bounded in their number of values.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Attachment } from '../../src/correlate/correlator.js';
import { KernelWaits, OTHER, WAIT_BUCKETS_S } from '../../src/export/waits.js';
import type { Attributes, KernelEvent } from '../../src/kernel/events.js';
import type { AppSpan } from '../../src/otlp/index.js';
import { TestMeter } from './meter.js';

const MS = 1_000_000n;
const T0 = 1_764_000_000_000n * MS;

function event(
  kind: KernelEvent['kind'],
  startMs: number,
  durationMs: number,
  attributes: Attributes = {},
  who: { pid?: number; comm?: string } = {},
): KernelEvent {
  const start = T0 + BigInt(startMs) * MS;
  return {
    kind,
    pid: who.pid ?? 100,
    tid: who.pid ?? 100,
    comm: who.comm ?? 'app',
    startUnixNano: start,
    endUnixNano: start + BigInt(Math.round(durationMs * 1e6)),
    attributes,
  };
}

function attachment(service: string | undefined, events: KernelEvent[]): Attachment<AppSpan> {
  const span = {
    traceId: 'a'.repeat(32),
    spanId: 'b'.repeat(16),
    name: 'handle-request',
    startUnixNano: T0,
    endUnixNano: T0 + 10_000n * MS,
    attributes: {},
    resource: {},
    ...(service === undefined ? {} : { serviceName: service }),
  } as unknown as AppSpan;
  return { span, place: { hostPid: 100, hostTid: 100 }, events };
}

function setup(t: { after: (fn: () => Promise<void>) => void }) {
  const m = new TestMeter();
  t.after(() => m.close());
  return { m, waits: new KernelWaits(m.meter, 30_000) };
}

test('each attached wait is recorded once, in the histogram of its kind and service; point events are not waits', async (t) => {
  const { m, waits } = setup(t);
  const sync = event('cuda.sync', 0, 200, { 'causeway.cuda.api': 'cudaStreamSynchronize' });
  const runqueue = event('sched.runqueue', 300, 0.02);
  const retransmit = event('tcp.retransmit', 400, 0);
  waits.attached([attachment('checkout', [sync, runqueue, retransmit])]);
  // An inner span that takes a wait over from an outer one hands it in again: still one wait.
  waits.attached([attachment('checkout', [runqueue])]);
  waits.attached([attachment(undefined, [event('futex.wait', 500, 3)])]);

  const gpu = await m.histogram('causeway_kernel_wait_seconds', { kind: 'cuda.sync', service: 'checkout' });
  assert.ok(gpu);
  assert.equal(gpu.count, 1);
  assert.ok(Math.abs((gpu.sum ?? 0) - 0.2) < 1e-9, String(gpu.sum));
  assert.deepEqual(gpu.buckets.boundaries, WAIT_BUCKETS_S);
  // 200 ms falls in the (0.1, 0.25] bucket.
  assert.equal(gpu.buckets.counts[WAIT_BUCKETS_S.indexOf(0.25)], 1);
  const cpu = await m.histogram('causeway_kernel_wait_seconds', { kind: 'sched.runqueue', service: 'checkout' });
  assert.ok(cpu);
  assert.equal(cpu.count, 1, 'recorded once though attached twice');
  assert.equal(cpu.buckets.counts[WAIT_BUCKETS_S.indexOf(0.000025)], 1, '20 µs falls in (10 µs, 25 µs]');
  assert.equal(
    (await m.histogram('causeway_kernel_wait_seconds', { kind: 'futex.wait', service: 'unknown_service' }))?.count,
    1,
  );
  assert.deepEqual(
    (await m.points('causeway_kernel_wait_seconds')).map(([a]) => a.kind).sort(),
    ['cuda.sync', 'futex.wait', 'sched.runqueue'],
    'no histogram for the retransmit',
  );
});

test('CUDA calls per API, launches per kernel, and GPU waits per the kernel most in flight on the stream', async (t) => {
  const { m, waits } = setup(t);
  const launch = (kernel: string | undefined, at: number) =>
    event('cuda.launch', at, 0.01, {
      'causeway.cuda.api': 'cudaLaunchKernel',
      ...(kernel === undefined ? {} : { 'causeway.cuda.kernel': kernel }),
    });
  waits.attached([
    attachment('trainer', [
      launch('matmul(float*)', 0),
      launch('matmul(float*)', 1),
      launch(undefined, 2),
      event('cuda.sync', 3, 150, {
        'causeway.cuda.api': 'cudaStreamSynchronize',
        'causeway.cuda.inflight.kernels': ['relu(float*)', 'matmul(float*)', 'matmul(float*)'],
      }),
      event('cuda.sync', 200, 50, { 'causeway.cuda.api': 'cudaDeviceSynchronize' }),
    ]),
  ]);
  assert.equal(await m.value('causeway_cuda_calls', { service: 'trainer', api: 'cudaLaunchKernel' }), 3);
  assert.equal(await m.value('causeway_cuda_calls', { service: 'trainer', api: 'cudaStreamSynchronize' }), 1);
  const syncTime = await m.value('causeway_cuda_call_seconds', { service: 'trainer', api: 'cudaStreamSynchronize' });
  assert.ok(Math.abs((syncTime ?? 0) - 0.15) < 1e-9, String(syncTime));
  assert.equal(await m.value('causeway_cuda_kernel_launches', { service: 'trainer', kernel: 'matmul(float*)' }), 2);
  assert.equal(await m.value('causeway_cuda_kernel_launches', { service: 'trainer', kernel: 'unknown' }), 1);
  const matmulWait = await m.value('causeway_cuda_kernel_wait_seconds', {
    service: 'trainer',
    kernel: 'matmul(float*)',
  });
  assert.ok(Math.abs((matmulWait ?? 0) - 0.15) < 1e-9, String(matmulWait));
  const unknownWait = await m.value('causeway_cuda_kernel_wait_seconds', { service: 'trainer', kernel: 'unknown' });
  assert.ok(Math.abs((unknownWait ?? 0) - 0.05) < 1e-9, 'a wait with nothing known in flight');
});

test("launches of other processes during a GPU wait are its co-tenants; the process's own and those outside the wait are not", async (t) => {
  const { m, waits } = setup(t);
  const hog = { pid: 200, comm: 'gpu_hog' };
  const trainer = { pid: 300, comm: 'trainer' };
  waits.captured([
    event('cuda.launch', 5, 0.01, {}, hog), // before the wait
    event('cuda.launch', 20, 0.01, {}, hog),
    event('cuda.launch', 30, 0.01, {}, trainer),
    event('cuda.launch', 12, 0.01, {}, hog), // out of order
    event('cuda.launch', 15, 0.01), // the waiting process itself
    event('cuda.launch', 60, 0.01, {}, hog), // after the wait
    event('futex.wait', 25, 1, {}, hog),
  ]);
  waits.attached([
    attachment('checkout', [event('cuda.sync', 10, 40, { 'causeway.cuda.api': 'cudaStreamSynchronize' })]),
  ]);
  assert.deepEqual(await m.points('causeway_gpu_cotenant_launches'), [
    [{ service: 'checkout', cotenant: 'gpu_hog' }, 2],
    [{ service: 'checkout', cotenant: 'trainer' }, 1],
  ]);
});

test('run-queue waits are counted per process name of the task that held the CPU', async (t) => {
  const { m, waits } = setup(t);
  const heldBy = (comm: string) => ({
    'causeway.sched.holder.pid': 7,
    'causeway.sched.holder.tid': 7,
    'causeway.sched.holder.comm': comm,
  });
  waits.attached([
    attachment('checkout', [
      event('sched.runqueue', 0, 4, heldBy('hog')),
      event('sched.runqueue', 10, 6, heldBy('hog')),
      event('sched.runqueue', 20, 1, heldBy('kworker/0:1')),
    ]),
  ]);
  const hog = await m.value('causeway_runqueue_wait_seconds', { service: 'checkout', holder: 'hog' });
  assert.ok(Math.abs((hog ?? 0) - 0.01) < 1e-9, String(hog));
  const kworker = await m.value('causeway_runqueue_wait_seconds', { service: 'checkout', holder: 'kworker/0:1' });
  assert.ok(Math.abs((kworker ?? 0) - 0.001) < 1e-9, String(kworker));
});

test('a label keeps its first 64 values; later new ones are reported as "other" and counted', async (t) => {
  const { m, waits } = setup(t);
  const services = Array.from({ length: 70 }, (_, i) => `service-${String(i)}`);
  waits.attached(services.map((s, i) => attachment(s, [event('futex.wait', i, 1)])));
  waits.attached([attachment('service-3', [event('futex.wait', 100, 1)])]);
  const series = (await m.points('causeway_kernel_wait_seconds')).map(([a, n]) => [String(a.service), n] as const);
  assert.equal(series.length, 65);
  assert.deepEqual(
    series.find(([s]) => s === OTHER),
    [OTHER, 6],
  );
  assert.deepEqual(
    series.find(([s]) => s === 'service-3'),
    ['service-3', 2],
    'a value seen before keeps its name',
  );
  assert.equal(await m.value('causeway_metric_label_overflow', { label: 'service' }), 6);
  const long = 'k'.repeat(500);
  waits.attached([attachment('service-0', [event('cuda.launch', 200, 0.01, { 'causeway.cuda.kernel': long })])]);
  assert.equal(
    await m.value('causeway_cuda_kernel_launches', { service: 'service-0', kernel: long.slice(0, 128) }),
    1,
    'long kernel names are cut',
  );
});
