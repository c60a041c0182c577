import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { packageRoot } from '../../src/install.js';
import type { Frame } from '../../src/kernel/frames.js';
import { Loader, MAX_FOLLOWED, startTime, type LoaderMessage } from '../../src/kernel/loader.js';
import { FrameType } from '../../src/kernel/record.js';
import { untilZombie } from '../bpf/session.js';
import { fakeLoader } from './fake-loader.js';

/** A supervised fake loader; the pids the tests make up run (since the same time), unless `started` is /proc's `startTime`. */
function supervise(path: string, started: (pid: number) => string | undefined = () => '1') {
  const frames: Frame[] = [];
  const messages: LoaderMessage[] = [];
  const loader = new Loader({
    path,
    args: ['--all'],
    onFrame: (frame) => void frames.push(frame),
    onMessage: (message) => void messages.push(message),
    backoffMs: { initial: 50, max: 200 },
    startTime: started,
  });
  return { loader, frames, messages };
}

/** The commands a fake loader's log says it was sent. */
const commandsIn = (log: ReturnType<ReturnType<typeof fakeLoader>['log']>) =>
  log.flatMap((e) => ('command' in e ? [e.command] : []));

/**
 * A streaming fake loader, supervised and started; `stopAfter(n)` stops it once n commands have
 * reached it and a further one would have, and gives the commands it was sent.
 */
function streaming(started?: (pid: number) => string | undefined) {
  const fake = fakeLoader('stream');
  const { loader } = supervise(fake.path, started);
  const commands = () => commandsIn(fake.log());
  loader.start();
  const stopAfter = async (count: number) => {
    for (let i = 0; i < 100 && commands().length < count; i++) await sleep(50);
    await sleep(200); // a further command would have arrived by now
    await loader.stop();
    return commands();
  };
  return { loader, stopAfter };
}

/**
 * A fake loader that crashes once, supervised and started; `restarted()` waits until its second
 * run has been started and told what to replay; `runs()` gives the commands each run was sent.
 */
function crashingOnce(started?: (pid: number) => string | undefined) {
  const fake = fakeLoader('crash-once');
  const supervised = supervise(fake.path, started);
  supervised.loader.start();
  const starts = () => fake.log().flatMap((e, i) => ('argv' in e ? [i] : []));
  const restarted = async () => {
    for (let i = 0; i < 50 && starts().length < 2; i++) await sleep(50);
    await sleep(200); // the replay has arrived by now
  };
  const runs = () => {
    const log = fake.log();
    return starts().map((start, i, all) => commandsIn(log.slice(start, all[i + 1])));
  };
  return { ...supervised, fake, restarted, runs };
}

test('a loader that cannot run ends supervision with its one-line reason, without restarts', async () => {
  const fake = fakeLoader('cannot-run');
  const { loader, messages } = supervise(fake.path);
  loader.start();
  const end = await loader.ended;
  assert.equal(end.failure, 'no BTF at /sys/kernel/btf/vmlinux');
  await sleep(200);
  assert.equal(fake.log().filter((e) => 'argv' in e).length, 1, 'started once');
  assert.equal(
    messages.filter((m) => m.msg.includes('no BTF')).length,
    2,
    'the MESSAGE and our verdict; the stderr copy is not repeated',
  );
});

test('a missing loader binary is a failure that says how to build it', async () => {
  const { loader } = supervise('/nonexistent/causeway-loader');
  loader.start();
  assert.match((await loader.ended).failure ?? '', /not built .* run `npm run build`/);
});

test('a crashed loader is restarted after a backoff and told again what to follow, but not a process gone meanwhile', async () => {
  const child = spawn('sleep', ['30']);
  const gone = child.pid ?? 0;
  const { loader, frames, messages, fake, restarted, runs } = crashingOnce(startTime);
  loader.follow(process.pid);
  loader.follow(gone);
  loader.comm('python3');
  loader.min('sched.runqueue', 500);
  // Gone (killed and reaped) before the loader's crash, 300 ms after its start, with no exit
  // record read: as when a followed process ends while no loader runs.
  child.kill();
  await once(child, 'close');
  await restarted();
  const health = loader.health();
  assert.deepEqual(health, {
    running: true,
    pid: loader.pid,
    restarts: 1,
    failuresInARow: 1,
    lastExit: 'with code 1',
    followsForgotten: 0,
  });
  const end = await loader.stop();
  assert.equal(end.failure, null);
  assert.equal(loader.health().running, false);
  const [first = [], replayed, ...more] = runs();
  assert.ok(replayed !== undefined && more.length === 0, 'restarted once');
  assert.deepEqual(first.slice(0, 2), [`follow ${String(process.pid)}`, `follow ${String(gone)}`]);
  assert.deepEqual(replayed, [`follow ${String(process.pid)}`, 'comm python3', 'min sched.runqueue 500']);
  // Restarted as soon as its output ended; its exit status follows.
  assert.ok(messages.some((m) => m.source === 'supervisor' && /output ended; restarting in 50 ms/.test(m.msg)));
  assert.ok(messages.some((m) => m.source === 'supervisor' && /replaced .* exited with code 1$/.test(m.msg)));
  assert.ok(
    fake.log().some((e) => e.signal === 'SIGTERM'),
    'stopped with SIGTERM',
  );
  assert.ok(frames.filter((f) => f.type === FrameType.HELLO).length >= 2);
});

