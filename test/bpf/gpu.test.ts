// Every GPU process on the node, and the CUDA APIs serving engines use, for real: an engine
// running before capture started (replaying a captured graph, waiting on events) found
// without flags and followed though it sends no spans; a runtime dlopen()ed long after its
// process started; polling waits; two devices; kernel names that survive a stripped binary
// or a name on a page nothing had touched, even with the loader behind its process's exit;
// kernels registered before capture started, in another user's process, named by the loader
// for a capture that holds no capability, and those it cannot name counted.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { MS, earlier, later, toMs } from '../../src/correlate/time.js';
import { loaderPid } from '../cli/sidecar.js';
import * as A from '../../src/semconv/attributes.js';
import {
  AS_USER,
  CLI,
  SIM_CUDART,
  USER,
  credentials,
  durationMs,
  gpuProcessWithoutMainThread,
  installForUser,
  kernelAvailable,
  monotonicNs,
  privateGpu,
  runWorkload,
  settle,
  single,
  startCapture,
  startWorkload,
  waitForStderr,
  type Capture,
  type CapturedEvent,
  type Workload,
} from './session.js';

interface Replay {
  index: number;
  launch_rc: number;
  launch_start_ns: number;
  wait_rc: number;
  wait_start_ns: number;
  wait_end_ns: number;
  polls: number;
  not_ready: number;
}

interface EngineTruth {
  pid: number;
  device: number;
  wait_tid: number;
  stream: string;
  event: string;
  graph: string;
  exec: string;
  kernels: { kernel: string }[];
  capture: { begin_start_ns: number; launches: { kernel: string; rc: number }[] };
  replays: Replay[];
  errors: number;
}

const sameHandle = (a: unknown, b: unknown) => BigInt(String(a)) === BigInt(String(b));
const byStart = (x: CapturedEvent, y: CapturedEvent) =>
  BigInt(x.start_unix_nano) < BigInt(y.start_unix_nano) ? -1 : 1;
const api = (e: CapturedEvent) => e.attributes[A.ATTR_CAUSEWAY_CUDA_API];
const demangle = (symbols: string[]) => execFileSync('c++filt', symbols, { encoding: 'utf8' }).trim().split('\n');
/** Milliseconds `tid` spent in the run queue within [from, to] (Unix ns), as the capture saw. */
function queuedMs(capture: Capture, tid: number, from: bigint, to: bigint): number {
  let ns = 0n;
  for (const q of capture.of('sched.runqueue', (e) => e.tid === tid)) {
    const overlap = earlier(BigInt(q.end_unix_nano), to) - later(BigInt(q.start_unix_nano), from);
    if (overlap > 0n) ns += overlap;
  }
  return toMs(ns);
}

/**
 * A wait as the probes saw it against the program's own clock reads around the call: within a
 * millisecond or 5%, plus what its thread spent in the run queue between a clock read and the
 * call (the probes rightly leave that out), as the same capture saw it.
 */
const sameWait = (capture: Capture, event: CapturedEvent, startNs: number, endNs: number) => {
  const truthMs = (endNs - startNs) / 1e6;
  const [start, end] = [BigInt(event.start_unix_nano), BigInt(event.end_unix_nano)];
  const reach = BigInt(endNs - startNs) - (end - start) + MS;
  const queued = queuedMs(capture, event.tid, start - reach, start) + queuedMs(capture, event.tid, end, end + reach);
  return Math.abs(durationMs(event) - truthMs) <= Math.max(1, 0.05 * truthMs) + queued;
};

/** Started now, ended with SIGTERM (after its current replay) when the test ends, whatever happens. */
function engine(t: TestContext, args: string[], env: Record<string, string>, program = 'graph_engine'): Workload {
  const workload = startWorkload(program, args, env);
  workload.truth.catch(() => undefined); // a test that failed early still ends it below
  t.after(() => {
    if (workload.child.exitCode === null) workload.child.kill('SIGTERM');
  });
  return workload;
}

