// The fault scenarios' moving parts: the scenario app (test/fixtures/apps/python_scenario_service.py,
// one request made slow for one kernel-level reason), and what a test sets up around it: a CPU
// hog pinned with taskset, a downstream echo server, packet loss to that server with nftables.
// Everything binds to loopback, is bounded in time, and is undone after the test whatever happens.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT, SIM_CUDART, privateGpu, startWorkload, type Workload } from '../bpf/session.js';
import { pythonBin } from '../e2e/backends.js';

const SCENARIO_APP = join(ROOT, 'test', 'fixtures', 'apps', 'python_scenario_service.py');
const NODE_FSYNC_APP = join(ROOT, 'test', 'fixtures', 'apps', 'node_fsync_service.mjs');
/** The app sleeps 1.5 s, serves one request of at most ~10 s (tcp), and exports: a minute is plenty. */
const APP_TIMEOUT_MS = 60_000;
const READY_TIMEOUT_MS = 5_000;

/** A directory on a real block device (not tmpfs), for the fsync scenario. */
export const BLOCK_DIR = '/var/tmp';

/** One fault per mode; see the app's docstring for what each does. */
export type Fault =
  | { mode: 'gpu-sync'; kernels?: number; kernelMs?: number }
  | { mode: 'launch-queue'; depth: number }
  | { mode: 'cpu'; cpu: number }
  | { mode: 'lock-chain' }
  | { mode: 'lock-io'; dir?: string }
  | { mode: 'lock-cpu' }
  | { mode: 'fsync'; dir?: string }
  | { mode: 'tcp'; peer: string }
  | { mode: 'healthy' };
export type Mode = Fault['mode'];

/** What the app adds to its JSON line, per mode. */
interface ModeTruth {
  'gpu-sync': { kernel: string; kernels: number; kernel_ms: number; stream: string };
  'launch-queue': {
    kernel: string;
    kernel_ms: number;
    queue_depth: number;
    launches: number;
    blocked_ms: number;
    stream: string;
  };
  cpu: { cpu: number; cpu_ms: number };
  'lock-chain': { worker_tid: number; stream: string };
  'lock-io': { worker_tid: number; path: string; bytes: number };
  'lock-cpu': { worker_tid: number; cpu_ms: number };
  fsync: { path: string; bytes: number };
  tcp: { peer: string; local_port: number; exchanges: number; retransmits: number };
  healthy: Record<string, never>;
}

/** The app's JSON line: the request span ("handle-request", on the thread `tid`) and the mode's facts. */
export type ScenarioTruth<M extends Mode> = {
  mode: M;
  trace_id: string;
  span_id: string;
  pid: number;
  tid: number;
  /** The request span's start and end, Unix epoch ns as decimal strings (as capture prints times). */
  start_unix_nano: string;
  end_unix_nano: string;
  duration_ms: number;
} & ModeTruth[M];

