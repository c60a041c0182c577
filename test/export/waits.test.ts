// The kernel wait metrics, read back through the SDK: each attached wait once in the histogram
// of its kind and service, what was behind the waits (CUDA API and kernel, the tasks that held
// the CPU, each for its share, the other processes on the GPU), and labels bounded in their
// number of values. Run-queue waits are loader records shaped as a capture shapes them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Attachment } from '../../src/correlate/correlator.js';
import { KernelWaits, OTHER, WAIT_BUCKETS_S } from '../../src/export/waits.js';
import { EventBatch, type Attributes, type KernelEvent } from '../../src/kernel/events.js';
import type { AppSpan } from '../../src/otlp/index.js';
import { CudaApi } from '../../src/kernel/record.js';
import { LOADER_PID, crowdedWait, launch, runqueue } from '../kernel/records.js';
import { shaped } from '../kernel/shaped.js';
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
  waits.attached([{ ...attachment('checkout', [runqueue]), takenOver: new Set([runqueue]) }]);
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
  // As the capture shapes it: read from its record's bytes, no event made.
  const [served] = await shaped(
    [launch({ pid: 400, comm: 'server', api: CudaApi.cudaLaunchKernel, func: 0x40n, startNs: 25n * MS })],
    { epochNs: T0 },
  );
  waits.captured(
    EventBatch.of([
      served as KernelEvent,
      event('cuda.launch', 5, 0.01, {}, hog), // before the wait
      event('cuda.launch', 20, 0.01, {}, hog),
      event('cuda.launch', 30, 0.01, {}, trainer),
      event('cuda.launch', 12, 0.01, {}, hog), // out of order
      event('cuda.launch', 15, 0.01), // the waiting process itself
      event('cuda.launch', 60, 0.01, {}, hog), // after the wait
      event('futex.wait', 25, 1, {}, hog),
    ]),
  );
  waits.attached([
    attachment('checkout', [event('cuda.sync', 10, 40, { 'causeway.cuda.api': 'cudaStreamSynchronize' })]),
  ]);
  assert.deepEqual(await m.points('causeway_gpu_cotenant_launches'), [
    [{ service: 'checkout', cotenant: 'server' }, 1],
    [{ service: 'checkout', cotenant: 'gpu_hog' }, 2],
    [{ service: 'checkout', cotenant: 'trainer' }, 1],
  ]);
});

test('a run-queue wait is credited to each task that held the CPU for its on-CPU time, the rest to causeway, unlisted and unseen', async (t) => {
  const { m, waits } = setup(t);
  const hog = { pid: 50, tid: 51, comm: 'hog' };
  // hog 6 ms, spin 1.5, causeway 0.4, unlisted 0.6, unseen 1.5; then hog 3 ms and an exited task 1 ms.
  const [first, second] = await shaped(
    [
      crowdedWait({}),
      runqueue({
        startNs: 20n * MS,
        endNs: 24n * MS,
        holders: [
          { ...hog, oncpuNs: 3n * MS },
          { pid: 80, tid: 81, comm: '', oncpuNs: 1n * MS },
        ],
      }),
    ],
    { self: [LOADER_PID], epochNs: T0 },
  );
  assert.ok(first !== undefined && second !== undefined);
  waits.attached([attachment('checkout', [first, second])]);
  waits.attached([{ ...attachment('checkout', [second]), takenOver: new Set([second]) }]);

  const seconds = new Map(
    (await m.points('causeway_runqueue_wait_seconds')).map(([a, v]) => [`${String(a.service)} ${String(a.holder)}`, v]),
  );
  const expected: [string, number][] = [
    ['hog', 0.009],
    ['spin', 0.0015],
    ['exited', 0.001],
    ['causeway', 0.0004],
    ['unlisted', 0.0006],
    ['unseen', 0.0015],
  ];
  assert.deepEqual([...seconds.keys()].sort(), expected.map(([holder]) => `checkout ${holder}`).sort());
  for (const [holder, value] of expected) {
    const got = seconds.get(`checkout ${holder}`) ?? NaN;
    assert.ok(Math.abs(got - value) < 1e-12, `${holder}: ${String(got)} s, not ${String(value)} s`);
  }
  const total = [...seconds.values()].reduce((sum, v) => sum + v, 0);
  assert.ok(
    Math.abs(total - 0.014) < 1e-12,
    `the holders add up to the two waits (14 ms), each once: ${String(total)} s`,
  );
});

test("the holder label keeps its first 64 process names; causeway, unlisted and unseen are never reported as 'other'", async (t) => {
  const { m, waits } = setup(t);
  const events = await shaped(
    Array.from({ length: 22 }, (_, i) =>
      runqueue({
        startNs: BigInt(i) * 10n * MS,
        endNs: BigInt(i) * 10n * MS + 4n * MS,
        holders: [0, 1, 2].map((k) => ({
          pid: 1000 + 3 * i + k,
          tid: 1000 + 3 * i + k,
          comm: `t${String(3 * i + k)}`,
          oncpuNs: MS,
        })),
      }),
    ),
    { epochNs: T0 },
  );
  waits.attached([attachment('checkout', events)]);
  const series = await m.points('causeway_runqueue_wait_seconds');
  assert.equal(series.length, 66, '64 names, other and unseen');
  const value = (holder: string) => series.find(([a]) => a.holder === holder)?.[1] ?? NaN;
  assert.ok(Math.abs(value(OTHER) - 0.002) < 1e-12, 'the 65th and 66th names');
  assert.ok(Math.abs(value('unseen') - 0.022) < 1e-12, '1 ms of each of the 22 waits');
  assert.equal(await m.value('causeway_metric_label_overflow', { label: 'holder' }), 2);
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