test('a pid given to another process while no loader ran is not followed again after the restart', async () => {
  // Pid 1234's process exits while the loader is down, and a new process gets its pid: its start time differs.
  const starts = new Map([
    [1234, '100'],
    [99, '100'],
  ]);
  const { loader, restarted, runs } = crashingOnce((pid) => starts.get(pid));
  loader.follow(1234);
  loader.follow(99);
  starts.set(1234, '250');
  await restarted();
  await loader.stop();
  const [, replayed] = runs();
  assert.deepEqual(replayed, ['follow 99'], 'restarted, and told to follow only the process still the same');
});

test('a process followed twice is sent to the loader once', async () => {
  const { loader, stopAfter } = streaming();
  for (const pid of [1234, 1234, 99, 1234]) loader.follow(pid);
  assert.deepEqual(await stopAfter(2), ['follow 1234', 'follow 99']);
});

test("a followed process's exit frees its pid: a new process given it is followed when named", async () => {
  const { loader, stopAfter } = streaming();
  loader.follow(1234);
  loader.processExited(1234); // its exit record read: the kernel took it out of its table
  loader.processExited(99); // never followed: nothing is sent
  loader.follow(1234);
  loader.follow(1234);
  assert.deepEqual(await stopAfter(2), ['follow 1234', 'follow 1234']);
});

test('a process that is gone is not followed: a late span of it names a pid the next process may get', async () => {
  const { loader, stopAfter } = streaming(startTime);
  loader.follow(spawnSync('true').pid); // exited and reaped
  loader.follow(process.pid);
  assert.deepEqual(await stopAfter(1), [`follow ${String(process.pid)}`]);
});

test('a zombie, exited and not reaped, does not run; this process does, started before its children', async (t) => {
  // `sleep` never reaps: the shell's background child, exiting once the shell has become `sleep`,
  // stays a zombie of it.
  const parent = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.after(() => parent.kill());
  const [line] = (await once(parent.stdout, 'data')) as [Buffer];
  const zombie = Number(line.toString().trim());
  await untilZombie(zombie);
  assert.ok(existsSync(`/proc/${String(zombie)}`));
  assert.equal(startTime(zombie), undefined);
  assert.equal(startTime(spawnSync('true').pid), undefined);
  // In clock ticks after boot: ours, then the parent's we started after.
  const ours = Number(startTime(process.pid));
  const parents = Number(startTime(parent.pid ?? 0));
  assert.ok(Number.isInteger(ours) && Number.isInteger(parents) && ours > 0 && parents >= ours, `${ours} ${parents}`);
  assert.equal(startTime(process.pid), String(ours), 'the same while it runs');
});

test('a process whose main thread ended runs on in its other threads, with the start time it had', async (t) => {
  const victim = spawn(`${packageRoot}test/fixtures/build/workloads/cpu_victim`, ['--leader-exits', '--seconds', '3'], {
    stdio: 'ignore',
  });
  t.after(() => victim.kill());
  const pid = victim.pid ?? 0;
  const started = startTime(pid);
  await untilZombie(pid);
  assert.ok(started !== undefined);
  assert.equal(startTime(pid), started);
});

test('past MAX_FOLLOWED processes, the one followed longest ago is unfollowed first, and counted', async () => {
  const { loader, stopAfter } = streaming();
  for (let pid = 1; pid <= MAX_FOLLOWED; pid++) loader.follow(pid);
  loader.follow(1); // followed again: now the most recent
  loader.follow(MAX_FOLLOWED + 1);
  assert.deepEqual((await stopAfter(MAX_FOLLOWED + 2)).slice(MAX_FOLLOWED), [
    'unfollow 2',
    `follow ${String(MAX_FOLLOWED + 1)}`,
  ]);
  assert.equal(loader.health().followsForgotten, 1);
});

test('commands are checked before they reach the loader', () => {
  const { loader } = supervise('/nonexistent');
  assert.throws(() => {
    loader.follow(-1);
  }, RangeError);
  assert.throws(() => {
    loader.comm('two\nlines');
  }, RangeError);
  assert.throws(() => {
    loader.min('futex.wait', 1.5);
  }, RangeError);
});
