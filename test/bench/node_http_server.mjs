// The Node thread-context bench's server (node-thread-ctx.ts): an HTTP server traced by
// @opentelemetry/sdk-node with its HTTP instrumentation, whose context manager GET /configure/NAME
// swaps between requests ("without": the SDK's default, AsyncLocalStorage; "control": another
// instance of it; "with": Causeway's
// ThreadContextManager; "continuations": it with { continuations: true }), so that every
// configuration runs in the one process (its code, JIT and heap), round after round. Each request
// awaits the loop a few times (an immediate, two promises), as a handler awaiting I/O does, then
// answers a small JSON body. Spans are recorded (ThreadTidSpanProcessor) but not exported: the
// export's CPU would only dilute the writer's share. Prints {"port", "tid"} (tid: the event
// loop's thread).
import { readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { setImmediate as immediate } from 'node:timers/promises';
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { ThreadContextManager } from 'causeway/thread-ctx';
import { ThreadTidSpanProcessor } from 'causeway/thread-tid';

const CONTEXT_MANAGERS = {
  without: new AsyncLocalStorageContextManager(),
  // The same manager again: what the rounds measure between two identical configurations.
  control: new AsyncLocalStorageContextManager(),
  with: new ThreadContextManager(),
  continuations: new ThreadContextManager({ continuations: true }),
};

new NodeSDK({
  serviceName: 'node-thread-ctx-bench',
  contextManager: CONTEXT_MANAGERS.without,
  spanProcessors: [new ThreadTidSpanProcessor()],
  instrumentations: [new HttpInstrumentation()],
}).start();
const http = createRequire(import.meta.url)('node:http'); // after start(), so that the instrumentation wraps it

const server = http.createServer(async (request, response) => {
  const configure = /^\/configure\/(\w+)$/.exec(request.url)?.[1];
  if (configure !== undefined) {
    // Between loads, no request in flight: the next ones run under the new manager.
    context.disable();
    context.setGlobalContextManager(CONTEXT_MANAGERS[configure].enable());
    response.end(configure);
    return;
  }
  await immediate();
  const body = await Promise.resolve({ path: request.url, at: Date.now() });
  await Promise.resolve();
  response.setHeader('content-type', 'application/json');
  response.end(JSON.stringify(body));
});
server.listen(0, '127.0.0.1', () => {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  process.stdout.write(`${JSON.stringify({ port: server.address().port, tid })}\n`);
});
