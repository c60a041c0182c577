// Cluster mode on Grafana Tempo: a trace by id from /api/traces/<id> (OTLP/JSON, ids in
// base64), recent traces from /api/search with a TraceQL query.
import { z } from 'zod';
import type { TraceQuery, TraceSummary } from '../correlate/source.js';
import { FetchingSource, getJson, type BackendOptions } from './otlp-json.js';

/** Tempo answers with the first traces found, not the slowest: ask for this many at least, then sort. */
const SEARCH_LIMIT = 100;

const SearchAnswer = z.object({
  traces: z
    .array(
      z.object({
        traceID: z.string(),
        rootServiceName: z.string().optional(),
        rootTraceName: z.string().optional(),
        startTimeUnixNano: z.string().regex(/^\d+$/),
        /** Absent under 1 ms. */
        durationMs: z.number().optional(),
      }),
    )
    .nullish(),
});

/** A TraceQL string literal: its escapes are Go's, of which JSON's are a subset. */
const traceqlString = (text: string) => JSON.stringify(text);

/** The TraceQL that finds traces of a service, slower than a threshold. */
function traceql(query: TraceQuery): string {
  const conditions: string[] = [];
  if (query.service !== undefined) conditions.push(`resource.service.name = ${traceqlString(query.service)}`);
  if (query.minDurationMs !== undefined) conditions.push(`traceDuration >= ${Math.round(query.minDurationMs * 1e6)}ns`);
  return conditions.length === 0 ? '{}' : `{ ${conditions.join(' && ')} }`;
}

export class TempoSource extends FetchingSource {
  constructor(url: string, options: BackendOptions = {}) {
    super('tempo', url, options);
  }

  /** No start/end: a window narrows the search and can miss the trace. */
  protected tracePath(id: string): string {
    return `api/traces/${id}`;
  }

  protected tracesData(answer: unknown): unknown {
    return answer;
  }

  async slowTraces(query: TraceQuery): Promise<TraceSummary[]> {
    const params = new URLSearchParams({
      q: traceql(query),
      // Unix seconds, widened so that the window holds [from, to].
      start: String(query.from / 1_000_000_000n),
      end: String((query.to + 999_999_999n) / 1_000_000_000n),
      limit: String(Math.max(query.limit, SEARCH_LIMIT)),
    });
    const answer = await getJson(this.backend, `api/search?${params.toString()}`);
    if (answer === undefined) return [];
    const parsed = SearchAnswer.safeParse(answer);
    if (!parsed.success) throw new Error(`${this.name}: unexpected search answer: ${z.prettifyError(parsed.error)}`);
    const summaries = (parsed.data.traces ?? []).flatMap((t): TraceSummary[] => {
      // Tempo drops a trace id's leading zeros in search results.
      const traceId = t.traceID.padStart(32, '0');
      if (!/^[0-9a-f]{32}$/i.test(traceId)) return [];
      const summary = {
        traceId: traceId.toLowerCase(),
        service: t.rootServiceName ?? '',
        name: t.rootTraceName ?? '',
        startUnixNano: BigInt(t.startTimeUnixNano),
        durationMs: t.durationMs ?? 0,
      };
      return summary.startUnixNano >= query.from && summary.startUnixNano < query.to ? [summary] : [];
    });
    return summaries.sort((a, b) => b.durationMs - a.durationMs).slice(0, query.limit);
  }
}
