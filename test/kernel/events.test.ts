import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as A from '../../src/semconv/attributes.js';
import { EpochClock } from '../../src/kernel/clock.js';
import { CudaState } from '../../src/kernel/cuda.js';
import { Demangler } from '../../src/kernel/demangle.js';
import { BlockDevices } from '../../src/kernel/devices.js';
import {
  EventBatch,
  EventList,
  EventShaper,
  attributesOnce,
  compactRecords,
  eventsCovered,
  isPipe,
  otherTask,
  readWhole,
  recordBytes,
  type KernelEvent,
} from '../../src/kernel/events.js';
import { ProcessTable } from '../../src/kernel/processes.js';
import {
  CudaApi,
  DEVICE_UNKNOWN,
  Kind,
  LAYOUT,
  MESSAGE_PIPE,
  RECORD_SIZE,
  decodeRecordsOf,
} from '../../src/kernel/record.js';
import { launch, launches, malloc, op, record, register, runqueue, sync, waitSum, writeTask } from './records.js';

const errors: string[] = [];
const demangler = new Demangler((message) => {
  errors.push(message);
});
const sys = mkdtempSync(join(tmpdir(), 'causeway-sys-'));
after(() => {
  demangler.close();
  rmSync(sys, { recursive: true, force: true });
});
mkdirSync(join(sys, 'dev/block/253:16'), { recursive: true });
writeFileSync(join(sys, 'dev/block/253:16/uevent'), 'MAJOR=253\nMINOR=16\nDEVNAME=vdb\nDEVTYPE=disk\n');

/** Causeway's own pid in these tests. */
const SELF_PID = 99_999;

/** A fresh pipeline, as a capture builds it, that shapes batches of raw records. */
function pipeline(names = demangler, processes = new ProcessTable()) {
  const clock = new EpochClock();
  clock.update(0n, 1_700_000_000_000_000_000n);
  const cuda = new CudaState(names);
  const shaper = new EventShaper({
    clock,
    cuda,
    processes,
    devices: new BlockDevices(sys),
    self: new Set([SELF_PID]),
  });
  return async (...records: Buffer[]): Promise<KernelEvent[]> => {
    const batch = Buffer.concat(records);
    const decoded = decodeRecordsOf(batch, readWhole);
    await cuda.learnNames(decoded, batch);
    return shaper.shape(recordBytes(batch), decoded).events();
  };
}

const pid = process.pid;

/** A FUTEX_WAIT_PRIVATE on 0x7ffd10 woken by `waker`, or timed out (-ETIMEDOUT) when its pid is 0. */
const futexWait = (waker: { pid: number; tid: number; comm: string }) =>
  record({
    kind: Kind.FUTEX_WAIT,
    pid,
    body: (buf, u) => {
      const F = LAYOUT.cw_futex.fields;
      buf.writeBigUInt64LE(0x7ffd10n, u + F.uaddr);
      writeTask(buf, u + F.waker, waker);
      buf.writeUInt32LE(128, u + F.op);
      buf.writeInt32LE(waker.pid === 0 ? -110 : 0, u + F.ret);
    },
  });

test('a launch is named from __cudaRegisterFunction, demangled, and times become epoch nanoseconds', async () => {
  const events = await pipeline()(
    register({ pid, func: 0x5000n, name: '_Z6matmulPKfPfi' }),
    launch({
      pid,
      api: CudaApi.cudaLaunchKernel,
      func: 0x5000n,
      stream: 0x10n,
      startNs: 100n,
      endNs: 350n,
      grid: [8, 1, 1],
      block: [128, 1, 1],
    }),
  );
  assert.equal(events.length, 1, 'the register record is bookkeeping, not an event');
  const [event] = events;
  assert.equal(event?.kind, 'cuda.launch');
  assert.equal(event.startUnixNano, 1_700_000_000_000_000_100n);
  assert.equal(event.endUnixNano, 1_700_000_000_000_000_350n);
  assert.equal(event.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], 'matmul(float const*, float*, int)');
  assert.equal(event.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_SYMBOL], '_Z6matmulPKfPfi');
  assert.equal(event.attributes[A.ATTR_CAUSEWAY_CUDA_API], 'cudaLaunchKernel');
  assert.equal(event.attributes[A.ATTR_CAUSEWAY_CUDA_STREAM], '0x10');
  assert.deepEqual(event.attributes[A.ATTR_CAUSEWAY_CUDA_GRID], [8, 1, 1]);
  assert.equal(event.attributes[A.ATTR_PROCESS_EXECUTABLE_PATH], process.execPath);
});

test("a kernel keeps the name it was demangled to when registered, after the demangler's cache let it go", async () => {
  const forgetful = new Demangler(() => undefined, 1);
  after(() => {
    forgetful.close();
  });
  const shape = pipeline(forgetful);
  await shape(register({ pid, func: 0x5000n, name: '_Z6matmulv' }));
  await shape(register({ pid, func: 0x6000n, name: '_Z4reluv' }));
  assert.equal(forgetful.cached('_Z6matmulv'), undefined, 'one name cached: the first is gone');
  const [event] = await shape(launch({ pid, func: 0x5000n }));
  assert.equal(event?.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], 'matmul()');
  assert.equal(event.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_SYMBOL], '_Z6matmulv');
});

test('a name too long for one record is joined from the parts that follow its registration, in the same batch or a later one', async () => {
  const symbol =
    '_ZN2at6native18elementwise_kernelILi128ELi4EZNS0_22gpu_kernel_impl_nocastIZZZNS0_23direct_copy_kernel_cudaERNS_18TensorIteratorBaseEENKUlvE1_clEvENKUlvE8_clEvEUlN3c104HalfEE_EEvS4_RKT_EUliE_EEviT1_';
  const parts = [symbol.slice(0, 95), symbol.slice(95, 190), symbol.slice(190)];
  const expected = execFileSync('c++filt', [symbol], { encoding: 'utf8' }).trim();
  for (const split of [3, 1]) {
    const shape = pipeline();
    const records = parts.map((name, i) => register({ pid, func: 0x5000n, name, more: i > 0 }));
    await shape(...records.slice(0, split));
    const [event] = await shape(...records.slice(split), launch({ pid, func: 0x5000n }));
    assert.equal(event?.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_SYMBOL], symbol, `split after ${String(split)}`);
    assert.equal(event.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], expected, `split after ${String(split)}`);
  }
});

