// CUDA probes, for real: uprobes on the simulated runtime and driver (NVIDIA's symbols and
// signatures), and on NVIDIA's own libcudart, which fails without a GPU but still fires.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { test, type TestContext } from 'node:test';
import * as A from '../../src/semconv/attributes.js';
import {
  CLI,
  NVIDIA_CUDART,
  SIM_CUDART,
  durationMs,
  kernelAvailable,
  kernelHasUprobeMulti,
  privateGpu,
  runWorkload,
  settle,
  single,
  startCapture,
} from './session.js';
import { loaderPid } from '../cli/sidecar.js';

const MATMUL = 'matmul_big(float*, float*, float*, int)';
const sameHandle = (a: unknown, b: unknown) => BigInt(String(a)) === BigInt(String(b));
const msOf = (ns: unknown) => Number(ns) / 1e6;

/** How many bpf links of each kind (fdinfo's link_type: perf, raw_tracepoint, uprobe_multi, uretprobe_multi ...) a process holds. */
function linkTypes(pid: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (const fd of readdirSync(`/proc/${String(pid)}/fdinfo`)) {
    let info = '';
    try {
      info = readFileSync(`/proc/${String(pid)}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // closed meanwhile
    }
    const type = /^link_type:\s*(\S+)$/m.exec(info)?.[1];
    if (type) counts.set(type, (counts.get(type) ?? 0) + 1);
  }
  return counts;
}

for (const [program, linked] of [
  ['gpu_sync', 'a shared libcudart'],
  ['gpu_sync_static', 'the runtime linked statically'],
  ['gpu_sync_cuda13', 'launched by kernel handle, as nvcc 13 builds it'],
] as const) {
  test(`a 200 ms kernel then a stream sync gives one 200 ms cuda.sync on the syncing thread, naming the kernel (${linked})`, async (t) => {
    if (!kernelAvailable(t)) return;
    const capture = await startCapture(t, ['--comm', program]);
    const truth = await runWorkload(program, ['--kernel-ms', '200', '--start-delay-ms', '50'], privateGpu(t));
    await settle();
    await capture.stop();

    const sync = single(
      capture.of('cuda.sync', (e) => e.pid === truth.pid),
      'cuda.sync',
    );
    assert.equal(sync.tid, truth.tid);
    assert.equal(sync.comm, program);
    assert.ok(Math.abs(durationMs(sync) - 200) <= 20, `sync took ${durationMs(sync)} ms`);
    assert.equal(sync.attributes[A.ATTR_CAUSEWAY_CUDA_API], 'cudaStreamSynchronize');
    assert.ok(sameHandle(sync.attributes[A.ATTR_CAUSEWAY_CUDA_STREAM], truth.stream));
    assert.deepEqual(sync.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS], [MATMUL]);

    const launch = single(
      capture.of('cuda.launch', (e) => e.pid === truth.pid),
      'cuda.launch',
    );
    assert.equal(launch.comm, program);
    assert.equal(launch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], MATMUL);
    assert.equal(launch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_SYMBOL], truth.kernel);
    assert.deepEqual(launch.attributes[A.ATTR_CAUSEWAY_CUDA_GRID], truth.grid);
    assert.deepEqual(launch.attributes[A.ATTR_CAUSEWAY_CUDA_BLOCK], truth.block);
    assert.ok(sameHandle(launch.attributes[A.ATTR_CAUSEWAY_CUDA_STREAM], truth.stream));
  });
}

test('with reduction off, a full launch queue gives one cuda.launch per call, those that blocked themselves long', async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, ['--comm', 'launch_storm', '--reduce-window-ms', '0']);
  const truth = (await runWorkload(
    'launch_storm',
    ['--full-queue', '--kernel-ms', '10', '--extra', '4', '--start-delay-ms', '50'],
    {
      ...privateGpu(t),
      CUDA_SIM_QUEUE_DEPTH: '16',
    },
  )) as {
    pid: number;
    tid: number;
    launches: number;
    max_unblocked_launch_ns: number;
    blocked: { index: number; ns: number }[];
  };
  await settle();
  await capture.stop();

  const launches = capture
    .of('cuda.launch', (e) => e.pid === truth.pid)
    .sort((x, y) => (BigInt(x.start_unix_nano) < BigInt(y.start_unix_nano) ? -1 : 1));
  assert.equal(launches.length, truth.launches);
  assert.ok(truth.blocked.length > 0);
  for (const blocked of truth.blocked) {
    const launch = launches[blocked.index];
    assert.ok(launch, `no captured launch #${blocked.index}`);
    assert.ok(
      Math.abs(durationMs(launch) - msOf(blocked.ns)) <= 2,
      `launch #${blocked.index} blocked ${msOf(blocked.ns)} ms, captured ${durationMs(launch)} ms`,
    );
  }
  // The launches that did not block were quick, and are captured as such.
  const quick = launches.filter((_, i) => !truth.blocked.some((b) => b.index === i));
  assert.ok(quick.every((e) => durationMs(e) < msOf(truth.max_unblocked_launch_ns) + 2));
});

interface DriverCall {
  api: string;
  rc: number;
  bytes?: number;
  direction?: string;
  async?: boolean;
  kernel?: string;
  grid?: number[];
  block?: number[];
  stream?: string;
  captured?: boolean;
  event?: string;
  exec?: string;
  graph?: string;
}

const DRIVER_LAUNCHES = ['cuLaunchKernel', 'cuLaunchKernelEx', 'cuGraphLaunch', 'cuGraphLaunch_ptsz'];

for (const [loading, args] of [
  ['a module (cuModuleGetFunction)', []],
  ['a library, as the runtime and cuBLAS load theirs (cuLibraryGetKernel, cuKernelGetFunction)', ['--library']],
] as const) {
  test(`driver API launches (cuLaunchKernelEx and graphs too), syncs and copies are captured with their kernel, bytes and direction; the kernel from ${loading}`, async (t) => {
    if (!kernelAvailable(t)) return;
    // Every call's own arguments: with reduction off, as launches summed in a window lose them.
    const capture = await startCapture(t, ['--comm', 'driver_calls', '--reduce-window-ms', '0']);
    const truth = (await runWorkload(
      'driver_calls',
      [...args, '--mib', '4', '--kernel-ms', '50', '--start-delay-ms', '50'],
      privateGpu(t),
    )) as { pid: number; tid: number; device: number; exec: string; graph: string; calls: DriverCall[] };
    await settle();
    await capture.stop();

    const mine = capture.events.filter((e) => e.pid === truth.pid && e.kind.startsWith('cuda.'));
    for (const event of mine) assert.equal(event.attributes[A.ATTR_CAUSEWAY_CUDA_DEVICE], truth.device);
    // Every launch call is one cuda.launch, kernels and graphs alike, in call order.
    const launches = mine.filter((e) => e.kind === 'cuda.launch');
    const launchCalls = truth.calls.filter((c) => DRIVER_LAUNCHES.includes(c.api));
    assert.deepEqual(
      launches.map((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_API]),
      launchCalls.map((c) => c.api),
    );
    launches.forEach((launch, i) => {
      const call = launchCalls[i] as DriverCall;
      if (call.api.startsWith('cuGraphLaunch')) {
        assert.ok(sameHandle(launch.attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH_EXEC], truth.exec));
        assert.ok(sameHandle(launch.attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH], truth.graph));
        const capturedKernels = truth.calls.filter((c) => c.captured === true).map(() => 'reduce(float*, int)');
        assert.deepEqual(launch.attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH_KERNELS], capturedKernels);
        return;
      }
      assert.equal(launch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], 'reduce(float*, int)');
      assert.deepEqual(launch.attributes[A.ATTR_CAUSEWAY_CUDA_GRID], call.grid);
      assert.deepEqual(launch.attributes[A.ATTR_CAUSEWAY_CUDA_BLOCK], call.block);
      assert.ok(sameHandle(launch.attributes[A.ATTR_CAUSEWAY_CUDA_STREAM], call.stream));
      assert.equal(launch.attributes[A.ATTR_CAUSEWAY_CUDA_CAPTURED], call.captured === true ? true : undefined);
    });
    const streamSync = mine.find((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_API] === 'cuStreamSynchronize');
    assert.ok(streamSync && durationMs(streamSync) >= 45, 'cuStreamSynchronize waits for the 50 ms kernel');

    // The event sync waits for what its stream ran before the record: kernels launched since the
    // stream sync and not captured, and the graph's; the captured launches were never in flight.
    const calls = truth.calls.map((c) => c.api);
    const since = truth.calls.slice(calls.indexOf('cuStreamSynchronize'), calls.indexOf('cuEventRecord'));
    const graphKernels = truth.calls.filter((c) => c.captured === true).length;
    const inflight =
      since.filter((c) => (c.api === 'cuLaunchKernel' || c.api === 'cuLaunchKernelEx') && c.captured !== true).length +
      since.filter((c) => c.api === 'cuGraphLaunch').length * graphKernels;
    const eventSync = single(
      mine.filter((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_API] === 'cuEventSynchronize'),
      'cuEventSynchronize',
    );
    assert.equal(eventSync.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], inflight);
    assert.equal(
      eventSync.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_MEMCPY_BYTES],
      since.filter((c) => c.async === true).reduce((sum, c) => sum + (c.bytes ?? 0), 0),
    );
    // The queries found the work unfinished once each and were followed by other calls: no poll was a wait.
    assert.equal(mine.filter((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_SYNC_POLLING] === true).length, 0);
    assert.ok(mine.some((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_API] === 'cuCtxSynchronize'));

    const copies = truth.calls.filter((c) => c.api.startsWith('cuMemcpy'));
    const captured = mine.filter((e) => e.kind === 'cuda.memcpy');
    assert.equal(captured.length, copies.length);
    for (const copy of copies) {
      // The event names the entry point without the ABI suffix: cuMemcpyHtoD for cuMemcpyHtoD_v2.
      const event = captured.find((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_API] === copy.api.replace(/_v2$/, ''));
      assert.ok(event, `no cuda.memcpy for ${copy.api}`);
      assert.equal(event.attributes[A.ATTR_CAUSEWAY_CUDA_MEMCPY_BYTES], copy.bytes);
      assert.equal(event.attributes[A.ATTR_CAUSEWAY_CUDA_MEMCPY_ASYNC], copy.async === true);
      // cuMemcpy and cuMemcpyAsync take unified addresses: the direction is not in the call.
      const direction = /^cuMemcpy(Async)?$/.test(copy.api) ? 'default' : copy.direction;
      assert.equal(String(event.attributes[A.ATTR_CAUSEWAY_CUDA_MEMCPY_DIRECTION]).toLowerCase(), direction);
    }
  });
}

