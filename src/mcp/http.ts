// The MCP server over Streamable HTTP, stateless: each POST to /mcp gets a fresh server and
// transport. In front of it, what the MCP specification asks of a local server (its
// Transports chapter, Streamable HTTP, "Security Warning";
// https://modelcontextprotocol.io/specification/2025-11-25/basic/transports): a present
// Origin must be on the allow-list and a loopback bind only answers loopback Host names (both
// against DNS rebinding), a bearer token is required whenever one is configured and always off
// loopback, tokens in the query string are refused, concurrent requests are bounded, and so is
// each request: one JSON-RPC message of at most 4 MiB. A batch is refused (MCP removed batches
// in 2025-06-18; the SDK still runs up to a hundred calls of one, which would pass the bound on
// concurrent requests).
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isLoopback, mcpBindProblem, McpBindError } from './bind.js';
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
/** The largest request body, as the SDK's own limit. */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
function refuse(
  res: http.ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
  code = -32000,
): void {
  // A JSON-RPC error without an id, as the transport specification allows; nothing internal in it.
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
}

type Refusal = [status: number, code: number, message: string];

/** The request's JSON-RPC message, or why it is refused. Past the size bound the rest is read and dropped. */
function readMessage(req: http.IncomingMessage): Promise<{ message: unknown } | Refusal> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (size > MAX_MESSAGE_BYTES) return; // refused already
      size += chunk.length;
      if (size <= MAX_MESSAGE_BYTES) chunks.push(chunk);
      else {
        chunks.length = 0;
        resolve([413, -32000, `request body over ${String(MAX_MESSAGE_BYTES)} bytes`]);
      }
    });
    req.on('error', reject);
    req.on('end', () => {
      if (size > MAX_MESSAGE_BYTES) return;
      let message: unknown;
      try {
        message = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        resolve([400, -32700, 'Parse error: Invalid JSON']);
        return;
      }
      resolve(
        Array.isArray(message) ? [400, -32600, 'Invalid Request: JSON-RPC batches are not supported'] : { message },
      );
    });
  });
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** One request: its message, to a fresh server and transport, closed with the response. */
async function serve(req: http.IncomingMessage, res: http.ServerResponse, diagnostics: Diagnostics): Promise<void> {
  const read = await readMessage(req);
  if (Array.isArray(read)) {
    const [status, code, message] = read;
    refuse(res, status, message, status === 413 ? { connection: 'close' } : {}, code);
    return;
  }
  const mcp = createMcpServer(diagnostics);
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on('close', () => {
    void transport.close();
    void mcp.close();
  });
  await mcp.connect(transport);
  await transport.handleRequest(req, res, read.message);
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
    res.on('close', () => {
      inFlight--;
    });
    serve(req, res, diagnostics).catch(() => {
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
