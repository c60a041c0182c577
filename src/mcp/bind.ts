// Where MCP may be served: on loopback, or beyond it with a bearer token (http.ts says why). Apart
// from the server, so that the configuration and the main thread check it without loading the
// MCP SDK (the server runs in a thread of its own: thread.ts).
const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

export const isLoopback = (host: string) => LOOPBACK_NAMES.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);

export class McpBindError extends Error {}

/** Why MCP may not be served at `host` with this token, or undefined when it may. */
export function mcpBindProblem(host: string, token: string | undefined): string | undefined {
  if (isLoopback(host) || (token !== undefined && token !== '')) return undefined;
  return `--mcp ${host}: serving MCP beyond loopback needs a bearer token (--mcp-token-file or CAUSEWAY_MCP_TOKEN)`;
}