test('of the kernels a process registers, only those it launches are demangled, at their first launch', async () => {
  class Counting extends Demangler {
    readonly asked: string[] = [];
    override demangleAll(names: string[]): Promise<void> {
      this.asked.push(...names);
      return super.demangleAll(names);
    }
  }
  const counting = new Counting(() => undefined);
  after(() => {
    counting.close();
  });
  const shape = pipeline(counting);
  // As `import torch` does, on a larger scale: every kernel registered at once, few launched.
  const registered = Array.from({ length: 1000 }, (_, i) =>
    register({ pid, func: 0x10000n + BigInt(i), name: `_Z${String(String(i).length + 1)}k${String(i)}v` }),
  );
  await shape(...registered);
  assert.deepEqual(counting.asked, []);
  const events = await shape(
    launch({ pid, func: 0x10007n }),
    launch({ pid, func: 0x10300n }),
    launch({ pid, func: 0x10007n }),
  );
  assert.deepEqual(counting.asked, ['_Z2k7v', '_Z4k768v']);
  assert.deepEqual(
    events.map((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL]),
    ['k7()', 'k768()', 'k7()'],
  );
});

test('launches of one function in a batch are named from a registration in it, before or after them, each process from its own', async () => {
  const other = pid + 1;
  const events = await pipeline()(
    launch({ pid, func: 0x5000n }),
    launch({ pid, func: 0x5000n }),
    register({ pid, func: 0x5000n, name: '_Z6matmulv' }),
    launch({ pid, func: 0x5000n }),
    launch({ pid: other, func: 0x5000n }),
    register({ pid: other, func: 0x5000n, name: '_Z4reluv' }),
    launch({ pid: other, func: 0x5000n }),
    launch({ pid, func: 0x5000n }),
  );
  assert.deepEqual(
    events.map((e) => [e.pid, e.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL]]),
    [
      [pid, 'matmul()'],
      [pid, 'matmul()'],
      [pid, 'matmul()'],
      [other, 'relu()'],
      [other, 'relu()'],
      [pid, 'matmul()'],
    ],
  );
});

test('a name that demangles past 1,024 characters is cut there; its symbol stays whole', async () => {
  // One of PyTorch 2.11's kernels (torch.randn's), 550 bytes, as the real-GPU check captured it.
  const symbol =
    '_ZN2at6native54_GLOBAL__N__d8ceb000_21_DistributionNormal_cu_0c5b6e85L43distribution_elementwise_grid_stride_kernelIfLi4E17__nv_dl_wrapper_tI27__nv_dl_trailing_return_tagIPFvRNS_18TensorIteratorBaseEPNS_17CUDAGeneratorImplES3_I11__nv_dl_tagIPFvRKNS_10TensorBaseEddS8_EXadL_ZNS0_9templates4cuda13normal_kernelIS8_EEvSC_ddT_EELj2EEJffEEEXadL_ZNSG_20normal_and_transformIffS8_SK_EEvS6_T1_T2_EE6float4Lj2EEJEES3_IS9_IPFvS6_S8_RKSS_SK_EXadL_ZNS1_27distribution_nullary_kernelIffSQ_S8_SS_SK_EEvS6_SP_RKT3_T4_EELj1EEJPciKSK_EEEEvlNS_15PhiloxCudaStateESO_SP_';
  const demangled = execFileSync('c++filt', [symbol], { encoding: 'utf8' }).trim();
  assert.ok(demangled.length > 1024, `demangled to ${String(demangled.length)} characters`);
  const parts = [0, 95, 190, 285, 380, 475].map((at) => symbol.slice(at, at + 95));
  const [event] = await pipeline()(
    ...parts.map((name, i) => register({ pid, func: 0x5000n, name, more: i > 0 })),
    launch({ pid, func: 0x5000n }),
  );
  assert.equal(event?.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_SYMBOL], symbol);
  assert.equal(event.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], `${demangled.slice(0, 1023)}…`);
});

test('a stream sync reports the kernels in flight on that stream only, then none', async () => {
  const shape = pipeline();
  const events = await shape(
    register({ pid, func: 0x1n, name: 'relu' }),
    register({ pid, func: 0x2n, name: '_Z4gemmv' }),
    launch({ pid, func: 0x1n, stream: 0xan }),
    launch({ pid, func: 0x2n, stream: 0xan }),
    launch({ pid, func: 0x2n, stream: 0xan }),
    launch({ pid, func: 0x1n, stream: 0xbn }),
    launch({ pid, func: 0x1n, stream: 0xan, ret: 700 }),
    sync({ pid, api: CudaApi.cudaStreamSynchronize, handle: 0xan }),
    sync({ pid, api: CudaApi.cudaStreamSynchronize, handle: 0xan }),
  );
  const [first, second] = events.filter((e) => e.kind === 'cuda.sync');
  assert.equal(first?.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 3, 'the failed launch is not in flight');
  assert.deepEqual(first.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS], ['relu', 'gemm()']);
  assert.equal(first.attributes[A.ATTR_CAUSEWAY_CUDA_STREAM], '0xa');
  assert.equal(second?.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 0);
});

test('a launch summary names each kernel with its count, and a sync after it finds them all in flight on its stream', async () => {
  const shape = pipeline();
  const events = await shape(
    register({ pid, func: 0x1n, name: 'relu' }),
    register({ pid, func: 0x2n, name: '_Z4gemmv' }),
    launches({
      pid,
      stream: 0xan,
      startNs: 100n,
      endNs: 900n,
      callNs: 300n,
      funcs: [
        { func: 0x2n, count: 70 },
        { func: 0x1n, count: 30 },
        { func: 0x3n, count: 5 },
      ],
    }),
    launch({ pid, func: 0x1n, stream: 0xbn }),
    sync({ pid, api: CudaApi.cudaStreamSynchronize, handle: 0xan }),
  );
  const summary = events.find((e) => e.kind === 'cuda.launches');
  assert.equal(summary?.attributes[A.ATTR_CAUSEWAY_SUMMARY_COUNT], 105);
  assert.deepEqual(summary.attributes[A.ATTR_CAUSEWAY_CUDA_KERNELS], ['gemm()', 'relu', '0x3']);
  assert.deepEqual(summary.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_COUNTS], [70, 30, 5]);
  assert.equal(summary.attributes[A.ATTR_CAUSEWAY_CUDA_STREAM], '0xa');
  assert.equal(summary.attributes[A.ATTR_CAUSEWAY_CUDA_LAUNCH_CALL_MS], 0.0003);
  assert.equal(summary.endUnixNano - summary.startUnixNano, 800n);
  assert.equal(eventsCovered(summary), 105);
  const synced = events.find((e) => e.kind === 'cuda.sync');
  assert.equal(synced?.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 105, 'not the launch on the other stream');
  assert.deepEqual(synced.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS], ['gemm()', 'relu']);
});

