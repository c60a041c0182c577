// In-kernel reduction, for real: a thread's quick launches and short run-queue waits reach user
// space as summaries, and nothing is lost. Launches are checked against the workload's own count;
// run-queue summaries against what one capture can show of itself (two captures side by side
// disagree by a few percent, so a second one is no ground truth for the waits summed).
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import * as A from '../../src/semconv/attributes.js';
import {
  type Capture,
  type CapturedEvent,
  durationMs,
  kernelAvailable,
  privateGpu,
  runWorkload,
  settle,
  single,
  startCapture,
  startWorkload,
} from './session.js';

const TINY = 'tiny(int*)';
const count = (e: CapturedEvent) => Number(e.attributes[A.ATTR_CAUSEWAY_SUMMARY_COUNT]);
const sum = (values: number[]) => values.reduce((total, v) => total + v, 0);
const byStart = (x: CapturedEvent, y: CapturedEvent) =>
  BigInt(x.start_unix_nano) < BigInt(y.start_unix_nano) ? -1 : 1;

/**
 * Checks summaries of waits each shorter than wholeUs: at least one wait, the total between the
 * longest and count times it, and within the window (from the first wait's start to the last one's end).
 */
function assertSummedWaits(summaries: CapturedEvent[], wholeUs: number, totalMs: string, longestMs: string): void {
  for (const summary of summaries) {
    const n = count(summary);
    const total = Number(summary.attributes[totalMs]);
    const longest = Number(summary.attributes[longestMs]);
    assert.ok(n >= 1);
    assert.ok(longest < wholeUs / 1000, `${summary.kind}: a summed wait of ${longest} ms`);
    assert.ok(total >= longest && total <= n * longest, `${n} waits of at most ${longest} ms summing to ${total} ms`);
    assert.ok(total <= durationMs(summary), `${total} ms of waits in a ${durationMs(summary)} ms window`);
  }
}

/**
 * One thread's short waits written whole, by start, checked to be window openers: each came a
 * window after the one before (less its own duration, under the threshold: a window's age is
 * checked as the wait ends).
 */
function shortWaitsWhole(whole: CapturedEvent[], windowMs: number, wholeUs: number): CapturedEvent[] {
  const short = whole.filter((e) => durationMs(e) < wholeUs / 1000).sort(byStart);
  short.slice(1).forEach((wait, i) => {
    const before = short[i] as CapturedEvent;
    const gap = Number(BigInt(wait.start_unix_nano) - BigInt(before.start_unix_nano));
    assert.ok(
      gap >= windowMs * 1e6 - wholeUs * 1e3,
      `short ${wait.kind} of thread ${String(wait.tid)} written whole ${gap / 1e6} ms apart`,
    );
  });
  return short;
}

/**
 * Runs launch_storm with `args` under a capture with reduction at its defaults; checks that its
 * launches came summed, summaries and whole launches adding up to the launches it made.
 */
async function stormSummed(t: TestContext, args: string[]) {
  const capture = await startCapture(t, ['--comm', 'launch_storm']);
  const truth = (await runWorkload('launch_storm', [...args, '--start-delay-ms', '50'], privateGpu(t))) as {
    pid: number;
    launches: number;
    errors: number;
  };
  await settle();
  await capture.stop();

  assert.equal(truth.errors, 0);
  const summaries = capture.of('cuda.launches', (e) => e.pid === truth.pid);
  const whole = capture.of('cuda.launch', (e) => e.pid === truth.pid);
  assert.ok(summaries.length > 0, 'no cuda.launches summary');
  // Failing, what the capture says it lost (drops, sheds) tells a starved machine from a bug.
  const lost = capture.stderr.split('\n').filter((line) => /causeway: (drops|shed)/.test(line));
  assert.equal(sum(summaries.map(count)) + whole.length, truth.launches, lost.join('; '));
  return { capture, truth, summaries, whole };
}

test('a launch storm reaches user space as cuda.launches summaries whose counts add up to the launches made, and its sync still names them in flight', async (t) => {
  if (!kernelAvailable(t)) return;
  const { capture, truth, summaries, whole } = await stormSummed(t, ['--rate', '20000', '--seconds', '1']);
  assert.ok(summaries.length + whole.length < truth.launches, 'fewer records than launches');
  for (const summary of summaries) {
    assert.deepEqual(summary.attributes[A.ATTR_CAUSEWAY_CUDA_KERNELS], [TINY]);
    assert.deepEqual(summary.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL_COUNTS], [count(summary)]);
    assert.ok(count(summary) >= 1);
  }
  // The storm's one sync waited for every launch of its stream: the summaries were queued on it.
  const sync = single(
    capture.of('cuda.sync', (e) => e.pid === truth.pid),
    'cuda.sync',
  );
  assert.equal(sync.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], truth.launches);
  assert.deepEqual(sync.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS], [TINY]);
  assert.match(capture.stderr, new RegExp(`events covered: .*cuda\\.launch ${String(truth.launches)}\\b`));
});

