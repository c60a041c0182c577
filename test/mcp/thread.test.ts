import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test, type TestContext } from 'node:test';
import { Worker } from 'node:worker_threads';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { TestMeter } from '../export/meter.js';
import { KNOWN_TRACE, serveKnownTraceFromThread } from './server.js';

interface Explained {
  structuredContent?: { root_cause?: { kind: string; culprit: { tid: number } } };
  error?: string;
}

/** An agent (agent-thread.ts) on `url`, connected; `answered` counts its answers. */
async function agent(t: TestContext, url: string) {
  const answered = new SharedArrayBuffer(4);
  const worker = new Worker(new URL('./agent-thread.js', import.meta.url), { workerData: { url, answered } });
  t.after(() => worker.terminate());
  const [first] = (await once(worker, 'message')) as [unknown];
  assert.equal(first, 'connected');
  const explain = async (traceId: string): Promise<Explained> => {
    worker.postMessage(traceId);
    const [result] = (await once(worker, 'message')) as [Explained];
    return result;
  };
  return { worker, explain, answered: new Int32Array(answered) };
}

function assertExplained(result: Explained): void {
  assert.equal(result.error, undefined);
  assert.equal(result.structuredContent?.root_cause?.kind, 'futex.wait');
  assert.equal(result.structuredContent.root_cause.culprit.tid, 12);
}

test('explain_trace is answered while the main thread is held, its loop not turning', async (t) => {
  const { url } = await serveKnownTraceFromThread(t);
  const { worker, explain, answered } = await agent(t, url);
  // The first call connects the server's thread to the store's worker, through the main thread.
  const began = performance.now();
  assertExplained(await explain(KNOWN_TRACE));
  const callMs = performance.now() - began;
  worker.postMessage(KNOWN_TRACE);
  // Held far longer than a call took just now: an answer that needed this thread's loop could not come.
  const held = Atomics.wait(answered, 0, 1, Math.max(5_000, 50 * callMs));
  assert.notEqual(
    held,
    'timed-out',
    `no answer within ${String(Math.max(5_000, 50 * callMs))} ms of the main thread held`,
  );
  const [result] = (await once(worker, 'message')) as [Explained];
  assertExplained(result);
});

test('the tools read the store again once its worker is started again, on a port to the new one', async (t) => {
  const { url, store } = await serveKnownTraceFromThread(t);
  const { explain } = await agent(t, url);
  assertExplained(await explain(KNOWN_TRACE));
  const restarted = once((store as unknown as { worker: Worker }).worker, 'exit');
  await (store as unknown as { worker: Worker }).worker.terminate();
  await restarted;
  // In memory, the rows went with the worker: the new one answers that the trace is not there.
  const after = await explain(KNOWN_TRACE);
  assert.equal(after.error, undefined);
  assert.equal(store.counters().workerRestarts, 1);
  assert.match(JSON.stringify(after), /is not in local store/);
});

test('a thread that fails is reported, counted and started again on the same port; its heap is its own', async (t) => {
  const m = new TestMeter();
  const { server, logged, url } = await serveKnownTraceFromThread(t, m.meter);
  // 40 MiB live on the main thread, which the server's thread's heap must not include.
  const held = Array.from({ length: 40 }, () => new Array<number>(128 * 1024).fill(0.5));
  const heap = await m.value('causeway_mcp_heap_bytes');
  assert.ok(heap !== undefined && heap > 0 && heap < 40 * 2 ** 20, `heap ${String(heap)}`);
  assert.equal(held.length, 40);
  const failed = server.worker;
  await failed.terminate();
  const c = new Client({ name: 'test', version: '1' });
  t.after(() => c.close());
  // Until the new thread listens, the port refuses connections.
  for (let tries = 0; ; tries++) {
    try {
      await c.connect(new StreamableHTTPClientTransport(new URL(url)));
      break;
    } catch (error) {
      if (tries > 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  assert.notEqual(server.worker, failed);
  assert.match(logged.join('\n'), /the MCP server's thread failed \(exit code 1\); starting it again/);
  assert.equal(await m.value('causeway_mcp_thread_failures'), 1);
  assert.equal(await m.value('causeway_mcp_thread_restarts'), 1);
  const result = (await c.callTool({ name: 'explain_trace', arguments: { trace_id: KNOWN_TRACE } })) as Explained;
  assertExplained(result);
});

test('a thread that keeps failing as it starts is not started again a fourth time: MCP is down, and says so', async (t) => {
  const m = new TestMeter();
  const { server, logged, url } = await serveKnownTraceFromThread(t, m.meter);
  for (let failure = 1; failure <= 4; failure++) {
    const failed = server.worker;
    await failed.terminate();
    await until(() => failure === 4 || server.worker !== failed);
  }
  await until(() => logged.some((line) => line.includes('MCP is down')));
  assert.match(logged.at(-1) ?? '', /the MCP server's thread failed \(exit code 1\), 4 times in a row: MCP is down/);
  assert.equal(await m.value('causeway_mcp_thread_failures'), 4);
  assert.equal(await m.value('causeway_mcp_thread_restarts'), 3);
  await assert.rejects(fetch(url, { method: 'POST' }), 'no server listens once MCP is down');
});

/** Waits until `done` says so, looking every 20 ms. */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => setTimeout(resolve, 20));
}
