// The sidecar's configuration: one zod schema whose keys are both `causeway run`'s flags and
// the keys of a YAML --config file (kebab-case), with every default and every check defined
// here once. Flags win over the file, the file over the defaults. An unknown key in the file
// is an error that names it and the closest valid key; a bad value names its key and what was
// expected.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { REDUCTION, type Reduction } from '../kernel/capture.js';
import { mcpBindProblem } from '../mcp/bind.js';
import type { Endpoint } from '../otlp/index.js';
import { ATTR_CAUSEWAY_THREAD_TID } from '../semconv/attributes.js';
import { querySource } from '../store/backend.js';

/** A configuration that cannot be used: the message names the flag or file key, and what was expected. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface SidecarConfig {
  receiver: { grpc: Endpoint; http: Endpoint };
  metrics: Endpoint;
  /** The token comes from --mcp-token-file, else CAUSEWAY_MCP_TOKEN; undefined when neither gives one. */
  mcp: Endpoint & { token: string | undefined; allowedOrigins: string[] };
  /** Processes followed from the start, besides those the app spans come from. */
  follow: { pids: number[]; comms: string[] };
  /** In-kernel reduction: what is summed per thread per window, and what is kept whole. */
  reduction: Reduction;
  /** The span attribute that names the OS thread id. */
  threadAttribute: string;
  correlator: { retentionMs: number; maxEvents: number; maxJoinWaitMs: number };
  /** The store's file (or ':memory:') and its retention bounds. */
  store: { path: string; retentionMs: number; maxEvents: number; maxSpans: number; maxBytes: number };
  /** Kernel spans waiting for the collector at most, in spans and in (approximate encoded) bytes. */
  export: { maxQueueSpans: number; maxQueueBytes: number };
  /** Cluster mode: `jaeger=URL` or `tempo=URL`. */
  queryBackend: string | undefined;
  /** How long SIGTERM's shutdown may take: joining, exporting and flushing what is pending. */
  shutdownDeadlineMs: number;
}

const shown = (value: unknown) => (value === undefined ? 'nothing' : JSON.stringify(value));
const expected = (what: string) => ({
  error: (issue: { input?: unknown }) => `expected ${what}, got ${shown(issue.input)}`,
});

/** Flags give strings and a file may give numbers: digits become a number either way. */
const positiveInteger = z.preprocess(
  (v) => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v),
  z.int(expected('a positive integer')).positive(expected('a positive integer')),
);

const nonNegativeInteger = z.preprocess(
  (v) => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v),
  z.int(expected('a whole number')).nonnegative(expected('a whole number')),
);

const text = z.string(expected('a string')).min(1, expected('a non-empty string'));

const endpoint = z.string(expected('HOST:PORT')).transform((value, ctx): Endpoint => {
  const match = /^(.+):(\d+)$/.exec(value);
  const port = Number(match?.[2]);
  if (match?.[1] === undefined || port > 65_535) {
    ctx.issues.push({ code: 'custom', input: value, message: `expected HOST:PORT, got ${shown(value)}` });
    return z.NEVER;
  }
  return { host: match[1].replace(/^\[(.*)\]$/, '$1'), port };
});

/** A repeatable flag; in a file, a list or a single value. */
const list = <T extends z.ZodType>(item: T) =>
  z
    .preprocess((v) => (v === undefined || Array.isArray(v) ? v : [v]), z.array(item))
    .default([])
    .meta({ repeatable: true });

const queryBackend = text.superRefine((spec, ctx) => {
  try {
    querySource(spec);
  } catch (error) {
    ctx.addIssue({ code: 'custom', input: spec, message: error instanceof Error ? error.message : String(error) });
  }
});

const KEYS = {
  'otlp-grpc': endpoint.prefault('127.0.0.1:4417'),
  'otlp-http': endpoint.prefault('127.0.0.1:4418'),
  mcp: endpoint.prefault('127.0.0.1:4419'),
  'mcp-token-file': text.optional(),
  'mcp-allow-origin': list(text),
  metrics: endpoint.prefault('127.0.0.1:9464'),
  pid: list(positiveInteger),
  comm: list(text),
  'thread-attribute': text.default(ATTR_CAUSEWAY_THREAD_TID),
  'retention-s': positiveInteger.default(30),
  'max-events': positiveInteger.default(200_000),
  'join-watermark-ms': positiveInteger.default(500),
  'reduce-window-ms': nonNegativeInteger.default(REDUCTION.windowMs),
  'launch-whole-us': positiveInteger.default(REDUCTION.launchWholeUs),
  'runqueue-whole-us': positiveInteger.default(REDUCTION.runqueueWholeUs),
  'wait-whole-us': positiveInteger.default(REDUCTION.waitWholeUs),
  'store-retention-s': positiveInteger.default(900),
  'store-max-events': positiveInteger.default(1_000_000),
  'store-max-spans': positiveInteger.default(100_000),
  'store-path': text.default('/var/lib/causeway/store.duckdb'),
  'store-max-mib': positiveInteger.default(1024),
  'export-queue-spans': positiveInteger.default(50_000),
  'export-queue-mib': positiveInteger.default(16),
  'shutdown-deadline-s': positiveInteger.default(5),
  'query-backend': queryBackend.optional(),
};