test('an event recorded after launches summed, as an engine records one between steps, is recorded after them: its sync names them all in flight', async (t) => {
  if (!kernelAvailable(t)) return;
  // As fast as they go, the launches never block (a thread that blocks has its window closed
  // then); 5,000 launches, an event recorded after every 100, the last one synchronized.
  const { capture, truth } = await stormSummed(t, ['--count', '5000', '--record-every', '100']);
  // Each event record's probe closes the window of the launches before it, so that their summary
  // precedes the record in the ring: the event then stands for every launch made before it.
  const sync = single(
    capture.of(
      'cuda.sync',
      (e) => e.pid === truth.pid && e.attributes[A.ATTR_CAUSEWAY_CUDA_API] === 'cudaEventSynchronize',
    ),
    'cudaEventSynchronize',
  );
  assert.equal(sync.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_COUNT], truth.launches);
});

test('with reduction on, the launches that blocked on a full queue still arrive whole, with their own durations', async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, ['--comm', 'launch_storm']);
  const truth = (await runWorkload(
    'launch_storm',
    ['--full-queue', '--kernel-ms', '10', '--extra', '4', '--start-delay-ms', '50'],
    { ...privateGpu(t), CUDA_SIM_QUEUE_DEPTH: '16' },
  )) as { pid: number; launches: number; blocked: { index: number; ns: number }[] };
  await settle();
  await capture.stop();

  const whole = capture.of('cuda.launch', (e) => e.pid === truth.pid);
  const summaries = capture.of('cuda.launches', (e) => e.pid === truth.pid);
  assert.equal(sum(summaries.map(count)) + whole.length, truth.launches);
  const blocked = whole.filter((e) => e.attributes[A.ATTR_CAUSEWAY_CUDA_LAUNCH_BLOCKED] === true).sort(byStart);
  assert.equal(blocked.length, truth.blocked.length);
  truth.blocked.forEach((b, i) => {
    const launch = blocked[i] as CapturedEvent;
    assert.ok(
      Math.abs(durationMs(launch) - b.ns / 1e6) <= 2,
      `launch #${b.index} blocked ${b.ns / 1e6} ms, captured ${durationMs(launch)} ms`,
    );
  });
});

test('with reduction off, every launch of a storm is its own cuda.launch', async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, ['--comm', 'launch_storm', '--reduce-window-ms', '0']);
  const truth = (await runWorkload(
    'launch_storm',
    ['--rate', '5000', '--seconds', '0.5', '--start-delay-ms', '50'],
    privateGpu(t),
  )) as { pid: number; launches: number };
  await settle();
  await capture.stop();

  assert.equal(capture.of('cuda.launches', (e) => e.pid === truth.pid).length, 0);
  const launches = capture.of('cuda.launch', (e) => e.pid === truth.pid);
  assert.equal(launches.length, truth.launches);
  for (const launch of launches) assert.equal(launch.attributes[A.ATTR_CAUSEWAY_CUDA_KERNEL], TINY);
});

test('short run-queue waits are summed per thread per window, long ones and the one opening a window kept whole', async (t) => {
  if (!kernelAvailable(t)) return;
  const wholeUs = 100;
  const windowMs = 10;
  const capture = await startCapture(t, [
    '--comm',
    'switch_pingpong',
    '--runqueue-whole-us',
    String(wholeUs),
    '--reduce-window-ms',
    String(windowMs),
  ]);
  const truth = (await runWorkload('switch_pingpong', ['--rate', '20000', '--seconds', '1'])) as {
    pid: number;
    tids: number[];
  };
  await settle();
  await capture.stop();
  assert.match(capture.stderr, /drops: none/);

  for (const tid of truth.tids) {
    const summaries = capture.of('sched.runqueues', (e) => e.tid === tid);
    assert.ok(summaries.length > 0, `no sched.runqueues for thread ${String(tid)}`);
    assertSummedWaits(summaries, wholeUs, A.ATTR_CAUSEWAY_SCHED_WAIT_MS, A.ATTR_CAUSEWAY_SCHED_MAX_WAIT_MS);
    for (const summary of summaries)
      assert.ok(Number(summary.attributes[A.ATTR_CAUSEWAY_SCHED_PREEMPTED_COUNT]) <= count(summary));
    const shortWhole = shortWaitsWhole(
      capture.of('sched.runqueue', (e) => e.tid === tid),
      windowMs,
      wholeUs,
    );
    // Each summary follows the wait that opened its window.
    assert.ok(
      summaries.length <= shortWhole.length,
      `${String(summaries.length)} summaries, ${String(shortWhole.length)} windows opened: ${capture.stderr}`,
    );
  }
});

