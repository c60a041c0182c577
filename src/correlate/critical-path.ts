// The critical path of a trace: the spans whose own time the request's latency is made of.
// Walking back from the root's end, the child that finished last is what the parent waited
// for; before that child started, the next one back; what no child covers is the parent's own
// time. The same walk as Jaeger's critical-path view.
import type { TraceSpan } from './source.js';
import { byTime, earlier, later } from './time.js';

export interface PathSegment {
  span: TraceSpan;
  start: bigint;
  end: bigint;
}

/** The root: the longest span whose parent is not in the trace. */
export function rootSpan(spans: TraceSpan[]): TraceSpan | undefined {
  const ids = new Set(spans.map((s) => s.spanId));
  let root: TraceSpan | undefined;
  for (const span of spans) {
    if (span.parentSpanId !== undefined && ids.has(span.parentSpanId)) continue;
    if (root === undefined || span.endUnixNano - span.startUnixNano > root.endUnixNano - root.startUnixNano)
      root = span;
  }
  return root;
}

/** The root's segments in time order; together they cover the root exactly once. */
export function criticalPath(spans: TraceSpan[]): PathSegment[] {
  const root = rootSpan(spans);
  if (root === undefined) return [];
  const children = new Map<string, TraceSpan[]>();
  for (const span of spans) {
    if (span.parentSpanId === undefined || span === root) continue;
    const list = children.get(span.parentSpanId) ?? [];
    list.push(span);
    children.set(span.parentSpanId, list);
  }
  const segments: PathSegment[] = [];
  const walk = (span: TraceSpan, low: bigint, high: bigint, depth: number) => {
    let cursor = high;
    const latestFirst = [...(children.get(span.spanId) ?? [])].sort((a, b) => byTime(b.endUnixNano, a.endUnixNano));
    for (const child of depth < 64 ? latestFirst : []) {
      if (cursor <= low) break;
      if (child.startUnixNano >= cursor || child.endUnixNano <= low) continue;
      const childEnd = earlier(child.endUnixNano, cursor);
      const childStart = later(child.startUnixNano, low);
      if (childEnd < cursor) segments.push({ span, start: childEnd, end: cursor });
      walk(child, childStart, childEnd, depth + 1);
      cursor = childStart;
    }
    if (cursor > low) segments.push({ span, start: low, end: cursor });
  };
  walk(root, root.startUnixNano, root.endUnixNano, 0);
  return segments.sort((a, b) => byTime(a.start, b.start));
}
