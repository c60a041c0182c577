// Capture to a file and back, for real: a recorded capture replays to the same events, and the
// loader's own output, as carried back from a machine without Node.js, replays to the events
// its records say.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { FrameReader } from '../../src/kernel/frames.js';
import { FrameType } from '../../src/kernel/record.js';
import * as A from '../../src/semconv/attributes.js';
import {
  CLI,
  ROOT,
  SIM_CUDART,
  durationMs,
  kernelAvailable,
  privateGpu,
  runWorkload,
  settle,
  single,
  startCapture,
  type CapturedEvent,
} from './session.js';

const LOADER = join(ROOT, 'bpf', 'build', 'causeway-loader');

function scratch(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'causeway-replay-'));
  t.after(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** The loader writes HELLO once every probe is attached: the file says when it is ready. */
async function untilHello(file: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const frames = existsSync(file) ? new FrameReader().push(readFileSync(file)) : [];
    if (frames.some((f) => f.type === FrameType.HELLO)) return;
    if (Date.now() > deadline) throw new Error('the loader did not say hello');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function replay(file: string): { events: CapturedEvent[]; stderr: string; status: number | null } {
  const run = spawnSync(process.execPath, [CLI, 'capture', '--json', '--replay', file], { encoding: 'utf8' });
  const events = run.stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as CapturedEvent);
  return { events, stderr: run.stderr, status: run.status };
}

test('a recorded capture replays to the same events, names and process metadata included', async (t) => {
  if (!kernelAvailable(t)) return;
  const file = join(scratch(t), 'capture.bin');
  const capture = await startCapture(t, ['--comm', 'gpu_sync', '--record', file]);
  const truth = await runWorkload('gpu_sync', ['--kernel-ms', '50', '--start-delay-ms', '300'], privateGpu(t));
  await settle();
  assert.equal(await capture.stop(), 0);

  // The launch is named by the loader from its stub's symbol (the registration ran before the
  // library was probed), and every event carries the executable read from /proc: a replay must
  // say the same without them.
  const launch = single(
    capture.of('cuda.launch', (e) => e.pid === truth.pid),
    'launch',
  );
  assert.equal(launch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_SYMBOL], truth.kernel);
  const mine = capture.events.filter((e) => e.pid === truth.pid);
  assert.ok(mine.some((e) => e.kind === 'sched.blocked'));
  assert.ok(mine.every((e) => String(e.attributes[A.ATTR_PROCESS_EXECUTABLE_PATH]).endsWith('/gpu_sync')));
  const replayed = replay(file);
  assert.equal(replayed.status, 0, replayed.stderr);
  assert.deepEqual(replayed.events, capture.events);
  assert.match(replayed.stderr, new RegExp(`GPU process ${String(truth.pid)} \\(gpu_sync\\) uses `));
});

test("the loader's raw output replays to the events its records say", async (t) => {
  if (!kernelAvailable(t)) return;
  const file = join(scratch(t), 'frames.bin');
  const loader = spawn('sh', ['-c', `exec "$0" --comm gpu_sync --lib "$1" > "$2"`, LOADER, SIM_CUDART, file], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  loader.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise((resolve) => loader.on('close', resolve));
  t.after(() => loader.kill('SIGKILL'));
  await untilHello(file);
  const truth = await runWorkload('gpu_sync', ['--kernel-ms', '50', '--start-delay-ms', '100'], privateGpu(t));
  await settle();
  loader.stdin.end('quit\n');
  assert.equal(await exited, 0, stderr);

  const replayed = replay(file);
  assert.equal(replayed.status, 0, replayed.stderr);
  const mine = replayed.events.filter((e) => e.pid === truth.pid);
  // The registration was seen (the library was probed from the start): the kernel is named by it.
  const launch = single(
    mine.filter((e) => e.kind === 'cuda.launch'),
    'launch',
  );
  assert.equal(launch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_SYMBOL], truth.kernel);
  const sync = single(
    mine.filter((e) => e.kind === 'cuda.sync'),
    'sync',
  );
  assert.equal(sync.tid, truth.tid);
  assert.ok(
    Math.abs(durationMs(sync) - Number(truth.sync_ns) / 1e6) <= Math.max(1, 0.05 * (Number(truth.sync_ns) / 1e6)),
  );
  assert.deepEqual(sync.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS], [
    launch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL],
  ]);
  // Nothing read from this machine: no process metadata.
  assert.ok(mine.every((e) => e.attributes[A.ATTR_PROCESS_EXECUTABLE_PATH] === undefined));
});