const schema = z.strictObject(KEYS).transform((c) => ({
  receiver: { grpc: c['otlp-grpc'], http: c['otlp-http'] },
  metrics: c.metrics,
  mcp: { ...c.mcp, tokenFile: c['mcp-token-file'], allowedOrigins: c['mcp-allow-origin'] },
  follow: { pids: c.pid, comms: c.comm },
  reduction: {
    windowMs: c['reduce-window-ms'],
    launchWholeUs: c['launch-whole-us'],
    runqueueWholeUs: c['runqueue-whole-us'],
    waitWholeUs: c['wait-whole-us'],
  },
  threadAttribute: c['thread-attribute'],
  correlator: {
    retentionMs: c['retention-s'] * 1000,
    maxEvents: c['max-events'],
    maxJoinWaitMs: c['join-watermark-ms'],
  },
  store: {
    retentionMs: c['store-retention-s'] * 1000,
    maxEvents: c['store-max-events'],
    maxSpans: c['store-max-spans'],
    path: c['store-path'],
    maxBytes: c['store-max-mib'] * 2 ** 20,
  },
  export: { maxQueueSpans: c['export-queue-spans'], maxQueueBytes: c['export-queue-mib'] * 2 ** 20 },
  queryBackend: c['query-backend'],
  shutdownDeadlineMs: c['shutdown-deadline-s'] * 1000,
}));

export const CONFIG_KEYS = Object.keys(KEYS) as (keyof typeof KEYS)[];

/** `causeway run`'s flags, for parseArgs: one per key, repeatable where the key takes a list. */
export const CONFIG_FLAGS = Object.fromEntries(
  CONFIG_KEYS.map((key) => [key, { type: 'string', multiple: z.globalRegistry.get(KEYS[key])?.repeatable === true }]),
) as Record<keyof typeof KEYS, { type: 'string'; multiple: boolean }>;

export interface ConfigSources {
  /** Flag values by key, as parseArgs gives them (strings; lists for repeatable keys). */
  flags: Record<string, unknown>;
  /** The path of a YAML --config file. */
  file?: string;
  env?: NodeJS.ProcessEnv;
}

/** Flags over the file over the defaults, checked; the MCP token resolved. */
export function sidecarConfig({ flags, file, env = process.env }: ConfigSources): SidecarConfig {
  const given = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
  const result = schema.safeParse({ ...(file === undefined ? {} : readConfigFile(file)), ...given });
  if (!result.success) throw new ConfigError(describe(result.error.issues, given, file));
  const { tokenFile, ...mcp } = result.data.mcp;
  const token = tokenFile === undefined ? env.CAUSEWAY_MCP_TOKEN : readToken(tokenFile);
  const problem = mcpBindProblem(mcp.host, token);
  if (problem !== undefined) throw new ConfigError(problem);
  return { ...result.data, mcp: { ...mcp, token: token === '' ? undefined : token } };
}

/** What a run without flags or file uses. */
export const DEFAULT_CONFIG: SidecarConfig = sidecarConfig({ flags: {}, env: {} });

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

function readConfigFile(path: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(path, 'utf8'));
  } catch (error) {
    // A YAML error goes on with the offending lines: its first line says what and where.
    throw new ConfigError(`--config ${path}: ${message(error).split('\n')[0] ?? ''}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed))
    throw new ConfigError(`--config ${path}: expected a mapping of option names to values`);
  return parsed as Record<string, unknown>;
}

function readToken(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (error) {
    throw new ConfigError(`--mcp-token-file ${path}: ${message(error)}`);
  }
}

/** The first issue, where it came from: a flag, or a key of the file. */
function describe(issues: z.core.$ZodIssue[], flags: Record<string, unknown>, file: string | undefined): string {
  const unknown = issues.find((issue) => issue.code === 'unrecognized_keys');
  if (unknown !== undefined) {
    const key = unknown.keys[0] ?? '';
    const near = closestKey(key);
    const hint =
      near === undefined ? `the keys are ${CONFIG_KEYS.join(', ')}` : `did you mean ${JSON.stringify(near)}?`;
    return `--config ${String(file)}: unknown key ${JSON.stringify(key)}; ${hint}`;
  }
  const issue = issues[0];
  const key = String(issue?.path[0]);
  return `${key in flags ? `--${key}` : `--config ${String(file)}: ${key}`}: ${issue?.message ?? 'invalid'}`;
}

/** The valid key nearest a typo, by edit distance, ignoring case, `-` and `_`; none when all are far. */
function closestKey(key: string): string | undefined {
  const plain = (k: string) => k.toLowerCase().replace(/[-_]/g, '');
  let best: { key: string; distance: number } | undefined;
  for (const valid of CONFIG_KEYS) {
    const distance = editDistance(plain(key), plain(valid));
    if (best === undefined || distance < best.distance) best = { key: valid, distance };
  }
  return best !== undefined && best.distance <= Math.max(2, Math.floor(key.length / 4)) ? best.key : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
