// When `causeway run` joins an app span, for real: as soon as the capture has read the kernel's
// events up to the span's end (its watermark has passed it), not after a fixed wait, whether the
// span names its thread or only its process (which then takes, as it is read, another thread's
// wait that began inside it); and, with the loader stopped (no watermark comes), still, once the
// span has waited the longest join wait.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { SidecarStatus } from '../../src/sidecar/status.js';
import { kernelAvailable, startWorkload } from '../bpf/session.js';
import { startSidecarExportingNowhere, statusTool, until, type Sidecar } from './sidecar.js';

/** A sidecar exporting to a receiver of the test's own, a followed ping-pong, and its MCP status tool. */
async function setup(t: TestContext, longestJoinWaitMs: number, switchesPerS = 2000) {
  const sidecar = await startSidecarExportingNowhere(t, ['--join-watermark-ms', String(longestJoinWaitMs)]);
  const app = startWorkload('switch_pingpong', ['--rate', String(switchesPerS), '--seconds', '600']);
  t.after(() => {
    app.truth.catch(() => undefined); // killed before its end
    app.child.kill();
  });
  const status = await statusTool(t, sidecar, 'join-timing');
  // The first span makes the sidecar follow the app; its main thread ("ping") then waits on futexes.
  assert.equal((await sidecar.postSpans(app.pid, 1, 20_000_000n, app.pid)).status, 200);
  await until('the app followed', 20_000, async () =>
    ((await status()).capture.events['futex.wait'] ?? 0) > 0 ? true : undefined,
  );
  return { sidecar, app, status };
}

/** Whether the watermark in this status has passed `unixNano`. */
const passed = (s: SidecarStatus, unixNano: bigint) =>
  s.lag.watermarkUnixMs !== null && s.lag.watermarkUnixMs >= Number(unixNano) / 1e6;

/** Posts a span of the app ending now (of its main thread unless `thread` is false), and waits for every span to be joined. */
async function joinOne(
  sidecar: Sidecar,
  pid: number,
  status: () => Promise<SidecarStatus>,
  onStatus: (s: SidecarStatus, end: bigint) => void,
  { durationNs = 20_000_000n, thread = true } = {},
) {
  const before = (await status()).correlator;
  const { status: code, endUnixNano, traceIds } = await sidecar.postSpans(pid, 1, durationNs, thread ? pid : undefined);
  assert.equal(code, 200);
  const joined = await until('the span joined', 30_000, async () => {
    const s = await status();
    onStatus(s, endUnixNano);
    return s.correlator.spansJoined > before.spansJoined && s.correlator.spansPending === 0 ? s : undefined;
  });
  return { joined, endUnixNano, traceId: traceIds[0] ?? '', before };
}

test('a span on a known thread is joined as soon as the watermark passes its end, with its events, long before the longest join wait', async (t) => {
  if (!kernelAvailable(t)) return;
  // A minute: a span joined sooner was joined by the watermark.
  const { sidecar, app, status } = await setup(t, 60_000);
  const { joined, before } = await joinOne(sidecar, app.pid, status, (s, end) => {
    // One status is one snapshot: a watermark past the span's end has joined it.
    if (passed(s, end)) assert.equal(s.correlator.spansPending, 0, 'the watermark passed its end and it waits still');
  });
  assert.ok(joined.lag.joinDelayMs !== null);
  assert.ok(
    joined.lag.joinDelayMs.max < joined.lag.maxJoinWaitMs,
    `joined ${String(joined.lag.joinDelayMs.max)} ms after its end, not by the watermark`,
  );
  assert.ok(joined.lag.watermarkAgeMs !== null, 'the capture reports its own lag');
  assert.equal(joined.correlator.spansWithEvents, before.spansWithEvents + 1, "the span has its thread's futex waits");
  const metrics = await sidecar.metrics();
  assert.match(metrics, /^causeway_correlator_join_delay_seconds_count [1-9]\d*$/m);
  assert.match(metrics, /^causeway_correlator_watermark_age_seconds \d/m);
});

test("a span known only by its process is joined as soon as the watermark passes its end, and takes another thread's wait that began inside it as the wait ends", async (t) => {
  if (!kernelAvailable(t)) return;
  // 4 switches/s: "pong" blocks on a futex about half a second at a time, waiting for "ping" to
  // hand it the token; a span of the last 2 s holds the start of the wait it is in when the span ends.
  const { sidecar, app, status } = await setup(t, 60_000, 4);
  const { joined, before, traceId, endUnixNano } = await joinOne(
    sidecar,
    app.pid,
    status,
    (s, end) => {
      if (passed(s, end)) assert.equal(s.correlator.spansPending, 0, 'the watermark passed its end and it waits still');
    },
    { durationNs: 2_000_000_000n, thread: false },
  );
  assert.ok(joined.lag.joinDelayMs !== null);
  assert.ok(
    joined.lag.joinDelayMs.max < joined.lag.maxJoinWaitMs,
    `joined ${String(joined.lag.joinDelayMs.max)} ms after its end, not by the watermark`,
  );
  const late = await until("pong's wait, taken once it ended", 20_000, async () => {
    const s = await status();
    return s.correlator.eventsAttachedLate > before.eventsAttachedLate ? s : undefined;
  });
  assert.equal(late.correlator.spansJoined, before.spansJoined + 1);
  assert.match(await sidecar.metrics(), /^causeway_correlator_events_attached_late_total [1-9]\d*$/m);
  // The store has it attached to the span, as explain_trace reads it.
  const mcp = new Client({ name: 'join-timing-store', version: '1' });
  await mcp.connect(new StreamableHTTPClientTransport(new URL(sidecar.mcpUrl)));
  t.after(() => mcp.close());
  const sql = `SELECT count(*) FROM attachments a JOIN kernel_events e ON e.event_id = a.event_id WHERE a.trace_id = '${traceId}' AND e.pid = ${String(app.pid)} AND e.end_ns > ${String(endUnixNano)}`;
  await until('the wait stored as attached to the span', 20_000, async () => {
    const result = await mcp.callTool({ name: 'query_sql', arguments: { sql } });
    assert.notEqual(result.isError, true, JSON.stringify(result.content));
    return Number((result.structuredContent as { rows: unknown[][] }).rows[0]?.[0]) > 0 ? true : undefined;
  });
});

test('with the loader stopped no watermark comes, and a span is still joined after the longest join wait', async (t) => {
  if (!kernelAvailable(t)) return;
  const { sidecar, app, status } = await setup(t, 1000);
  const loader = (await status()).loader?.pid ?? 0;
  assert.ok(loader > 0);
  process.kill(loader, 'SIGSTOP');
  t.after(() => {
    try {
      process.kill(loader, 'SIGCONT');
    } catch {
      // already gone with the sidecar
    }
  });
  // What the loader wrote before it stopped is read; then the watermark stays where it is.
  const frozen = await until('the watermark to stop', 20_000, async () => {
    const first = (await status()).lag.watermarkUnixMs;
    await new Promise((resolve) => setTimeout(resolve, 300));
    const second = (await status()).lag.watermarkUnixMs;
    return first !== null && first === second ? first : undefined;
  });
  const { joined, endUnixNano } = await joinOne(sidecar, app.pid, status, () => undefined);
  process.kill(loader, 'SIGCONT');
  assert.equal(joined.lag.watermarkUnixMs, frozen, 'no watermark came while the loader was stopped');
  assert.ok(!passed(joined, endUnixNano), 'the watermark never passed the span: the longest join wait joined it');
  assert.equal(joined.lag.maxJoinWaitMs, 1000);
});
