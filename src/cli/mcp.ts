// `causeway mcp`: the stdio MCP server agent clients launch as a subprocess; it answers from
// the running sidecar (`causeway run`) through its HTTP endpoint. stdout is the protocol.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { serveStdioBridge } from '../mcp/stdio.js';
import { UsageError } from './usage.js';

export const MCP_HELP = `Usage: causeway mcp [--url URL] [--token-file FILE]

An MCP server on stdin/stdout for agent clients that launch servers as subprocesses
(e.g. "command": "causeway", "args": ["mcp"]). It holds no data: each request goes to
the running sidecar's MCP endpoint and the sidecar answers. Needs no privileges.

Options:
  --url URL          the sidecar's MCP endpoint (default http://127.0.0.1:4419/mcp)
  --token-file FILE  bearer token for the sidecar (or CAUSEWAY_MCP_TOKEN)
`;

export async function mcp(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { url: { type: 'string' }, 'token-file': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(MCP_HELP);
    return 0;
  }
  const url = values.url ?? 'http://127.0.0.1:4419/mcp';
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol))
    throw new UsageError(`--url ${url}: expected an http(s) URL`);
  const token =
    values['token-file'] === undefined
      ? process.env.CAUSEWAY_MCP_TOKEN
      : readFileSync(values['token-file'], 'utf8').trim();
  await serveStdioBridge({ url, ...(token === undefined || token === '' ? {} : { token }) });
  return 0;
}
