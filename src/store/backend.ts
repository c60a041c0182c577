// The tracing backend that cluster mode reads traces from, as `--query-backend` names it.
import type { TraceSource } from '../correlate/source.js';
import { JaegerSource } from './jaeger.js';
import type { BackendOptions } from './otlp-json.js';
import { TempoSource } from './tempo.js';

/** `jaeger=URL` (Jaeger's query HTTP API, e.g. http://jaeger:16686) or `tempo=URL` (e.g. http://tempo:3200). */
export function querySource(spec: string, options: BackendOptions = {}): TraceSource {
  const at = spec.indexOf('=');
  const kind = spec.slice(0, Math.max(at, 0));
  const url = spec.slice(at + 1);
  if (at > 0 && url !== '') {
    if (kind === 'jaeger') return new JaegerSource(url, options);
    if (kind === 'tempo') return new TempoSource(url, options);
  }
  throw new Error(`query backend ${JSON.stringify(spec)}: expected jaeger=URL or tempo=URL`);
}
