// Scheduler probes, for real: a CPU hog pinned beside a victim makes the victim wait in the
// run queue, and each wait names the task that held the CPU.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as A from '../../src/semconv/attributes.js';
import { durationMs, kernelAvailable, settle, startCapture, startWorkload } from './session.js';

test("a busy process pinned to the victim's CPU gives sched.runqueue waits naming the hog", async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, ['--comm', 'cpu_victim']);
  const pin = ['taskset', '-c', '1'];
  const hog = startWorkload('cpu_hog', ['--seconds', '3'], {}, pin);
  const victim = startWorkload('cpu_victim', ['--seconds', '2', '--start-delay-ms', '200'], {}, pin);
  const truth = (await victim.truth) as { pid: number; tid: number; delay_ns: number };
  await hog.truth;
  await settle();
  await capture.stop();

  const waits = capture.of('sched.runqueue', (e) => e.tid === truth.tid);
  assert.ok(waits.length >= 10, `only ${waits.length} run-queue waits`);
  const byHog = waits.filter((e) => e.attributes[A.ATTR_CAUSEWAY_SCHED_HOLDER_PID] === hog.pid);
  const waitedMs = waits.reduce((sum, e) => sum + durationMs(e), 0);
  const hogMs = byHog.reduce((sum, e) => sum + durationMs(e), 0);
  assert.ok(
    hogMs / waitedMs > 0.8,
    `the hog held the CPU for ${hogMs.toFixed(1)} of ${waitedMs.toFixed(1)} ms of waiting`,
  );
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
