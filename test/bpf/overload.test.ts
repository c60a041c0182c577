// Overload, for real: a consumer that stops reading fills the ring buffer; the kernel-side
// drops are counted and reported, and capture carries on once the consumer reads again.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RECORD_SIZE } from '../../src/kernel/record.js';
import { kernelAvailable, runWorkload, settle, startCapture } from './session.js';

const RINGBUF_MB = 1;
/** Records a full ring holds: each is a record behind the ring buffer's 8-byte header. */
const RING_RECORDS = Math.floor((RINGBUF_MB << 20) / (RECORD_SIZE + 8));

test("a workload beyond the ring buffer's capacity shows non-zero drop counters, and capture recovers", async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, [
    '--comm',
    'switch_pingpong',
    '--min-duration-us',
    '0',
    '--ringbuf-mb',
    String(RINGBUF_MB),
  ]);
  capture.reading(false);
  const flood = await runWorkload('switch_pingpong', ['--seconds', '3']);
  capture.reading(true);
  await settle(1000);
  const seenBeforeRecovery = capture.events.length;
  const after = (await runWorkload('switch_pingpong', ['--count', '100'])) as { pid: number };
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
