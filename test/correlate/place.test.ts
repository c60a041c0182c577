import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JoinableSpan, SpanPlace } from '../../src/correlate/correlator.js';
import { HostIds } from '../../src/correlate/hostpid.js';
import { place } from '../../src/correlate/place.js';
import { ProcessTable } from '../../src/kernel/processes.js';

const pid = process.pid;

function span(resource: Record<string, unknown>, attributes: Record<string, unknown> = {}): JoinableSpan {
  return {
    traceId: 'a'.repeat(32),
    spanId: 'b'.repeat(16),
    name: 'GET /',
    startUnixNano: 1n,
    endUnixNano: 2n,
    attributes,
    resource,
  };
}

test('a span is placed on its host process and thread, as far as it says', () => {
  const hostIds = new HostIds(new ProcessTable());
  const cases: [string, JoinableSpan, string, SpanPlace | undefined][] = [
    ['no process.pid: not placed', span({}), 'causeway.thread.tid', undefined],
    [
      'the thread attribute names the tid',
      span({ 'process.pid': pid }, { 'causeway.thread.tid': pid + 1 }),
      'causeway.thread.tid',
      { hostPid: pid, hostTid: pid + 1 },
    ],
    [
      'ids may arrive as bigints',
      span({ 'process.pid': BigInt(pid) }, { 'causeway.thread.tid': 7n }),
      'causeway.thread.tid',
      { hostPid: pid, hostTid: 7 },
    ],
    [
      'the configured attribute, not the default one',
      span({ 'process.pid': pid }, { 'causeway.thread.tid': 7, 'thread.id': 8 }),
      'thread.id',
      { hostPid: pid, hostTid: 8 },
    ],
    [
      'without a thread: the whole process',
      span({ 'process.pid': pid, 'telemetry.sdk.language': 'python' }),
      'causeway.thread.tid',
      { hostPid: pid },
    ],
    [
      'a Node span runs on the main thread',
      span({ 'process.pid': pid, 'telemetry.sdk.language': 'nodejs' }),
      'causeway.thread.tid',
      { hostPid: pid, hostTid: pid },
    ],
    [
      'a container this host does not run: not here',
      span({ 'process.pid': 1, 'container.id': 'f'.repeat(64) }),
      'causeway.thread.tid',
      undefined,
    ],
  ];
  for (const [what, s, attribute, expected] of cases) assert.deepEqual(place(s, hostIds, attribute), expected, what);
});