test('cudaMalloc and cudaFree carry the bytes, cudaMemcpy its size and direction, cudaLaunchKernelExC its config', async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, ['--comm', 'cuda_calls', '--lib', SIM_CUDART]);
  const truth = await runWorkload('cuda_calls', ['--register', '--bytes', '3145728', SIM_CUDART], privateGpu(t));
  await settle();
  await capture.stop();

  const mine = capture.events.filter((e) => e.pid === truth.pid);
  const mallocs = mine.filter((e) => e.kind === 'cuda.malloc');
  assert.deepEqual(
    mallocs.map((e) => [e.attributes[A.ATTR_CAUSEWAY_CUDA_MALLOC_OP], e.attributes[A.ATTR_CAUSEWAY_CUDA_MALLOC_BYTES]]),
    [
      ['alloc', 3145728],
      ['free', 3145728],
    ],
  );
  const [alloc, free] = mallocs;
  assert.equal(alloc?.attributes[A.ATTR_CAUSEWAY_CUDA_MALLOC_PTR], free?.attributes[A.ATTR_CAUSEWAY_CUDA_MALLOC_PTR]);
  const copy = mine.find((e) => e.kind === 'cuda.memcpy');
  assert.equal(copy?.attributes[A.ATTR_CAUSEWAY_CUDA_MEMCPY_BYTES], 3145728);
  assert.equal(copy.attributes[A.ATTR_CAUSEWAY_CUDA_MEMCPY_DIRECTION], 'HtoD');
  // The grid, block and stream of an ExC launch come from its cudaLaunchConfig_t.
  const exc = single(
    mine.filter((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_API] === 'cudaLaunchKernelExC'),
    'cudaLaunchKernelExC',
  );
  assert.equal(exc.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_SYMBOL], truth.kernel);
  assert.deepEqual(exc.attributes[A.ATTR_CAUSEWAY_CUDA_GRID], [1, 1, 1]);
  assert.deepEqual(exc.attributes[A.ATTR_CAUSEWAY_CUDA_BLOCK], [1, 1, 1]);
  assert.equal(exc.attributes[A.ATTR_CAUSEWAY_CUDA_STREAM], '0x0');
});