test('a summary of futex or blocked waits says how many, how long in all and at most, and who woke the longest; it covers its count under the kind it sums', async () => {
  const shape = pipeline();
  const waker = { pid: 7, tid: 8, comm: 'pong' };
  const [futex, blocked, runqueues, unwoken] = await shape(
    waitSum({
      kind: Kind.FUTEX_WAIT_SUM,
      pid,
      startNs: 1_000n,
      endNs: 9_000_000n,
      count: 40,
      waitNs: 2_000_000n,
      maxNs: 90_000n,
      waker,
    }),
    waitSum({ kind: Kind.SCHED_BLOCKED_SUM, pid, cpu: 3, count: 12, waitNs: 600_000n, maxNs: 80_000n, waker }),
    waitSum({ kind: Kind.SCHED_RUNQUEUE_SUM, pid, count: 5, waitNs: 50_000n, maxNs: 20_000n, preempted: 2 }),
    waitSum({ kind: Kind.FUTEX_WAIT_SUM, pid, count: 3, waitNs: 30_000n, maxNs: 10_000n }),
  );
  assert.equal(futex?.kind, 'futex.waits');
  assert.deepEqual(
    [
      futex.attributes[A.ATTR_CAUSEWAY_SUMMARY_COUNT],
      futex.attributes[A.ATTR_CAUSEWAY_FUTEX_WAIT_MS],
      futex.attributes[A.ATTR_CAUSEWAY_FUTEX_MAX_WAIT_MS],
    ],
    [40, 2, 0.09],
  );
  assert.deepEqual(
    [
      futex.attributes[A.ATTR_CAUSEWAY_FUTEX_WAKER_PID],
      futex.attributes[A.ATTR_CAUSEWAY_FUTEX_WAKER_TID],
      futex.attributes[A.ATTR_CAUSEWAY_FUTEX_WAKER_COMM],
    ],
    [7, 8, 'pong'],
  );
  assert.equal(futex.endUnixNano - futex.startUnixNano, 8_999_000n);
  assert.equal(eventsCovered(futex), 40);
  assert.deepEqual(otherTask(futex), waker);
  assert.equal(blocked?.kind, 'sched.blocked_waits');
  assert.deepEqual(
    [
      blocked.attributes[A.ATTR_CAUSEWAY_SUMMARY_COUNT],
      blocked.attributes[A.ATTR_CAUSEWAY_SCHED_WAIT_MS],
      blocked.attributes[A.ATTR_CAUSEWAY_SCHED_MAX_WAIT_MS],
      blocked.attributes[A.ATTR_CAUSEWAY_SCHED_CPU],
    ],
    [12, 0.6, 0.08, 3],
  );
  assert.equal(blocked.attributes[A.ATTR_CAUSEWAY_SCHED_WAKER_TID], 8);
  assert.equal(blocked.attributes[A.ATTR_CAUSEWAY_SCHED_PREEMPTED_COUNT], undefined);
  assert.equal(eventsCovered(blocked), 12);
  assert.equal(runqueues?.attributes[A.ATTR_CAUSEWAY_SCHED_PREEMPTED_COUNT], 2);
  assert.equal(runqueues.attributes[A.ATTR_CAUSEWAY_SCHED_WAKER_TID], undefined);
  assert.equal(otherTask(runqueues), undefined);
  // A window whose longest futex wait was not woken (it timed out, or the word had changed) names no waker.
  assert.ok(unwoken);
  assert.equal(unwoken.attributes[A.ATTR_CAUSEWAY_FUTEX_WAKER_PID], undefined);
  assert.equal(otherTask(unwoken), undefined);
});

test('a long launch behind queued work blocked: it names the kernels queued ahead on its stream, and leaves them queued', async () => {
  const shape = pipeline();
  const events = await shape(
    register({ pid, func: 0x1n, name: 'relu' }),
    register({ pid, func: 0x2n, name: '_Z4gemmv' }),
    // Long, onto an empty stream: it waited for something else (loading the kernel's module).
    launch({ pid, func: 0x1n, stream: 0xcn, startNs: 100n, endNs: 900_000n }),
    launch({ pid, func: 0x1n, stream: 0xan, startNs: 1_000n, endNs: 6_000n }),
    launch({ pid, func: 0x2n, stream: 0xan, startNs: 10_000n, endNs: 15_000n }),
    launch({ pid, func: 0x1n, stream: 0xbn, startNs: 20_000n, endNs: 25_000n }),
    // The queue is full: this call waited 2 ms for queued work to complete.
    launch({ pid, func: 0x2n, stream: 0xan, startNs: 30_000n, endNs: 2_030_000n }),
    sync({ pid, api: CudaApi.cudaStreamSynchronize, handle: 0xan }),
  );
  const launches = events.filter((e) => e.kind === 'cuda.launch');
  assert.deepEqual(
    launches.map((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_LAUNCH_BLOCKED]),
    [undefined, undefined, undefined, undefined, true],
  );
  const blocked = launches[4];
  assert.equal(blocked?.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 2, 'the two launches ahead on stream 0xa');
  assert.deepEqual(blocked.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS], ['relu', 'gemm()']);
  assert.equal(launches[1]?.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], undefined);
  const [synced] = events.filter((e) => e.kind === 'cuda.sync');
  assert.equal(synced?.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 3, 'the blocked launch and those ahead');
});

test('a device sync drains every stream of its process, not of others', async () => {
  const shape = pipeline();
  const events = await shape(
    launch({ pid, func: 0x1n, stream: 0xan }),
    launch({ pid, func: 0x1n, stream: 0xbn }),
    launch({ pid: pid + 1, func: 0x1n, stream: 0xan }),
    sync({ pid, api: CudaApi.cudaDeviceSynchronize, handle: 0n }),
    sync({ pid: pid + 1, api: CudaApi.cudaStreamSynchronize, handle: 0xan }),
  );
  const syncs = events.filter((e) => e.kind === 'cuda.sync');
  assert.deepEqual(
    syncs.map((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT]),
    [2, 1],
  );
  assert.equal(syncs[0]?.attributes[A.ATTR_CAUSEWAY_CUDA_STREAM], undefined);
});

