// Reading traces back from a tracing backend's HTTP query API (cluster mode). Jaeger's /api/v3
// and Tempo both answer with OTLP/JSON, in which Causeway's own kernel spans (scope `causeway`,
// made by src/export/spans.ts) are turned back into the kernel events they were made from, so
// the analysis sees the same app spans and events as from the local store. Also what the two
// backends' sources share: the bounded, timed GET and the cache of the traces they fetched.
import { z } from 'zod';
import type { EventWindow, ShedTime, TraceQuery, TraceSource, TraceSpan, TraceSummary } from '../correlate/source.js';
import { KIND_NAMES, type AttributeValue, type Attributes, type KernelEvent } from '../kernel/events.js';
import { Lru } from '../kernel/lru.js';
import { byTime } from '../correlate/time.js';
import * as A from '../semconv/attributes.js';

/** One trace as the analysis reads it: its app spans and the kernel events exported with them. */
export interface TraceContents {
  spans: TraceSpan[];
  events: KernelEvent[];
  /** The times of its kernel summary spans marked causeway.attach.shed: kernel events of them were shed. */
  shed: ShedTime[];
}

export interface BackendOptions {
  /** Per request, reading the answer included. */
  timeoutMs?: number;
  /** Traces kept to answer events() and gpuEvents(). */
  cachedTraces?: number;
  /** A larger answer is refused rather than held in memory. */
  maxResponseBytes?: number;
}

const KERNEL_SCOPE = 'causeway';
const THREAD_NAME = 'thread.name';
/** Keys spans.ts adds to say where an event was attached; not the event's own attributes. */
const BOOKKEEPING = new Set([
  A.ATTR_CAUSEWAY_KIND,
  A.ATTR_CAUSEWAY_THREAD_TID,
  A.ATTR_CAUSEWAY_ATTACH_SCOPE,
  A.ATTR_CAUSEWAY_DURATION_MS,
  THREAD_NAME,
]);
const KINDS = new Set<string>(Object.values(KIND_NAMES));
const isKind = (kind: string): kind is A.CausewayKindValue => KINDS.has(kind);

// Only the fields read here; protojson may write 64-bit integers as strings or numbers.
const scalarValue = {
  stringValue: z.string().optional(),
  intValue: z.union([z.string(), z.number()]).optional(),
  doubleValue: z.union([z.number(), z.string()]).optional(),
  boolValue: z.boolean().optional(),
};
const ScalarValue = z.object(scalarValue);
const AnyValue = z.object({
  ...scalarValue,
  arrayValue: z.object({ values: z.array(ScalarValue).optional() }).optional(),
});
const KeyValues = z.array(z.object({ key: z.string(), value: AnyValue.optional() })).optional();
const UnixNano = z.union([z.string().regex(/^\d+$/), z.number().int().nonnegative()]).transform((v) => BigInt(v));
const Span = z.object({
  traceId: z.string(),
  spanId: z.string(),
  parentSpanId: z.string().optional(),
  name: z.string().default(''),
  startTimeUnixNano: UnixNano,
  endTimeUnixNano: UnixNano,
  attributes: KeyValues,
  events: z.array(z.object({ timeUnixNano: UnixNano, attributes: KeyValues })).optional(),
});
const ResourceSpans = z.array(
  z.object({
    resource: z.object({ attributes: KeyValues }).optional(),
    scopeSpans: z
      .array(z.object({ scope: z.object({ name: z.string().optional() }).optional(), spans: z.array(Span).optional() }))
      .optional(),
  }),
);
/** OTLP says resourceSpans; Tempo's /api/traces says batches. */
const TracesData = z.object({ resourceSpans: ResourceSpans.optional(), batches: ResourceSpans.optional() });

function scalar(value: z.infer<typeof ScalarValue>): string | number | boolean | undefined {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return Number(value.doubleValue);
  return value.boolValue;
}

function attributeValue(value: z.infer<typeof AnyValue>): AttributeValue | undefined {
  if (value.arrayValue === undefined) return scalar(value);
  const items = (value.arrayValue.values ?? []).map(scalar);
  if (items.every((i): i is string => typeof i === 'string')) return items;
  if (items.every((i): i is number => typeof i === 'number')) return items;
  return undefined; // mixed or nested arrays: Causeway never exports them
}

function attributes(list: z.infer<typeof KeyValues>): Attributes {
  const out: Attributes = {};
  for (const { key, value } of list ?? []) {
    const decoded = value === undefined ? undefined : attributeValue(value);
    if (decoded !== undefined) out[key] = decoded;
  }
  return out;
}

const integer = (value: unknown) => (typeof value === 'number' && Number.isInteger(value) ? value : undefined);

