import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { Correlator, type Attachment, type JoinableSpan } from '../../src/correlate/correlator.js';
import { toMs } from '../../src/correlate/time.js';
import {
  EVENTS_PER_TURN,
  KernelCapture,
  MAX_LAG_MS,
  SHED_BACKLOG_FRAMES,
  SHED_TRAILING_MS,
  SHED_UTILIZATION,
  captureParts,
  loaderArgs,
} from '../../src/kernel/capture.js';
import type { KernelEvent } from '../../src/kernel/events.js';
import type { LoaderMessage } from '../../src/kernel/loader.js';
import { ProcessTable } from '../../src/kernel/processes.js';
import { CudaApi, Kind } from '../../src/kernel/record.js';
import { until } from '../cli/sidecar.js';
import { TestMeter } from '../export/meter.js';
import { fakeLoader } from './fake-loader.js';
import { launch, record, register, waitSum } from './records.js';

/** The stand-in loader's clock: its STATS frame pairs mono 1000 ns with this Unix time, and its WATERMARK is at mono 2000 ns. */
const FAKE_EPOCH_NS = 1_700_000_000_000_000_000n - 1000n;
const FAKE_WATERMARK_MONO = 2000n;
const LAG_NS = BigInt(MAX_LAG_MS) * 1_000_000n;

test('without pids or comms the loader follows everything', () => {
  assert.deepEqual(loaderArgs({ pids: [], comms: [], libs: ['/x/libcudart.so.12'], minDurationUs: 50 }), [
    '--lib',
    '/x/libcudart.so.12',
    '--all',
    '--min-duration-us',
    '50',
  ]);
  assert.deepEqual(loaderArgs({ pids: [1, 2], comms: ['python3'], libs: [] }), [
    '--pid',
    '1',
    '--pid',
    '2',
    '--comm',
    'python3',
  ]);
});

