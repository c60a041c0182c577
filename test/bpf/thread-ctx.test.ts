// The OpenTelemetry thread context (OTEP 4947), for real: a program that publishes its active
// span runs two spans overlapping on one thread and waits under the first (a futex wait, a GPU
// sync) while the second is the later-started one. The probes read the published record at the
// moment each wait begins and stamp the first span's ids on it, whichever access model the
// variable is reached by: in the executable (local-exec), or in a dlopen()ed library
// (initial-exec). The loader says where it found the variable: the offset the program itself
// computed from its thread pointer. The captured events, joined by the correlator with the two
// spans: exact to the first span with a writer; without one, to the later-started second span,
// ambiguous. And OBI's pinned per-thread trace context map, read where no record is published.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Correlator, scopeOf, type Attachment, type JoinableSpan } from '../../src/correlate/correlator.js';
import { sampleOffset } from '../../src/kernel/clock.js';
import {
  kernelAvailable,
  kernelEventOf,
  privateGpu,
  runWorkload,
  settle,
  single,
  startCapture,
  startWorkload,
  type CapturedEvent,
} from './session.js';

interface SpanTruth {
  name: string;
  trace_id: string;
  span_id: string;
  start_ns: number;
  end_ns: number;
}

export interface ThreadCtxTruth {
  pid: number;
  tid: number;
  tp_offset: number;
  spans: SpanTruth[];
  futex_start_ns: number;
  futex_end_ns: number;
  sync_start_ns: number;
  sync_end_ns: number;
}

/** The captured events joined with the program's two spans, placed on its thread, by a real correlator. */
function join(truth: ThreadCtxTruth, captured: CapturedEvent[]): Map<string, Attachment> {
  const offset = sampleOffset(); // the truth's CLOCK_MONOTONIC times on the capture's clock (Unix ns)
  const events = captured.filter((e) => e.pid === truth.pid).map(kernelEventOf);
  const spans: JoinableSpan[] = truth.spans.map((s) => ({
    traceId: s.trace_id,
    spanId: s.span_id,
    name: s.name,
    startUnixNano: BigInt(s.start_ns) + offset,
    endUnixNano: BigInt(s.end_ns) + offset,
    attributes: {},
    resource: {},
  }));
  const joined = new Map<string, Attachment>();
  const correlator = new Correlator({
    onJoined: (attachments) => {
      for (const a of attachments) joined.set(a.span.name, a);
    },
    retentionMs: 600_000,
    maxEvents: 100_000,
    maxJoinWaitMs: 0,
  });
  correlator.addEvents(events);
  correlator.addSpans(spans.map((span) => ({ span, place: { hostPid: truth.pid, hostTid: truth.tid } })));
  correlator.joinAll();
  return joined;
}

/** The attachment's event that is the captured one (same kind and start), and its scope. */
function attached(attachment: Attachment | undefined, wait: CapturedEvent) {
  const event = attachment?.events.find(
    (e) => e.kind === wait.kind && e.startUnixNano === BigInt(wait.start_unix_nano),
  );
  return event === undefined || attachment === undefined ? undefined : scopeOf(attachment, event);
}

async function run(t: TestContext, program: string, args: string[] = []) {
  const capture = await startCapture(t, ['--comm', program, '--min-duration-us', '1000']);
  const truth = (await runWorkload(
    program,
    ['--start-delay-ms', '100', '--wait-ms', '80', ...args],
    privateGpu(t),
  )) as unknown as ThreadCtxTruth;
  await settle();
  await capture.stop();
  const waits = (kind: string) => capture.of(kind, (e) => e.pid === truth.pid && e.tid === truth.tid);
  return {
    capture,
    truth,
    futex: single(waits('futex.wait'), 'futex.wait'),
    sync: single(waits('cuda.sync'), 'cuda.sync'),
  };
}

for (const [program, model] of [
  ['thread_ctx_lib', 'initial-exec'],
  ['thread_ctx_exe', 'executable'],
] as const) {
  test(`${program}: the waits under the first span carry its ids, read from the ${model} thread context`, async (t) => {
    if (!kernelAvailable(t)) return;
    const { capture, truth, futex, sync } = await run(t, program);
    const [first, second] = truth.spans as [SpanTruth, SpanTruth];
    assert.ok(
      second.start_ns > first.start_ns && second.end_ns > first.end_ns,
      'the spans overlap, second started later',
    );
    const found = new RegExp(
      `pid ${String(truth.pid)} publishes its active span \\(${model} in .*, thread pointer (-?\\d+)\\)`,
    ).exec(capture.stderr);
    assert.ok(found, `the loader said where pid ${String(truth.pid)} publishes: ${capture.stderr}`);
    assert.equal(Number(found[1]), truth.tp_offset);
    const joined = join(truth, capture.events);
    for (const wait of [futex, sync]) {
      assert.deepEqual(wait.span_context, { trace_id: first.trace_id, span_id: first.span_id }, `${wait.kind} stamped`);
      assert.equal(attached(joined.get('first'), wait), 'exact', `${wait.kind} attached to the first span, exactly`);
      assert.equal(attached(joined.get('second'), wait), undefined, `${wait.kind} not attached to the second span`);
    }
    // Events under the second span carry the second's ids: the stamp follows the switches.
    const switchedOut = capture.of('sched.blocked', (e) => e.pid === truth.pid).map((e) => e.span_context);
    assert.ok(
      switchedOut.some((stamp) => (stamp as { span_id?: string } | undefined)?.span_id === second.span_id),
      'a switch-out under the second span carries its ids',
    );
  });
}

