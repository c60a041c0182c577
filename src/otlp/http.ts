// OTLP/HTTP: POST /v1/traces, binary protobuf (application/x-protobuf) or
// OTLP/JSON (application/json) chosen by Content-Type, optionally gzip / deflate
// encoded. The size limit applies to the decompressed body (and to the raw
// body); over it the answer is 413 (OTLP spec v1.11; the collector still says 400).
// Inflation stops as soon as the limit is passed, so a gzip bomb costs at most
// maxMessageBytes of memory. Error bodies are a google.rpc.Status in the
// request's encoding, and every OTLP response carries the request's Content-Type.

import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import type { IngestGate } from './ingest.js';
import {
  encodeExportResponse,
  encodeStatus,
  exportResponseJson,
  RpcCode,
  statusJson,
  type StatusDetail,
} from './protos.js';
import { decodeJsonRequest, decodeProtobufRequest, MalformedRequestError, type DecodedRequest } from './spans.js';
import { partialSuccessOf, OVERLOAD_MESSAGE, RETRY_AFTER_SECONDS } from './outcome.js';

export const TRACES_PATH = '/v1/traces';

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);

type Media = 'protobuf' | 'json';

function mediaOf(contentType: string | undefined): { media: Media; type: string } | undefined {
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === 'application/x-protobuf' || type === 'application/protobuf') return { media: 'protobuf', type };
  if (type === 'application/json') return { media: 'json', type };
  return undefined;
}

class TooLargeError extends Error {}

/** Reads the raw body, failing with TooLargeError past limit bytes. */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        chunks.length = 0;
        reject(new TooLargeError());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (e) => {
      if (!failed) {
        failed = true;
        reject(e);
      }
    });
  });
}

async function decompress(body: Buffer, encoding: string, limit: number): Promise<Buffer> {
  const opts = { maxOutputLength: limit };
  try {
    if (encoding === 'gzip' || encoding === 'x-gzip') return await gunzip(body, opts);
    return await inflate(body, opts);
  } catch (e) {
    if (e instanceof RangeError || (e as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') throw new TooLargeError();
    throw new MalformedRequestError(`invalid ${encoding} body: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export interface HttpEndpoint {
  server: http.Server;
  port: number;
}

function sendPlain(res: http.ServerResponse, code: number, text: string, headers: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
  res.end(`${text}\n`);
}

function sendStatus(
  res: http.ServerResponse,
  httpCode: number,
  m: { media: Media; type: string },
  rpcCode: number,
  message: string,
  detail: StatusDetail,
  headers: http.OutgoingHttpHeaders = {},
): void {
  const body =
    m.media === 'json' ? statusJson(rpcCode, message, detail) : Buffer.from(encodeStatus(rpcCode, message, detail));
  res.writeHead(httpCode, { 'Content-Type': m.type, ...headers });
  res.end(body);
}

/** The request's body, decompressed and decoded; throws TooLargeError or MalformedRequestError. */
async function readRequest(
  req: http.IncomingMessage,
  media: Media,
  encoding: string,
  maxMessageBytes: number,
): Promise<DecodedRequest> {
  let body = await readBody(req, maxMessageBytes);
  if (encoding !== 'identity' && encoding !== '') body = await decompress(body, encoding, maxMessageBytes);
  if (body.length === 0) return { spans: [], rejected: 0, rejectReasons: [] };
  return media === 'json' ? decodeJsonRequest(body.toString('utf8')) : decodeProtobufRequest(body);
}

/** One POST of an export request: checked, decoded, queued or refused, and answered. */
async function handleExport(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  maxMessageBytes: number,
  gate: IngestGate,
): Promise<void> {
  const c = gate.counters;
  c.add('requests');
  c.add('requestsHttp');
  const path = (req.url ?? '').split('?')[0];
  if (path !== TRACES_PATH) {
    c.add('badRequests');
    sendPlain(res, 404, `not found: only POST ${TRACES_PATH} is served`);
    return;
  }
  if (req.method !== 'POST') {
    c.add('badRequests');
    sendPlain(res, 405, `method not allowed: use POST`, { Allow: 'POST' });
    return;
  }
  const m = mediaOf(req.headers['content-type']);
  if (!m) {
    c.add('badRequests');
    sendPlain(res, 415, 'unsupported Content-Type: use application/x-protobuf or application/json');
    return;
  }
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (!['identity', '', 'gzip', 'x-gzip', 'deflate'].includes(encoding)) {
    c.add('badRequests');
    sendStatus(res, 415, m, RpcCode.INVALID_ARGUMENT, `unsupported Content-Encoding ${JSON.stringify(encoding)}`, {});
    return;
  }
  const tooLarge = (): void => {
    c.add('badRequests');
    c.add('tooLarge');
    const message = `request body exceeds ${maxMessageBytes} bytes (after decompression)`;
    sendStatus(res, 413, m, RpcCode.INVALID_ARGUMENT, message, { badRequest: message }, { Connection: 'close' });
  };
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > maxMessageBytes) {
    tooLarge();
    return;
  }
  let decoded: DecodedRequest;
  try {
    decoded = await readRequest(req, m.media, encoding, maxMessageBytes);
  } catch (e) {
    if (e instanceof TooLargeError) {
      tooLarge();
      return;
    }
    if (e instanceof MalformedRequestError) {
      c.add('badRequests');
      sendStatus(res, 400, m, RpcCode.INVALID_ARGUMENT, e.message, { badRequest: e.message });
      return;
    }
    throw e;
  }
  if (!gate.hasRoomFor(decoded.spans.length)) {
    c.add('requestsRefused');
    c.add('spansRefused', decoded.spans.length);
    sendStatus(
      res,
      503,
      m,
      RpcCode.UNAVAILABLE,
      OVERLOAD_MESSAGE,
      { retryDelaySeconds: RETRY_AFTER_SECONDS },
      { 'Retry-After': String(RETRY_AFTER_SECONDS) },
    );
    return;
  }
  gate.accept(decoded.spans);
  c.add('spansRejected', decoded.rejected);
  const partial = partialSuccessOf(decoded);
  res.writeHead(200, { 'Content-Type': m.type });
  res.end(m.media === 'json' ? exportResponseJson(partial) : Buffer.from(encodeExportResponse(partial)));
}

export async function startHttpServer(
  host: string,
  port: number,
  maxMessageBytes: number,
  gate: IngestGate,
  onError: (err: unknown) => void,
): Promise<HttpEndpoint> {
  const server = http.createServer((req, res) => {
    handleExport(req, res, maxMessageBytes, gate).catch((e: unknown) => {
      onError(e);
      if (!res.headersSent) sendPlain(res, 500, 'internal error');
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, port: (server.address() as AddressInfo).port };
}

/** Stops accepting, lets in-flight requests finish, and force-closes sockets after timeoutMs. */
export function stopHttpServer(server: http.Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.closeAllConnections();
    }, timeoutMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}