/** Resolves once the process sleeps (the workloads' --start-delay-ms): its constructors have run. */
async function sleeping(pid: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!readFileSync(`/proc/${String(pid)}/wchan`, 'utf8').includes('nanosleep')) {
    if (Date.now() > deadline) throw new Error(`pid ${String(pid)} never slept`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function stopEngine(workload: Workload): Promise<EngineTruth> {
  workload.child.kill('SIGTERM');
  const truth = (await workload.truth) as unknown as EngineTruth;
  assert.equal(truth.errors, 0);
  return truth;
}

test('an engine running before capture, sending no spans, is found, probed and followed: its graph replays and event waits are captured, its kernels named', async (t) => {
  if (!kernelAvailable(t)) return;
  const gpu = privateGpu(t);
  // One engine already replaying its graph; another running, capturing its graph only later.
  const replaying = engine(t, ['--seconds', '120', '--gap-ms', '20'], gpu);
  const capturing = engine(t, ['--start-delay-ms', '5000', '--replays', '10'], gpu);
  await waitForStderr(replaying, 'replaying');
  // No --pid, --lib or matching --comm: both are found as GPU processes all the same. Each
  // captured launch is checked on its own: reduction off, which would sum them.
  const capture = await startCapture(t, ['--comm', 'no-such-program', '--reduce-window-ms', '0']);
  const ready = monotonicNs();
  const late = (await capturing.truth) as unknown as EngineTruth;
  assert.ok(ready < BigInt(late.capture.begin_start_ns), 'capture was not ready before the engine captured its graph');
  const early = await stopEngine(replaying);
  await settle();
  await capture.stop();

  for (const { pid } of [early, late])
    assert.match(
      capture.stderr,
      new RegExp(`GPU process ${pid} \\(graph_engine\\) uses \\S*cudasim/libcudart\\.so\\.12`),
    );
  const names = demangle(late.kernels.map((k) => k.kernel));

  // Captured later: the capture's launches go into the graph, each replay names it and its kernels.
  const lateEvents = capture.events.filter((e) => e.pid === late.pid && e.kind.startsWith('cuda.')).sort(byStart);
  const captured = lateEvents.filter((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_CAPTURED] === true);
  assert.deepEqual(
    captured.map((e) => [e.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], e.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_SYMBOL]]),
    late.capture.launches.map((l, i) => [names[i], l.kernel]),
  );
  const launches = lateEvents.filter((e) => api(e) === 'cudaGraphLaunch');
  assert.equal(launches.length, late.replays.length);
  for (const launch of launches) {
    assert.ok(sameHandle(launch.attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH_EXEC], late.exec));
    assert.ok(sameHandle(launch.attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH], late.graph));
    assert.deepEqual(launch.attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH_KERNELS], names);
    assert.equal(launch.attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH_KERNEL_COUNT], late.kernels.length);
    assert.equal(launch.attributes[A.ATTR_CAUSEWAY_CUDA_DEVICE], late.device);
  }
  const waits = lateEvents.filter((e) => e.kind === 'cuda.sync');
  assert.equal(waits.length, late.replays.length);
  waits.forEach((wait, i) => {
    const replay = late.replays[i] as Replay;
    assert.equal(api(wait), 'cudaEventSynchronize');
    assert.equal(wait.tid, late.wait_tid);
    assert.ok(sameHandle(wait.attributes[A.ATTR_CAUSEWAY_CUDA_EVENT], late.event));
    assert.ok(sameHandle(wait.attributes[A.ATTR_CAUSEWAY_CUDA_STREAM], late.stream));
    // The replay's own kernels, not the capture's: captured launches were never in flight.
    assert.equal(wait.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], late.kernels.length);
    assert.deepEqual(wait.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS], names);
    assert.deepEqual((wait.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_GRAPHS] as string[]).map(BigInt), [
      BigInt(late.exec),
    ]);
    assert.ok(
      sameWait(capture, wait, replay.wait_start_ns, replay.wait_end_ns),
      `replay ${i} waited ${durationMs(wait)} ms`,
    );
  });

  // Replaying since before capture: every replay since is captured, by its executable graph;
  // the graph's kernels were captured before Causeway started and cannot be named.
  const earlyEvents = capture.events.filter((e) => e.pid === early.pid && e.kind.startsWith('cuda.')).sort(byStart);
  const replays = earlyEvents.filter((e) => api(e) === 'cudaGraphLaunch');
  const sinceReady = early.replays.filter((r) => BigInt(r.launch_start_ns) > ready).length;
  assert.ok(sinceReady > 0);
  assert.ok(replays.length >= sinceReady && replays.length <= early.replays.length, `${replays.length} replays`);
  for (const replay of replays) {
    assert.ok(sameHandle(replay.attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH_EXEC], early.exec));
    assert.equal(replay.attributes[A.ATTR_CAUSEWAY_CUDA_GRAPH_KERNELS], undefined);
    // It chose its device before capture started: not known, so not said.
    assert.equal(replay.attributes[A.ATTR_CAUSEWAY_CUDA_DEVICE], undefined);
  }
  // Replays before ready may have been caught while the probes were still being attached one by
  // one (the launch's probe on, the event record's not yet): their waits are not checked.
  const firstReplay = BigInt((replays[replays.length - sinceReady] as CapturedEvent).start_unix_nano);
  const earlyWaits = earlyEvents.filter((e) => e.kind === 'cuda.sync' && BigInt(e.start_unix_nano) > firstReplay);
  assert.ok(earlyWaits.length >= sinceReady - 1);
  for (const wait of earlyWaits) {
    assert.ok(sameHandle(wait.attributes[A.ATTR_CAUSEWAY_CUDA_EVENT], early.event));
    assert.deepEqual((wait.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_GRAPHS] as string[]).map(BigInt), [
      BigInt(early.exec),
    ]);
  }
  // Followed though no --comm names it: its sleeps between replays are captured too.
  assert.ok(capture.of('sched.blocked', (e) => e.pid === early.pid).length > 0, 'the engine is not followed');
});

