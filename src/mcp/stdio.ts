// `causeway mcp`: the MCP server over stdio, for agent clients that launch servers as
// subprocesses. It holds no data: every request is passed to the running sidecar's HTTP
// endpoint, so the answers are the sidecar's. It connects on first use (and again after a
// failure), so an agent may start before the sidecar does.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import {
  CallToolRequestSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ErrorCode,
} from '@modelcontextprotocol/sdk/types.js';

export interface BridgeOptions {
  /** The sidecar's MCP endpoint. */
  url: string;
  token?: string;
}

export async function serveStdioBridge(options: BridgeOptions): Promise<void> {
  let client: Promise<Client> | undefined;
  const sidecar = (): Promise<Client> => {
    client ??= (async () => {
      const c = new Client({ name: 'causeway-mcp-bridge', version: '0.1.0' });
      const headers = options.token === undefined ? undefined : { authorization: `Bearer ${options.token}` };
      await c.connect(
        new StreamableHTTPClientTransport(
          new URL(options.url),
          headers === undefined ? {} : { requestInit: { headers } },
        ),
      );
      return c;
    })();
    return client.catch((e: unknown) => {
      client = undefined;
      throw new McpError(
        ErrorCode.InternalError,
        `the Causeway sidecar at ${options.url} is not reachable (is \`causeway run\` running?): ${e instanceof Error ? e.message : String(e)}`,
      );
    });
  };

  // A proxy passes requests through unchanged: the low-level Server is the SDK's API for that.
  // eslint-disable-next-line @typescript-eslint/no-deprecated
  const server = new Server({ name: 'causeway', version: '0.1.0' }, { capabilities: { tools: {}, prompts: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async (request) => (await sidecar()).listTools(request.params));
  server.setRequestHandler(CallToolRequestSchema, async (request) => (await sidecar()).callTool(request.params));
  server.setRequestHandler(ListPromptsRequestSchema, async (request) => (await sidecar()).listPrompts(request.params));
  server.setRequestHandler(GetPromptRequestSchema, async (request) => (await sidecar()).getPrompt(request.params));
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    transport.onclose = resolve;
    process.stdin.once('end', resolve);
  });
  await server.connect(transport);
  await closed;
  await (await client?.catch(() => undefined))?.close();
}