/** `dir`, once checked to be on a block device: tmpfs does no block I/O, and a source that is no /dev node names no device. */
export function onBlockDevice(dir: string = BLOCK_DIR): string {
  const source = execFileSync('findmnt', ['-n', '-o', 'SOURCE', '-T', dir], { encoding: 'utf8' }).trim();
  assert.match(source, /^\/dev\//, `${dir} is on ${source}, not a block device`);
  return dir;
}

function scenarioArgs(t: TestContext, fault: Fault): { args: string[]; env: Record<string, string> } {
  switch (fault.mode) {
    case 'gpu-sync': {
      const counts = [
        ...(fault.kernels === undefined ? [] : ['--kernels', String(fault.kernels)]),
        ...(fault.kernelMs === undefined ? [] : ['--kernel-ms', String(fault.kernelMs)]),
      ];
      // A simulated GPU of the test's own: no other process's kernels queue before ours.
      return { args: ['--libcudart', SIM_CUDART, ...counts], env: privateGpu(t) };
    }
    case 'launch-queue':
      return {
        args: ['--libcudart', SIM_CUDART],
        env: { ...privateGpu(t), CUDA_SIM_QUEUE_DEPTH: String(fault.depth) },
      };
    case 'lock-chain':
      return { args: ['--libcudart', SIM_CUDART], env: privateGpu(t) };
    case 'cpu':
      return { args: ['--cpu', String(fault.cpu)], env: {} };
    case 'fsync':
    case 'lock-io':
      return { args: ['--dir', onBlockDevice(fault.dir)], env: {} };
    case 'lock-cpu':
      return { args: [], env: {} };
    case 'tcp':
      return { args: ['--peer', fault.peer], env: {} };
    case 'healthy':
      return { args: [], env: {} };
  }
}

/**
 * Runs the scenario app once with `fault`, exporting its spans to `otlpEndpoint` (e.g. the
 * sidecar's `http://127.0.0.1:GRPC_PORT`), and resolves with its JSON line once its spans are
 * exported. Killed if it runs past a minute, or when the test ends first. `env` comes last
 * (e.g. a CUDA_SIM_TIMELINE shared with another GPU user).
 */
export async function runScenarioApp<F extends Fault>(
  t: TestContext,
  fault: F,
  otlpEndpoint: string,
  env: Record<string, string> = {},
): Promise<ScenarioTruth<F['mode']>> {
  const { args, env: faultEnv } = scenarioArgs(t, fault);
  const truth = (await runApp(t, pythonBin, [SCENARIO_APP, fault.mode, ...args], {
    ...faultEnv,
    ...env,
    OTEL_EXPORTER_OTLP_ENDPOINT: otlpEndpoint,
  })) as ScenarioTruth<F['mode']>;
  assert.equal(truth.mode, fault.mode);
  return truth;
}

/** What test/fixtures/apps/node_fsync_service.mjs prints: its "write-report" span, on the main thread (whose tid is the pid). */
export interface NodeFsyncTruth {
  trace_id: string;
  span_id: string;
  pid: number;
}

/**
 * Runs the Node service once: in one span it writes `mib` MiB to a file in `dir` (a block
 * device), fsyncs and removes it. Same bounds as runScenarioApp.
 */
export async function runNodeFsyncApp(
  t: TestContext,
  otlpEndpoint: string,
  mib: number,
  dir: string = BLOCK_DIR,
): Promise<NodeFsyncTruth> {
  return (await runApp(t, process.execPath, [NODE_FSYNC_APP, onBlockDevice(dir), String(mib)], {
    OTEL_EXPORTER_OTLP_ENDPOINT: otlpEndpoint,
  })) as unknown as NodeFsyncTruth;
}

/** Runs an app that prints its trace's ids when its spans are exported; killed past APP_TIMEOUT_MS or when the test ends. */
async function runApp(
  t: TestContext,
  program: string,
  args: string[],
  env: Record<string, string>,
): Promise<Record<string, unknown>> {
  const app = startWorkload(program, args, env);
  stopAfter(t, app);
  const timer = setTimeout(() => app.child.kill('SIGKILL'), APP_TIMEOUT_MS);
  try {
    const truth = await app.truth;
    assert.match(String(truth.trace_id), /^[0-9a-f]{32}$/);
    return truth;
  } finally {
    clearTimeout(timer);
  }
}

/** Kills a workload still running when the test ends, and waits until it has exited. */
function stopAfter(t: TestContext, workload: Workload): void {
  // Settled either way, so a workload that fails before anyone awaits it is no unhandled rejection.
  const ended = workload.truth.then(
    () => undefined,
    () => undefined,
  );
  t.after(async () => {
    if (workload.child.exitCode === null && workload.child.signalCode === null) workload.child.kill('SIGKILL');
    await ended;
  });
}

export interface CpuHog {
  pid: number;
  /** The spinning thread(s), named "hog". */
  tids: number[];
}

/**
 * Starts test/fixtures' cpu_hog pinned to `cpu` with taskset, spinning for at most `seconds`,
 * and resolves once its thread spins; killed after the test.
 */
export async function startCpuHog(t: TestContext, cpu: number, seconds = 30): Promise<CpuHog> {
  const hog = startWorkload('cpu_hog', ['--seconds', String(seconds)], {}, ['taskset', '-c', String(cpu)]);
  stopAfter(t, hog);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    assert.equal(hog.child.exitCode, null, 'cpu_hog exited before it spun');
    const tids = hogThreads(hog.pid);
    if (tids.length > 0) return { pid: hog.pid, tids };
    assert.ok(Date.now() < deadline, `cpu_hog ${hog.pid} has no "hog" thread after ${READY_TIMEOUT_MS} ms`);
    await sleep(20);
  }
}

