// The whole-sidecar load harness of `npm run bench` (load.ts), run briefly at a light load: what
// it reads adds up. No timing is asserted: the bench reports those against the targets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kernelAvailable } from '../bpf/session.js';
import { sidecarLoad, type MemoryParts } from './load.js';

test('the load harness drives the real sidecar and collector and reads counters that add up', async (t) => {
  if (!kernelAvailable(t)) return;
  const report = await sidecarLoad({
    seconds: 5,
    pingPongPairs: 2,
    switchesPerS: 2_000,
    launchesPerS: 2_000,
    spansPerS: 1_000,
    spansPerRequest: 100,
    log: (line) => {
      t.diagnostic(line);
    },
  });
  t.diagnostic(JSON.stringify(report));
  const { delivered, offered, cpu, rss, requests, kernelSpans, mcp } = report;
  assert.ok(offered.switchesPerS > 0 && offered.launchesPerS > 0, 'both workloads ran and said how fast');
  assert.ok(delivered.events > 0, 'the capture decoded kernel events');
  assert.ok(offered.events >= delivered.events, 'what was decoded in the window was offered in the run');
  assert.ok((delivered.byKind['cuda.launch'] ?? 0) > 0, 'the launch storm was followed');
  assert.ok((delivered.byKind['futex.wait'] ?? 0) > 0, 'the ping-pong was followed');
  assert.ok(cpu.sidecarS > 0 && cpu.sidecarS >= cpu.loaderS, 'CPU read from /proc for node and loader');
  assert.ok(rss.finalBytes > 0 && rss.peakBytes >= rss.finalBytes);
  const { memory } = report;
  const parts = [
    'fileBytes',
    'mainHeapBytes',
    'workerHeapBytes',
    'serversHeapBytes',
    'mcpHeapBytes',
    'duckdbBytes',
    'externalBytes',
  ];
  for (const part of parts as readonly (keyof MemoryParts)[])
    assert.ok(memory[part] > 0, `node's RSS has a part ${part}`);
  assert.ok(
    memory.fileBytes + memory.mainHeapBytes + memory.workerHeapBytes + memory.serversHeapBytes + memory.mcpHeapBytes <
      memory.rssBytes,
    `the parts read fit in node's RSS: ${JSON.stringify(memory)}`,
  );
  assert.ok(requests.sent > 0);
  const refused = Object.values(requests.refused).reduce((a, b) => a + b, 0);
  assert.equal(requests.ok + refused + requests.failed, requests.sent, 'every request is counted once');
  assert.equal(requests.failed, 0, `every request answered: ${requests.errors.join('; ')}`);
  assert.equal(requests.latency.count, requests.sent);
  const { p99Ms, maxMs } = requests.appLoopDelay;
  assert.ok(p99Ms > 0 && maxMs >= p99Ms, "the app's own event-loop delay was measured over the window");
  assert.ok(requests.appCores > 0, 'the app process reported its CPU');
  const bench = report.benchLoopDelay;
  assert.ok(bench.p99Ms > 0 && bench.maxMs >= bench.p99Ms, "the bench's event-loop delay was measured too");
  assert.equal(kernelSpans.sampled, requests.sent, "the app streamed every window request's first trace");
  assert.ok(kernelSpans.receivedInAll > 0, 'kernel spans came back through the collector');
  assert.ok(kernelSpans.arrived <= kernelSpans.sampled && kernelSpans.latency.count === kernelSpans.arrived);
  assert.ok(mcp.latency.count > 0, 'explain_trace was asked while the load ran');
});