test('a CUDA runtime dlopen()ed long after its process started is probed when mapped, and its process followed', async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, ['--comm', 'no-such-program']);
  // Nothing CUDA at its exec: the runtime comes a second later, as `import torch` brings it.
  const truth = (await runWorkload(
    'cuda_calls',
    ['--delay-ms', '1000', '--after-dlopen-ms', '500', '--register', SIM_CUDART],
    privateGpu(t),
  )) as {
    pid: number;
    tid: number;
    kernel: string;
    calls: { api: string; rc: number }[];
  };
  await settle();
  await capture.stop();

  assert.match(capture.stderr, new RegExp(`probing \\S*cudasim/libcudart\\.so\\.12 \\(pid ${truth.pid}\\)`));
  assert.match(capture.stderr, new RegExp(`GPU process ${truth.pid} \\(cuda_calls\\) uses `));
  const mine = capture.events.filter((e) => e.pid === truth.pid && e.kind.startsWith('cuda.'));
  assert.deepEqual(
    mine.map((e) => [api(e), e.attributes[A.ATTR_CAUSEWAY_CUDA_ERROR]]),
    truth.calls.map((c) => [c.api, c.rc]),
  );
  // Named as registered, not by the host stub's own symbol (kernel_stub).
  for (const launch of mine.filter((e) => e.kind === 'cuda.launch')) {
    assert.equal(launch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_SYMBOL], truth.kernel);
    assert.equal(launch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], demangle([truth.kernel])[0]);
    assert.deepEqual(launch.attributes[A.ATTR_CAUSEWAY_CUDA_GRID], [1, 1, 1]);
    assert.deepEqual(launch.attributes[A.ATTR_CAUSEWAY_CUDA_BLOCK], [1, 1, 1]);
    assert.equal(launch.attributes[A.ATTR_CAUSEWAY_CUDA_DEVICE], 0, 'it mapped CUDA under the probes: device 0');
  }
  // Followed from the mapping on, though no --comm names it: the sleep after dlopen is captured.
  const slept = capture.of('sched.blocked', (e) => e.tid === truth.tid && durationMs(e) >= 400);
  assert.ok(slept.length > 0, 'its 500 ms sleep after the dlopen is not captured');
});

const POLLING = [
  { program: 'graph_engine', args: ['--poll'], api: 'cudaEventQuery', handle: 'event' },
  { program: 'graph_engine', args: ['--poll-stream', '--wait-thread'], api: 'cudaStreamQuery', handle: 'stream' },
  { program: 'graph_engine_ptds', args: ['--poll-stream'], api: 'cudaStreamQuery_ptsz', handle: 'stream' },
] as const;

