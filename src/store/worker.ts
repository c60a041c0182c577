// The store's worker thread: it owns the DuckDB database (database.ts). The main thread hands it
// rows as they come (kernel events, spans and attachments packed by column, columns.ts; the
// times kernel events were shed as objects) and asks it to write them (on the store's timer), on
// the worker's own port, and asks queries on a channel of their own, so that they do not wait for
// rows queued before them to be copied in; the rows handed over wait here until the next write.
// Another thread reads the store on a port of its own, sent on the queries' channel (reader.ts).
// Replies carry the request's id, on the port it came on.
import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type { DuckDBValue } from '@duckdb/node-api';
import type { ShedTime } from '../correlate/source.js';
import type { Packed } from './columns.js';
import { StoreDatabase, type DatabaseOptions, type Size } from './database.js';
import { QueryRefused, type SqlLimits } from './sql.js';

export type Request =
  | { op: 'events'; batch: Packed }
  | { op: 'spans'; batch: Packed }
  | { op: 'attachments'; batch: Packed }
  | { op: 'shed'; times: ShedTime[] }
  | { op: 'write'; id: number; now: bigint }
  | { op: 'rows'; id: number; sql: string; params: DuckDBValue[] }
  | { op: 'readOnly'; id: number; sql: string; limits: SqlLimits }
  | { op: 'size'; id: number }
  | { op: 'close'; id: number }
  | { op: 'port'; port: MessagePort };

export type Reply =
  | { id: number; result: unknown }
  /** refused: a query_sql refusal (QueryRefused), to be thrown as one again. */
  | { id: number; error: string; refused: boolean };

export interface WorkerData {
  database: DatabaseOptions;
  queries: MessagePort;
}

/** The database's size, and the worker's own JavaScript heap (an isolate of its own) as allocated. */
export type StoreSize = Size & { workerHeapBytes: number };

/** The worker's first message, once the database is open. */
export interface Opened {
  nextEventId: bigint;
}

function mainPort(): MessagePort {
  if (parentPort === null) throw new Error('store/worker.js runs as the store\u2019s worker thread');
  return parentPort;
}

const port = mainPort();

const { database, queries } = workerData as WorkerData;
const db = await StoreDatabase.open(database);
let events: Packed[] = [];
let spans: Packed[] = [];
let attachments: Packed[] = [];
let shed: ShedTime[] = [];

async function answer(request: Extract<Request, { id: number }>): Promise<unknown> {
  switch (request.op) {
    case 'write': {
      const written = db.write(events, spans, attachments, shed, request.now);
      events = [];
      spans = [];
      attachments = [];
      shed = [];
      return written;
    }
    case 'rows':
      return db.rows(request.sql, request.params);
    case 'readOnly':
      return db.readOnly(request.sql, request.limits);
    case 'size':
      return { ...(await db.size()), workerHeapBytes: getHeapStatistics().total_physical_size } satisfies StoreSize;
    case 'close':
      db.close();
      return undefined;
  }
}

function handle(request: Request, from: MessagePort): void {
  if (request.op === 'events') events.push(request.batch);
  else if (request.op === 'spans') spans.push(request.batch);
  else if (request.op === 'attachments') attachments.push(request.batch);
  else if (request.op === 'shed') shed.push(...request.times);
  else if (request.op === 'port') listen(request.port);
  else
    answer(request).then(
      (result) => {
        from.postMessage({ id: request.id, result } satisfies Reply);
      },
      (e: unknown) => {
        from.postMessage({
          id: request.id,
          error: e instanceof Error ? e.message : String(e),
          refused: e instanceof QueryRefused,
        } satisfies Reply);
      },
    );
}

function listen(on: MessagePort): void {
  on.on('message', (request: Request) => {
    handle(request, on);
  });
}

listen(port);
listen(queries);
port.postMessage({ nextEventId: db.nextEventId } satisfies Opened);
