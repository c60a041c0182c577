// Scheduler probes, for real: CPU hogs pinned beside a victim make the victim wait in the run
// queue, and each wait names the tasks that held the CPU meanwhile, by their time on it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { explainTrace } from '../../src/correlate/explain.js';
import * as A from '../../src/semconv/attributes.js';
import { appSpan, ids, storeWith } from '../store/traces.js';
import {
  durationMs,
  kernelAvailable,
  kernelEventOf,
  untilZombie,
  monotonicNs,
  settle,
  startCapture,
  startWorkload,
  type CapturedEvent,
} from './session.js';

test("a busy process pinned to the victim's CPU gives sched.runqueue waits naming the hog", async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, ['--comm', 'cpu_victim']);
  const pin = ['taskset', '-c', '1'];
  const hog = startWorkload('cpu_hog', ['--seconds', '3'], {}, pin);
  const victim = startWorkload('cpu_victim', ['--seconds', '2', '--start-delay-ms', '200'], {}, pin);
  const truth = (await victim.truth) as { pid: number; tid: number; delay_ns: number };
  const hogTruth = (await hog.truth) as unknown as HogTruth;
  await settle();
  await capture.stop();

  const waits = capture.of('sched.runqueue', (e) => e.tid === truth.tid);
  assert.ok(waits.length >= 10, `only ${waits.length} run-queue waits`);
  // Other tasks of this machine may run on CPU 1 too; over the waits, the hog held it longest.
  const held = heldPerPid(waits);
  const [top] = held;
  assert.equal(top?.[0], hog.pid, `on-CPU time within the waits per pid: ${JSON.stringify(held)}`);
  // The hog is credited no more CPU time than it had, per its own clock.
  const hogMs = top[1];
  const hogCpuMs = (hogTruth.cpu_ns[0] ?? 0) / 1e6;
  assert.ok(hogMs <= hogCpuMs, `credited ${hogMs.toFixed(1)} ms, its CPU time ${hogCpuMs.toFixed(1)} ms`);
  const byHog = waits.filter((e) => e.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDER_PID] === hog.pid);
  assert.equal(byHog[0]?.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDER_COMM], 'hog');
  assert.ok(byHog.every((e) => e.attributes[A.ATTR_CAUSEWAY_SCHED_CPU] === 1));
  // The victim's own sleeps are blocked time, each ended by a waker.
  const sleeps = capture.of('sched.blocked', (e) => e.tid === truth.tid);
  assert.ok(sleeps.length > 0);
  assert.ok(
    sleeps.every(
      (e) =>
        e.attributes[A.ATTR_CAUSEWAY_SCHED_STATE] === 'S' &&
        e.attributes[A.ATTR_CAUSEWAY_SCHED_WAKER_TID] !== undefined,
    ),
  );
  // Its sleeps end with a timer interrupt, which lands on the CPU the hog is running on: the
  // hog is not their waker, no task is.
  const wakers = sleeps.map((e) => e.attributes[A.ATTR_CAUSEWAY_SCHED_WAKER_PID]);
  assert.ok(
    !wakers.includes(hog.pid),
    `the hog is named as the waker of ${wakers.filter((p) => p === hog.pid).length} sleeps`,
  );
  assert.ok(
    sleeps.some(
      (e) =>
        e.attributes[A.ATTR_CAUSEWAY_SCHED_WAKER_PID] === 0 &&
        e.attributes[A.ATTR_CAUSEWAY_SCHED_WAKER_COMM] === '[interrupt]',
    ),
    'a timer interrupt woke at least one sleep',
  );
});

test('a process whose main thread ends first stays followed until its last thread ends', async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, ['--comm', 'cpu_victim', '--reduce-window-ms', '0']);
  const victim = startWorkload('cpu_victim', ['--seconds', '1', '--start-delay-ms', '200', '--leader-exits']);
  const truth = (await victim.truth) as { tid: number; iterations: number };
  await settle();
  await capture.stop();

  // The victim sleeps once an iteration, every time after the main thread's exit: before, that
  // exit counted as the process's and took it out of the probes' filter.
  const sleeps = capture.of('sched.blocked', (e) => e.tid === truth.tid);
  assert.ok(sleeps.length >= 0.9 * truth.iterations, `${sleeps.length} sleeps of ${truth.iterations} recorded`);
});

test('a process whose main thread has ended can still be followed by its pid', async (t) => {
  if (!kernelAvailable(t)) return;
  const victim = startWorkload('cpu_victim', ['--seconds', '2', '--leader-exits']);
  await untilZombie(victim.pid);
  // Followed once the main thread is a zombie: before, the loader took the process for exited.
  const capture = await startCapture(t, ['--pid', String(victim.pid), '--reduce-window-ms', '0']);
  const truth = (await victim.truth) as { tid: number };
  await settle();
  await capture.stop();
  assert.ok(capture.of('sched.blocked', (e) => e.tid === truth.tid).length > 0, capture.stderr);
});