test('an event sync names its event and claims nothing about streams', async () => {
  const [event] = await pipeline()(sync({ pid, api: CudaApi.cudaEventSynchronize, handle: 0xe0n }));
  assert.equal(event?.attributes[A.ATTR_CAUSEWAY_CUDA_EVENT], '0xe0');
  assert.equal(event.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], undefined);
});

/** A model step as an engine captures it: three kernels on stream 0x50, graph 0x60, executable graph 0x70. */
const capturedStep = () => [
  register({ pid, func: 0x1n, name: '_Z9attentionv' }),
  register({ pid, func: 0x2n, name: '_Z7rmsnormv' }),
  register({ pid, func: 0x3n, name: '_Z3mlpv' }),
  op({ pid, api: CudaApi.cudaStreamBeginCapture, stream: 0x50n }),
  launch({ pid, api: CudaApi.cudaLaunchKernel, func: 0x1n, stream: 0x50n }),
  launch({ pid, api: CudaApi.cudaLaunchKernel, func: 0x2n, stream: 0x50n }),
  launch({ pid, api: CudaApi.cudaLaunchKernel, func: 0x3n, stream: 0x50n }),
  op({ pid, api: CudaApi.cudaStreamEndCapture, stream: 0x50n, graph: 0x60n }),
  op({ pid, api: CudaApi.cudaGraphInstantiate, graph: 0x60n, exec: 0x70n }),
];
const STEP = ['attention()', 'rmsnorm()', 'mlp()'];

test('launches on a capturing stream are recorded into the graph, not put in flight', async () => {
  const events = await pipeline()(...capturedStep(), sync({ pid, api: CudaApi.cudaStreamSynchronize, handle: 0x50n }));
  const launches = events.filter((e) => e.kind === 'cuda.launch');
  assert.deepEqual(
    launches.map((e) => [e.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], e.attributes[A.ATTR_CAUSEWAY_CUDA_CAPTURED]]),
    STEP.map((kernel) => [kernel, true]),
  );
  const [synced] = events.filter((e) => e.kind === 'cuda.sync');
  assert.equal(synced?.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 0);
});

test('a graph launch names its graph and kernels, and the event sync after it finds them in flight', async () => {
  const events = await pipeline()(
    ...capturedStep(),
    launch({ pid, api: CudaApi.cudaGraphLaunch, func: 0x70n, stream: 0x50n }),
    op({ pid, api: CudaApi.cudaEventRecord, event: 0xe1n, stream: 0x50n }),
    launch({ pid, api: CudaApi.cudaGraphLaunch, func: 0x70n, stream: 0x50n }),
    sync({ pid, api: CudaApi.cudaEventSynchronize, handle: 0xe1n }),
    sync({ pid, api: CudaApi.cudaStreamSynchronize, handle: 0x50n }),
  );
  const [graphLaunch] = events.filter((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_API] === 'cudaGraphLaunch');
  assert.equal(graphLaunch?.attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH_EXEC], '0x70');
  assert.equal(graphLaunch.attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH], '0x60');
  assert.deepEqual(graphLaunch.attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH_KERNELS], STEP);
  assert.equal(graphLaunch.attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH_KERNEL_COUNT], 3);
  assert.equal(graphLaunch.attributes[A.ATTR_CAUSEWAY_CUDA_CAPTURED], undefined);
  const [eventSync, streamSync] = events.filter((e) => e.kind === 'cuda.sync');
  // The event was recorded after the first replay: the second is not what it waits for.
  assert.equal(eventSync?.attributes[A.ATTR_CAUSEWAY_CUDA_EVENT], '0xe1');
  assert.equal(eventSync.attributes[A.ATTR_CAUSEWAY_CUDA_STREAM], '0x50');
  assert.equal(eventSync.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 3);
  assert.deepEqual(eventSync.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS], STEP);
  assert.deepEqual(eventSync.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_GRAPHS], ['0x70']);
  assert.equal(streamSync?.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 3, 'the second replay only');
});

test('a graph captured before capture began is launched by its handle, its kernels unknown', async () => {
  const events = await pipeline()(
    launch({ pid, api: CudaApi.cudaGraphLaunch, func: 0x70n, stream: 0x50n }),
    sync({ pid, api: CudaApi.cudaStreamSynchronize, handle: 0x50n }),
  );
  const [graphLaunch, synced] = events;
  assert.equal(graphLaunch?.attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH_EXEC], '0x70');
  assert.equal(graphLaunch.attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH_KERNELS], undefined);
  assert.equal(graphLaunch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], undefined);
  assert.deepEqual(synced?.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_GRAPHS], ['0x70']);
  assert.equal(synced.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 0);
});

test("a stream that waits on another stream's event waits for that stream's work too", async () => {
  const events = await pipeline()(
    register({ pid, func: 0x1n, name: 'compute' }),
    launch({ pid, func: 0x1n, stream: 0xcn }),
    record({
      kind: Kind.CUDA_MEMCPY,
      pid,
      api: CudaApi.cudaMemcpyAsync,
      body: (buf, u) => {
        const M = LAYOUT.cw_memcpy.fields;
        buf.writeBigUInt64LE(4096n, u + M.bytes);
        buf.writeBigUInt64LE(0xdn, u + M.stream);
        buf.writeUInt32LE(1, u + M.async);
      },
    }),
    op({ pid, api: CudaApi.cudaEventRecord, event: 0xe2n, stream: 0xdn }),
    op({ pid, api: CudaApi.cudaStreamWaitEvent, event: 0xe2n, stream: 0xcn }),
    launch({ pid, func: 0x1n, stream: 0xcn }),
    sync({ pid, api: CudaApi.cudaStreamSynchronize, handle: 0xcn }),
    sync({ pid, api: CudaApi.cudaStreamSynchronize, handle: 0xdn }),
  );
  const [waited, copyStream] = events.filter((e) => e.kind === 'cuda.sync');
  assert.equal(waited?.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 2);
  assert.equal(waited.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_MEMCPY_BYTES], 4096);
  assert.deepEqual(waited.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_STREAMS], ['0xc', '0xd']);
  assert.equal(copyStream?.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_MEMCPY_BYTES], undefined, 'already waited for');
});

