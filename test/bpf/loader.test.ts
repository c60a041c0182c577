// The loader itself, for real: the one-line reason when it cannot run, no program left attached
// once it is stopped, and no pid followed whose process is gone.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { FrameReader } from '../../src/kernel/frames.js';
import { FrameType, decodeStats } from '../../src/kernel/record.js';
import { CUDA_ENTER_PROGRAM, ROOT, kernelAvailable, startCapture } from './session.js';

const LOADER = join(ROOT, 'bpf', 'build', 'causeway-loader');
const OUR_PROGRAMS = [
  'sched_switch',
  'futex_enter',
  'block_rq_issue',
  'tcp_retransmit_skb',
  CUDA_ENTER_PROGRAM,
  'sched_process_exec',
  'mmap_enter',
];

function loadedPrograms(): string[] {
  const programs = JSON.parse(execFileSync('bpftool', ['prog', 'list', '--json']).toString()) as { name?: string }[];
  return programs.map((p) => p.name ?? '').filter((name) => OUR_PROGRAMS.includes(name));
}

test('without CAP_BPF and CAP_PERFMON the loader exits 2 with a one-line reason', (t) => {
  if (!kernelAvailable(t)) return;
  const run = spawnSync(
    'setpriv',
    ['--reuid', '65534', '--regid', '65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', LOADER],
    {
      input: '',
      encoding: 'utf8',
    },
  );
  assert.equal(run.status, 2);
  assert.equal(run.stderr.trim().split('\n').length, 1);
  assert.match(run.stderr, /^causeway-loader: missing capability: .*CAP_BPF and CAP_PERFMON/);
});

/** The kernel frees a program shortly after its last link and fd close: wait for it, bounded. */
async function settledPrograms(): Promise<string[]> {
  const deadline = Date.now() + 5000;
  let programs = loadedPrograms();
  while (programs.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    programs = loadedPrograms();
  }
  return programs;
}

test('stopping a capture detaches every program', async (t) => {
  if (!kernelAvailable(t)) return;
  assert.deepEqual(await settledPrograms(), [], 'programs of an earlier capture are still loaded');
  const capture = await startCapture(t, ['--comm', 'nothing-runs-this']);
  assert.deepEqual(loadedPrograms().sort(), [...OUR_PROGRAMS].sort());
  assert.equal(await capture.stop(), 0);
  assert.deepEqual(await settledPrograms(), []);
});

test('a --pid whose process is gone is not followed: it would follow the next process given the pid', (t) => {
  if (!kernelAvailable(t)) return;
  const gone = spawnSync('true').pid;
  const run = spawnSync(LOADER, ['--pid', String(gone), '--pid', String(process.pid), '--stats-ms', '100000'], {
    input: 'stats\nquit\n',
    timeout: 10_000,
  });
  assert.equal(run.status, 0, run.stderr.toString());
  const followed = new FrameReader()
    .push(run.stdout)
    .filter((frame) => frame.type === FrameType.STATS)
    .map((frame) => decodeStats(frame.payload).followed);
  assert.match(run.stdout.toString('latin1'), new RegExp(`pid ${String(gone)} is not running: not followed`));
  assert.ok(followed.length > 0, 'no STATS frame');
  assert.deepEqual(new Set(followed), new Set([1]), `the followed table held ${followed.join(', ')}`);
});

test('an unknown stdin command is reported, and the loader keeps serving', (t) => {
  if (!kernelAvailable(t)) return;
  const run = spawnSync(LOADER, ['--stats-ms', '100000'], { input: 'frobnicate 12\nstats\nquit\n', timeout: 10_000 });
  assert.equal(run.status, 0);
  const out = run.stdout.toString('latin1');
  assert.match(out, /unknown or malformed command: frobnicate 12/);
  // HELLO, then the first STATS, then the one asked for on stdin, then one as it stops (before
  // detaching its probes) and the final one.
  const frames = new FrameReader().push(run.stdout);
  assert.equal(frames.filter((frame) => frame.type === FrameType.STATS).length, 4);
});
