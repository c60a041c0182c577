// OTLP/gRPC: opentelemetry.proto.collector.trace.v1.TraceService/Export on @grpc/grpc-js.
// grpc-js decompresses gzip (and deflate) requests itself and enforces
// grpc.max_receive_message_length on the decompressed message, answering
// RESOURCE_EXHAUSTED before the handler runs. The request is passed through as
// raw bytes and decoded here, so malformed protobuf is INVALID_ARGUMENT (grpc-js
// would answer INTERNAL for a deserializer error).

import * as grpc from '@grpc/grpc-js';
import type { IngestGate } from './ingest.js';
import { encodeExportResponse, encodeStatus, RpcCode, TRACE_SERVICE_EXPORT_PATH } from './protos.js';
import { decodeProtobufRequest, MalformedRequestError } from './spans.js';
import { partialSuccessOf, OVERLOAD_MESSAGE, RETRY_AFTER_SECONDS } from './outcome.js';

const passthrough = (b: Buffer): Buffer => b;

/** TraceService/Export on raw bytes: decoding is ours, so malformed protobuf is INVALID_ARGUMENT. */
export const traceServiceDefinition: grpc.ServiceDefinition = {
  Export: {
    path: TRACE_SERVICE_EXPORT_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: passthrough,
    requestDeserialize: passthrough,
    responseSerialize: passthrough,
    responseDeserialize: passthrough,
  },
};

function statusError(code: grpc.status, message: string, detailsBin: Uint8Array): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  metadata.set('grpc-status-details-bin', Buffer.from(detailsBin));
  return { code, details: message, metadata };
}

export interface GrpcEndpoint {
  server: grpc.Server;
  port: number;
}

export async function startGrpcServer(
  host: string,
  port: number,
  maxMessageBytes: number,
  gate: IngestGate,
): Promise<GrpcEndpoint> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': maxMessageBytes,
  });
  server.addService(traceServiceDefinition, {
    Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const c = gate.counters;
      c.add('requests');
      c.add('requestsGrpc');
      let decoded;
      try {
        decoded = decodeProtobufRequest(call.request);
      } catch (e) {
        c.add('badRequests');
        const message = e instanceof MalformedRequestError ? e.message : 'invalid request';
        callback(
          statusError(
            grpc.status.INVALID_ARGUMENT,
            message,
            encodeStatus(RpcCode.INVALID_ARGUMENT, message, { badRequest: message }),
          ),
        );
        return;
      }
      if (!gate.hasRoomFor(decoded.spans.length)) {
        c.add('requestsRefused');
        c.add('spansRefused', decoded.spans.length);
        callback(
          statusError(
            grpc.status.UNAVAILABLE,
            OVERLOAD_MESSAGE,
            encodeStatus(RpcCode.UNAVAILABLE, OVERLOAD_MESSAGE, { retryDelaySeconds: RETRY_AFTER_SECONDS }),
          ),
        );
        return;
      }
      gate.accept(decoded.spans);
      c.add('spansRejected', decoded.rejected);
      callback(null, Buffer.from(encodeExportResponse(partialSuccessOf(decoded))));
    },
  });
  const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${hostPart}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => {
      if (err) reject(err);
      else resolve(p);
    });
  });
  return { server, port: bound };
}

/** Graceful shutdown, forced after timeoutMs. */
export function stopGrpcServer(server: grpc.Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, timeoutMs);
    timer.unref();
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
