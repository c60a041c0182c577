// What the real-eBPF tests share: a `causeway capture --json` run as a user would start it,
// the workload programs of test/fixtures with their ground truth, this checkout installed for
// a user without capabilities (the loader alone holding its file capabilities), and the rule
// that a test needing root and BTF fails in CI when it cannot run instead of skipping.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LOADER_FILE_CAPABILITIES } from '../../src/cli/doctor.js';
import type { KernelEvent } from '../../src/kernel/events.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const WORKLOADS = join(ROOT, 'test', 'fixtures', 'build', 'workloads');
export const SIM_CUDART = join(ROOT, 'test', 'fixtures', 'build', 'cudasim', 'libcudart.so.12');
export const NVIDIA_CUDART = join(ROOT, 'test', 'fixtures', 'build', 'nvidia', 'libcudart.so.12');
export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
/** The installed `causeway` command (package.json "bin"): `run` gets its memory settings from it. */
export const COMMAND = join(ROOT, 'bin', 'causeway');

export interface CapturedEvent {
  kind: string;
  pid: number;
  tid: number;
  comm: string;
  start_unix_nano: string;
  end_unix_nano: string;
  attributes: Record<string, unknown>;
  /** The app span the probes read as active when the event began (its thread context), if any. */
  span_context?: { trace_id: string; span_id: string };
}

/** A captured event as the correlator and explain take it. */
export const kernelEventOf = (e: CapturedEvent): KernelEvent => ({
  kind: e.kind as KernelEvent['kind'],
  pid: e.pid,
  tid: e.tid,
  comm: e.comm,
  startUnixNano: BigInt(e.start_unix_nano),
  endUnixNano: BigInt(e.end_unix_nano),
  attributes: e.attributes as KernelEvent['attributes'],
  ...(e.span_context === undefined
    ? {}
    : { spanContext: { traceId: e.span_context.trace_id, spanId: e.span_context.span_id } }),
});

/** The one item of a list that must hold exactly one. */
export function single<T>(items: T[], what: string): T {
  assert.equal(items.length, 1, `expected one ${what}, got ${items.length}`);
  return items[0] as T;
}

export const durationMs = (e: CapturedEvent) => Number(BigInt(e.end_unix_nano) - BigInt(e.start_unix_nano)) / 1e6;

/** True when the test can run; outside CI it skips with the reason, in CI it fails. */
/** Whether the kernel makes uprobe_multi links (Linux 6.6), by which the loader then attaches the CUDA probes. */
export function kernelHasUprobeMulti(): boolean {
  const [major = 0, minor = 0] = release().split('.').map(Number);
  return major > 6 || (major === 6 && minor >= 6);
}

/** The CUDA entry program the loader loads on this kernel (bpf/cuda.bpf.c). */
export const CUDA_ENTER_PROGRAM = kernelHasUprobeMulti() ? 'cuda_enter' : 'cuda_enter_each';

export function kernelAvailable(t: TestContext): boolean {
  const missing = [
    process.getuid?.() === 0 ? null : 'root',
    existsSync('/sys/kernel/btf/vmlinux') ? null : 'kernel BTF',
    existsSync(join(ROOT, 'bpf', 'build', 'causeway-loader')) ? null : 'the built loader (npm run build)',
  ].filter((m) => m !== null);
  return runnable(t, 'real-eBPF', missing, '');
}

/**
 * True when nothing is missing; outside CI the test skips with the reason, in CI it fails (a
 * test that cannot run in CI must not pass silently).
 */
export function runnable(t: TestContext, what: string, missing: string[], hint: string): boolean {
  if (missing.length === 0) return true;
  const reason = `needs ${missing.join(', ')}${hint}`;
  if (process.env.CI === 'true') throw new Error(`${what} test cannot run in CI: ${reason}`);
  t.skip(reason);
  return false;
}

/** nobody */
export const USER = 65534;
/** Runs a command as USER, holding no capability. */
export const AS_USER = ['setpriv', `--reuid=${USER}`, `--regid=${USER}`, '--clear-groups', '--inh-caps=-all'];

/** A directory of the test's own, removed after it. */
export function temporaryDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/**
 * This checkout's build, copied where USER can read it, the loader given its file
 * capabilities, as an administrator would install it; returns its root.
 */
export function installForUser(t: TestContext): string {
  const root = temporaryDir(t, 'causeway-install-');
  chmodSync(root, 0o755);
  cpSync(join(ROOT, 'dist'), join(root, 'dist'), { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(root, 'package.json'));
  symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(root, 'node_modules'));
  mkdirSync(join(root, 'bpf', 'build'), { recursive: true });
  const loader = join(root, 'bpf', 'build', 'causeway-loader');
  copyFileSync(join(ROOT, 'bpf', 'build', 'causeway-loader'), loader);
  execFileSync('setcap', [`${LOADER_FILE_CAPABILITIES.join(',')}+ep`, loader]);
  return root;
}

/** A process's uid and capability sets, from /proc/PID/status. */
export function credentials(pid: number) {
  const status = readFileSync(`/proc/${String(pid)}/status`, 'utf8');
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '';
  const caps = (name: string) => BigInt(`0x${field(name)}`);
  return { uid: Number(field('Uid').split(/\s+/)[0]), effective: caps('CapEff'), permitted: caps('CapPrm') };
}

export class Capture {
  readonly events: CapturedEvent[] = [];
  stderr = '';
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly exited: Promise<number | null>;
  private partial = '';

