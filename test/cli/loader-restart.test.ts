// The loader killed under a running `causeway run`, for real: it is started again, follows
// again the process it was told of (from an app span) and probes the simulated CUDA library
// again, so both workloads' events reach the store after the restart; the restart, the time
// without capture and the events lost meanwhile are counted in /metrics and said in the log.
// A loader killed again and again is reported as failing, in `status` and /metrics, while
// spans are still received and MCP still answers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { LoaderReport } from '../../src/kernel/capture.js';
import { kernelAvailable, privateGpu, startWorkload } from '../bpf/session.js';
import { startSidecarExportingNowhere, until } from './sidecar.js';

const nowNs = () => BigInt(Date.now()) * 1_000_000n;
/**
 * A killed loader can take tens of seconds to exit on a busy machine: the kernel detaches each of
 * its uprobes in turn, waiting for an RCU grace period each time.
 */
const EXIT_MS = 90_000;
const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);

test('a loader killed with SIGKILL is restarted, and one that keeps failing is reported', async (t) => {
  if (!kernelAvailable(t)) return;
  const sidecar = await startSidecarExportingNowhere(t);
  // A GPU process (found by its library, followed without a span) and a plain one followed from its span.
  const gpu = startWorkload('launch_storm', ['--rate', '200', '--seconds', '600'], privateGpu(t));
  const plain = startWorkload('switch_pingpong', ['--rate', '1000', '--seconds', '600']);
  t.after(() => {
    for (const workload of [gpu, plain]) {
      workload.truth.catch(() => undefined); // killed before its end
      workload.child.kill();
    }
  });
  assert.equal((await sidecar.postSpans(plain.pid)).status, 200);

  const mcp = new Client({ name: 'loader-restart', version: '1' });
  await mcp.connect(new StreamableHTTPClientTransport(new URL(sidecar.mcpUrl)));
  t.after(() => mcp.close());
  const status = async () => {
    const result = await mcp.callTool({ name: 'status', arguments: {} });
    assert.notEqual(result.isError, true);
    const text = (result.content as { text: string }[])[0]?.text ?? '';
    return { loader: (result.structuredContent as { loader: LoaderReport }).loader, text };
  };
  const count = async (where: string) => {
    const result = await mcp.callTool({ name: 'query_sql', arguments: { sql: `SELECT count(*) FROM ${where}` } });
    assert.notEqual(result.isError, true, JSON.stringify(result.content));
    return Number((result.structuredContent as { rows: unknown[][] }).rows[0]?.[0]);
  };
  const eventsSince = (pid: number, kind: string, since: bigint) =>
    until(`${kind} events of pid ${String(pid)} after ${String(since)}`, 20_000, async () =>
      (await count(
        `kernel_events WHERE pid = ${String(pid)} AND kind LIKE '${kind}%' AND start_ns > ${String(since)}`,
      )) > 0
        ? true
        : undefined,
    );

  await eventsSince(gpu.pid, 'cuda.launch', 0n);
  await eventsSince(plain.pid, 'futex.wait', 0n);
  const first = await status();
  assert.equal(first.loader.running, true);
  assert.equal(first.loader.restarts, 0);
  const killed = first.loader.pid ?? 0;

  process.kill(killed, 'SIGKILL');
  const back = await until('a new loader', EXIT_MS, async () => {
    const { loader } = await status();
    return loader.running && loader.pid !== killed && loader.restarts === 1 ? loader : undefined;
  }).catch((error: unknown) => {
    throw new Error(`${String(error)}: ${JSON.stringify(status)}\n${sidecar.log()}`);
  });
  await until('the gap to be counted', 20_000, () => (/capture is back after/.test(sidecar.log()) ? true : undefined));
  const resumed = nowNs();
  await eventsSince(gpu.pid, 'cuda.launch', resumed);
  await eventsSince(plain.pid, 'futex.wait', resumed);
  const gap = /capture is back after (\d+) ms without a loader \(restart 1\); about (\d+) kernel events were lost/.exec(
    sidecar.log(),
  );
  assert.ok(gap, sidecar.log());
  t.diagnostic(gap[0]);
  assert.ok(Number(gap[1]) > 0);
  assert.ok(Number(gap[2]) > 0, `both workloads ran on during the gap: ${sidecar.log()}`);
  // Restarted once its output ended, before its exit (the kernel detaching its uprobes) completed.
  assert.match(sidecar.log(), /the loader's output ended; restarting in \d+ ms \(1 exits in a row\)/);
  const afterOne = await sidecar.metrics();
  assert.equal(metric(afterOne, 'causeway_loader_restarts_total'), 1);
  assert.equal(metric(afterOne, 'causeway_loader_up'), 1);
  assert.equal(metric(afterOne, 'causeway_kernel_events_lost_in_gaps_total'), Number(gap[2]));
  assert.equal(metric(afterOne, 'causeway_capture_gap_seconds_total'), Number(gap[1]) / 1000);

  // Killed twice more as soon as it is back: three exits within HEALTHY_RUN_MS, a loader that keeps failing.
  let pid = back.pid ?? 0;
  for (const restarts of [2, 3]) {
    process.kill(pid, 'SIGKILL');
    pid = await until(`restart ${String(restarts)}`, EXIT_MS, async () => {
      const { loader } = await status();
      return loader.running && loader.restarts === restarts ? (loader.pid ?? undefined) : undefined;
    }).catch((error: unknown) => {
      throw new Error(`${String(error)}: ${JSON.stringify(status)}\n${sidecar.log()}`);
    });
  }
  process.kill(pid, 'SIGKILL');
  // The fourth restart waits 4 s after the exit (backoff 0.5, 1, 2, 4 s): meanwhile it is reported down and failing.
  const failing = await until('the fourth exit', EXIT_MS, async () => {
    const s = await status();
    return s.loader.failuresInARow === 4 ? s : undefined;
  });
  assert.equal(failing.loader.running, false, 'asked before the restart');
  // The last exit status is known once a killed loader's exit completes, which may come later.
  assert.match(failing.text, /^loader down, restarting, failing: 4 exits in a row(, the last on SIGKILL)?, 3 restarts/);
  const down = await sidecar.metrics();
  assert.equal(metric(down, 'causeway_loader_up'), 0);
  assert.equal(metric(down, 'causeway_loader_failures_in_a_row'), 4);
  const during = await sidecar.postSpans(plain.pid);
  assert.equal(during.status, 200, 'spans are received while the loader is down');
  assert.equal((await status()).loader.running, false, 'still down: all of this happened meanwhile');

  await until('the loader back once more', EXIT_MS, async () => ((await status()).loader.running ? true : undefined));
  const again = nowNs();
  await eventsSince(gpu.pid, 'cuda.launch', again);
  await eventsSince(plain.pid, 'futex.wait', again);
  assert.equal(await count(`spans WHERE trace_id = '${String(during.traceIds[0])}'`), 1, 'the span is in the store');
  await until('the killed loaders to exit', EXIT_MS, () =>
    // Replaced once its output ended, or killed before its hello and restarted at its exit.
    (sidecar.log().match(/exited on SIGKILL/g) ?? []).length === 4 ? true : undefined,
  );
  assert.equal((await status()).loader.lastExit, 'on SIGKILL');
});