/** An id as lowercase hex: Jaeger writes ids in hex, Tempo's /api/traces in base64 (protobuf bytes in JSON). */
function idHex(id: string, bytes: number): string | undefined {
  if (id.length === bytes * 2 && /^[0-9a-f]+$/i.test(id)) return id.toLowerCase();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(id)) return undefined;
  const raw = Buffer.from(id, 'base64');
  return raw.length === bytes ? raw.toString('hex') : undefined;
}

/** A trace id as the backends' URLs take it; throws on anything else, which never reaches a URL. */
export function traceIdHex(traceId: string): string {
  if (!/^[0-9a-f]{32}$/i.test(traceId))
    throw new Error(`not a trace id (32 hex digits): ${JSON.stringify(traceId.slice(0, 64))}`);
  return traceId.toLowerCase();
}

/**
 * A kernel span (end given) or a summary's span event (end from its duration) as the event it
 * was made from. `pid` is the app's, as its resource says; in a container that is the
 * namespace's, and the event's own NSpid attribute gives the host's, which kernel data uses.
 */
function kernelEvent(attrs: Attributes, pid: number, start: bigint, end?: bigint): KernelEvent | undefined {
  const kind = attrs[A.ATTR_CAUSEWAY_KIND];
  const tid = integer(attrs[A.ATTR_CAUSEWAY_THREAD_TID]);
  if (typeof kind !== 'string' || !isKind(kind) || tid === undefined) return undefined;
  const comm = attrs[THREAD_NAME];
  const nspid = attrs[A.ATTR_CAUSEWAY_PROCESS_NSPID];
  const durationMs = attrs[A.ATTR_CAUSEWAY_DURATION_MS];
  return {
    kind,
    pid: (Array.isArray(nspid) ? integer(nspid[0]) : undefined) ?? pid,
    tid,
    comm: typeof comm === 'string' ? comm : '',
    startUnixNano: start,
    endUnixNano: end ?? start + (typeof durationMs === 'number' ? BigInt(Math.round(durationMs * 1e6)) : 0n),
    attributes: Object.fromEntries(Object.entries(attrs).filter(([key]) => !BOOKKEEPING.has(key))),
  };
}

function contentsOf(byTrace: Map<string, TraceContents>, traceId: string): TraceContents {
  let contents = byTrace.get(traceId);
  if (contents === undefined) {
    contents = { spans: [], events: [], shed: [] };
    byTrace.set(traceId, contents);
  }
  return contents;
}

/**
 * The traces in an OTLP/JSON TracesData, by trace id: app spans apart from Causeway's kernel
 * spans, which become kernel events again. Throws when the document is not TracesData.
 */