for (const variant of POLLING) {
  test(`a thread spinning on ${variant.api} until the GPU is done is one cuda.sync marked polling per wait (${variant.program} ${variant.args.join(' ')})`, async (t) => {
    if (!kernelAvailable(t)) return;
    const capture = await startCapture(t, ['--comm', variant.program.slice(0, 15)]);
    const truth = (await runWorkload(
      variant.program,
      [...variant.args, '--replays', '12', '--start-delay-ms', '300'],
      privateGpu(t),
    )) as unknown as EngineTruth;
    await settle();
    await capture.stop();

    const waits = capture.of('cuda.sync', (e) => e.pid === truth.pid).sort(byStart);
    // A query that found the work already done was no wait, and makes no event.
    const waited = truth.replays.filter((r) => r.not_ready > 0);
    assert.ok(waited.length > 0);
    assert.equal(waits.length, waited.length);
    waits.forEach((wait, i) => {
      const replay = waited[i] as Replay;
      assert.equal(api(wait), variant.api);
      assert.equal(wait.tid, truth.wait_tid);
      assert.equal(wait.attributes[A.ATTR_CAUSEWAY_CUDA_SYNC_POLLING], true);
      assert.equal(wait.attributes[A.ATTR_CAUSEWAY_CUDA_SYNC_POLLS], replay.polls);
      assert.ok(sameHandle(wait.attributes[A.ATTR_CAUSEWAY_CUDA_STREAM], truth.stream));
      if (variant.handle === 'event') assert.ok(sameHandle(wait.attributes[A.ATTR_CAUSEWAY_CUDA_EVENT], truth.event));
      assert.equal(wait.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], truth.kernels.length);
      assert.ok(
        sameWait(capture, wait, replay.wait_start_ns, replay.wait_end_ns),
        `replay ${replay.index} polled ${(replay.wait_end_ns - replay.wait_start_ns) / 1e6} ms, captured ${durationMs(wait)} ms`,
      );
    });
  });
}

test('two threads on two devices: every CUDA event carries its thread device', async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, ['--comm', 'two_devices']);
  const env = { ...privateGpu(t), CUDA_SIM_DEVICES: '2' };
  const apart = (await runWorkload('two_devices', ['--kernel-ms', '50', '--start-delay-ms', '300'], env)) as {
    pid: number;
    threads: { tid: number; device: number }[];
  };
  const together = (await runWorkload(
    'two_devices',
    ['--kernel-ms', '50', '--start-delay-ms', '300', '--second-device', '0'],
    env,
  )) as typeof apart;
  await settle();
  await capture.stop();

  for (const truth of [apart, together]) {
    for (const thread of truth.threads) {
      const events = capture.events.filter((e) => e.tid === thread.tid && e.kind.startsWith('cuda.'));
      assert.deepEqual(
        events.map((e) => [e.kind, e.attributes[A.ATTR_CAUSEWAY_CUDA_DEVICE]]),
        [
          ['cuda.launch', thread.device],
          ['cuda.sync', thread.device],
        ],
      );
    }
  }
  assert.deepEqual(
    apart.threads.map((th) => th.device),
    [0, 1],
  );
});

test('a stripped binary keeps its kernel names when its registration is seen; registered before capture, its launches say only the function', async (t) => {
  if (!kernelAvailable(t)) return;
  const gpu = privateGpu(t);
  // A GPU process already running: its runtime is probed at start, so the next program's registrations are seen.
  const running = engine(t, ['--seconds', '120', '--gap-ms', '50'], gpu);
  await waitForStderr(running, 'replaying');
  const early = startWorkload('gpu_sync_stripped', ['--kernel-ms', '20', '--start-delay-ms', '4000'], gpu);
  const capture = await startCapture(t, ['--comm', 'no-such-program']);
  const late = await runWorkload('gpu_sync_stripped', ['--kernel-ms', '20'], gpu);
  const before = await early.truth;
  await stopEngine(running);
  await settle();
  await capture.stop();

  const lateLaunch = single(
    capture.of('cuda.launch', (e) => e.pid === late.pid),
    'launch',
  );
  assert.equal(lateLaunch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_SYMBOL], late.kernel);
  assert.equal(lateLaunch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], demangle([String(late.kernel)])[0]);
  // No symbol table, no registration seen: the launch names its function only.
  const earlyLaunch = single(
    capture.of('cuda.launch', (e) => e.pid === before.pid),
    'launch',
  );
  assert.equal(earlyLaunch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], undefined);
  assert.ok(sameHandle(earlyLaunch.attributes[A.ATTR_CAUSEWAY_CUDA_FUNCTION], before.stub));
  // The loader looked its stub up, found no symbol, and counted it; the later one needed no lookup.
  assert.match(capture.stderr, /^causeway: unnamed kernels: 1 \(/m);
});