test('a capture turns the loader stream into events and watermarks on the STATS clock, and counts drops, shedding and unnamed kernels, also as instruments', async (t) => {
  const m = new TestMeter();
  t.after(() => m.close());
  const pid = process.pid;
  const fake = fakeLoader(
    'stream',
    Buffer.concat([
      register({ pid, func: 0x40n, name: '_Z4stepv' }),
      launch({ pid, api: CudaApi.cudaLaunchKernel, func: 0x40n, startNs: 1500n, endNs: 1700n }),
    ]),
  );
  const events: KernelEvent[] = [];
  const watermarks: { unixNano: bigint; eventsBefore: number }[] = [];
  const messages: LoaderMessage[] = [];
  const onMessage = (message: LoaderMessage) => void messages.push(message);
  const parts = captureParts(new ProcessTable(), onMessage);
  const capture = new KernelCapture(
    {
      pids: [],
      comms: [],
      libs: [],
      loaderPath: fake.path,
      onEvents: (batch) => void events.push(...batch.events()),
      onWatermark: (unixNano) => void watermarks.push({ unixNano, eventsBefore: events.length }),
      onMessage,
      meter: m.meter,
      // Read at its watermark: the launch ended 300 ns before, well within the lag bound.
      monoNow: () => FAKE_WATERMARK_MONO,
    },
    parts,
  );
  capture.start();
  assert.equal((await capture.ready).ncpus, 2);
  assert.ok(parts.self.has(Number(fake.log()[0]?.pid)), "the loader is one of Causeway's own processes");
  for (let i = 0; i < 100 && watermarks.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  const end = await capture.stop();
  assert.equal(end.failure, null);
  assert.equal(events.length, 1);
  assert.equal(events[0]?.startUnixNano, 1_700_000_000_000_000_500n);
  assert.equal(events[0].attributes['causeway.cuda.kernel'], 'step()');
  assert.deepEqual(
    watermarks,
    [{ unixNano: 1_700_000_000_000_001_000n, eventsBefore: 1 }],
    'the watermark, on the STATS clock, comes after the events it covers',
  );
  assert.ok(messages.some((m) => m.fields.event === 'library' && m.fields.probes === 17));
  const counters = capture.counters();
  assert.deepEqual(counters.events, { 'cuda.launch': 1 });
  assert.equal(counters.drops['sched.runqueue'], 6, 'the last STATS frame, sent at SIGTERM, counts');
  assert.equal(counters.delivered['sched.runqueue'], 12);
  assert.equal(counters.unnamedKernels, 3);
  assert.equal(counters.shed['futex.wait'], 8, 'shed in the kernel, apart from drops');
  assert.equal(counters.drops['futex.wait'], 0);
  assert.equal(counters.shedding, false);
  assert.equal(counters.shedLate['cuda.launch'], 0, 'within the lag bound, decoded');
  assert.equal(counters.sheddingLate, false);
  assert.equal(await m.value('causeway_kernel_events', { kind: 'cuda.launch' }), 1);
  assert.equal(await m.value('causeway_kernel_drops', { kind: 'sched.runqueue' }), 6);
  assert.equal(await m.value('causeway_kernel_drops', { kind: 'cuda.sync' }), 0, 'every kind has a series');
  assert.equal(await m.value('causeway_cuda_kernels_unnamed'), 3);
  assert.equal(await m.value('causeway_kernel_shed', { kind: 'futex.wait', where: 'kernel' }), 8);
  assert.equal(await m.value('causeway_kernel_shed', { kind: 'futex.wait', where: 'sidecar' }), 0);
  assert.equal(await m.value('causeway_kernel_shedding'), 0);
});

/**
 * A capture of a trickle loader (two watermarks every `tickMs`, 10 unless given; flooding, each
 * after a frame of `eventsPerFrame` events, a turn's budget unless given) whose clock reads
 * `trailing.ms` past its latest watermark (changed as the test goes), while the event loop keeps
 * turning and handles every frame but is never idle (busy `spinMs` at a time): the main thread of
 * a sidecar that gets a fraction of a core, stalled `stallMs` once a second when given. Frames
 * wait short of the backlog rule (a stall's for less than its second). Resolves once `stopWhen`
 * holds, with what the loop's utilization was.
 */
async function busyLoop(
  t: TestContext,
  scenario: 'trickle' | 'trickle-dropping' | 'trickle-flooding',
  trailing: { ms: number },
  stopWhen: (told: (command: string) => boolean) => boolean,
  { eventsPerFrame = EVENTS_PER_TURN, tickMs = 10, spinMs = 20, stallMs = 0 } = {},
) {
  // Waits just ended, so that none is shed for its lag (the clock reads `trailing.ms` past the watermark).
  const flood = Buffer.concat(
    Array.from({ length: eventsPerFrame }, () => record({ kind: Kind.FUTEX_WAIT, startNs: 1500n, endNs: 2000n })),
  );
  const fake = fakeLoader(scenario, scenario === 'trickle-flooding' ? flood : undefined, tickMs);
  const messages: LoaderMessage[] = [];
  const onMessage = (message: LoaderMessage) => void messages.push(message);
  let watermark = 0n;
  const capture = new KernelCapture(
    {
      pids: [],
      comms: [],
      libs: [],
      loaderPath: fake.path,
      onEvents: () => undefined,
      onMessage,
      onWatermark: (unixNano) => (watermark = unixNano - FAKE_EPOCH_NS),
      monoNow: () => watermark + BigInt(trailing.ms) * 1_000_000n,
    },
    captureParts(new ProcessTable(), onMessage),
  );
  capture.start();
  await capture.ready;
  t.after(() => capture.stop());
  const told = (command: string) => fake.log().some((entry) => entry.command === command);
  const began = performance.eventLoopUtilization();
  let nextStall = performance.now() + 1000;
  const busy = setInterval(() => {
    let busyMs = spinMs;
    if (stallMs > 0 && performance.now() >= nextStall) {
      busyMs = stallMs;
      nextStall += 1000;
    }
    const busyUntil = performance.now() + busyMs;
    while (performance.now() < busyUntil);
  }, 1);
  try {
    await until('the busy loop to end', 15_000, () => stopWhen(told) || undefined);
  } finally {
    clearInterval(busy);
  }
  return { capture, messages, told, utilization: performance.eventLoopUtilization(began).utilization };
}

/** Behind the clock, and within the lag bound: shed for the busy loop, not for their lag. */
const TRAILING_MS = 3 * SHED_TRAILING_MS;
/**
 * A flood: a frame of a turn's budget every 10 ms, the loop busy 5 ms at a time, so that each
 * frame fills a turn of its own and no backlog builds up (shed for the busy loop, not for the backlog).
 */
const FLOOD = { eventsPerFrame: EVENTS_PER_TURN, spinMs: 5 };
/** A busy loop's stopWhen that holds after three of the loop's one-second utilization periods. */
function threePeriods(): () => boolean {
  let since: number | undefined;
  return () => {
    since ??= Date.now();
    return Date.now() - since >= 3500;
  };
}

test('kernel events filling the turns of an event loop with no idle time, the watermark trailing, make the kernel shed, and it stops once the loop has idle time again', async (t) => {
  assert.ok(TRAILING_MS < MAX_LAG_MS);
  const { capture, messages, told } = await busyLoop(
    t,
    'trickle-flooding',
    { ms: TRAILING_MS },
    (told) => told('shed on'),
    FLOOD,
  );
  const on = messages.find((m) => m.fields.event === 'shed' && m.fields.on === true);
  assert.ok(Number(on?.fields.loopUtilization) >= SHED_UTILIZATION, JSON.stringify(on));
  assert.ok(Number(on?.fields.turnsFilled) > 0, JSON.stringify(on));
  assert.ok(Number(on?.fields.trailingMs) >= SHED_TRAILING_MS, JSON.stringify(on));
  assert.ok(Number(on?.fields.backlog) < SHED_BACKLOG_FRAMES, 'shed for the busy loop, not for the backlog');
  assert.equal(capture.counters().shedding, true);
  await until('told to stop shedding', 15_000, () => told('shed off') || undefined);
  assert.equal(capture.counters().shedding, false);
  assert.equal(capture.counters().shedEpisodes, 1);
});

test('shedding stops once capture has caught up, the event loop still without idle time', async (t) => {
  const trailing = { ms: TRAILING_MS };
  const { capture, utilization } = await busyLoop(
    t,
    'trickle-flooding',
    trailing,
    (told) => {
      if (!told('shed on')) return false;
      // Shedding, the capture reads up to the present again.
      trailing.ms = SHED_TRAILING_MS / 10;
      return told('shed off');
    },
    FLOOD,
  );
  assert.ok(utilization >= SHED_UTILIZATION, `the loop was ${String(utilization)} busy`);
  assert.equal(capture.counters().shedding, false);
  assert.equal(capture.counters().shedEpisodes, 1);
});

test('an event loop with no idle time sheds nothing while the watermark keeps up: the cores are busy, the capture is not behind', async (t) => {
  const { capture, told, utilization } = await busyLoop(t, 'trickle', { ms: SHED_TRAILING_MS / 10 }, threePeriods());
  assert.ok(utilization >= SHED_UTILIZATION, `the loop was ${String(utilization)} busy`);
  assert.equal(told('shed on'), false);
  assert.equal(capture.counters().shedEpisodes, 0);
});

test('an event loop with no idle time for other work sheds nothing while the kernel events fit in their budget, the watermark trailing: the loop is not busy with them', async (t) => {
  const { capture, told, utilization } = await busyLoop(t, 'trickle', { ms: TRAILING_MS }, threePeriods());
  assert.ok(utilization >= SHED_UTILIZATION, `the loop was ${String(utilization)} busy`);
  assert.equal(told('shed on'), false);
  assert.equal(capture.counters().shedEpisodes, 0);
  assert.equal(capture.counters().sheddingLate, false, 'within the lag bound');
});

test("a stall's backlog drained in one turn is not a flood: the kernel events filling few of the turns that decode them, a loop with no idle time sheds nothing", async (t) => {
  // Frames of a sixteenth of a turn's budget every 10 ms: the 20 ms turns take them within it, and the
  // turns after a 400 ms stall once a second take its backlog a budget at a time.
  const { capture, messages, told, utilization } = await busyLoop(
    t,
    'trickle-flooding',
    { ms: TRAILING_MS },
    threePeriods(),
    { eventsPerFrame: EVENTS_PER_TURN / 16, stallMs: 400 },
  );
  assert.ok(utilization >= SHED_UTILIZATION, `the loop was ${String(utilization)} busy`);
  assert.equal(told('shed on'), false, JSON.stringify(messages));
  assert.ok((capture.counters().events['futex.wait'] ?? 0) > 0);
});

test('a loop held by other work that turns a few times a second is not flooded: kernel events filling every turn that decodes them, fewer than FLOOD_TURNS, shed nothing', async (t) => {
  // A frame of a turn's budget every 300 ms, the loop busy 300 ms at a time (a sidecar starting):
  // the frame that waited fills each of its few turns, and no backlog builds up.
  const { capture, messages, told, utilization } = await busyLoop(
    t,
    'trickle-flooding',
    { ms: TRAILING_MS },
    threePeriods(),
    { tickMs: 300, spinMs: 300 },
  );
  assert.ok(utilization >= SHED_UTILIZATION, `the loop was ${String(utilization)} busy`);
  assert.equal(told('shed on'), false, JSON.stringify(messages));
  assert.ok((capture.counters().events['futex.wait'] ?? 0) > 0);
});

test('an event loop with no idle time while the ring buffer drops records makes the kernel shed, the watermark current', async (t) => {
  const { messages } = await busyLoop(t, 'trickle-dropping', { ms: SHED_TRAILING_MS / 10 }, (told) => told('shed on'));
  const on = messages.find((m) => m.fields.event === 'shed' && m.fields.on === true);
  assert.ok(Number(on?.fields.trailingMs) < SHED_TRAILING_MS, JSON.stringify(on));
});

test('a loader that exits is restarted and the capture gap counted, in its report and as instruments', async (t) => {
  const m = new TestMeter();
  t.after(() => m.close());
  const fake = fakeLoader('crash-once');
  const messages: LoaderMessage[] = [];
  const capture = new KernelCapture(
    {
      pids: [],
      comms: [],
      libs: [],
      loaderPath: fake.path,
      onEvents: () => undefined,
      onMessage: (message) => void messages.push(message),
      meter: m.meter,
    },
    captureParts(new ProcessTable(), () => undefined),
  );
  capture.start();
  for (let i = 0; i < 200 && !messages.some((m) => m.fields.event === 'capture_gap'); i++)
    await new Promise((resolve) => setTimeout(resolve, 20));
  const report = capture.loaderReport();
  await capture.stop();
  const gap = messages.find((m) => m.fields.event === 'capture_gap');
  assert.ok(gap, JSON.stringify(messages));
  assert.match(
    gap.msg,
    /^capture is back after \d+ ms without a loader \(restart 1\); about 0 kernel events were lost/,
  );
  assert.equal(report?.running, true);
  assert.equal(report.restarts, 1);
  assert.equal(report.failuresInARow, 1);
  assert.equal(report.lastExit, 'with code 1');
  assert.equal(report.gapMs, gap.fields.gapMs);
  assert.ok(report.gapMs >= 500, 'at least the first backoff');
  assert.equal(report.eventsLostInGaps, 0, 'the first loader delivered nothing');
  assert.equal(await m.value('causeway_loader_restarts'), 1);
  assert.equal(await m.value('causeway_capture_gap_seconds'), report.gapMs / 1000);
});

test('events that ended more than the lag bound before they are read are shed, counted per kind, their bookkeeping kept; the watermark goes on and the spans waiting on it are joined; shedding ends once none is late', async (t) => {
  const m = new TestMeter();
  t.after(() => m.close());
  const pid = process.pid;
  // The capture reads the frame when the loader's clock is at `now`: events that ended before
  // `bound` are past the lag bound, those ending at it or later are within it.
  const now = FAKE_WATERMARK_MONO + LAG_NS - 500n;
  const bound = now - LAG_NS;
  // Watermarks go on after the events: frames come, none of them late.
  const fake = fakeLoader(
    'trickle',
    Buffer.concat([
      // Bookkeeping, however old: the fresh launch below is named by it.
      register({ pid, startNs: 100n, func: 0x40n, name: '_Z4stepv' }),
      launch({ pid, api: CudaApi.cudaLaunchKernel, func: 0x40n, startNs: 1200n, endNs: bound - 200n }),
      record({ kind: Kind.SCHED_RUNQUEUE, pid, startNs: 1250n, endNs: bound - 100n }),
      launch({ pid, api: CudaApi.cudaLaunchKernel, func: 0x40n, startNs: 1300n, endNs: bound - 1n }),
      launch({ pid, api: CudaApi.cudaLaunchKernel, func: 0x40n, startNs: 1600n, endNs: bound }),
    ]),
  );
  const unix = (mono: bigint) => FAKE_EPOCH_NS + mono;
  const joined: Attachment[] = [];
  const correlator = new Correlator<JoinableSpan>({
    onJoined: (attachments) => void joined.push(...attachments),
    retentionMs: 60_000,
    maxEvents: 1000,
    maxJoinWaitMs: 500,
    now: () => unix(now),
  });
  // Waiting for the watermark, on the thread the events ran on.
  const span: JoinableSpan = {
    traceId: 'a'.repeat(32),
    spanId: 'b'.repeat(16),
    name: 'step',
    startUnixNano: unix(1100n),
    endUnixNano: unix(1900n),
    attributes: {},
    resource: {},
  };
  correlator.addSpans([{ span, place: { hostPid: pid, hostTid: pid } }]);
  const messages: LoaderMessage[] = [];
  const onMessage = (message: LoaderMessage) => void messages.push(message);
  const shedTimes: [bigint, bigint][] = [];
  const capture = new KernelCapture(
    {
      pids: [],
      comms: [],
      libs: [],
      loaderPath: fake.path,
      onEvents: (events) => {
        correlator.addEvents(events);
      },
      onWatermark: (unixNano) => {
        correlator.advanceWatermark(unixNano);
      },
      onShed: (from, to) => {
        shedTimes.push([from, to]);
        correlator.addShed(from, to);
      },
      onMessage,
      meter: m.meter,
      monoNow: () => now,
    },
    captureParts(new ProcessTable(), onMessage),
  );
  capture.start();
  t.after(() => capture.stop());
  await until('the span joined at the watermark', 5000, () => joined.length > 0 || undefined);
  const counters = capture.counters();
  assert.equal(counters.shedLate['cuda.launch'], 2);
  assert.equal(counters.shedLate['sched.runqueue'], 1);
  assert.equal(counters.shedLate['cuda.register'], 0, 'bookkeeping is kept');
  assert.deepEqual(counters.events, { 'cuda.launch': 1 }, 'the launch ending at the bound is decoded');
  const on = messages.find((message) => message.fields.event === 'shed_late');
  assert.ok(on?.fields.on === true && Number(on.fields.lagMs) >= MAX_LAG_MS, JSON.stringify(messages));
  assert.equal(await m.value('causeway_kernel_shed_late', { kind: 'cuda.launch' }), 2);
  assert.ok(Number(correlator.lag().watermarkUnixMs) >= toMs(unix(FAKE_WATERMARK_MONO)), 'the watermark went on');
  assert.equal(correlator.counters().spansPending, 0);
  assert.equal(joined.length, 1);
  const events = joined[0]?.events ?? [];
  assert.equal(events.length, 1);
  assert.equal(events[0]?.endUnixNano, unix(bound));
  assert.equal(events[0].attributes['causeway.cuda.kernel'], 'step()', 'named by the register record, kept');
  assert.deepEqual(shedTimes, [[unix(1200n), unix(bound - 1n)]], 'from the first start to the last end shed');
  assert.equal(joined[0]?.shed, true, 'the span says some of its events were shed');
  const off = await until('shedding for lag to end', 10_000, () =>
    messages.find((message) => message.fields.event === 'shed_late' && message.fields.on === false),
  );
  assert.match(off.msg, /\(3 shed for their lag so far\)/);
  assert.equal(capture.counters().sheddingLate, false);
  assert.equal(await m.value('causeway_kernel_shedding_late'), 0);
});

test("a summary closed long after its waits ended (its thread slept) is decoded when the frame's other events are current, and shed when capture trails", async (t) => {
  const pid = process.pid;
  // Read when the loader's clock is a minute past the watermark: the summary's waits ended 60 s before.
  const now = FAKE_WATERMARK_MONO + 60_000_000_000n;
  const slept = waitSum({
    kind: Kind.FUTEX_WAIT_SUM,
    pid,
    startNs: 1000n,
    endNs: 1500n,
    count: 3,
    waitNs: 300n,
    maxNs: 200n,
  });
  const step = (endNs: bigint) =>
    launch({ pid, api: CudaApi.cudaLaunchKernel, func: 0x40n, startNs: endNs - 100n, endNs });
  /** The counters once a frame of `records` was read at `now`. */
  const read = async (records: Buffer[]) => {
    const fake = fakeLoader('stream', Buffer.concat(records));
    const onMessage = () => undefined;
    let watermarks = 0;
    const capture = new KernelCapture(
      {
        pids: [],
        comms: [],
        libs: [],
        loaderPath: fake.path,
        onEvents: () => undefined,
        onWatermark: () => {
          watermarks++;
        },
        onMessage,
        monoNow: () => now,
      },
      captureParts(new ProcessTable(), onMessage),
    );
    capture.start();
    t.after(() => capture.stop());
    await until('the frame read', 5000, () => watermarks > 0 || undefined);
    return capture.counters();
  };
  const current = await read([slept, step(now - LAG_NS / 2n)]);
  assert.deepEqual(current.events, { 'futex.waits': 1, 'cuda.launch': 1 }, 'both decoded');
  assert.equal(current.shedLate['futex.waits'], 0);
  assert.equal(current.shedLate['cuda.launch'], 0);
  assert.equal(current.sheddingLate, false);
  const trailing = await read([slept, step(now - 2n * LAG_NS)]);
  assert.deepEqual(trailing.events, {});
  assert.equal(trailing.shedLate['futex.waits'], 1, 'capture trails: the summary is shed');
  assert.equal(trailing.shedLate['cuda.launch'], 1);
});
