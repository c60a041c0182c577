// `causeway mcp`: the stdio MCP server agent clients launch as a subprocess; it answers from
// the running sidecar (`causeway run`) through its HTTP endpoint. stdout is the protocol.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { MCP_PATH } from '../mcp/http.js';
import { serveStdioBridge } from '../mcp/stdio.js';
import { DEFAULT_CONFIG } from '../sidecar/index.js';
import { UsageError } from './usage.js';

/** Where `causeway run` serves MCP by default. */
const SIDECAR_URL = `http://${DEFAULT_CONFIG.mcp.host}:${String(DEFAULT_CONFIG.mcp.port)}${MCP_PATH}`;

export const MCP_HELP = `Usage: causeway mcp [--url URL] [--token-file FILE]

An MCP server on stdin/stdout for agent clients that launch servers as subprocesses
(e.g. "command": "causeway", "args": ["mcp"]). It holds no data: each request goes to
the running sidecar's MCP endpoint and the sidecar answers. Needs no privileges.

Options:
  --url URL          the sidecar's MCP endpoint (default ${SIDECAR_URL})
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
  const url = values.url ?? SIDECAR_URL;
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol))
    throw new UsageError(`--url ${url}: expected an http(s) URL`);
  const token =
    values['token-file'] === undefined
      ? process.env.CAUSEWAY_MCP_TOKEN
      : readFileSync(values['token-file'], 'utf8').trim();
  await serveStdioBridge({ url, ...(token === undefined || token === '' ? {} : { token }) });
  return 0;
}