/** gpu_sync's one launch, and the one kernel its sync waits for, are named by the kernel's symbol, whole. */
function assertKernelNamed(capture: Capture, truth: Record<string, unknown>) {
  const name = demangle([String(truth.kernel)])[0];
  const launch = single(
    capture.of('cuda.launch', (e) => e.pid === truth.pid),
    'launch',
  );
  assert.equal(launch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_SYMBOL], truth.kernel);
  assert.equal(launch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], name);
  const sync = single(
    capture.of('cuda.sync', (e) => e.pid === truth.pid),
    'sync',
  );
  assert.equal(sync.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], 1);
  assert.deepEqual(sync.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS], [name]);
}

test('a kernel name longer than a record holds (197 bytes, as PyTorch names are), launched by handle as nvcc 13 builds it, is reported whole: on its launch and in the kernels a sync waits for', async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, ['--comm', 'gpu_sync_cuda13']);
  const truth = await runWorkload(
    'gpu_sync_cuda13',
    ['--long-name', '--kernel-ms', '20', '--start-delay-ms', '50'],
    privateGpu(t),
  );
  await settle();
  await capture.stop();

  assert.equal(String(truth.kernel).length, 197);
  assertKernelNamed(capture, truth);
});

test('a kernel registered before capture, in a root process, is named by the loader for a capture without capabilities: its launch and the kernels a sync waits for', async (t) => {
  if (!kernelAvailable(t)) return;
  const cli = join(installForUser(t), 'dist', 'src', 'cli', 'main.js');
  const gpu = privateGpu(t);
  // Root's, registering its kernel at start (a static constructor), launching once the capture is
  // ready; its name longer than a record holds, read whole from the stub's symbol.
  const workload = startWorkload('gpu_sync', ['--long-name', '--kernel-ms', '50', '--start-delay-ms', '5000'], gpu);
  workload.truth.catch(() => undefined); // a test that failed early still ends it below
  t.after(() => workload.child.kill());
  await sleeping(workload.pid);
  const capture = await startCapture(t, ['--comm', 'no-such-program'], [...AS_USER, process.execPath, cli]);
  const ready = monotonicNs();
  assert.deepEqual(credentials(capture.pid), { uid: USER, effective: 0n, permitted: 0n });
  const truth = await workload.truth;
  assert.ok(ready < BigInt(Number(truth.launch_start_ns)), 'the kernel was launched before the capture was ready');
  await settle();
  assert.equal(await capture.stop(), 0, capture.stderr);

  assertKernelNamed(capture, truth);
  assert.doesNotMatch(capture.stderr, /unnamed kernels/);
});

test('a kernel name on a page nothing had touched at registration is read later, and reported as registered', async (t) => {
  if (!kernelAvailable(t)) return;
  const gpu = privateGpu(t);
  const running = engine(t, ['--seconds', '120', '--gap-ms', '50'], gpu);
  await waitForStderr(running, 'replaying');
  const capture = await startCapture(t, ['--comm', 'no-such-program']);
  const truth = await runWorkload('cold_name', ['--kernel-ms', '20'], gpu);
  await stopEngine(running);
  await settle();
  await capture.stop();

  assert.equal(truth.name_mapped_after_register, false, 'the probe could have read the name itself');
  const launch = single(
    capture.of('cuda.launch', (e) => e.pid === truth.pid),
    'launch',
  );
  assert.equal(launch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_SYMBOL], truth.kernel);
  assert.notEqual(truth.kernel, truth.stub_symbol);
  assert.equal(launch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], demangle([String(truth.kernel)])[0]);
});