/** What switch_pingpong says of itself: per thread (as tids), its futex waits and blockings. */
type Pingpong = Record<string, unknown> & {
  pid: number;
  tids: number[];
  futex_waits: number[];
  voluntary_switches: number[];
};

/** How a summary of waits of each kind names its totals and its longest wait's waker. */
const WAIT_SUMMARIES = [
  {
    whole: 'futex.wait',
    summary: 'futex.waits',
    made: (truth: Pingpong, i: number) => Number(truth.futex_waits[i]),
    totalMs: A.ATTR_CAUSEWAY_FUTEX_WAIT_MS,
    longestMs: A.ATTR_CAUSEWAY_FUTEX_MAX_WAIT_MS,
    wakerTid: A.ATTR_CAUSEWAY_FUTEX_WAKER_TID,
  },
  {
    whole: 'sched.blocked',
    summary: 'sched.blocked_waits',
    made: (truth: Pingpong, i: number) => Number(truth.voluntary_switches[i]),
    totalMs: A.ATTR_CAUSEWAY_SCHED_WAIT_MS,
    longestMs: A.ATTR_CAUSEWAY_SCHED_MAX_WAIT_MS,
    wakerTid: A.ATTR_CAUSEWAY_SCHED_WAKER_TID,
  },
] as const;

// pong (tids[1]) makes nothing but its round trips' waits between the counts it reports; ping
// (tids[0]) also waits in pthread_join after its last count.
const PONG = 1;

/**
 * Per kind, the records a capture shed, as its closing summary counts them: in the kernel or
 * on reading while it was behind, and read too late. A busy machine can make it shed.
 */
function shedCounts(stderr: string): Record<string, number> {
  const shed: Record<string, number> = {};
  const lists = [
    ...(/shed while behind[^:]*: in the kernel ([^;]*); in the sidecar (.*)/.exec(stderr)?.slice(1) ?? []),
    /shed too late[^:]*: (.*)/.exec(stderr)?.[1] ?? '',
  ];
  for (const list of lists)
    for (const m of list.matchAll(/(\S+) (\d+)/g)) shed[String(m[1])] = (shed[String(m[1])] ?? 0) + Number(m[2]);
  return shed;
}

/**
 * Checks the waits of thread `i` a capture covered (whole, or summed) against those it made.
 * Futex waits are the thread's own syscalls, every one seen: those not covered were shed on a
 * busy machine (counted per kind, not per thread); a summary's events cannot be told when it
 * is shed, so none may be. A blocking is seen only when its wakeup comes after the
 * switch-out's probe: one woken by the other thread on another CPU while still switching out
 * is missed, with or without reduction (sched.bpf.c), so blocked waits are bounded above only.
 */
function assertCovered(
  kind: (typeof WAIT_SUMMARIES)[number],
  truth: Pingpong,
  i: number,
  covered: number,
  stderr: string,
): void {
  const made = kind.made(truth, i);
  const joined = i === PONG ? 0 : 1;
  const thread = i === PONG ? 'pong' : 'ping';
  const shed = shedCounts(stderr);
  assert.equal(shed[kind.summary], undefined, `${kind.summary} shed: ${stderr}`);
  assert.ok(covered <= made + joined, `${kind.whole} of ${thread}: ${covered} covered, ${made} made`);
  if (kind.whole === 'futex.wait')
    assert.ok(
      covered + (shed[kind.whole] ?? 0) >= made,
      `${kind.whole} of ${thread}: ${covered} covered, ${made} made: ${stderr}`,
    );
}

/**
 * Captures switch_pingpong, run with `args`, followed from its first wait, for tests that compare
 * every wait it made with those covered: by pid, from a shell that execs it once capture is
 * ready. Followed by comm, a process is followed only once the loader has read its exec record,
 * and with its two threads spinning on both cores that took long enough for up to ~100 of its
 * first waits to go unseen.
 */
async function capturePingpong(
  t: TestContext,
  captureArgs: string[],
  args: string[],
): Promise<{ capture: Capture; truth: Pingpong }> {
  const workload = startWorkload('switch_pingpong', args, {}, ['sh', '-c', 'read go && exec "$0" "$@"']);
  t.after(() => workload.child.kill());
  const capture = await startCapture(t, ['--pid', String(workload.pid), ...captureArgs]);
  workload.child.stdin.end('go\n');
  const truth = (await workload.truth) as Pingpong;
  await settle();
  await capture.stop();
  return { capture, truth };
}

