// The OpenTelemetry thread context (OTEP 4947), for real: a program that publishes its active
// span runs two spans overlapping on one thread and waits under the first (a futex wait, a GPU
// sync) while the second is the later-started one. The probes read the published record at the
// moment each wait begins and stamp the first span's ids on it, whichever access model the
// variable is reached by: in the executable (local-exec), or in a dlopen()ed library
// (initial-exec). The loader says where it found the variable: the offset the program itself
// computed from its thread pointer.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import {
  kernelAvailable,
  privateGpu,
  runWorkload,
  settle,
  single,
  startCapture,
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

const stampOf = (e: CapturedEvent) => (e as CapturedEvent & { span_context?: unknown }).span_context;

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
    for (const wait of [futex, sync])
      assert.deepEqual(stampOf(wait), { trace_id: first.trace_id, span_id: first.span_id }, `${wait.kind} stamped`);
    // Events under the second span carry the second's ids: the stamp follows the switches.
    const switchedOut = capture.of('sched.blocked', (e) => e.pid === truth.pid).map(stampOf);
    assert.ok(
      switchedOut.some((stamp) => (stamp as { span_id?: string } | undefined)?.span_id === second.span_id),
      'a switch-out under the second span carries its ids',
    );
  });
}

test('without a writer nothing is stamped', async (t) => {
  if (!kernelAvailable(t)) return;
  const { capture, truth, futex, sync } = await run(t, 'thread_ctx_lib', ['--no-publish']);
  assert.equal(stampOf(futex), undefined);
  assert.equal(stampOf(sync), undefined);
  assert.ok(
    capture.stderr.includes(`pid ${String(truth.pid)} publishes its active span`),
    'the variable is still found',
  );
});