test('without a writer nothing is stamped', async (t) => {
  if (!kernelAvailable(t)) return;
  const { capture, truth, futex, sync } = await run(t, 'thread_ctx_lib', ['--no-publish']);
  assert.equal(futex.span_context, undefined);
  assert.equal(sync.span_context, undefined);
  // The old rule: the later-started span open on the thread takes them, and says it may be wrong.
  const joined = join(truth, capture.events);
  for (const wait of [futex, sync]) {
    assert.equal(
      attached(joined.get('second'), wait),
      'ambiguous',
      `${wait.kind} attached to the second span, ambiguous`,
    );
    assert.equal(attached(joined.get('first'), wait), undefined, `${wait.kind} not attached to the first span`);
  }
  assert.ok(
    capture.stderr.includes(`pid ${String(truth.pid)} publishes its active span`),
    'the variable is still found',
  );
});

test('a writer reached only through dynamic TLS is not read: said, counted, and its events unstamped', async (t) => {
  if (!kernelAvailable(t)) return;
  const { capture, truth, futex } = await run(t, 'thread_ctx_lib', ['--dynamic-tls']);
  assert.match(
    capture.stderr,
    new RegExp(
      `pid ${String(truth.pid)} publishes its active span in .*libotel_thread_ctx_gd\\.so, which is not read: dynamic TLS`,
    ),
  );
  assert.match(capture.stderr, /thread context: \d+ processes read exactly, 1 publishing one that cannot be read/);
  assert.equal(futex.span_context, undefined);
});

test("OBI's pinned traces_ctx_v1 map, where a thread publishes no context: its entry for the thread is the stamp", async (t) => {
  if (!kernelAvailable(t)) return;
  // A map of OBI's definition, pinned where OBI pins it, under a bpffs mounted for the test.
  const fs = mkdtempSync(joinPath(tmpdir(), 'causeway-bpffs-'));
  const pinned = `${fs}/otel/traces_ctx_v1`;
  execFileSync('mount', ['-t', 'bpf', 'bpf', fs]);
  t.after(() => {
    execFileSync('umount', [fs]);
    rmdirSync(fs);
  });
  mkdirSync(`${fs}/otel`);
  execFileSync('bpftool', [
    'map',
    'create',
    pinned,
    'type',
    'lru_hash',
    'key',
    '8',
    'value',
    '24',
    'entries',
    '16384',
    'name',
    'traces_ctx_v1',
  ]);
  const previous = process.env.OTEL_EBPF_BPF_FS_PATH;
  process.env.OTEL_EBPF_BPF_FS_PATH = fs;
  t.after(() => {
    if (previous === undefined) delete process.env.OTEL_EBPF_BPF_FS_PATH;
    else process.env.OTEL_EBPF_BPF_FS_PATH = previous;
  });
  const capture = await startCapture(t, ['--comm', 'thread_ctx_lib', '--min-duration-us', '1000']);
  assert.match(capture.stderr, /reading OBI's trace context map/);
  const workload = startWorkload(
    'thread_ctx_lib',
    ['--no-publish', '--start-delay-ms', '300', '--wait-ms', '80'],
    privateGpu(t),
  );
  const ids = randomBytes(24);
  const key = Buffer.alloc(8);
  key.writeBigUInt64LE((BigInt(workload.pid) << 32n) | BigInt(workload.pid)); // its main thread
  const hex = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0'));
  execFileSync('bpftool', ['map', 'update', 'pinned', pinned, 'key', 'hex', ...hex(key), 'value', 'hex', ...hex(ids)]);
  const truth = (await workload.truth) as unknown as ThreadCtxTruth;
  await settle();
  await capture.stop();
  const futex = single(
    capture.of('futex.wait', (e) => e.pid === truth.pid && e.tid === truth.tid),
    'futex.wait',
  );
  assert.deepEqual(futex.span_context, {
    trace_id: ids.subarray(0, 16).toString('hex'),
    span_id: ids.subarray(16).toString('hex'),
  });
});