test('a polling sync is marked with its queries, and completes what it polled', async () => {
  const events = await pipeline()(
    launch({ pid, func: 0x1n, stream: 0xan }),
    sync({ pid, api: CudaApi.cudaStreamQuery, handle: 0xan, polls: 12, startNs: 1_000n, endNs: 9_000n }),
    sync({ pid, api: CudaApi.cudaStreamSynchronize, handle: 0xan }),
  );
  const [, polled, later] = events;
  assert.equal(polled?.attributes[A.ATTR_CAUSEWAY_CUDA_API], 'cudaStreamQuery');
  assert.equal(polled.attributes[A.ATTR_CAUSEWAY_CUDA_SYNC_POLLING], true);
  assert.equal(polled.attributes[A.ATTR_CAUSEWAY_CUDA_SYNC_POLLS], 12);
  assert.equal(polled.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 1);
  assert.equal(polled.endUnixNano - polled.startUnixNano, 8_000n);
  assert.ok(later);
  assert.equal(later.attributes[A.ATTR_CAUSEWAY_CUDA_SYNC_POLLING], undefined);
  assert.equal(later.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 0);
});

test('every CUDA event says its device, unless unknown; a device sync waits for that device only', async () => {
  const events = await pipeline()(
    launch({ pid, func: 0x1n, stream: 0xan, device: 0 }),
    launch({ pid, func: 0x1n, stream: 0xbn, device: 1 }),
    launch({ pid, func: 0x1n, stream: 0xcn, device: DEVICE_UNKNOWN }),
    sync({ pid, api: CudaApi.cudaDeviceSynchronize, handle: 0n, device: 1 }),
    sync({ pid, api: CudaApi.cudaStreamSynchronize, handle: 0xan, device: 0 }),
  );
  assert.deepEqual(
    events.map((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_DEVICE]),
    [0, 1, undefined, 1, 0],
  );
  const [device1, stream0] = events.filter((e) => e.kind === 'cuda.sync');
  assert.equal(device1?.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 2, "device 1's and the unknown one's");
  assert.equal(stream0?.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 1);
});

test("a per-thread variant's stream 0 is the thread's own stream, not the legacy one", async () => {
  const events = await pipeline()(
    launch({ pid, tid: pid + 1, func: 0x1n, stream: 0n, api: CudaApi.cudaLaunchKernel, perThread: true }),
    launch({ pid, tid: pid + 1, func: 0x1n, stream: 0n, api: CudaApi.cudaLaunchKernel }),
    sync({ pid, tid: pid + 1, api: CudaApi.cudaStreamSynchronize, handle: 0n, perThread: true }),
  );
  assert.equal(events[0]?.attributes[A.ATTR_CAUSEWAY_CUDA_API], 'cudaLaunchKernel_ptsz');
  const synced = events[2];
  assert.equal(synced?.attributes[A.ATTR_CAUSEWAY_CUDA_API], 'cudaStreamSynchronize_ptsz');
  assert.equal(synced.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 1);
});

test('a registration whose name nobody could read names nothing: its launch says only the function', async () => {
  const events = await pipeline()(
    register({ pid, func: 0x1n, name: '' }),
    launch({ pid, api: CudaApi.cudaLaunchKernel, func: 0x1n }),
  );
  const [launched] = events;
  assert.ok(launched);
  assert.equal(launched.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], undefined);
  assert.equal(launched.attributes[A.ATTR_CAUSEWAY_CUDA_FUNCTION], '0x1');
});

test('cudaFree reports the bytes its cudaMalloc allocated', async () => {
  const events = await pipeline()(
    malloc({ pid, api: CudaApi.cudaMalloc, ptr: 0x7f00n, bytes: 4096n, free: false }),
    malloc({ pid, api: CudaApi.cudaFree, ptr: 0x7f00n, bytes: 0n, free: true }),
    malloc({ pid, api: CudaApi.cudaFree, ptr: 0x7f00n, bytes: 0n, free: true }),
  );
  assert.deepEqual(
    events.map((e) => [e.attributes[A.ATTR_CAUSEWAY_CUDA_MALLOC_OP], e.attributes[A.ATTR_CAUSEWAY_CUDA_MALLOC_BYTES]]),
    [
      ['alloc', 4096],
      ['free', 4096],
      ['free', undefined],
    ],
  );
});

test('attributes read long after shaping are those of when the event was shaped, not of the CUDA state since', async () => {
  const shape = pipeline();
  const [allocated, freed] = await shape(
    malloc({ pid, api: CudaApi.cudaMalloc, ptr: 0x7f00n, bytes: 4096n, free: false }),
    malloc({ pid, api: CudaApi.cudaFree, ptr: 0x7f00n, bytes: 0n, free: true }),
  );
  // The same pointer again, bigger: shaped before the first events' attributes are read.
  const [, freedAgain] = await shape(
    malloc({ pid, api: CudaApi.cudaMalloc, ptr: 0x7f00n, bytes: 8192n, free: false }),
    malloc({ pid, api: CudaApi.cudaFree, ptr: 0x7f00n, bytes: 0n, free: true }),
  );
  assert.equal(freedAgain?.attributes[A.ATTR_CAUSEWAY_CUDA_MALLOC_BYTES], 8192);
  assert.equal(freed?.attributes[A.ATTR_CAUSEWAY_CUDA_MALLOC_BYTES], 4096);
  assert.equal(allocated?.attributes[A.ATTR_CAUSEWAY_CUDA_MALLOC_PTR], '0x7f00');
  assert.equal(freed.attributes, freed.attributes, 'made once, then kept');
});

test('the other task an event names is the same read from its record as from its attributes', async () => {
  const B = LAYOUT.cw_blocked.fields;
  const events = await pipeline()(
    runqueue({ pid, holders: [{ pid: 50, tid: 51, comm: 'hog', oncpuNs: 6_000n }] }),
    runqueue({ pid, holders: [] }),
    record({
      kind: Kind.SCHED_BLOCKED,
      pid,
      body: (buf, u) => {
        writeTask(buf, u + B.waker, { pid: 0, tid: 0, comm: 'swapper/1' });
      },
    }),
    futexWait({ pid: 7, tid: 9, comm: 'holder' }),
    futexWait({ pid: 0, tid: 0, comm: '' }),
    launch({ pid, api: CudaApi.cudaLaunchKernel, func: 0x5000n }),
  );
  // From the record (the attributes not yet made), then as any event with those attributes says it.
  const fromRecords = events.map((e) => otherTask(e));
  const fromAttributes = events.map((e) => otherTask(plainOf(e)));
  assert.deepEqual(fromRecords, fromAttributes);
  assert.deepEqual(fromRecords, [
    { pid: 50, tid: 51, comm: 'hog' },
    undefined,
    { pid: 0, tid: 0, comm: 'swapper/1' },
    { pid: 7, tid: 9, comm: 'holder' },
    undefined,
    undefined,
  ]);
  // Held by column, its pid read from the record (no event made); held whole, from the event.
  const pids = fromRecords.map((task) => task?.pid);
  const byColumn = listOf(events);
  const whole = listOf(events.map(plainOf));
  assert.deepEqual(
    events.map((_, i) => byColumn.otherPid(i)),
    pids,
  );
  assert.deepEqual(
    events.map((_, i) => whole.otherPid(i)),
    pids,
  );
});

