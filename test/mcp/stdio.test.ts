import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ROOT } from '../bpf/session.js';
import { KNOWN_TRACE, serveKnownTrace } from './server.js';

const CAUSEWAY = join(ROOT, 'dist', 'src', 'cli', 'main.js');

test('causeway mcp answers over stdio from the sidecar it points at, token included', async (t) => {
  const { url } = await serveKnownTrace(t, { token: 'bridge-token' });
  const client = new Client({ name: 'agent', version: '1' });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [CAUSEWAY, 'mcp', '--url', url],
      env: { ...process.env, CAUSEWAY_MCP_TOKEN: 'bridge-token' },
    }),
  );
  t.after(() => client.close());
  assert.equal((await client.listTools()).tools.length, 7);
  const result = await client.callTool({ name: 'explain_trace', arguments: { trace_id: KNOWN_TRACE } });
  assert.equal((result.structuredContent as { root_cause: { kind: string } }).root_cause.kind, 'futex.wait');
  assert.deepEqual(
    (await client.listPrompts()).prompts.map((p) => p.name),
    ['diagnose_slow_request'],
  );
});

test('causeway mcp with no sidecar running answers each request with an error naming the address', async (t) => {
  const client = new Client({ name: 'agent', version: '1' });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [CAUSEWAY, 'mcp', '--url', 'http://127.0.0.1:9/mcp'],
      stderr: 'ignore',
    }),
  );
  t.after(() => client.close());
  await assert.rejects(client.listTools(), /sidecar at http:\/\/127\.0\.0\.1:9\/mcp is not reachable/);
});
