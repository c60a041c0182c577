// The store's questions behind find_stalls, compare_latency and gpu_activity: SQL over the
// kernel events, the spans and the attachments between them.
import type { DuckDBValue } from '@duckdb/node-api';
import { MS } from '../correlate/time.js';
import { SUMMARIZED } from '../kernel/events.js';
import * as A from '../semconv/attributes.js';
import type { StoreReader } from './reader.js';

type Cell = DuckDBValue | undefined;
const iso = (ns: Cell) => new Date(Number((ns as bigint) / MS)).toISOString();
const num = (v: Cell) => (v === null || v === undefined ? 0 : Number(v));
const str = (v: Cell) => (v === null || v === undefined ? null : String(v));

export interface Stall {
  kind: string;
  pid: number;
  tid: number;
  comm: string;
  start_time: string;
  duration_ms: number;
  other: { pid: number; tid: number | null; comm: string | null } | null;
  cuda_kernel: string | null;
  trace_id: string | null;
  span_id: string | null;
  service: string | null;
}

/** Launches are points, and summaries windows of short events, not stalls: listed only when asked for by kind. */
const NOT_STALLS = `(${[A.CAUSEWAY_KIND_VALUE_CUDA_LAUNCH, ...Object.keys(SUMMARIZED)].map((k) => `'${k}'`).join(', ')})`;

export async function findStalls(
  store: StoreReader,
  q: {
    kind?: string | undefined;
    pid?: number | undefined;
    service?: string | undefined;
    from: bigint;
    min_duration_ms: number;
    limit: number;
  },
): Promise<Stall[]> {
  const where = [
    `e.end_ns >= $1`,
    `e.duration_ms >= $2`,
    ...(q.kind === undefined ? [`e.kind NOT IN ${NOT_STALLS}`] : []),
  ];
  const params: DuckDBValue[] = [q.from, q.min_duration_ms, q.limit];
  const bind = (clause: string, value: DuckDBValue) => {
    params.push(value);
    where.push(clause.replace('?', `$${String(params.length)}`));
  };
  if (q.kind !== undefined) bind('e.kind = ?', q.kind);
  if (q.pid !== undefined) bind('e.pid = ?', q.pid);
  if (q.service !== undefined)
    bind(
      'e.event_id IN (SELECT a.event_id FROM attachments a JOIN spans s ON s.trace_id = a.trace_id AND s.span_id = a.span_id WHERE s.service = ?)',
      q.service,
    );
  // The longest first, then what they were attached to: the joins see only `limit` rows.
  const rows = await store.rows(
    `WITH top AS (SELECT * FROM kernel_events e WHERE ${where.join(' AND ')} ORDER BY e.duration_ms DESC LIMIT $3)
     SELECT e.kind, e.pid, e.tid, e.comm, e.start_ns, e.duration_ms, e.other_pid, e.other_tid, e.other_comm, e.cuda_kernel, a.trace_id, a.span_id, s.service
     FROM top e
     LEFT JOIN attachments a ON a.event_id = e.event_id
     LEFT JOIN spans s ON s.trace_id = a.trace_id AND s.span_id = a.span_id
     ORDER BY e.duration_ms DESC`,
    params,
  );
  return rows.map(([kind, pid, tid, comm, start, duration, opid, otid, ocomm, kernel, trace, span, service]) => ({
    kind: String(kind),
    pid: num(pid),
    tid: num(tid),
    comm: String(comm),
    start_time: iso(start),
    duration_ms: num(duration),
    other:
      opid === null || num(opid) === 0
        ? null
        : { pid: num(opid), tid: otid === null ? null : num(otid), comm: str(ocomm) },
    cuda_kernel: str(kernel),
    trace_id: str(trace),
    span_id: str(span),
    service: str(service),
  }));
}

export interface LatencyGroup {
  traces: number;
  threshold_ms: number | null;
  mean_duration_ms: number | null;
}

