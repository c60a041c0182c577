// The diagnose_slow_request prompt: the walk from slow_traces to a root cause with evidence.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import * as z from 'zod';
import { quoted } from '../../correlate/summary.js';
import { UNTRUSTED } from './conventions.js';

const argsSchema = {
  service: z.string().max(256).optional().describe('service.name to look at; all services when empty'),
};

function steps(svc: string | undefined): string {
  const of = svc === undefined || svc === '' ? undefined : quoted(svc);
  return [
    `Find out why requests${of === undefined ? '' : ` of the service ${of}`} are slow, using the Causeway tools.`,
    `1. Call slow_traces${of === undefined ? '' : ` with service ${of}`} to list the slowest recent traces and their dominant causes.`,
    '2. Call explain_trace on the slowest one (and on one or two others if their causes differ).',
    '3. Report the root cause kind, the culprit (pid, tid, comm, and the CUDA kernel, peer or device when given), ' +
      'the causal chain, and the evidence lines. If root_cause.kind is "none", say what the time was instead.',
    '4. If the answer needs more, use find_stalls, compare_latency or gpu_activity; use query_sql only for questions they do not cover.',
    UNTRUSTED,
  ].join('\n');
}

export function registerDiagnoseSlowRequest(server: McpServer): void {
  server.registerPrompt(
    'diagnose_slow_request',
    {
      title: 'Diagnose a slow request',
      description: 'Walks from slow_traces to explain_trace to a root cause with evidence.',
      argsSchema,
    },
    ({ service: svc }) => ({ messages: [{ role: 'user', content: { type: 'text', text: steps(svc) } }] }),
  );
}
