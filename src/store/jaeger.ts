// Cluster mode on Jaeger: traces come from its stable HTTP query API (/api/v3, OTLP/JSON in
// {"result": ...}), where Causeway exported each app span's kernel events as child spans.
import { rootSpan } from '../correlate/critical-path.js';
import type { TraceQuery, TraceSummary } from '../correlate/source.js';
import { FetchingSource, getJson, readTraces, type BackendOptions, type TraceContents } from './otlp-json.js';

/** Jaeger finds the first traces that match, not the slowest: ask for this many at least, then sort. */
const SEARCH_DEPTH = 100;

function result(answer: unknown): unknown {
  return typeof answer === 'object' && answer !== null && 'result' in answer ? answer.result : undefined;
}

/** RFC 3339 with nanoseconds, as Jaeger parses it (Go's time.RFC3339Nano). */
function rfc3339(unixNano: bigint): string {
  const seconds = new Date(Number(unixNano / 1_000_000_000n) * 1000).toISOString().slice(0, 19);
  return `${seconds}.${(unixNano % 1_000_000_000n).toString().padStart(9, '0')}Z`;
}

export class JaegerSource extends FetchingSource {
  constructor(url: string, options: BackendOptions = {}) {
    super('jaeger', url, options);
  }

  protected tracePath(id: string): string {
    return `api/v3/traces/${id}`;
  }

  protected tracesData(answer: unknown): unknown {
    return result(answer);
  }

  async slowTraces(query: TraceQuery): Promise<TraceSummary[]> {
    // Jaeger v1 takes only these snake_case names; v2 prefers camelCase and still takes them.
    const params = new URLSearchParams({
      'query.start_time_min': rfc3339(query.from),
      'query.start_time_max': rfc3339(query.to),
      'query.num_traces': String(Math.max(query.limit, SEARCH_DEPTH)),
    });
    if (query.service !== undefined) params.set('query.service_name', query.service);
    if (query.minDurationMs !== undefined)
      params.set('query.duration_min', `${Math.round(query.minDurationMs * 1e6)}ns`);
    const answer = await getJson(this.backend, `api/v3/traces?${params.toString()}`);
    if (answer === undefined) return [];
    const found: { summary: TraceSummary; contents: TraceContents }[] = [];
    for (const [traceId, contents] of readTraces(result(answer))) {
      const span = rootSpan(contents.spans);
      if (span === undefined) continue; // only kernel spans so far
      const durationMs = Number(span.endUnixNano - span.startUnixNano) / 1e6;
      // Jaeger's duration_min matches any span of the trace; the summary is about the root.
      if (durationMs < (query.minDurationMs ?? 0)) continue;
      found.push({
        summary: { traceId, service: span.service, name: span.name, startUnixNano: span.startUnixNano, durationMs },
        contents,
      });
    }
    const slowest = found.sort((a, b) => b.summary.durationMs - a.summary.durationMs).slice(0, query.limit);
    // The next questions are likely about these: keep their events at hand.
    for (const { summary, contents } of slowest) this.fetched.add(summary.traceId, contents);
    return slowest.map((f) => f.summary);
  }
}
