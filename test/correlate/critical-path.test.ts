import assert from 'node:assert/strict';
import { test } from 'node:test';
import { criticalPath } from '../../src/correlate/critical-path.js';
import type { TraceSpan } from '../../src/correlate/source.js';

const span = (spanId: string, start: number, end: number, parentSpanId?: string): TraceSpan => ({
  traceId: 't',
  spanId,
  service: 's',
  name: spanId,
  startUnixNano: BigInt(start),
  endUnixNano: BigInt(end),
  ...(parentSpanId === undefined ? {} : { parentSpanId }),
});
const render = (spans: TraceSpan[]) =>
  criticalPath(spans).map((s) => `${s.span.spanId}:${String(s.start)}-${String(s.end)}`);

test('the path follows the child that finished last, then the one before it, and the parent fills the gaps', () => {
  const spans = [span('root', 0, 1000), span('a', 100, 400, 'root'), span('b', 300, 900, 'root')];
  assert.deepEqual(render(spans), ['root:0-100', 'a:100-300', 'b:300-900', 'root:900-1000']);
});

test('a child that began after the one the parent waited for is off the path, nested children are walked', () => {
  const spans = [
    span('root', 0, 1000),
    span('a', 0, 800, 'root'),
    span('a1', 200, 700, 'a'),
    span('late', 850, 900, 'root'),
    span('early', 10, 20, 'root'),
  ];
  // late ends last and is on the path; a ends before late begins; early is hidden under a.
  assert.deepEqual(render(spans), [
    'a:0-200',
    'a1:200-700',
    'a:700-800',
    'root:800-850',
    'late:850-900',
    'root:900-1000',
  ]);
});

test('a trace without its root still has a path: the longest span whose parent is missing', () => {
  const spans = [span('x', 0, 100, 'missing'), span('y', 0, 300, 'missing2')];
  assert.deepEqual(render(spans), ['y:0-300']);
});