/**
 * Captures cuda_calls with the library's entry points attached `by` one way, and checks the
 * links the loader holds and that every call's entry met its return.
 */
async function everyCallCaptured(t: TestContext, by: 'uprobe_multi' | 'uprobe'): Promise<void> {
  const causeway = by === 'uprobe' ? ['env', 'CAUSEWAY_CUDA_ATTACH=uprobe', process.execPath, CLI] : undefined;
  const capture = await startCapture(t, ['--comm', 'cuda_calls', '--lib', SIM_CUDART], causeway);
  await capture.until(
    () => /probing .*cudasim\/libcudart\.so\.12: \d+ probes/.test(capture.stderr),
    10_000,
    'the library',
  );
  assert.match(
    capture.stderr,
    by === 'uprobe_multi'
      ? /attaching CUDA entry points by uprobe_multi/
      : /attaching CUDA entry points by one uprobe each: /,
  );
  const probed = [...capture.stderr.matchAll(/probing .*: (\d+) probes/g)];
  const libraries = probed.length;
  const entryPoints = probed.reduce((sum, m) => sum + Number(m[1]), 0);
  const links = linkTypes(await loaderPid(capture.pid));
  // fdinfo names a link of return probes uretprobe_multi.
  if (by === 'uprobe_multi') {
    assert.equal(links.get('uprobe_multi'), libraries, JSON.stringify([...links]));
    assert.equal(links.get('uretprobe_multi'), libraries, JSON.stringify([...links]));
  } else {
    assert.equal(links.get('uprobe_multi'), undefined, JSON.stringify([...links]));
    assert.ok((links.get('perf') ?? 0) >= 2 * entryPoints, JSON.stringify([...links]));
  }

  const truth = (await runWorkload('cuda_calls', ['--register', SIM_CUDART], privateGpu(t))) as {
    pid: number;
    tid: number;
    calls: { api: string; rc?: number; missing?: boolean }[];
  };
  await settle();
  await capture.stop();

  const mine = capture.events.filter((e) => e.pid === truth.pid && e.kind.startsWith('cuda.'));
  const made = truth.calls.filter((c) => !c.missing);
  assert.ok(made.length >= 7, JSON.stringify(truth.calls));
  for (const call of made) {
    const event = mine.find((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_API] === call.api);
    assert.ok(
      event,
      `no event for ${call.api}; captured: ${mine.map((e) => String(e.attributes[A.ATTR_CAUSEWAY_CUDA_API])).join(', ')}`,
    );
    // The return probe read the call's result: the entry and return of one call met.
    assert.equal(event.tid, truth.tid);
  }
}