  /** `causeway` is the command that runs the CLI: this checkout's by default, or one in a container. */
  constructor(args: string[], causeway: string[] = [process.execPath, CLI]) {
    const [command, ...rest] = causeway as [string, ...string[]];
    this.child = spawn(command, [...rest, 'capture', '--json', ...args], { stdio: 'pipe' });
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk: string) => {
      const lines = (this.partial + chunk).split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) if (line) this.events.push(JSON.parse(line) as CapturedEvent);
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => {
      this.child.on('close', resolve); // after exit, once stdout and stderr are read to the end
    });
  }

  /** The process running the CLI. */
  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** Resolves once the probes are attached (the CLI says "capturing"). */
  async ready(timeoutMs = 15_000): Promise<void> {
    await this.until(() => this.stderr.includes('capturing on'), timeoutMs, 'capture to start');
  }

  async until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (this.child.exitCode !== null)
        throw new Error(`capture exited (${this.child.exitCode}) waiting for ${what}: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; stderr: ${this.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Pauses or resumes reading the capture's stdout, as a slow consumer would. */
  reading(on: boolean): void {
    if (on) this.child.stdout.resume();
    else this.child.stdout.pause();
  }

  /** Stops with SIGINT like Ctrl-C; resolves with the exit code once the summary is written. */
  async stop(): Promise<number | null> {
    this.child.stdout.resume();
    this.child.kill('SIGINT');
    return this.exited;
  }

  of(kind: string, where: (e: CapturedEvent) => boolean = () => true): CapturedEvent[] {
    return this.events.filter((e) => e.kind === kind && where(e));
  }
}

/**
 * Starts a capture (with `causeway`, as Capture takes it) and waits until its probes are
 * attached; stopped after the test, whatever happens.
 */
export async function startCapture(t: TestContext, args: string[], causeway?: string[]): Promise<Capture> {
  const capture = new Capture(args, causeway);
  t.after(() => capture.stop());
  await capture.ready();
  return capture;
}

export interface Workload {
  pid: number;
  /** The ground truth the program prints when it ends. */
  truth: Promise<Record<string, unknown>>;
  child: ChildProcessWithoutNullStreams;
  /** What it wrote on stderr so far. */
  stderr: () => string;
}

/** Runs test/fixtures/build/workloads/NAME (or any program) and parses its last JSON line. */
export function startWorkload(
  program: string,
  args: string[] = [],
  env: Record<string, string> = {},
  wrapper: string[] = [],
): Workload {
  const path = program.includes('/') ? program : join(WORKLOADS, program);
  const [command, ...rest] = [...wrapper, path, ...args] as [string, ...string[]];
  const child = spawn(command, rest, { stdio: 'pipe', env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    err += chunk.toString();
  });
  const truth = new Promise<Record<string, unknown>>((resolve, reject) => {
    // 'close', not 'exit': only then has all of the program's output been read.
    child.on('close', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0) reject(new Error(`${program} exited ${code}: ${err}${out}`));
      else resolve(JSON.parse(last) as Record<string, unknown>);
    });
  });
  return { pid: child.pid ?? 0, truth, child, stderr: () => err };
}

/** Resolves once a workload has written `text` on stderr; fails if it ends first. */
export async function waitForStderr(workload: Workload, text: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!workload.stderr().includes(text)) {
    if (workload.child.exitCode !== null)
      throw new Error(`workload exited before saying ${text}: ${workload.stderr()}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for the workload to say ${text}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A process's children, by pid (those its main thread started). */
export function childrenOf(pid: number): number[] {
  const children = readFileSync(`/proc/${String(pid)}/task/${String(pid)}/children`, 'utf8').trim();
  return children === '' ? [] : children.split(' ').map(Number);
}

/** Now, on the workloads' clock (CLOCK_MONOTONIC, as their truth's *_ns times). */
export const monotonicNs = () => process.hrtime.bigint();

export async function runWorkload(
  program: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  return startWorkload(program, args, env).truth;
}

/** A simulated GPU of the test's own, so no other process's work queues on it; removed after the test. */
export function privateGpu(t: TestContext): Record<string, string> {
  const timeline = `/dev/shm/causeway-test-${process.pid}-${t.name.replace(/\W+/g, '-').slice(0, 40)}`;
  t.after(() => {
    rmSync(timeline, { force: true });
  });
  return { CUDA_SIM_TIMELINE: timeline };
}

/** Lets the last events of a workload travel through the ring and the decoder. */
export const settle = (ms = 300) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits until /proc/PID shows a zombie: a process that exited and was not reaped, or one whose
 * main thread ended while its other threads run on.
 */
export async function untilZombie(pid: number): Promise<void> {
  const stat = `/proc/${String(pid)}/stat`;
  for (let i = 0; i < 250 && !/\) Z /.test(readFileSync(stat, 'latin1')); i++) await sleep(20);
  assert.match(readFileSync(stat, 'latin1'), /\) Z /, `${String(pid)} is not a zombie`);
}

/**
 * A process that maps the simulated CUDA runtime, starts a thread and ends its main thread
 * (pthread_exit): /proc/PID is then a zombie's, its maps empty and its exe gone, while the
 * process runs on. Its pid; killed when the test ends.
 */
export async function gpuProcessWithoutMainThread(t: TestContext): Promise<number> {
  const program = [
    'import ctypes, threading, time',
    `ctypes.CDLL(${JSON.stringify(SIM_CUDART)})`,
    'threading.Thread(target=time.sleep, args=(30,)).start()',
    'print("started", flush=True)',
    'ctypes.CDLL(None).pthread_exit(None)',
  ].join('\n');
  const app = spawn('python3', ['-c', program], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => app.kill('SIGKILL'));
  await once(app.stdout, 'data');
  await untilZombie(app.pid ?? 0);
  return app.pid ?? 0;
}