test("short futex and blocked waits are summed per thread per window with the longest one's waker, and with the whole ones add up to the waits made", async (t) => {
  if (!kernelAvailable(t)) return;
  const wholeUs = 100;
  const windowMs = 10;
  const { capture, truth } = await capturePingpong(
    t,
    ['--wait-whole-us', String(wholeUs), '--reduce-window-ms', String(windowMs)],
    ['--rate', '20000', '--seconds', '1'],
  );
  assert.match(capture.stderr, /drops: none/);

  for (const kind of WAIT_SUMMARIES) {
    // The capture counts a summary as the events it sums, under their kind.
    const covered = sum(capture.of(kind.summary).map(count)) + capture.of(kind.whole).length;
    assert.match(
      capture.stderr,
      new RegExp(`events covered: .*${kind.whole.replace('.', '\\.')} ${String(covered)}\\b`),
    );
    truth.tids.forEach((tid, i) => {
      const other = Number(truth.tids[1 - i]);
      const summaries = capture.of(kind.summary, (e) => e.tid === tid);
      const whole = capture.of(kind.whole, (e) => e.tid === tid);
      assert.ok(summaries.length > 0, `no ${kind.summary} for thread ${String(tid)}`);
      const covered = sum(summaries.map(count)) + whole.length;
      assertCovered(kind, truth, i, covered, capture.stderr);
      assert.ok(summaries.length + whole.length < covered, 'fewer records than waits');
      assertSummedWaits(summaries, wholeUs, kind.totalMs, kind.longestMs);
      for (const summary of summaries) {
        // Only the other thread wakes one: a futex wait that returned at once (the token had
        // moved) names none, so the longest names the other thread or, for a futex, no one.
        const waker = summary.attributes[kind.wakerTid];
        if (kind.whole === 'sched.blocked' || waker !== undefined) assert.equal(waker, other);
      }
      if (kind.whole === 'futex.wait')
        assert.ok(
          summaries.some((s) => s.attributes[kind.wakerTid] === other),
          `no futex.waits of thread ${String(tid)} names its waker`,
        );
      const shortWhole = shortWaitsWhole(whole, windowMs, wholeUs);
      // Each summary follows the wait that opened its window, written whole unless shed.
      assert.ok(
        summaries.length <= shortWhole.length + (shedCounts(capture.stderr)[kind.whole] ?? 0),
        `${String(summaries.length)} summaries, ${String(shortWhole.length)} windows opened`,
      );
    });
  }
});

test('a futex or blocked wait as long as --wait-whole-us stays whole, naming its waker', async (t) => {
  if (!kernelAvailable(t)) return;
  const wholeUs = 100;
  // ping sleeps 5 ms before each burst of round trips: pong waits that long for its turn.
  const { capture, truth } = await capturePingpong(
    t,
    ['--wait-whole-us', String(wholeUs)],
    ['--rate', '2000', '--burst-ms', '5', '--seconds', '0.5'],
  );
  const [ping, pong] = truth.tids;

  for (const kind of WAIT_SUMMARIES) {
    const long = capture.of(kind.whole, (e) => e.tid === pong && durationMs(e) >= wholeUs / 1000);
    assert.ok(long.length >= 10, `${String(long.length)} long ${kind.whole} of pong`);
    for (const wait of long) assert.equal(wait.attributes[kind.wakerTid], ping);
    for (const summary of capture.of(kind.summary, (e) => e.pid === truth.pid))
      assert.ok(Number(summary.attributes[kind.longestMs]) < wholeUs / 1000);
    const covered =
      sum(capture.of(kind.summary, (e) => e.tid === pong).map(count)) +
      capture.of(kind.whole, (e) => e.tid === pong).length;
    assertCovered(kind, truth, PONG, covered, capture.stderr);
  }
});

test('with reduction off, every futex and blocked wait is its own record', async (t) => {
  if (!kernelAvailable(t)) return;
  const { capture, truth } = await capturePingpong(
    t,
    ['--reduce-window-ms', '0'],
    ['--rate', '20000', '--seconds', '0.5'],
  );
  assert.match(capture.stderr, /drops: none/);

  for (const kind of WAIT_SUMMARIES) {
    assert.equal(capture.of(kind.summary, (e) => e.pid === truth.pid).length, 0);
    assertCovered(kind, truth, PONG, capture.of(kind.whole, (e) => e.tid === truth.tids[PONG]).length, capture.stderr);
  }
  assert.equal(capture.of('sched.runqueues', (e) => e.pid === truth.pid).length, 0);
});