function hogThreads(pid: number): number[] {
  try {
    const tasks = readdirSync(`/proc/${pid}/task`);
    return tasks.filter((tid) => readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim() === 'hog').map(Number);
  } catch {
    return []; // not started yet, or a thread ended between the listing and the read
  }
}

/** gpu_hog's JSON line (times are CLOCK_MONOTONIC ns). */
export interface GpuHogTruth {
  pid: number;
  tid: number;
  /** The mangled name, e.g. _Z8hog_spinPfi. */
  kernel: string;
  kernel_ns: number;
  kernels: number;
  errors: number;
  start_ns: number;
  end_ns: number;
}

export interface GpuHog {
  pid: number;
  /** Its JSON line, once it has ended. */
  truth: Promise<GpuHogTruth>;
}

/**
 * Starts test/fixtures' gpu_hog on the simulated GPU of `gpuEnv` (CUDA_SIM_TIMELINE): back to
 * back kernels of `kernelMs` for `seconds`, `inflight` queued at a time. Not traced: it sends no
 * span. Killed after the test if still running.
 */
export function startGpuHog(
  t: TestContext,
  gpuEnv: Record<string, string>,
  options: { seconds: number; kernelMs: number; inflight: number },
): GpuHog {
  const args = [
    '--seconds',
    String(options.seconds),
    '--kernel-ms',
    String(options.kernelMs),
    '--inflight',
    String(options.inflight),
  ];
  const hog = startWorkload('gpu_hog', args, gpuEnv);
  stopAfter(t, hog);
  return { pid: hog.pid, truth: hog.truth as Promise<unknown> as Promise<GpuHogTruth> };
}

/** CLOCK_MONOTONIC ns (what the workloads print) of a Unix epoch ns time (what the apps print), to within a millisecond. */
export function monotonicOf(unixNano: bigint): bigint {
  return unixNano - (BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint());
}

export interface Downstream {
  host: string;
  port: number;
  /** host:port, as the scenario app's `--peer` takes it. */
  peer: string;
}

/** A TCP echo server on 127.0.0.1 (a port the OS picks), the downstream of the tcp scenario; closed after the test. */
export async function startEchoServer(t: TestContext): Promise<Downstream> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy()); // a reset from a killed client is no test failure
    socket.setTimeout(APP_TIMEOUT_MS, () => socket.destroy());
    socket.setNoDelay(true);
    socket.pipe(socket);
  });
  server.maxConnections = 8;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const address = server.address();
  assert.ok(address !== null && typeof address !== 'string');
  return { host: '127.0.0.1', port: address.port, peer: `127.0.0.1:${address.port}` };
}

/**
 * Drops `percent`% of the TCP segments arriving on loopback for `port` (nftables `numgen
 * random`), in a table of its own that is deleted after the test. On the input hook, so the
 * sender retransmits: a segment dropped on output was never sent, TCP sends it again later as
 * a first transmission, and tcp_retransmit_skb never fires for it.
 */
export function loopbackLoss(t: TestContext, port: number, percent: number): void {
  assert.ok(Number.isInteger(percent) && percent > 0 && percent < 100, `loss of ${percent}%`);
  const table = `causeway_loss_${process.pid}_${port}`;
  // One nft transaction: the table exists with its rule, or not at all.
  execFileSync('nft', ['-f', '-'], {
    input: [
      `add table inet ${table}`,
      `add chain inet ${table} input { type filter hook input priority 0; policy accept; }`,
      `add rule inet ${table} input iif "lo" tcp dport ${port} numgen random mod 100 < ${percent} drop`,
    ].join('\n'),
  });
  t.after(() => {
    execFileSync('nft', ['delete', 'table', 'inet', table]);
  });
}
