// `causeway run` killed with SIGKILL and started again on the same --store-path: a request
// traced before the kill is still explained, through a real MCP client, with the same answer.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ROOT, kernelAvailable, startWorkload } from '../bpf/session.js';
import { startSidecar, until, type Sidecar } from './sidecar.js';

const NODE_APP = join(ROOT, 'test', 'fixtures', 'apps', 'node_fsync_service.mjs');

async function explain(sidecar: Sidecar, traceId: string) {
  const mcp = new Client({ name: 'store-restart', version: '1' });
  await mcp.connect(new StreamableHTTPClientTransport(new URL(sidecar.mcpUrl)));
  try {
    const result = await mcp.callTool({ name: 'explain_trace', arguments: { trace_id: traceId } });
    const status = await mcp.callTool({ name: 'status', arguments: {} });
    return {
      explanation: result.isError === true ? undefined : (result.structuredContent as { root_cause: unknown }),
      store: (status.structuredContent as { store: { events: number; path: string; diskBytes: number } }).store,
    };
  } finally {
    await mcp.close();
  }
}

test('after SIGKILL and a restart on the same store, a trace from before is still explained', async (t) => {
  if (!kernelAvailable(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'causeway-store-'));
  t.after(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const args = ['--store-path', join(dir, 'store.duckdb')];
  const first = await startSidecar('http://127.0.0.1:9', '127.0.0.1:0', args);
  t.after(() => first.stop());
  const app = startWorkload(process.execPath, [NODE_APP, '/var/tmp', '8'], {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${String(first.grpcPort)}`,
  });
  const truth = (await app.truth) as { trace_id: string };
  const before = await until('the request explained', 20_000, async () => {
    const answer = await explain(first, truth.trace_id);
    return answer.explanation?.root_cause == null ? undefined : answer;
  });
  assert.equal(await first.stop('SIGKILL'), null, 'killed, not exited');

  const second = await startSidecar('http://127.0.0.1:9', '127.0.0.1:0', args);
  t.after(() => second.stop());
  const after = await explain(second, truth.trace_id);
  assert.deepEqual(after.explanation, before.explanation);
  assert.equal(after.store.path, join(dir, 'store.duckdb'));
  assert.ok(after.store.events >= before.store.events, 'every event written before the kill is there');
  assert.ok(after.store.diskBytes > 0);
});