/** The events held by column, by start (as a list puts them). */
function listOf(events: KernelEvent[]): EventList {
  const list = new EventList(events[0]?.startUnixNano ?? 0n);
  const batch = EventBatch.of(events);
  for (let i = 0; i < batch.length; i++) list.add(batch, i);
  return list;
}

const eventsOf = (list: EventList) => Array.from({ length: list.length }, (_, i) => list.event(i));
/** An event as a plain object: a shaped event's kind, task, times and attributes are getters, which a spread leaves out. */
const plainOf = (e: KernelEvent): KernelEvent => ({
  ...e,
  kind: e.kind,
  pid: e.pid,
  tid: e.tid,
  comm: e.comm,
  startUnixNano: e.startUnixNano,
  endUnixNano: e.endUnixNano,
  attributes: e.attributes,
});

test('the few events still held of a batch are moved out of it, and read the same as before', async () => {
  // 24 records: a buffer of their own, not a slice of a shared pool. By start, as a list holds them.
  const shaped = await pipeline()(
    ...Array.from({ length: 24 }, (_, i) =>
      i % 2 === 0
        ? futexWait({ pid: 300 + i, tid: 400 + i, comm: `waker${String(i)}` })
        : runqueue({
            pid,
            startNs: BigInt(i) * 1000n,
            holders: [{ pid: 50, tid: 51 + i, comm: 'hog', oncpuNs: 6_000n }],
          }),
    ),
  );
  const events = shaped.sort((a, b) => Number(a.startUnixNano - b.startUnixNano));
  // Read from the records, the attributes not kept.
  const read = (e: KernelEvent) => ({ attributes: attributesOnce(e), other: otherTask(e) });
  const before = events.map(read);
  assert.equal(compactRecords([listOf(events)]), 24 * RECORD_SIZE, 'all held: the batch is kept');
  // Under a quarter held (5 of 24): the five are copied out, and keep no more than their records.
  const held = listOf(events.slice(19));
  assert.equal(compactRecords([held]), 5 * RECORD_SIZE);
  assert.deepEqual(eventsOf(held).map(read), before.slice(19));
  assert.deepEqual(
    eventsOf(held).map((e) => ({ attributes: e.attributes, other: otherTask(e) })),
    before.slice(19),
  );
  assert.equal(compactRecords([held]), 5 * RECORD_SIZE, 'all held of their new chunk: not moved again');
  assert.deepEqual(events.slice(0, 19).map(read), before.slice(0, 19), 'those let go read their batch still');
});

test('events of processes interleaved in a batch each keep their own process, held by column and moved', async () => {
  const unknown = 4_000_000; // beyond pid_max: a process nothing is known of
  const pids = [pid, unknown, unknown, pid, unknown, pid, pid, unknown, pid, pid, unknown, pid];
  const events = await pipeline()(
    ...pids.map((p, i) =>
      runqueue({ pid: p, startNs: BigInt(i) * 1000n, holders: [{ pid: 50, tid: 51, comm: 'hog', oncpuNs: 6_000n }] }),
    ),
  );
  const executable = (e: KernelEvent) => attributesOnce(e)[A.ATTR_PROCESS_EXECUTABLE_PATH];
  const expected = pids.map((p) => (p === pid ? process.execPath : undefined));
  assert.deepEqual(events.map(executable), expected);
  assert.deepEqual(eventsOf(listOf(events)).map(executable), expected);
  // The last two held, under a quarter of their batch: moved out together, each with its process.
  const moved = listOf(events.slice(10));
  assert.equal(compactRecords([moved]), 2 * RECORD_SIZE);
  assert.deepEqual(eventsOf(moved).map(executable), [undefined, process.execPath]);
});

test('an event held by column is made again as it was shaped: kind, task, times, store id, attributes', async () => {
  const shape = pipeline();
  const events = await shape(
    register({ pid, func: 0x5000n, name: '_Z6kernelv' }),
    launch({ pid, api: CudaApi.cudaLaunchKernel, func: 0x5000n, startNs: 1_000n, endNs: 3_000n }),
    futexWait({ pid: 7, tid: 9, comm: 'holder' }),
    runqueue({ pid, startNs: 5_000n, holders: [{ pid: 50, tid: 51, comm: 'hog', oncpuNs: 6_000n }] }),
  );
  events.forEach((event, i) => {
    if (i !== 1) event.storeId = 100 + i;
  });
  const expected = events.map((e) => ({ ...plainOf(e), attributes: attributesOnce(e), other: otherTask(e) }));
  const list = listOf(events);
  // Later records change the CUDA state the launch's attributes were made from: not what it says.
  await shape(register({ pid, func: 0x5000n, name: '_Z5otherv' }));
  const made = eventsOf(list);
  assert.deepEqual(
    made.map((e) => ({ ...plainOf(e), other: otherTask(e) })),
    expected,
  );
  assert.notEqual(made[0], events[0], 'made again, not held');
  assert.notEqual(list.event(0), list.event(0), 'another object each time it is read');
  // Held whole from then on (an event taken over again and again): that object each time.
  list.holdWhole(0, made[0] as KernelEvent);
  assert.equal(list.event(0), made[0]);
  assert.equal(list.event(0), list.event(0));
  // An event that is not a shaped one is held whole: the same object.
  const plain: KernelEvent = { ...expected[0], attributes: {} } as KernelEvent;
  assert.equal(listOf([plain]).event(0), plain);
});