test('a kernel name on a page nothing had touched at registration is kept when the loader reads the registration only after the process exited', async (t) => {
  if (!kernelAvailable(t)) return;
  const gpu = privateGpu(t);
  const running = engine(t, ['--seconds', '120', '--gap-ms', '50'], gpu);
  await waitForStderr(running, 'replaying');
  const capture = await startCapture(t, ['--comm', 'no-such-program']);
  // A loader behind: stopped, it reads the program's records once the program is gone, when
  // /proc/PID/mem can no longer give the name.
  const loader = await loaderPid(capture.pid);
  process.kill(loader, 'SIGSTOP');
  let truth: Awaited<ReturnType<typeof runWorkload>>;
  try {
    truth = await runWorkload('cold_name', ['--kernel-ms', '20'], gpu);
  } finally {
    process.kill(loader, 'SIGCONT');
  }
  assert.equal(existsSync(`/proc/${String(truth.pid)}`), false, 'the program exited before the loader read a record');
  await stopEngine(running);
  await settle();
  await capture.stop();

  assert.equal(truth.name_mapped_after_register, false, 'the probe could have read the name at registration');
  const launch = single(
    capture.of('cuda.launch', (e) => e.pid === truth.pid),
    'launch',
  );
  assert.equal(launch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_SYMBOL], truth.kernel);
  assert.doesNotMatch(capture.stderr, /unnamed kernels/);
});

test('doctor --gpu lists the running GPU processes with the library each uses', async (t) => {
  if (!kernelAvailable(t)) return;
  const gpu = privateGpu(t);
  const engines = [engine(t, ['--seconds', '120'], gpu), engine(t, ['--seconds', '120'], gpu, 'graph_engine_ptds')];
  for (const e of engines) await waitForStderr(e, 'replaying');
  const doctor = spawnSync(process.execPath, [CLI, 'doctor', '--gpu'], { encoding: 'utf8' });
  for (const e of engines) await stopEngine(e);

  assert.equal(doctor.status, 0, doctor.stdout);
  const lines = doctor.stdout.split('\n');
  const count = Number(/^ok +gpu +(\d+) processes use CUDA \(\d+ scanned in [\d.]+ ms\)$/m.exec(doctor.stdout)?.[1]);
  assert.ok(count >= engines.length, doctor.stdout);
  for (const [e, comm] of [
    [engines[0], 'graph_engine'],
    [engines[1], 'graph_engine_pt'], // a comm is 15 characters at most
  ] as const) {
    const line = lines.find((l) => new RegExp(`^ok +gpu ${String(e?.pid)} `).test(l));
    assert.ok(line, `pid ${String(e?.pid)} is not listed:\n${doctor.stdout}`);
    assert.ok(line.endsWith(`${comm}: ${SIM_CUDART}`), line);
  }
});

test('doctor --gpu lists a GPU process whose main thread ended while its other threads run', async (t) => {
  if (!kernelAvailable(t)) return;
  const pid = await gpuProcessWithoutMainThread(t);
  const doctor = spawnSync(process.execPath, [CLI, 'doctor', '--gpu'], { encoding: 'utf8' });
  const line = doctor.stdout.split('\n').find((l) => new RegExp(`^ok +gpu ${String(pid)} `).test(l));
  assert.ok(line?.endsWith(`python3: ${SIM_CUDART}`), `pid ${String(pid)} is not listed:\n${doctor.stdout}`);
});

test('doctor --pid finds the CUDA runtime of a process whose main thread ended', async (t) => {
  if (!kernelAvailable(t)) return;
  const pid = await gpuProcessWithoutMainThread(t);
  const doctor = spawnSync(process.execPath, [CLI, 'doctor', '--pid', String(pid)], { encoding: 'utf8' });
  const line = doctor.stdout.split('\n').find((l) => new RegExp(`^ok +pid ${String(pid)} `).test(l));
  assert.ok(line?.endsWith(` CUDA libraries: ${SIM_CUDART}`), doctor.stdout);
});
