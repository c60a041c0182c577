// Overload, for real: a consumer that stops reading fills the ring buffer; the kernel-side
// drops are counted and reported, and capture carries on once the consumer reads again. Told
// to shed while behind, the loader passes it to the probes at once; a command it read while
// behind does not leave it waiting on its input afterwards.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { FrameReader } from '../../src/kernel/frames.js';
import { FrameType, RECORD_SIZE } from '../../src/kernel/record.js';
import { ROOT, kernelAvailable, runWorkload, settle, startCapture, startWorkload } from './session.js';

const RINGBUF_MB = 1;
/** Records a full ring holds: each is a record behind the ring buffer's 8-byte header. */
const RING_RECORDS = Math.floor((RINGBUF_MB << 20) / (RECORD_SIZE + 8));

test("a workload beyond the ring buffer's capacity shows non-zero drop counters, and capture recovers", async (t) => {
  if (!kernelAvailable(t)) return;
  // Blocked and futex waits kept whole: summed, the flood's waits would be a few records per
  // window and fit the ring.
  const capture = await startCapture(t, [
    '--comm',
    'switch_pingpong',
    '--min-duration-us',
    '0',
    '--ringbuf-mb',
    String(RINGBUF_MB),
    '--wait-whole-us',
    '1',
  ]);
  capture.reading(false);
  const flood = await runWorkload('switch_pingpong', ['--seconds', '3']);
  capture.reading(true);
  await settle(1000);
  const seenBeforeRecovery = capture.events.length;
  // A second of round trips, not a burst of a few ms: followed by name, a process is followed
  // once the loader reads its exec record, which may wait behind the flood's last records.
  const after = (await runWorkload('switch_pingpong', ['--rate', '2000', '--seconds', '1'])) as { pid: number };
  await capture.until(() => capture.events.some((e) => e.pid === after.pid), 10_000, 'events after recovery');
  assert.equal(await capture.stop(), 0);

  // Every switch ends a blocked interval (one record at least): the flood must be more than the ring holds,
  // however fast this machine made it.
  assert.ok(
    Number(flood.switches) > 2 * RING_RECORDS,
    `the flood made ${String(flood.switches)} switches, not enough to overfill a ring of ${RING_RECORDS} records`,
  );
  const drops = /drops: (.*)/.exec(capture.stderr)?.[1] ?? '';
  const dropped = [...drops.matchAll(/(\S+) (\d+)/g)].reduce((sum, m) => sum + Number(m[2]), 0);
  assert.ok(dropped > 0, `no drops reported: ${capture.stderr}`);
  assert.match(drops, /sched\.(blocked|runqueue) \d+|futex\.wait \d+/);
  assert.ok(seenBeforeRecovery > 0);
});

/** The `shed` field of the settings map the loader `pid` holds, as the probes read it. */
function shedSetting(pid: number): number {
  const fdinfo = join('/proc', String(pid), 'fdinfo');
  for (const fd of readdirSync(fdinfo)) {
    const id = /^map_id:\s*(\d+)/m.exec(readFileSync(join(fdinfo, fd), 'utf8'))?.[1];
    if (id === undefined) continue;
    const [map] = JSON.parse(execFileSync('bpftool', ['map', 'dump', 'id', id, '--json']).toString()) as {
      formatted?: { value?: { shed?: number } };
    }[];
    const shed = map?.formatted?.value?.shed;
    if (shed !== undefined) return shed;
  }
  throw new Error(`loader ${pid} holds no settings map`);
}

/** Resolves at the loader's HELLO frame (causeway.h), written once every probe is attached. */
async function attached(stdout: Readable): Promise<void> {
  const frames = new FrameReader();
  for await (const chunk of stdout.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>)
    if (frames.push(chunk).some((frame) => frame.type === FrameType.HELLO)) return;
  throw new Error('the loader ended before attaching its probes');
}

/** A loader of its own following the ping-pong, every wait kept whole; killed at the test's end. */
function pingPongLoader(t: TestContext) {
  const loader = spawn(join(ROOT, 'bpf', 'build', 'causeway-loader'), [
    '--comm',
    'switch_pingpong',
    '--min-duration-us',
    '0',
    '--no-reduce',
  ]);
  t.after(() => loader.kill('SIGKILL'));
  return loader;
}

test('told to shed while its reader is behind (stdout full), the loader passes it to the probes at once, and runs the other commands once caught up', async (t) => {
  if (!kernelAvailable(t)) return;
  const loader = pingPongLoader(t);
  const exited = new Promise((resolve) => loader.on('close', resolve));
  await attached(loader.stdout);
  loader.stdout.pause();
  const flood = startWorkload('switch_pingpong', ['--seconds', '4']);
  // A second of switches is megabytes of records: far more than the pipe holds.
  await settle(1000);
  assert.equal(shedSetting(loader.pid ?? 0), 0);
  loader.stdin.write('frobnicate 1\nshed on\n');
  const deadline = Date.now() + 2000;
  while (shedSetting(loader.pid ?? 0) !== 1 && Date.now() < deadline) await settle(50);
  const shedWhileBehind = shedSetting(loader.pid ?? 0);
  await flood.truth;
  let out = '';
  loader.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('latin1')));
  loader.stdin.end('quit\n');
  await exited;
  assert.equal(shedWhileBehind, 1, 'the probes were not told to shed until the reader caught up');
  assert.match(out, /unknown or malformed command: frobnicate 1/);
});

test('a command read while a frame waited on a full stdout does not leave the loader waiting on its input: frames go on with no further command', async (t) => {
  if (!kernelAvailable(t)) return;
  const loader = pingPongLoader(t);
  await attached(loader.stdout);
  const reader = new FrameReader();
  let frames = 0;
  loader.stdout.on('data', (chunk: Buffer) => (frames += reader.push(chunk).length));
  const flood = startWorkload('switch_pingpong', ['--seconds', '4']);
  // Each round a command comes and the reader stops a little later: once the loader's poll has
  // seen the command, its next drain waits on the full stdout and reads the command there. Once
  // the reader goes on, frames (a watermark every 10 ms at least) must come without another
  // command, which would wake a loader stuck on reading its input.
  let rounds = 0;
  while (flood.child.exitCode === null) {
    loader.stdin.write('stats\n');
    await settle(rounds % 4);
    loader.stdout.pause();
    await settle(10);
    loader.stdout.resume();
    await settle(100); // what the pipe held
    const before = frames;
    const deadline = Date.now() + 1000;
    while (frames === before && Date.now() < deadline) await settle(10);
    assert.ok(frames > before, `round ${String(rounds)}: no frame for a second: the loader waits on its input`);
    rounds++;
  }
  await flood.truth;
  t.diagnostic(`${String(rounds)} rounds`);
  assert.ok(rounds > 0);
});