test('a list of held events days long keeps their times to the nanosecond as its base moves up', async () => {
  const DAY = 86_400_000_000_000n;
  const events = await pipeline()(
    runqueue({ pid, startNs: 1n, endNs: 2n, holders: [] }),
    runqueue({ pid, startNs: 2n * DAY + 3n, endNs: 2n * DAY + 7n, holders: [] }),
    runqueue({ pid, startNs: 105n * DAY + 5n, endNs: 105n * DAY + 6n, holders: [] }),
  );
  const list = listOf(events.slice(0, 2));
  // Taken by a span that began 1 ns before it: held as a time of the list, moved with its base.
  list.take(1, list.time((events[1]?.startUnixNano ?? 0n) - 1n));
  list.removeFront(1);
  list.moveBase(list.start(0));
  assert.equal(list.start(0), 0, 'the base moved up to the first event left');
  assert.equal(list.takenAt(0), -1, 'the span began 1 ns before the event, its time moved with the base');
  // 105 days past the first base: as a number of ns after it, not exact (past 2^53).
  list.add(EventBatch.of([events[2] as KernelEvent]), 0);
  assert.deepEqual(
    eventsOf(list).map((e) => [e.startUnixNano, e.endUnixNano]),
    events.slice(1).map((e) => [e.startUnixNano, e.endUnixNano]),
  );
});

test('a futex wait names its waker, and a wait without one leaves the waker out', async () => {
  const [woken, timedOut] = await pipeline()(
    futexWait({ pid: 7, tid: 9, comm: 'holder' }),
    futexWait({ pid: 0, tid: 0, comm: '' }),
  );
  assert.equal(woken?.kind, 'futex.wait');
  assert.equal(woken.attributes[A.ATTR_CAUSEWAY_FUTEX_WAKER_TID], 9);
  assert.equal(woken.attributes[A.ATTR_CAUSEWAY_FUTEX_WAKER_COMM], 'holder');
  assert.equal(woken.attributes[A.ATTR_CAUSEWAY_FUTEX_OP], 'FUTEX_WAIT_PRIVATE');
  assert.equal(woken.attributes[A.ATTR_CAUSEWAY_FUTEX_UADDR], '0x7ffd10');
  assert.equal(timedOut?.attributes[A.ATTR_CAUSEWAY_FUTEX_WAKER_TID], undefined);
  assert.equal(timedOut?.attributes[A.ATTR_CAUSEWAY_FUTEX_RESULT], -110);
});

test('scheduler events name the holders of the CPU by on-CPU time, and the waker', async () => {
  const B = LAYOUT.cw_blocked.fields;
  const [waited, blocked] = await pipeline()(
    runqueue({
      pid,
      cpu: 3,
      holders: [
        { pid: 50, tid: 51, comm: 'hog', oncpuNs: 6_000_000n },
        { pid: 70, tid: 72, comm: 'spin', oncpuNs: 1_500_000n },
      ],
      seenNs: 8_000_000n,
      preempted: true,
    }),
    record({
      kind: Kind.SCHED_BLOCKED,
      pid,
      cpu: 1,
      body: (buf, u) => {
        writeTask(buf, u + B.waker, { pid: 60, tid: 61, comm: 'irq' });
        buf.writeUInt32LE(2, u + B.state);
      },
    }),
  );
  assert.deepEqual(
    [
      waited?.attributes[A.ATTR_CAUSEWAY_SCHED_CPU],
      waited?.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDER_COMM],
      waited?.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDER_TID],
      waited?.attributes[A.ATTR_CAUSEWAY_SCHED_PREEMPTED],
    ],
    [3, 'hog', 51, true],
  );
  assert.deepEqual(
    [
      waited?.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_PID],
      waited?.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_TID],
      waited?.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_COMM],
      waited?.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_ONCPU_MS],
      waited?.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_SEEN_MS],
      waited?.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_CAUSEWAY_MS],
    ],
    [[50, 70], [51, 72], ['hog', 'spin'], [6, 1.5], 8, undefined],
  );
  assert.deepEqual(
    [blocked?.attributes[A.ATTR_CAUSEWAY_SCHED_WAKER_TID], blocked?.attributes[A.ATTR_CAUSEWAY_SCHED_STATE]],
    [61, 'D'],
  );
});

test('a run-queue wait says how long Causeway itself held the CPU, and whether it held it longest', async () => {
  const behind = (...pids: number[]) =>
    runqueue({
      pid,
      holders: pids.map((p, i) => ({ pid: p, tid: p + 1, comm: 'x', oncpuNs: BigInt(4 - i) * 1_000_000n })),
    });
  const [self, second, other, idle] = await pipeline()(
    behind(SELF_PID),
    behind(50, SELF_PID),
    behind(50),
    runqueue({ pid, holders: [], seenNs: 2_000_000n }),
  );
  // Causeway is the holder when it held the CPU longest, and never among the listed holders.
  assert.equal(self?.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDER_CAUSEWAY], true);
  assert.equal(self.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_CAUSEWAY_MS], 4);
  assert.equal(self.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_PID], undefined);
  assert.ok(second !== undefined && other !== undefined);
  assert.equal(second.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDER_CAUSEWAY], undefined);
  assert.equal(second.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_CAUSEWAY_MS], 3);
  assert.deepEqual(second.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_PID], [50]);
  assert.equal(other.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDER_CAUSEWAY], undefined);
  assert.equal(other.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_CAUSEWAY_MS], undefined);
  // Only the idle task ran there: no holder is named.
  assert.equal(idle?.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDER_PID], undefined);
  assert.equal(idle?.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_SEEN_MS], 2);
});

test('block I/O names the device from sysfs and the op from rwbs', async () => {
  const K = LAYOUT.cw_block.fields;
  const io = (dev: number) =>
    record({
      kind: Kind.BLOCK_IO,
      pid,
      body: (buf, u) => {
        buf.writeBigUInt64LE(2048n, u + K.sector);
        buf.writeUInt32LE(dev, u + K.dev);
        buf.writeUInt32LE(65536, u + K.bytes);
        buf.write('FWS', u + K.rwbs);
        buf.writeUInt32LE(0, u + K.submitter);
      },
    });
  const [known, unknown] = await pipeline()(io((253 << 20) | 16), io((7 << 20) | 3));
  assert.equal(known?.attributes[A.ATTR_CAUSEWAY_BLOCK_DEVICE], 'vdb');
  assert.equal(known.attributes[A.ATTR_CAUSEWAY_BLOCK_OP], 'write');
  assert.equal(known.attributes[A.ATTR_CAUSEWAY_BLOCK_BYTES], 65536);
  assert.equal(known.attributes[A.ATTR_CAUSEWAY_BLOCK_ATTRIBUTION], 'issuer');
  assert.equal(unknown?.attributes[A.ATTR_CAUSEWAY_BLOCK_DEVICE], '7:3');
});