export interface LatencyComparison {
  service: string;
  slow: LatencyGroup;
  typical: LatencyGroup;
  kinds: { kind: string; slow_ms_per_trace: number; typical_ms_per_trace: number; difference_ms: number }[];
}

export async function compareLatency(
  store: StoreReader,
  q: { service: string; from: bigint; slowQuantile: number },
): Promise<LatencyComparison> {
  // A trace's duration is its spans' extent; slow ones are at or above the quantile, typical ones at or below the median.
  const groups = `
    WITH traces AS (
      SELECT trace_id, (max(end_ns) - min(start_ns)) / 1e6 AS duration_ms FROM spans
      WHERE start_ns >= $1 AND trace_id IN (SELECT trace_id FROM spans WHERE service = $2) GROUP BY trace_id),
    cut AS (SELECT quantile_cont(duration_ms, $3) AS slow_at, quantile_cont(duration_ms, 0.5) AS typical_at FROM traces),
    grouped AS (
      SELECT t.trace_id, t.duration_ms, cut.slow_at, cut.typical_at,
        CASE WHEN t.duration_ms >= cut.slow_at THEN 'slow' WHEN t.duration_ms <= cut.typical_at THEN 'typical' END AS grp
      FROM traces t, cut)`;
  const params: DuckDBValue[] = [q.from, q.service, q.slowQuantile];
  const summary = await store.rows(
    `${groups} SELECT grp, count(*), any_value(CASE grp WHEN 'slow' THEN slow_at ELSE typical_at END), avg(duration_ms) FROM grouped WHERE grp IS NOT NULL GROUP BY grp`,
    params,
  );
  const group = (name: string): LatencyGroup => {
    const row = summary.find((r) => r[0] === name);
    return row === undefined
      ? { traces: 0, threshold_ms: null, mean_duration_ms: null }
      : { traces: num(row[1]), threshold_ms: num(row[2]), mean_duration_ms: num(row[3]) };
  };
  const slow = group('slow');
  const typical = group('typical');
  const perKind = await store.rows(
    // A wait shared by N requests (linked.ts) counts 1/N in each, so the GPU time adds up once.
    `${groups} SELECT e.kind, g.grp, sum(e.duration_ms / coalesce(try_cast(e.attributes->>'$."${A.ATTR_CAUSEWAY_SHARED_COUNT}"' AS DOUBLE), 1)) FROM grouped g JOIN attachments a ON a.trace_id = g.trace_id JOIN kernel_events e ON e.event_id = a.event_id
     WHERE g.grp IS NOT NULL GROUP BY ALL`,
    params,
  );
  const kinds = new Map<string, { slow: number; typical: number }>();
  for (const [kind, grp, total] of perKind) {
    const k = kinds.get(String(kind)) ?? { slow: 0, typical: 0 };
    if (grp === 'slow') k.slow += num(total) / Math.max(1, slow.traces);
    else k.typical += num(total) / Math.max(1, typical.traces);
    kinds.set(String(kind), k);
  }
  return {
    service: q.service,
    slow,
    typical,
    kinds: [...kinds.entries()]
      .map(([kind, k]) => ({
        kind,
        slow_ms_per_trace: k.slow,
        typical_ms_per_trace: k.typical,
        difference_ms: k.slow - k.typical,
      }))
      .sort((a, b) => b.difference_ms - a.difference_ms),
  };
}

export interface GpuProcess {
  pid: number;
  comm: string;
  launches: number;
  sync_waits: number;
  sync_wait_ms: number;
  memcpy_count: number;
  memcpy_bytes: number;
  memcpy_ms: number;
  top_kernels: { name: string; launches: number }[];
  contention: { pid: number; comm: string; launches_during_waits: number }[];
}

/** The launches a cuda.launches summary stands for. */
const SUMMED = `CAST(json_extract(attributes, '$."${A.ATTR_CAUSEWAY_SUMMARY_COUNT}"') AS BIGINT)`;

