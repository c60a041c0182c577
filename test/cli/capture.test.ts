// `causeway capture`'s table and summary, from the command itself replaying loader frames built
// with the decoder's own layout: a run-queue wait shows every part of its time, as the metric
// credits it; the summary counts the kernels the loader could not name; a recording of another
// ABI is refused.
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { packageRoot } from '../../src/install.js';
import { ABI_VERSION, FrameType, RECORD_SIZE } from '../../src/kernel/record.js';
import { LOADER_PID, crowdedWait, frame, hello, runqueue, stats } from '../kernel/records.js';

const MS = 1_000_000n;
/** 03:04:05.678 UTC: where the records' monotonic 0 falls. */
const EPOCH_NS = BigInt(Date.UTC(2026, 0, 2, 3, 4, 5, 678)) * MS;
const app = { pid: 4000, tid: 4001, comm: 'api' };
const hog = { pid: 50, tid: 51, comm: 'hog' };

/** `causeway capture --replay` of a file holding these frames. */
function replay(frames: Buffer[]): SpawnSyncReturns<string> {
  const dir = mkdtempSync(join(tmpdir(), 'causeway-capture-'));
  try {
    const file = join(dir, 'frames.bin');
    writeFileSync(file, Buffer.concat(frames));
    return spawnSync(process.execPath, [`${packageRoot}dist/src/cli/main.js`, 'capture', '--replay', file], {
      encoding: 'utf8',
      env: { ...process.env, TZ: 'UTC' },
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function replayTable(records: Buffer[]): string[] {
  const run = replay([
    frame(FrameType.CONTEXT, Buffer.from(JSON.stringify({ self: LOADER_PID }))),
    hello(),
    stats({ monoNs: 0n, realNs: EPOCH_NS }),
    frame(FrameType.EVENTS, Buffer.concat(records)),
  ]);
  assert.equal(run.status, 0, run.stderr);
  // Columns are padded: one space between words is enough to compare.
  return run.stdout
    .split('\n')
    .filter((line) => line.includes('sched.runqueue'))
    .map((line) => line.replace(/ +/g, ' '));
}

test('a run-queue wait shows each task that held the CPU with its on-CPU time, then causeway, unlisted and unseen', () => {
  const lines = replayTable([
    crowdedWait({ ...app, cpu: 3, preempted: true }),
    runqueue({
      ...app,
      startNs: 20n * MS,
      endNs: 24n * MS,
      holders: [
        { pid: LOADER_PID, tid: LOADER_PID, comm: 'causeway-loader', oncpuNs: 3n * MS },
        { ...hog, oncpuNs: 1n * MS },
      ],
    }),
    runqueue({
      ...app,
      startNs: 30n * MS,
      endNs: 35n * MS,
      holders: [{ pid: 80, tid: 81, comm: '', oncpuNs: 1n * MS }],
      seenNs: 2n * MS,
    }),
  ]);
  assert.deepEqual(lines, [
    '03:04:05.678 sched.runqueue api 4000/4001 10.000 cpu3 preempted, cpu held by hog 50/51 6.000ms, spin 70/72 1.500ms, causeway 0.400ms, unlisted 0.600ms, unseen 1.500ms',
    '03:04:05.698 sched.runqueue api 4000/4001 4.000 cpu0 woken, cpu held by hog 50/51 1.000ms, causeway 3.000ms',
    '03:04:05.708 sched.runqueue api 4000/4001 5.000 cpu0 woken, cpu held by exited 80/81 1.000ms, unlisted 1.000ms, unseen 3.000ms',
  ]);
});

test('the summary counts the kernels the loader could not name', () => {
  const run = replay([hello(), stats({ monoNs: 0n, realNs: EPOCH_NS, unnamedKernels: 2 })]);
  assert.equal(run.status, 0, run.stderr);
  assert.match(
    run.stderr,
    /^causeway: unnamed kernels: 2 \(registered, or their handle taken, before capture started; no symbol\)$/m,
  );
});

test('a recording made with another ABI is refused with both ABIs named', () => {
  const run = replay([hello({ abiVersion: ABI_VERSION - 1 }), stats({ monoNs: 0n, realNs: EPOCH_NS })]);
  assert.equal(run.status, 1);
  assert.match(
    run.stderr,
    new RegExp(
      `^causeway: error: the recording was made with ABI ${ABI_VERSION - 1} \\(${RECORD_SIZE}-byte records\\), this causeway reads ABI ${ABI_VERSION} \\(${RECORD_SIZE}-byte records\\): replay it with the causeway version that recorded it$`,
      'm',
    ),
  );
  assert.equal(run.stdout, '');
});
