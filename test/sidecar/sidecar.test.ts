// startSidecar with the real probes: it starts every part and closes them all; when a part
// cannot start (its port is taken), the parts started before it are closed, the loader is
// stopped, their ports are free again, and the error says which part failed. Its status lists
// the GPU processes on the node.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { loaderPath } from '../../src/install.js';
import { StartError, sidecarConfig, startSidecar } from '../../src/sidecar/index.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SIM_CUDART, kernelAvailable, privateGpu, startWorkload, waitForStderr } from '../bpf/session.js';
import { canListen, freePort } from '../e2e/backends.js';
import { MAX_LAG_MS } from '../../src/kernel/capture.js';

const MS = 1_000_000n;

/** Nothing listens on the discard port: export fails, which these tests do not look at. */
const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' };

/** Loaders that this process started and that still run. */
function loadersRunning(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && readlinkSync(`/proc/${entry}/exe`) === loaderPath) pids.push(Number(entry));
    } catch {
      // It exited while we looked.
    }
  }
  return pids;
}

const ENDPOINT_KEYS = ['otlp-grpc', 'otlp-http', 'metrics', 'mcp'] as const;
/** The tests' stores go with them, leaving a node agent's default store alone. */
const IN_MEMORY_STORE = { 'store-path': ':memory:' };

test('a started sidecar runs a loader, reports the status of its parts, and close frees everything', async (t) => {
  if (!kernelAvailable(t)) return;
  const flags = {
    ...Object.fromEntries(ENDPOINT_KEYS.map((key) => [key, '127.0.0.1:0'])),
    ...IN_MEMORY_STORE,
    'join-watermark-ms': '750',
    'store-max-spans': '5000',
  };
  const sidecar = await startSidecar(sidecarConfig({ flags, env: {} }), { log: () => undefined, env });
  t.after(() => sidecar.close());
  assert.equal(loadersRunning().length, 1);
  const status = await sidecar.status();
  assert.equal(status.lag.maxJoinWaitMs, 750, 'the longest join wait is the configured one');
  assert.equal(status.store.maxSpans, 5000);
  assert.equal(status.export.url, env.OTEL_EXPORTER_OTLP_ENDPOINT);
  assert.equal(status.receiver.spansAccepted, 0);
  const metrics = await (await fetch(`http://127.0.0.1:${String(sidecar.metricsPort)}/metrics`)).text();
  assert.match(metrics, /^causeway_receiver_spans_accepted_total 0$/m);
  assert.equal((await fetch(sidecar.mcpUrl)).status, 405, 'MCP answers (POST only)');
  const ports = [sidecar.grpcPort, sidecar.httpPort, sidecar.metricsPort, Number(new URL(sidecar.mcpUrl).port)];
  const report = await sidecar.close();
  assert.equal(report.complete, true, 'nothing was pending');
  assert.equal(report.export.queued, 0);
  assert.deepEqual(loadersRunning(), [], 'the loader is stopped');
  for (const port of ports) assert.ok(await canListen(port), `port ${String(port)} is free again`);
});

test('a part that cannot start closes the parts started before it, and the error names it', async (t) => {
  if (!kernelAvailable(t)) return;
  // Closing the exporter while unwinding once asked for a timer of Infinity ms (TimeoutOverflowWarning).
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const blocker = createServer();
  const taken = await new Promise<number>((resolve) => {
    blocker.listen(0, '127.0.0.1', () => {
      resolve((blocker.address() as { port: number }).port);
    });
  });
  t.after(() => new Promise((resolve) => blocker.close(resolve)));
  // In start order: each of these comes after the store, the exporter and kernel capture.
  const cases: [step: string, key: (typeof ENDPOINT_KEYS)[number]][] = [
    ['the OTLP receiver', 'otlp-http'],
    ['the metrics server', 'metrics'],
    ['the MCP server', 'mcp'],
  ];
  for (const [step, blocked] of cases) {
    const ports = Object.fromEntries(
      await Promise.all(ENDPOINT_KEYS.map(async (key) => [key, key === blocked ? taken : await freePort()] as const)),
    );
    const flags = {
      ...Object.fromEntries(Object.entries(ports).map(([key, port]) => [key, `127.0.0.1:${String(port)}`])),
      ...IN_MEMORY_STORE,
    };
    await assert.rejects(
      startSidecar(sidecarConfig({ flags, env: {} }), { log: () => undefined, env }),
      (e: unknown) =>
        e instanceof StartError &&
        e.step === step &&
        e.message === `cannot start ${step}: cannot listen on 127.0.0.1:${String(taken)}: the address is in use`,
    );
    assert.deepEqual(loadersRunning(), [], `${step}: the loader is stopped`);
    for (const [key, port] of Object.entries(ports))
      if (key !== blocked) assert.ok(await canListen(port), `${step}: the ${key} port is free again`);
  }
  assert.deepEqual(warnings, [], 'unwinding warns of nothing');
});

