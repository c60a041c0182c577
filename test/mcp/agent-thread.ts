// An agent in a thread of its own: an MCP client that calls explain_trace when told (a message
// with the trace id) and answers with the tool's result, and counts each answer in shared memory
// too, so that a test whose own event loop is held (Atomics.wait) still learns of it.
import { parentPort, workerData } from 'node:worker_threads';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const { url, answered } = workerData as { url: string; answered: SharedArrayBuffer };
const count = new Int32Array(answered);
const port = parentPort;
if (port === null) throw new Error('agent-thread.js runs as a worker');
const client = new Client({ name: 'agent-thread', version: '1' });
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
port.on('message', (traceId: string) => {
  void client.callTool({ name: 'explain_trace', arguments: { trace_id: traceId } }).then(
    (result) => {
      Atomics.add(count, 0, 1);
      Atomics.notify(count, 0);
      port.postMessage(result);
    },
    (error: unknown) => {
      port.postMessage({ error: String(error) });
    },
  );
});
port.postMessage('connected');
