// `causeway run` stopped with SIGTERM, as Kubernetes stops a pod: it joins the spans still
// waiting for the watermark (held here by stopping the loader, SIGSTOP, so that no watermark
// comes; it is let go, SIGCONT, with the SIGTERM, and reads what the ring kept), exports their kernel spans and exits 0 within its deadline; when
// the collector does not answer, it still exits by the deadline, with EXIT_CUT_SHORT and a line
// saying what it left. "Within the deadline" is what the kubelet checks: a process still running
// at the grace period (the deadline plus the manifest's margin) is killed, and stop() then
// resolves null instead of an exit code. The collector here is a real OTLP/gRPC receiver.
// With a CUDA process probed, the loader's detaching of the CUDA probes fits in the deadline too.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { EXIT_CUT_SHORT } from '../../src/cli/run.js';
import { startOtlpReceiver, type AppSpan } from '../../src/otlp/index.js';
import { ROOT, childrenOf, kernelAvailable, privateGpu, startWorkload } from '../bpf/session.js';
import { loaderPid, spawnSidecar, startSidecar, startSidecarExportingNowhere, until } from './sidecar.js';

const NODE_APP = join(ROOT, 'test', 'fixtures', 'apps', 'node_fsync_service.mjs');
const DEADLINE_S = 2;
/** docker/kubernetes/causeway.yaml's margin between the deadline and terminationGracePeriodSeconds. */
const GRACE_MARGIN_S = 5;
const GRACE_MS = (DEADLINE_S + GRACE_MARGIN_S) * 1000;

/** The program a process runs; '' once it has gone. */
function command(pid: number): string {
  try {
    return readFileSync(`/proc/${String(pid)}/cmdline`, 'utf8').split('\0')[0] ?? '';
  } catch {
    return '';
  }
}

/**
 * A request's span that the sidecar holds, unjoined: once the app is followed (its first span
 * joined), the loader is stopped, so no watermark passes the request's end. Returns the request
 * and a stop() that sends the sidecar SIGTERM and lets the loader go on.
 */
async function pendingRequest(sidecar: Awaited<ReturnType<typeof startSidecar>>) {
  const app = startWorkload(process.execPath, [NODE_APP, '/var/tmp', '8'], {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${String(sidecar.grpcPort)}`,
  });
  await until('the app followed', 10_000, async () =>
    /^causeway_correlator_spans_joined_total [1-9]/m.test(await sidecar.metrics()) ? true : undefined,
  );
  const loader = await loaderPid(sidecar.pid);
  process.kill(loader, 'SIGSTOP');
  const truth = (await app.truth) as { trace_id: string; span_id: string };
  await until('the request span waiting to be joined', 10_000, async () =>
    /^causeway_correlator_spans_pending [1-9]/m.test(await sidecar.metrics()) ? true : undefined,
  );
  assert.match(await sidecar.metrics(), /^causeway_export_spans_sent_total 0$/m, 'nothing joined before SIGTERM');
  const stop = () => {
    const stopped = sidecar.stop('SIGTERM', GRACE_MS);
    process.kill(loader, 'SIGCONT');
    return stopped;
  };
  return { truth, stop };
}

test('on SIGTERM the spans waiting are joined and their kernel spans exported, and it exits 0 within the deadline', async (t) => {
  if (!kernelAvailable(t)) return;
  const received: AppSpan[] = [];
  const collector = await startOtlpReceiver({
    grpc: { host: '127.0.0.1', port: 0 },
    http: false,
    onSpans: (spans) => {
      received.push(...spans);
    },
  });
  t.after(() => collector.close());
  const sidecar = await startSidecar(`http://127.0.0.1:${String(collector.grpcPort)}`, '127.0.0.1:0', [
    '--join-watermark-ms',
    '600000',
    '--shutdown-deadline-s',
    String(DEADLINE_S),
  ]);
  t.after(() => sidecar.stop());
  const { truth, stop } = await pendingRequest(sidecar);

  assert.equal(await stop(), 0, sidecar.log());
  const children = received.filter((s) => s.traceId === truth.trace_id && s.parentSpanId === truth.span_id);
  assert.ok(
    children.some((s) => s.name === 'kernel activity'),
    `the request's kernel spans reached the collector; got ${received.map((s) => s.name).join(', ')}`,
  );
  const stopped = /stopped: exported (\d+) kernel spans, dropped 0/.exec(sidecar.log());
  assert.ok(stopped, sidecar.log());
  assert.equal(received.length, Number(stopped[1]), 'every kernel span it exported was received');
});