test('a CUDA library is probed by two uprobe_multi links, for its entries and its returns, and every call is still captured', async (t) => {
  if (!kernelAvailable(t)) return;
  await everyCallCaptured(t, kernelHasUprobeMulti() ? 'uprobe_multi' : 'uprobe');
});

test('with one uprobe per entry point (kernels before 6.6, or CAUSEWAY_CUDA_ATTACH=uprobe), every call is still captured', async (t) => {
  if (!kernelAvailable(t)) return;
  await everyCallCaptured(t, 'uprobe');
});

test('CAUSEWAY_CUDA_ATTACH with another value stops the loader with what it takes', (t) => {
  if (!kernelAvailable(t)) return;
  const run = spawnSync(process.execPath, [CLI, 'capture', '--comm', 'cuda_calls'], {
    env: { ...process.env, CAUSEWAY_CUDA_ATTACH: 'multi' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.notEqual(run.status, 0, run.stderr);
  assert.match(run.stderr, /CAUSEWAY_CUDA_ATTACH=multi: the one value it takes is uprobe/);
});

test("NVIDIA's own libcudart is probed: its calls fail without a GPU and the events still appear", async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, ['--comm', 'cuda_calls', '--lib', NVIDIA_CUDART]);
  const truth = (await runWorkload('cuda_calls', [NVIDIA_CUDART])) as {
    pid: number;
    tid: number;
    calls: { api: string; rc: number }[];
  };
  await settle();
  await capture.stop();

  assert.match(capture.stderr, /probing .*nvidia\/libcudart\.so\.12/);
  const mine = capture.events.filter((e) => e.pid === truth.pid && e.kind.startsWith('cuda.'));
  for (const call of truth.calls) {
    assert.notEqual(call.rc, 0, `${call.api} unexpectedly succeeded without a GPU`);
    const event = mine.find((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_API] === call.api);
    assert.ok(
      event,
      `no event for ${call.api}; captured: ${mine.map((e) => String(e.attributes[A.ATTR_CAUSEWAY_CUDA_API])).join(', ')}`,
    );
    assert.equal(event.tid, truth.tid);
    assert.equal(event.attributes[A.ATTR_CAUSEWAY_CUDA_ERROR], call.rc);
  }
});
