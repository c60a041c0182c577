// A smoke test with the MCP Inspector's own CLI, over HTTP and over stdio (`causeway mcp`).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ROOT } from '../bpf/session.js';
import { KNOWN_TRACE, serveKnownTrace } from './server.js';

// The CLI looks for its own package.json relative to the working directory: run it from its build folder.
const INSPECTOR = join(ROOT, 'node_modules', '@modelcontextprotocol', 'inspector-cli', 'build');

async function inspect(args: string[]): Promise<unknown> {
  const { stdout } = await promisify(execFile)(process.execPath, [join(INSPECTOR, 'cli.js'), '--cli', ...args], {
    cwd: INSPECTOR,
    timeout: 60_000,
  });
  return JSON.parse(stdout.slice(stdout.indexOf('{'))) as unknown;
}

test('the Inspector CLI lists the tools and calls one over Streamable HTTP', async (t) => {
  const { url } = await serveKnownTrace(t);
  const listed = (await inspect([url, '--transport', 'http', '--method', 'tools/list'])) as {
    tools: { name: string }[];
  };
  assert.ok(listed.tools.some((tool) => tool.name === 'explain_trace'));
  const called = (await inspect([
    url,
    '--transport',
    'http',
    '--method',
    'tools/call',
    '--tool-name',
    'explain_trace',
    '--tool-arg',
    `trace_id=${KNOWN_TRACE}`,
  ])) as { structuredContent: { root_cause: { kind: string } } };
  assert.equal(called.structuredContent.root_cause.kind, 'futex.wait');
});

test('the Inspector CLI calls a tool through causeway mcp over stdio', async (t) => {
  const { url } = await serveKnownTrace(t);
  const called = (await inspect([
    process.execPath,
    join(ROOT, 'dist', 'src', 'cli', 'main.js'),
    'mcp',
    '--url',
    url,
    '--method',
    'tools/call',
    '--tool-name',
    'find_stalls',
    '--tool-arg',
    'kind=futex.wait',
  ])) as { structuredContent: { stalls: { other: { tid: number } }[] } };
  assert.equal(called.structuredContent.stalls[0]?.other.tid, 12);
});