test('a TCP retransmit carries OpenTelemetry network attributes', async () => {
  const T = LAYOUT.cw_tcp.fields;
  const [event] = await pipeline()(
    record({
      kind: Kind.TCP_RETRANSMIT,
      pid,
      body: (buf, u) => {
        buf.set([127, 0, 0, 1], u + T.saddr);
        buf.set([127, 0, 0, 2], u + T.daddr);
        buf.writeUInt16LE(2, u + T.family);
        buf.writeUInt16LE(40000, u + T.sport);
        buf.writeUInt16LE(8080, u + T.dport);
        buf.writeUInt16LE(1, u + T.state);
        buf.writeUInt32LE(1, u + T.owner_known);
      },
    }),
  );
  assert.deepEqual(
    [
      A.ATTR_NETWORK_TYPE,
      A.ATTR_NETWORK_LOCAL_ADDRESS,
      A.ATTR_NETWORK_LOCAL_PORT,
      A.ATTR_NETWORK_PEER_ADDRESS,
      A.ATTR_NETWORK_PEER_PORT,
      A.ATTR_CAUSEWAY_TCP_STATE,
      A.ATTR_CAUSEWAY_TCP_OWNER_KNOWN,
    ].map((key) => event?.attributes[key]),
    ['ipv4', '127.0.0.1', 40000, '127.0.0.2', 8080, 'ESTABLISHED', true],
  );
});

/** An ipc.message record between `ends` of `family` (an address family, or MESSAGE_PIPE). */
const messageRecord = (ends: [bigint, bigint], family: number, send: boolean) => {
  const M = LAYOUT.cw_message.fields;
  return record({
    kind: Kind.IPC_MESSAGE,
    pid,
    body: (buf, u) => {
      buf.writeBigUInt64LE(ends[0], u + M.ends);
      buf.writeBigUInt64LE(ends[1], u + M.ends + 8);
      buf.writeUInt32LE(512, u + M.bytes);
      buf.writeUInt16LE(family, u + M.family);
      buf.writeUInt8(send ? 1 : 0, u + M.send);
    },
  });
};

test('a socket message names its direction, bytes and connection, the same words at both ends', async () => {
  const ends: [bigint, bigint] = [0xffff8881a2b3c400n, 0xffff8881a2b3c800n];
  const events = await pipeline()(messageRecord(ends, 1, true), messageRecord(ends, 1, false));
  assert.deepEqual(
    events.map((e) => [
      e.kind,
      e.attributes[A.ATTR_CAUSEWAY_IPC_DIRECTION],
      e.attributes[A.ATTR_CAUSEWAY_IPC_BYTES],
      e.attributes[A.ATTR_CAUSEWAY_IPC_CONNECTION],
    ]),
    [
      ['ipc.message', 'send', 512, '0xffff8881a2b3c400-0xffff8881a2b3c800'],
      ['ipc.message', 'recv', 512, '0xffff8881a2b3c400-0xffff8881a2b3c800'],
    ],
  );
  assert.ok(!isPipe(String(events[0]?.attributes[A.ATTR_CAUSEWAY_IPC_CONNECTION])));
});

test('a pipe message names the pipe, one id for both ends, as a pipe', async () => {
  const pipeAt = 0xffff8881b0c4d200n;
  const [event] = await pipeline()(messageRecord([pipeAt, pipeAt], MESSAGE_PIPE, true));
  const connection = String(event?.attributes[A.ATTR_CAUSEWAY_IPC_CONNECTION]);
  assert.equal(connection, 'pipe:0xffff8881b0c4d200');
  assert.ok(isPipe(connection));
});

test('an exit forgets the process: its pid used again, by a fork that did not exec, is named as the new process', async () => {
  // A /proc of our own, where the pid's program changes after its exit.
  const proc = mkdtempSync(join(tmpdir(), 'causeway-proc-'));
  after(() => {
    rmSync(proc, { recursive: true, force: true });
  });
  const reused = 4242;
  mkdirSync(join(proc, String(reused)));
  const runs = (path: string) => {
    rmSync(join(proc, String(reused), 'exe'), { force: true });
    symlinkSync(path, join(proc, String(reused), 'exe'));
  };
  const shape = pipeline(demangler, new ProcessTable(64, proc));
  const executable = (events: KernelEvent[]) => events.map((e) => e.attributes[A.ATTR_PROCESS_EXECUTABLE_PATH]);
  runs('/opt/old/server');
  const old = await shape(
    register({ pid: reused, func: 0x9n, name: '_Z6matmulPKfPfi' }),
    launch({ pid: reused, api: CudaApi.cudaLaunchKernel, func: 0x9n }),
    record({ kind: Kind.PROC_EXIT, pid: reused }),
  );
  runs('/opt/new/worker');
  const renewed = await shape(launch({ pid: reused, api: CudaApi.cudaLaunchKernel, func: 0x9n }));
  assert.deepEqual(executable(old), ['/opt/old/server']);
  assert.equal(
    old[0]?.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL],
    'matmul(float const*, float*, int)',
    'named until it exits',
  );
  assert.deepEqual(executable(renewed), ['/opt/new/worker']);
  assert.equal(
    renewed[0]?.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL],
    undefined,
    "the old process's kernel is not the new one's",
  );
  assert.deepEqual(errors, []);
});

test("an exec in the batch: the old program's launches before it keep their kernel names, the new program's after it have none", async () => {
  const shape = pipeline();
  const events = await shape(
    register({ pid, func: 0x9n, name: '_Z6matmulPKfPfi' }),
    launch({ pid, api: CudaApi.cudaLaunchKernel, func: 0x9n }),
    record({ kind: Kind.PROC_EXEC, pid }),
    launch({ pid, api: CudaApi.cudaLaunchKernel, func: 0x9n }),
  );
  assert.deepEqual(
    events.map((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL]),
    ['matmul(float const*, float*, int)', undefined],
  );
  assert.deepEqual(errors, []);
});

test('an exec forgets the kernel names of the old program', async () => {
  const shape = pipeline();
  const events = await shape(
    register({ pid, func: 0x9n, name: 'old_kernel' }),
    record({ kind: Kind.PROC_EXEC, pid }),
    launch({ pid, api: CudaApi.cuLaunchKernel, func: 0x9n }),
  );
  assert.equal(events.length, 1);
  assert.equal(events[0]?.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], undefined);
  assert.deepEqual(errors, []);
});
