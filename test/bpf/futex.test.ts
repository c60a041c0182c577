// futex probes, for real: a thread blocked on a mutex gives a futex.wait whose waker is the
// thread that held the mutex.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as A from '../../src/semconv/attributes.js';
import { durationMs, kernelAvailable, runWorkload, settle, single, startCapture } from './session.js';

interface Convoy {
  pid: number;
  mutex: string;
  holder: { tid: number };
  waiters: { tid: number; wait_start_ns: number; wait_end_ns: number }[];
}

test('a thread blocked 150 ms on a mutex gives a futex.wait of about 150 ms woken by the holder', async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, ['--comm', 'mutex_convoy', '--min-duration-us', '1000']);
  const truth = (await runWorkload('mutex_convoy', [
    '--hold-ms',
    '150',
    '--start-delay-ms',
    '50',
  ])) as unknown as Convoy;
  await settle();
  await capture.stop();

  const waiter = single(truth.waiters, 'waiter');
  const wait = single(
    capture.of('futex.wait', (e) => e.tid === waiter.tid),
    'futex.wait',
  );
  const expectedMs = (waiter.wait_end_ns - waiter.wait_start_ns) / 1e6;
  assert.ok(expectedMs > 100, `the waiter waited only ${expectedMs} ms`);
  assert.ok(
    Math.abs(durationMs(wait) - expectedMs) <= expectedMs * 0.1,
    `futex.wait ${durationMs(wait)} ms, waiter saw ${expectedMs} ms`,
  );
  assert.equal(wait.attributes[A.ATTR_CAUSEWAY_FUTEX_WAKER_TID], truth.holder.tid);
  assert.equal(wait.attributes[A.ATTR_CAUSEWAY_FUTEX_WAKER_PID], truth.pid);
  assert.equal(wait.attributes[A.ATTR_CAUSEWAY_FUTEX_WAKER_COMM], 'holder');
  assert.equal(BigInt(String(wait.attributes[A.ATTR_CAUSEWAY_FUTEX_UADDR])), BigInt(truth.mutex));
  assert.match(String(wait.attributes[A.ATTR_CAUSEWAY_FUTEX_OP]), /^FUTEX_WAIT/);
});