export async function gpuActivity(store: StoreReader, q: { pid?: number; from: bigint }): Promise<GpuProcess[]> {
  const scope = q.pid === undefined ? '' : 'AND pid = $2';
  const params: DuckDBValue[] = q.pid === undefined ? [q.from] : [q.from, q.pid];
  const totals = await store.rows(
    `SELECT pid, any_value(comm), count(*) FILTER (kind = 'cuda.launch') + coalesce(sum(${SUMMED}) FILTER (kind = 'cuda.launches'), 0), count(*) FILTER (kind = 'cuda.sync'), coalesce(sum(duration_ms) FILTER (kind = 'cuda.sync'), 0),
       count(*) FILTER (kind = 'cuda.memcpy'), coalesce(sum(CAST(json_extract(attributes, '$."causeway.cuda.memcpy.bytes"') AS BIGINT)) FILTER (kind = 'cuda.memcpy'), 0),
       coalesce(sum(duration_ms) FILTER (kind = 'cuda.memcpy'), 0)
     FROM kernel_events WHERE kind LIKE 'cuda.%' AND end_ns >= $1 ${scope} GROUP BY pid ORDER BY 5 DESC, 3 DESC LIMIT 50`,
    params,
  );
  const kernels = await store.rows(
    `SELECT pid, kernel, sum(launches) AS n FROM (
       SELECT pid, cuda_kernel AS kernel, 1 AS launches FROM kernel_events
         WHERE kind = 'cuda.launch' AND cuda_kernel IS NOT NULL AND end_ns >= $1 ${scope}
       UNION ALL
       SELECT pid, unnest(CAST(json_extract(attributes, '$."${A.ATTR_CAUSEWAY_CUDA_KERNELS}"') AS VARCHAR[])),
         unnest(CAST(json_extract(attributes, '$."${A.ATTR_CAUSEWAY_CUDA_KERNEL_COUNTS}"') AS BIGINT[])) FROM kernel_events
         WHERE kind = 'cuda.launches' AND end_ns >= $1 ${scope})
     GROUP BY pid, kernel QUALIFY row_number() OVER (PARTITION BY pid ORDER BY n DESC) <= 5 ORDER BY pid, n DESC`,
    params,
  );
  // Contention: other processes' launches while this one waited on the GPU (a range join), on
  // the same device (a launch or wait whose device is not known may share it).
  const device = (e: string) => `CAST(json_extract(${e}.attributes, '$."${A.ATTR_CAUSEWAY_CUDA_DEVICE}"') AS INTEGER)`;
  const contention = await store.rows(
    `SELECT s.pid, l.pid, any_value(l.comm), sum(coalesce(${SUMMED.replace('attributes', 'l.attributes')}, 1)) AS n FROM kernel_events s JOIN kernel_events l
       ON l.kind IN ('cuda.launch', 'cuda.launches') AND l.pid <> s.pid AND l.start_ns >= s.start_ns AND l.start_ns < s.end_ns
       AND coalesce(${device('s')} = ${device('l')}, true)
     WHERE s.kind = 'cuda.sync' AND s.end_ns >= $1 ${scope.replace('pid', 's.pid')} AND l.end_ns >= $1
     GROUP BY s.pid, l.pid ORDER BY n DESC LIMIT 200`,
    params,
  );
  return totals.map(([pid, comm, launches, syncs, syncMs, copies, bytes, copyMs]) => ({
    pid: num(pid),
    comm: String(comm),
    launches: num(launches),
    sync_waits: num(syncs),
    sync_wait_ms: num(syncMs),
    memcpy_count: num(copies),
    memcpy_bytes: num(bytes),
    memcpy_ms: num(copyMs),
    top_kernels: kernels.filter((k) => k[0] === pid).map(([, name, n]) => ({ name: String(name), launches: num(n) })),
    contention: contention
      .filter((c) => c[0] === pid)
      .slice(0, 5)
      .map(([, other, otherComm, n]) => ({ pid: num(other), comm: String(otherComm), launches_during_waits: num(n) })),
  }));
}