/** Spinners pinned beside the victim, one of them (by its nice value) holding the CPU most. */
const SPINNERS = 3;
const REPEATS = 3;

test('oversubscribed by several spinners, the culprit is the one that held the CPU most, every time', async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, ['--comm', 'cpu_victim']);
  const runs: { victim: VictimTruth; spinners: { pid: number; cpuNs: number }[]; heavy: number }[] = [];
  // The heavy spinner changes from one run to the next, so the start order cannot pick it.
  for (let heavy = 0; heavy < REPEATS; heavy++) {
    const spinners = Array.from({ length: SPINNERS }, (_, i) =>
      startWorkload('cpu_hog', ['--seconds', '2'], {}, ['taskset', '-c', '1', 'nice', '-n', i === heavy ? '-5' : '5']),
    );
    const victim = startWorkload('cpu_victim', ['--seconds', '1.2', '--start-delay-ms', '300'], {}, [
      'taskset',
      '-c',
      '1',
    ]);
    const truth = (await victim.truth) as unknown as VictimTruth;
    const done = await Promise.all(spinners.map((s) => s.truth as Promise<unknown> as Promise<HogTruth>));
    runs.push({
      victim: truth,
      spinners: done.map((d) => ({ pid: d.pid, cpuNs: d.cpu_ns[0] ?? 0 })),
      heavy: done[heavy]?.pid ?? 0,
    });
  }
  await settle();
  await capture.stop();

  const offset = BigInt(Date.now()) * 1_000_000n - monotonicNs();
  for (const [i, run] of runs.entries()) {
    // Ground truth: the spinner with the most CPU time, per its own CLOCK_THREAD_CPUTIME_ID.
    const busiest = [...run.spinners].sort((a, b) => b.cpuNs - a.cpuNs)[0]?.pid;
    assert.equal(
      busiest,
      run.heavy,
      `run ${String(i)}: the spinner at nice -5 ran most: ${JSON.stringify(run.spinners)}`,
    );
    const waits = capture.of('sched.runqueue', (e) => e.tid === run.victim.tid);
    assert.ok(waits.length >= 10, `run ${String(i)}: only ${String(waits.length)} run-queue waits`);
    // In the records: summed over the victim's waits, the busiest spinner held its CPU longest.
    const held = heldPerPid(waits);
    assert.equal(
      held[0]?.[0],
      busiest,
      `run ${String(i)}: on-CPU time within the waits per pid: ${JSON.stringify(held)}`,
    );
    // And explain_trace's analysis, over a request span covering the victim's run, names it.
    const span = appSpan({
      trace: 1,
      span: 1,
      start: BigInt(run.victim.start_ns) + offset,
      end: BigInt(run.victim.end_ns) + offset,
      pid: run.victim.pid,
      tid: run.victim.tid,
    });
    const events = capture.events.filter((e) => e.tid === run.victim.tid).map(kernelEventOf);
    const store = await storeWith([span], events);
    try {
      const answer = await explainTrace([store], ids(1).traceId);
      t.diagnostic(`run ${String(i)}: ${answer?.summary ?? ''}`);
      assert.equal(answer?.root_cause?.kind, 'sched.runqueue');
      assert.equal(answer.root_cause.culprit?.pid, busiest, answer.root_cause.evidence.join('\n'));
      assert.equal(answer.root_cause.culprit.comm, 'hog');
    } finally {
      await store.close();
    }
  }
});

/**
 * Per pid, the on-CPU time its tasks held the CPU within the waits, most first; each wait's
 * holders together held it no longer than the wait, and no longer than its run history saw.
 */
function heldPerPid(waits: CapturedEvent[]): [number, number][] {
  const held = new Map<number, number>();
  for (const e of waits) {
    const pids = (e.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_PID] ?? []) as number[];
    const ms = (e.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_ONCPU_MS] ?? []) as number[];
    pids.forEach((pid, k) => held.set(pid, (held.get(pid) ?? 0) + (ms[k] ?? 0)));
    const total = ms.reduce((sum, x) => sum + x, 0);
    const seen = e.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDERS_SEEN_MS] as number;
    assert.ok(
      total <= seen + 1e-6 && seen <= durationMs(e) + 1e-6,
      `holders held ${String(total)} ms, history saw ${String(seen)} ms, of a ${String(durationMs(e))} ms wait`,
    );
  }
  return [...held.entries()].sort((a, b) => b[1] - a[1]);
}

interface VictimTruth {
  pid: number;
  tid: number;
  start_ns: number;
  end_ns: number;
}

interface HogTruth {
  pid: number;
  cpu_ns: number[];
}