test('the status tool lists every GPU process with the library it uses, spans or not, and one that exits leaves it', async (t) => {
  if (!kernelAvailable(t)) return;
  const gpu = privateGpu(t);
  // Running before the sidecar, sending no spans.
  const engine = startWorkload('graph_engine', ['--seconds', '120', '--gap-ms', '20'], gpu);
  engine.truth.catch(() => undefined);
  t.after(() => {
    if (engine.child.exitCode === null) engine.child.kill('SIGKILL');
  });
  await waitForStderr(engine, 'replaying');
  const flags = { ...Object.fromEntries(ENDPOINT_KEYS.map((key) => [key, '127.0.0.1:0'])), ...IN_MEMORY_STORE };
  const sidecar = await startSidecar(sidecarConfig({ flags, env: {} }), { log: () => undefined, env });
  t.after(() => sidecar.close());
  const client = new Client({ name: 'causeway-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(sidecar.mcpUrl)));
  t.after(() => client.close());
  const gpuProcesses = async () => {
    const result = await client.callTool({ name: 'status', arguments: {} });
    const status = result.structuredContent as {
      gpu: { processes: { pid: number; comm: string; libraries: string[] }[] };
    };
    return { text: JSON.stringify(result.content), processes: status.gpu.processes };
  };

  const found = await gpuProcesses();
  const listed = found.processes.find((p) => p.pid === engine.pid);
  assert.deepEqual(listed, { pid: engine.pid, comm: 'graph_engine', libraries: [SIM_CUDART], since: 'running' });
  assert.match(found.text, /using CUDA/);
  const metrics = await (await fetch(`http://127.0.0.1:${String(sidecar.metricsPort)}/metrics`)).text();
  const gauge = Number(/^causeway_gpu_processes (\d+)$/m.exec(metrics)?.[1]);
  assert.ok(gauge >= 1, `causeway_gpu_processes ${String(gauge)}`);
  engine.child.kill('SIGTERM');
  await engine.truth;
  // The loader says so as soon as it handles the exit record (at most its 10 ms poll later).
  const deadline = Date.now() + 5000;
  let after = await gpuProcesses();
  while (after.processes.some((p) => p.pid === engine.pid) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    after = await gpuProcesses();
  }
  assert.equal(
    after.processes.find((p) => p.pid === engine.pid),
    undefined,
    'the exited engine is still listed',
  );
});

test('kernel events the capture sheds while the sidecar is stalled are stored as a shed stretch, read through MCP', async (t) => {
  if (!kernelAvailable(t)) return;
  const gpu = privateGpu(t);
  const engine = startWorkload('graph_engine', ['--seconds', '120', '--gap-ms', '5'], gpu);
  engine.truth.catch(() => undefined);
  t.after(() => {
    if (engine.child.exitCode === null) engine.child.kill('SIGKILL');
  });
  await waitForStderr(engine, 'replaying');
  const flags = {
    ...Object.fromEntries(ENDPOINT_KEYS.map((key) => [key, '127.0.0.1:0'])),
    ...IN_MEMORY_STORE,
    pid: [String(engine.pid)],
  };
  const sidecar = await startSidecar(sidecarConfig({ flags, env: {} }), { log: () => undefined, env });
  t.after(() => sidecar.close());
  const client = new Client({ name: 'causeway-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(sidecar.mcpUrl)));
  t.after(() => client.close());
  const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
  const deadline = Date.now() + 15_000;
  while (total((await sidecar.status()).capture.events) === 0 && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(total((await sidecar.status()).capture.events) > 0, "the engine's kernel events are captured");
  // The sidecar's main thread stalls past MAX_LAG_MS: the engine's events of that time wait in the
  // loader's pipe, and are shed undecoded once it reads them again.
  const from = BigInt(Date.now()) * MS;
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3 * MAX_LAG_MS);
  const to = BigInt(Date.now()) * MS;
  const overlapping = async () => {
    const result = await client.callTool({
      name: 'query_sql',
      arguments: { sql: 'SELECT from_ns, to_ns FROM shed_times' },
    });
    const rows = (result.structuredContent as { rows: [string, string][] }).rows;
    return rows.filter(([start, end]) => BigInt(start) < to && BigInt(end) >= from);
  };
  let stored = await overlapping();
  while (stored.length === 0 && Date.now() < deadline + 15_000) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    stored = await overlapping();
  }
  const { capture } = await sidecar.status();
  assert.ok(total(capture.shedLate) + total(capture.shed) + total(capture.shedDelivered) > 0, JSON.stringify(capture));
  assert.ok(stored.length > 0, 'a stretch of shed_times overlaps the stall');
});