export function readTraces(document: unknown): Map<string, TraceContents> {
  const parsed = TracesData.safeParse(document);
  if (!parsed.success) throw new Error(`the answer is not OTLP/JSON TracesData: ${z.prettifyError(parsed.error)}`);
  const byTrace = new Map<string, TraceContents>();
  // A containerised app names its namespace's pid and tid; its kernel spans tell the host's,
  // which the events carry: app spans take them too, so that both sides use the same ids.
  const hostPids = new Map<string, number>(); // by the app's process (container.id/pid)
  const hostTids = new Map<string, number>(); // by app span (trace id + span id), from its thread-scoped kernel spans
  const appProcesses = new Map<TraceSpan, { processKey: string; mainThread: boolean }>();
  for (const resourceSpans of parsed.data.resourceSpans ?? parsed.data.batches ?? []) {
    const resource = attributes(resourceSpans.resource?.attributes);
    const serviceName = resource['service.name'];
    const service = typeof serviceName === 'string' ? serviceName : 'unknown_service';
    const pid = integer(resource[A.ATTR_PROCESS_PID]);
    const container = resource[A.ATTR_CONTAINER_ID];
    const processKey = `${typeof container === 'string' ? container : ''}/${String(pid)}`;
    for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
      const kernel = scopeSpans.scope?.name === KERNEL_SCOPE;
      for (const span of scopeSpans.spans ?? []) {
        const traceId = idHex(span.traceId, 16);
        const spanId = idHex(span.spanId, 8);
        if (traceId === undefined || spanId === undefined) continue;
        const parent = span.parentSpanId === undefined ? undefined : idHex(span.parentSpanId, 8);
        const parentSpanId = parent === undefined || /^0+$/.test(parent) ? undefined : parent;
        const attrs = attributes(span.attributes);
        const contents = contentsOf(byTrace, traceId);
        if (!kernel) {
          const app: TraceSpan = {
            traceId,
            spanId,
            service,
            name: span.name,
            startUnixNano: span.startTimeUnixNano,
            endUnixNano: span.endTimeUnixNano,
          };
          if (parentSpanId !== undefined) app.parentSpanId = parentSpanId;
          if (pid !== undefined) app.pid = pid;
          // A Node process runs its spans on its main thread, whose tid is its pid (as src/cli/run.ts).
          const named = integer(attrs[A.ATTR_CAUSEWAY_THREAD_TID]);
          const mainThread = named === undefined && resource['telemetry.sdk.language'] === 'nodejs';
          const tid = mainThread ? pid : named;
          if (tid !== undefined) app.tid = tid;
          contents.spans.push(app);
          appProcesses.set(app, { processKey, mainThread });
          continue;
        }
        if (pid === undefined) continue; // kernel spans copy the app's resource, so this is not Causeway's
        if (attrs[A.ATTR_CAUSEWAY_ATTACH_SHED] === true)
          contents.shed.push({ from: span.startTimeUnixNano, to: span.endTimeUnixNano });
        const found: KernelEvent[] = [];
        const interval = kernelEvent(attrs, pid, span.startTimeUnixNano, span.endTimeUnixNano);
        if (interval !== undefined) found.push(interval);
        for (const event of span.events ?? []) {
          const point = kernelEvent(attributes(event.attributes), pid, event.timeUnixNano);
          if (point !== undefined) found.push(point);
        }
        // Thread-scoped (or ambiguous, which is thread-scoped too): every event is on the app span's own thread.
        // Exact ones need not be: the span's published context named it, whatever thread ran it.
        const first = found[0];
        if (
          first !== undefined &&
          parentSpanId !== undefined &&
          (attrs[A.ATTR_CAUSEWAY_ATTACH_SCOPE] === A.CAUSEWAY_ATTACH_SCOPE_VALUE_THREAD ||
            attrs[A.ATTR_CAUSEWAY_ATTACH_SCOPE] === A.CAUSEWAY_ATTACH_SCOPE_VALUE_AMBIGUOUS)
        )
          hostTids.set(traceId + parentSpanId, first.tid);
        if (first !== undefined && first.pid !== pid) hostPids.set(processKey, first.pid);
        contents.events.push(...found);
      }
    }
  }
  for (const [span, { processKey, mainThread }] of appProcesses) {
    const pid = hostPids.get(processKey);
    if (pid !== undefined) span.pid = pid;
    const tid = hostTids.get(span.traceId + span.spanId) ?? (mainThread ? pid : undefined);
    if (tid !== undefined) span.tid = tid;
  }
  return byTrace;
}

const byStart = (a: KernelEvent, b: KernelEvent) => byTime(a.startUnixNano, b.startUnixNano);
/** Overlaps [from, to); a point event counts when it falls inside. */
const overlaps = (e: KernelEvent, from: bigint, to: bigint) =>
  e.startUnixNano < to && (e.endUnixNano > from || e.startUnixNano >= from);

/** The traces fetched last, which answer the kernel-event questions that a store would. */
export class FetchedTraces {
  private readonly traces: Lru<string, TraceContents>;

  constructor(capacity: number) {
    this.traces = new Lru(capacity);
  }

  add(traceId: string, contents: TraceContents): void {
    this.traces.set(traceId, contents);
  }

  events(window: EventWindow): KernelEvent[] {
    return this.select(
      (e) =>
        e.pid === window.pid &&
        (window.tid === undefined || e.tid === window.tid) &&
        overlaps(e, window.from, window.to),
    );
  }

  gpuEvents(from: bigint, to: bigint, exceptPid: number): KernelEvent[] {
    return this.select((e) => e.kind.startsWith('cuda.') && e.pid !== exceptPid && overlaps(e, from, to));
  }

  shedDuring(from: bigint, to: bigint): boolean {
    for (const contents of this.traces.values())
      if (contents.shed.some((time) => time.from < to && time.to >= from)) return true;
    return false;
  }

  private select(wanted: (event: KernelEvent) => boolean): KernelEvent[] {
    const out: KernelEvent[] = [];
    for (const contents of this.traces.values())
      for (const event of contents.events) if (wanted(event)) out.push(event);
    return out.sort(byStart);
  }
}

/** A backend's query API as the requests see it. */
export interface Backend {
  /** Names the backend in answers and errors, e.g. "jaeger at http://host:16686/". */
  name: string;
  /** Ends in "/", so that relative API paths keep a path prefix (a backend behind a proxy). */
  base: URL;
  timeoutMs: number;
  maxResponseBytes: number;
}

