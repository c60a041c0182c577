// A kernel flood under `causeway run`, for real: unthrottled ping-pongs, one per core, followed, while an app
// sends spans over OTLP/HTTP. The sidecar decodes a bounded number of events per turn of its
// event loop, so every span is accepted and MCP answers; what it cannot keep up with is shed in
// the kernel and counted apart from ring-buffer drops; shedding stops once the flood is over.
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { test } from 'node:test';
import { kernelAvailable, startWorkload } from '../bpf/session.js';
import { startSidecarExportingNowhere, statusTool, until } from './sidecar.js';

const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);

test('under unthrottled ping-pongs every span is accepted and MCP answers; the kernel sheds and counts, and stops after the flood', async (t) => {
  if (!kernelAvailable(t)) return;
  // Reduction off: the flood is of whole waits (summed, they would be a few records per window
  // and thread, and not flood), and the calm ping-pong after it is counted wait by wait.
  const sidecar = await startSidecarExportingNowhere(t, ['--comm', 'switch_pingpong', '--reduce-window-ms', '0']);
  const status = await statusTool(t, sidecar, 'flood');

  // One per core: with every core taken, the sidecar cannot keep up with them (one alone, it sometimes did).
  const floods = Array.from({ length: availableParallelism() }, () =>
    startWorkload('switch_pingpong', ['--seconds', '8']),
  );
  const flood = floods[0];
  assert.ok(flood !== undefined);
  let spansSent = 0;
  let answers = 0;
  const otlpMs: number[] = [];
  const mcpMs: number[] = [];
  while (flood.child.exitCode === null) {
    const posted = performance.now();
    const { status: code } = await sidecar.postSpans(flood.pid, 100);
    const asked = performance.now();
    otlpMs.push(asked - posted);
    assert.equal(code, 200, 'a request of spans was refused under the flood');
    spansSent += 100;
    await status();
    answers++;
    mcpMs.push(performance.now() - asked);
  }
  const switches = (await Promise.all(floods.map((f) => f.truth))).reduce(
    (sum, truth) => sum + Number(truth.switches),
    0,
  );
  t.diagnostic(
    `the flood made ${String(switches)} switches; ${spansSent} spans sent, ${answers} MCP answers meanwhile; OTLP requests took ${otlpMs.map((ms) => ms.toFixed(0)).join(' ')} ms, MCP status ${mcpMs.map((ms) => ms.toFixed(0)).join(' ')} ms`,
  );

  // The ring still holds the flood's last records when shedding first stops, and draining them
  // may put the sidecar behind again: caught up is no shedding and shed counts (they come in
  // STATS frames, once a second) unchanged over 1.5 s.
  const settled = await until('shedding to stop and the shed counts to settle after the flood', 60_000, async () => {
    const first = await status();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const second = await status();
    const same = JSON.stringify(first.capture.shed) === JSON.stringify(second.capture.shed);
    return !first.capture.shedding && !second.capture.shedding && same ? second : undefined;
  });
  assert.ok(settled.capture.shedEpisodes > 0);
  const shedInKernel = total(settled.capture.shed);
  assert.ok(shedInKernel > 0, `nothing shed in the kernel: ${JSON.stringify(settled.capture)}`);
  t.diagnostic(
    `shed in the kernel ${shedInKernel}, in the sidecar ${total(settled.capture.shedDelivered)}, ring-buffer drops ${total(settled.capture.drops)}, over ${settled.capture.shedEpisodes} episodes`,
  );
  assert.equal(settled.receiver.spansAccepted, spansSent, 'every span accepted');
  assert.equal(settled.receiver.requestsRefused, 0);
  assert.equal(settled.correlator.spansRefused, 0);
  const metrics = await sidecar.metrics();
  assert.match(
    metrics,
    /^causeway_kernel_shed_total\{kind="(futex\.wait|sched\.blocked|sched\.runqueue)",where="kernel"\} [1-9]/m,
  );
  assert.match(metrics, /^causeway_kernel_shedding 0$/m);

  // After the flood nothing is shed: every wait of a short ping-pong is delivered (a STATS frame
  // after it says so) and the shed counts stay as they were. Followed by name, a process is
  // followed once the loader has read its exec record, which at full speed can come after its
  // 200 round trips: it starts them when the followed table holds it.
  await until("the flood's processes to leave the followed table", 20_000, async () =>
    (await status()).capture.followed === 0 ? true : undefined,
  );
  const short = startWorkload('switch_pingpong', ['--count', '200', '--wait-for-go']);
  t.after(() => short.child.kill());
  const before = await until('the short ping-pong followed', 20_000, async () => {
    const s = await status();
    return s.capture.followed === 1 ? s : undefined;
  });
  short.child.stdin.end('go\n');
  const waits = ((await short.truth) as { futex_waits: number[] }).futex_waits.reduce((a, b) => a + b, 0);
  const calm = await until('every wait of the short ping-pong delivered', 20_000, async () => {
    const s = await status();
    return (s.capture.delivered['futex.wait'] ?? 0) >= (before.capture.delivered['futex.wait'] ?? 0) + waits
      ? s
      : undefined;
  });
  assert.deepEqual(calm.capture.shed, settled.capture.shed, 'shed in the kernel after the flood');
  assert.deepEqual(calm.capture.shedDelivered, settled.capture.shedDelivered, 'shed in the sidecar after the flood');
  assert.equal(calm.capture.shedding, false);
  assert.equal(calm.capture.shedEpisodes, settled.capture.shedEpisodes);
});
