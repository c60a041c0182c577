import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StartError, Startup } from '../../src/sidecar/startup.js';

test('a failed start step closes the steps started, the last first, and the error names the step', async () => {
  const closed: string[] = [];
  const logged: string[] = [];
  const startup = new Startup((line) => logged.push(line));
  await startup.step(
    'the store',
    () => 'store',
    (part) => closed.push(part),
  );
  await startup.step(
    'the exporter',
    () => Promise.resolve('exporter'),
    () => {
      throw new Error('already gone');
    },
  );
  await startup.step(
    'kernel capture',
    () => 'capture',
    (part) => closed.push(part),
  );
  const taken = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:4419'), {
    code: 'EADDRINUSE',
    syscall: 'listen',
    address: '127.0.0.1',
    port: 4419,
  });
  await assert.rejects(
    startup.step(
      'the MCP server',
      () => Promise.reject(taken),
      () => closed.push('mcp'),
    ),
    (e: unknown) =>
      e instanceof StartError &&
      e.step === 'the MCP server' &&
      e.cause === taken &&
      e.message === 'cannot start the MCP server: cannot listen on 127.0.0.1:4419: the address is in use',
  );
  assert.deepEqual(closed, ['capture', 'store'], 'the exporter failed to close; the store was closed all the same');
  assert.deepEqual(logged, ['closing the exporter failed: already gone']);
  await startup.shutdown();
  assert.deepEqual(closed, ['capture', 'store'], 'shutting down again closes nothing twice');
});