/** The backend of that kind at that URL, with the defaults. */
export function backendAt(kind: string, url: string, options: BackendOptions): Backend {
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new Error(`${kind}: not a URL: ${JSON.stringify(url)}`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:')
    throw new Error(`${kind}: expected an http or https URL, got ${JSON.stringify(url)}`);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  base.search = '';
  base.hash = '';
  return {
    name: `${kind} at ${base.href}`,
    base,
    timeoutMs: options.timeoutMs ?? 10_000,
    maxResponseBytes: options.maxResponseBytes ?? 64 * 1024 * 1024,
  };
}

async function readBounded(response: Response, backend: Backend): Promise<string> {
  const tooLarge = () => new Error(`${backend.name}: answer larger than ${backend.maxResponseBytes} bytes, refused`);
  if (Number(response.headers.get('content-length')) > backend.maxResponseBytes) {
    await response.body?.cancel();
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body?.getReader();
  for (;;) {
    const read = await reader?.read();
    if (read === undefined || read.done) break;
    const chunk: unknown = read.value; // a Uint8Array, which the typings leave untyped
    if (!(chunk instanceof Uint8Array)) continue;
    size += chunk.byteLength;
    if (size > backend.maxResponseBytes) {
      await reader?.cancel();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Jaeger's errors are {"error": {"message"}}; Tempo's are plain text. */
function errorMessage(body: string): string {
  try {
    const parsed = z.object({ error: z.object({ message: z.string() }) }).safeParse(JSON.parse(body));
    if (parsed.success) return parsed.data.error.message;
  } catch {
    // not JSON: the text itself
  }
  return body.trim().slice(0, 500);
}

function unreachable(error: TypeError): string {
  const cause: unknown = error.cause;
  // "localhost" tries each of its addresses: the reasons come together.
  if (cause instanceof AggregateError)
    return (cause.errors as unknown[]).map((e) => (e instanceof Error ? e.message : String(e))).join('; ');
  return cause instanceof Error ? cause.message : error.message;
}

/**
 * GETs a JSON answer; undefined when the backend answers that it has no such trace (a 404 of
 * its own, not Go's "404 page not found" for a path it does not serve: a wrong URL is an error).
 */
export async function getJson(backend: Backend, path: string): Promise<unknown> {
  const url = new URL(path, backend.base);
  let body: string;
  let response: Response;
  try {
    response = await fetch(url, {
      signal: AbortSignal.timeout(backend.timeoutMs),
      headers: { accept: 'application/json' },
    });
    body = await readBounded(response, backend);
  } catch (error) {
    if (error instanceof Error && error.name === 'TimeoutError')
      throw new Error(`${backend.name} did not answer within ${backend.timeoutMs} ms (GET ${url.pathname})`, {
        cause: error,
      });
    if (error instanceof TypeError)
      throw new Error(`${backend.name} is unreachable: ${unreachable(error)}`, { cause: error });
    throw error;
  }
  if (response.status === 404 && !body.startsWith('404 page not found')) return undefined;
  if (!response.ok)
    throw new Error(`${backend.name}: GET ${url.pathname} answered HTTP ${response.status}: ${errorMessage(body)}`);
  try {
    return JSON.parse(body);
  } catch {
    throw new Error(
      `${backend.name}: GET ${url.pathname} answered with something other than JSON (is the URL its query API?): ${JSON.stringify(body.slice(0, 100))}`,
    );
  }
}

/**
 * What the Jaeger and Tempo sources share: a trace fetched by id, read as OTLP/JSON and kept in
 * a bounded cache, from which events() and gpuEvents() answer (the backend has no query for
 * kernel events of a thread: they are the kernel spans of the traces fetched).
 */
export abstract class FetchingSource implements TraceSource {
  readonly name: string;
  protected readonly backend: Backend;
  protected readonly fetched: FetchedTraces;

  constructor(kind: string, url: string, options: BackendOptions) {
    this.backend = backendAt(kind, url, options);
    this.name = this.backend.name;
    this.fetched = new FetchedTraces(options.cachedTraces ?? 64);
  }

  /** The API path of a trace by its hex id. */
  protected abstract tracePath(id: string): string;
  /** The TracesData in the backend's answer. */
  protected abstract tracesData(answer: unknown): unknown;
  abstract slowTraces(query: TraceQuery): Promise<TraceSummary[]>;

  async spans(traceId: string): Promise<TraceSpan[]> {
    const id = traceIdHex(traceId);
    const answer = await getJson(this.backend, this.tracePath(id));
    if (answer === undefined) return [];
    const contents = readTraces(this.tracesData(answer)).get(id);
    if (contents === undefined) return [];
    this.fetched.add(id, contents);
    return contents.spans;
  }

  events(window: EventWindow): Promise<KernelEvent[]> {
    return Promise.resolve(this.fetched.events(window));
  }

  gpuEvents(from: bigint, to: bigint, exceptPid: number): Promise<KernelEvent[]> {
    return Promise.resolve(this.fetched.gpuEvents(from, to, exceptPid));
  }

  shedDuring(from: bigint, to: bigint): Promise<boolean> {
    return Promise.resolve(this.fetched.shedDuring(from, to));
  }
}
