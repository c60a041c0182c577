// The MCP server over Streamable HTTP, stateless: each POST to /mcp gets a fresh server and
// transport. In front of it, what the MCP specification asks of a local server (its
// Transports chapter, Streamable HTTP, "Security Warning";
// https://modelcontextprotocol.io/specification/2025-11-25/basic/transports): a present
// Origin must be on the allow-list and a loopback bind only answers loopback Host names (both
// against DNS rebinding), a bearer token is required whenever one is configured and always off
// loopback, tokens in the query string are refused, and concurrent requests are bounded.
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createMcpServer, type Diagnostics } from './tools.js';

export interface McpHttpOptions {
  host: string;
  port: number;
  /** Required off loopback. */
  token?: string;
  /** Origins allowed besides this server's own loopback ones. */
  allowedOrigins?: string[];
}

export interface McpHttpServer {
  port: number;
  url: string;
  close: () => Promise<void>;
}

export const MCP_PATH = '/mcp';
/** Requests served at once; more get 429. */
const MAX_CONCURRENT = 16;
const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

export const isLoopback = (host: string) => LOOPBACK_NAMES.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);

export class McpBindError extends Error {}

/** Why MCP may not be served at `host` with this token, or undefined when it may. */
export function mcpBindProblem(host: string, token: string | undefined): string | undefined {
  if (isLoopback(host) || (token !== undefined && token !== '')) return undefined;
  return `--mcp ${host}: serving MCP beyond loopback needs a bearer token (--mcp-token-file or CAUSEWAY_MCP_TOKEN)`;
}

function refuse(res: http.ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  // A JSON-RPC error without an id, as the transport specification allows; nothing internal in it.
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export async function serveMcp(options: McpHttpOptions, diagnostics: Diagnostics): Promise<McpHttpServer> {
  const problem = mcpBindProblem(options.host, options.token);
  if (problem !== undefined) throw new McpBindError(problem);
  const loopback = isLoopback(options.host);
  let inFlight = 0;
  let allowedOrigins = new Set<string>();

  /** Why a request is refused, or undefined to serve it. */
  const refusal = (req: http.IncomingMessage): [number, string, Record<string, string>?] | undefined => {
    const url = new URL(req.url ?? '/', 'http://placeholder');
    if (url.pathname !== MCP_PATH) return [404, `not found: the MCP endpoint is ${MCP_PATH}`];
    const hostName = (req.headers.host ?? '').replace(/:\d+$/, '');
    if (loopback && !isLoopback(hostName)) return [403, 'forbidden: Host is not a loopback name'];
    const origin = req.headers.origin;
    if (origin !== undefined && !allowedOrigins.has(origin)) return [403, 'forbidden: Origin not allowed'];
    if (url.searchParams.has('access_token') || url.searchParams.has('token'))
      return [400, 'tokens are accepted only in the Authorization header'];
    if (options.token !== undefined && options.token !== '') {
      const match = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '');
      if (match?.[1] === undefined || !sameSecret(match[1], options.token))
        return [
          401,
          'unauthorized: a valid bearer token is required',
          { 'www-authenticate': 'Bearer realm="causeway", error="invalid_token"' },
        ];
    }
    if (req.method !== 'POST')
      return [405, 'method not allowed: this server is stateless, POST JSON-RPC messages to /mcp', { allow: 'POST' }];
    if (inFlight >= MAX_CONCURRENT) return [429, 'too many concurrent requests', { 'retry-after': '1' }];
    return undefined;
  };

  const server = http.createServer((req, res) => {
    const refused = refusal(req);
    if (refused !== undefined) {
      refuse(res, ...refused);
      return;
    }
    inFlight++;
    const mcp = createMcpServer(diagnostics);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => {
      inFlight--;
      void transport.close();
      void mcp.close();
    });
    mcp
      .connect(transport)
      .then(() => transport.handleRequest(req, res))
      .catch(() => {
        if (!res.headersSent) refuse(res, 500, 'internal error');
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const own = ['127.0.0.1', 'localhost', '[::1]', ...(loopback ? [] : [options.host])].flatMap((h) => [
    `http://${h}:${String(port)}`,
    `https://${h}:${String(port)}`,
  ]);
  allowedOrigins = new Set([...own, ...(options.allowedOrigins ?? [])]);
  const hostInUrl = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    port,
    url: `http://${hostInUrl}:${String(port)}${MCP_PATH}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}