test('with the collector not answering, SIGTERM still ends it at the deadline, saying what was left', async (t) => {
  if (!kernelAvailable(t)) return;
  // Accepts connections and never answers: each export waits for its own timeout, past the deadline.
  const sockets = new Set<Socket>();
  const blackHole = createServer((socket) => sockets.add(socket));
  await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        blackHole.close(resolve);
      }),
  );
  const port = (blackHole.address() as { port: number }).port;
  const sidecar = await startSidecar(`http://127.0.0.1:${String(port)}`, '127.0.0.1:0', [
    '--join-watermark-ms',
    '600000',
    '--shutdown-deadline-s',
    String(DEADLINE_S),
  ]);
  t.after(() => sidecar.stop());
  const { stop } = await pendingRequest(sidecar);

  assert.equal(await stop(), EXIT_CUT_SHORT, sidecar.log());
  assert.match(
    sidecar.log(),
    new RegExp(
      `shutdown deadline of ${String(DEADLINE_S)} s passed( while closing the exporter)?: [1-9]\\d* kernel spans not exported, 0 store rows not written; earlier, exported 0 kernel spans and dropped 0$`,
      'm',
    ),
  );
});

test('on SIGTERM with a CUDA process probed, it detaches the CUDA probes and exits 0 within the deadline', async (t) => {
  if (!kernelAvailable(t)) return;
  // Found by its library, not followed: its calls run through the probes until the stop.
  const gpu = startWorkload('launch_storm', ['--rate', '2000', '--burst-ms', '1', '--seconds', '60'], privateGpu(t));
  t.after(() => gpu.child.kill('SIGKILL'));
  gpu.truth.catch(() => undefined); // killed once the test is done: its truth is not used
  const sidecar = await startSidecarExportingNowhere(t, ['--shutdown-deadline-s', String(DEADLINE_S)]);
  await until('the simulated runtime probed', 15_000, () =>
    /probing \d+ CUDA entry points in .*cudasim\//.test(sidecar.log()) ? true : undefined,
  );
  assert.equal(gpu.child.exitCode, null, 'the CUDA process still runs');

  assert.equal(await sidecar.stop('SIGTERM', GRACE_MS), 0, sidecar.log());
  assert.doesNotMatch(sidecar.log(), /shutdown deadline of/);
});

test('a SIGTERM while the parts start is heard: it finishes starting, then stops and exits 0', async (t) => {
  if (!kernelAvailable(t)) return;
  const sink = await startOtlpReceiver({ grpc: { host: '127.0.0.1', port: 0 }, http: false, onSpans: () => {} });
  t.after(() => sink.close());
  const { child, log, exited } = spawnSidecar(`http://127.0.0.1:${String(sink.grpcPort)}`);
  t.after(() => child.kill('SIGKILL'));
  // Held in its start: the loader, started by the capture step (before the receiver, the metrics
  // and MCP), is stopped before it can say it is ready.
  const deadline = Date.now() + 15_000;
  let loader: number | undefined;
  while (loader === undefined) {
    assert.ok(Date.now() < deadline, `no loader started: ${log()}`);
    loader = childrenOf(child.pid ?? 0).find((pid) => command(pid).endsWith('causeway-loader'));
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  process.kill(loader, 'SIGSTOP');
  child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.doesNotMatch(log(), /receiving OTLP on/, 'still starting when SIGTERM came');
  process.kill(loader, 'SIGCONT');
  // Null, and the log saying so, had the signal ended it.
  assert.equal(await exited, 0, log());
  assert.match(log(), /receiving OTLP on .*\n(.*\n)*.*stopped: exported 0 kernel spans/);
});
