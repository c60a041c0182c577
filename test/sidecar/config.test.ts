// The sidecar's configuration from flags and the YAML files under testdata/: good files give the
// configuration they say, bad values and typo keys are errors that name the key and what was
// expected (or the key meant), and flags win over the file, the file over the defaults.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { RUN_HELP } from '../../src/cli/run.js';
import { packageRoot } from '../../src/install.js';
import {
  CONFIG_KEYS,
  ConfigError,
  DEFAULT_CONFIG,
  sidecarConfig,
  type SidecarConfig,
} from '../../src/sidecar/index.js';

const TESTDATA = join(packageRoot, 'test', 'sidecar', 'testdata');
// Paths in a configuration (mcp-token-file) are relative to the working directory, as on the command line.
process.chdir(packageRoot);

/** A ConfigError whose message matches every pattern. */
const says =
  (...patterns: RegExp[]) =>
  (e: unknown) =>
    e instanceof ConfigError && patterns.every((p) => p.test(e.message));

const fromFile = (group: string, name: string, flags: Record<string, unknown> = {}) =>
  sidecarConfig({ flags, file: join(TESTDATA, group, name), env: {} });

test('the defaults', () => {
  assert.deepEqual(DEFAULT_CONFIG, {
    receiver: { grpc: { host: '127.0.0.1', port: 4417 }, http: { host: '127.0.0.1', port: 4418 } },
    metrics: { host: '127.0.0.1', port: 9464 },
    mcp: { host: '127.0.0.1', port: 4419, token: undefined, allowedOrigins: [] },
    follow: { pids: [], comms: [] },
    reduction: { windowMs: 10, launchWholeUs: 100, runqueueWholeUs: 100, waitWholeUs: 100 },
    threadAttribute: 'causeway.thread.tid',
    correlator: { retentionMs: 30_000, maxEvents: 200_000, maxJoinWaitMs: 500 },
    store: {
      path: '/var/lib/causeway/store.duckdb',
      retentionMs: 900_000,
      maxEvents: 1_000_000,
      maxSpans: 100_000,
      maxBytes: 1024 * 2 ** 20,
    },
    export: { maxQueueSpans: 50_000, maxQueueBytes: 16 * 2 ** 20 },
    queryBackend: undefined,
    shutdownDeadlineMs: 5000,
  } satisfies SidecarConfig);
});

const GOOD: Record<string, SidecarConfig> = {
  'empty.yaml': DEFAULT_CONFIG,
  'full.yaml': {
    receiver: { grpc: { host: '0.0.0.0', port: 14417 }, http: { host: '::1', port: 14418 } },
    metrics: { host: '127.0.0.1', port: 19464 },
    mcp: {
      host: '127.0.0.2',
      port: 14419,
      token: 's3cret-from-file',
      allowedOrigins: ['http://grafana.local:3000', 'https://agent.example'],
    },
    follow: { pids: [101, 202], comms: ['python3', 'gunicorn'] },
    reduction: { windowMs: 0, launchWholeUs: 250, runqueueWholeUs: 50, waitWholeUs: 200 },
    threadAttribute: 'thread.id',
    correlator: { retentionMs: 60_000, maxEvents: 250_000, maxJoinWaitMs: 750 },
    store: {
      path: '/srv/causeway/traces.duckdb',
      retentionMs: 3_600_000,
      maxEvents: 2_000_000,
      maxSpans: 50_000,
      maxBytes: 256 * 2 ** 20,
    },
    export: { maxQueueSpans: 20_000, maxQueueBytes: 8 * 2 ** 20 },
    queryBackend: 'tempo=http://tempo:3200',
    shutdownDeadlineMs: 12_000,
  },
  'scalars.yaml': {
    ...DEFAULT_CONFIG,
    mcp: { ...DEFAULT_CONFIG.mcp, allowedOrigins: ['http://grafana.local:3000'] },
    follow: { pids: [42], comms: ['python3'] },
  },
};

const BAD: Record<string, RegExp> = {
  'not-a-number.yaml': /not-a-number\.yaml: store-max-events: expected a positive integer, got "lots"$/,
  'zero.yaml': /zero\.yaml: retention-s: expected a positive integer, got 0$/,
  'negative-window.yaml': /negative-window\.yaml: reduce-window-ms: expected a whole number, got -5$/,
  'fraction.yaml': /fraction\.yaml: join-watermark-ms: expected a positive integer, got 2\.5$/,
  'endpoint.yaml': /endpoint\.yaml: otlp-grpc: expected HOST:PORT, got 4417$/,
  'port.yaml': /port\.yaml: metrics: expected HOST:PORT, got "127\.0\.0\.1:99999"$/,
  'list-item.yaml': /list-item\.yaml: pid: expected a positive integer, got "two"$/,
  'list-for-one.yaml':
    /list-for-one\.yaml: otlp-http: expected HOST:PORT, got \["127\.0\.0\.1:4418","127\.0\.0\.1:4428"\]$/,
  'backend.yaml':
    /backend\.yaml: query-backend: query backend "zipkin=http:\/\/zipkin:9411": expected jaeger=URL or tempo=URL$/,
  'empty-name.yaml': /empty-name\.yaml: thread-attribute: expected a non-empty string, got ""$/,
  'public-mcp.yaml': /^--mcp 0\.0\.0\.0: serving MCP beyond loopback needs a bearer token/,
  'not-a-mapping.yaml': /not-a-mapping\.yaml: expected a mapping of option names to values$/,
  'syntax.yaml': /syntax\.yaml: .* at line 2, column \d+:$/,
};

const TYPO: Record<string, RegExp> = {
  'missing-letter.yaml': /unknown key "store-max-event"; did you mean "store-max-events"\?$/,
  'underscores.yaml': /unknown key "store_max_spans"; did you mean "store-max-spans"\?$/,
  'camel-case.yaml': /unknown key "otlpGrpc"; did you mean "otlp-grpc"\?$/,
  'swapped.yaml': /unknown key "retnetion-s"; did you mean "retention-s"\?$/,
  'unrelated.yaml': /unknown key "colour"; the keys are otlp-grpc, otlp-http, mcp, .*, query-backend$/,
  'flag-only.yaml': /unknown key "config"; the keys are /,
};

test('every file under testdata/ has its case', () => {
  for (const [group, cases] of Object.entries({ good: GOOD, bad: BAD, typo: TYPO }))
    assert.deepEqual(readdirSync(join(TESTDATA, group)).sort(), Object.keys(cases).sort(), group);
});

test('good files give the configuration they say', () => {
  for (const [name, expected] of Object.entries(GOOD)) assert.deepEqual(fromFile('good', name), expected, name);
});

test('a bad value is an error naming the file, the key, what was expected and what was given', () => {
  for (const [name, message] of Object.entries(BAD)) assert.throws(() => fromFile('bad', name), says(message), name);
});

test('an unknown key is an error naming it and the closest valid key', () => {
  for (const [name, message] of Object.entries(TYPO))
    assert.throws(
      () => fromFile('typo', name),
      says(new RegExp(`^--config ${join(TESTDATA, 'typo', name)}: `), message),
      name,
    );
});

test('a missing file is an error naming it', () => {
  assert.throws(() => fromFile('good', 'absent.yaml'), says(/^--config .*absent\.yaml: ENOENT/));
});

test('flags win over the file, the file over the defaults', () => {
  const config = fromFile('good', 'full.yaml', { 'store-max-spans': '7', pid: ['3'], 'query-backend': undefined });
  assert.equal(config.store.maxSpans, 7, 'the flag');
  assert.equal(config.store.maxEvents, 2_000_000, 'the file');
  assert.deepEqual(config.follow.pids, [3], 'a repeated flag replaces the file list');
  assert.equal(config.queryBackend, 'tempo=http://tempo:3200', 'a flag not given leaves the file value');
  const flagsOnly = sidecarConfig({ flags: { 'join-watermark-ms': '250' }, env: {} });
  assert.deepEqual(flagsOnly, { ...DEFAULT_CONFIG, correlator: { ...DEFAULT_CONFIG.correlator, maxJoinWaitMs: 250 } });
});

test('a bad flag is an error naming the flag', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ pid: ['12', 'abc'] }, /^--pid: expected a positive integer, got "abc"$/],
    [{ 'store-max-events': '-5' }, /^--store-max-events: expected a positive integer, got "-5"$/],
    [{ mcp: 'localhost' }, /^--mcp: expected HOST:PORT, got "localhost"$/],
    [{ 'query-backend': 'tempo=file:///etc/passwd' }, /^--query-backend: tempo: expected an http or https URL/],
  ];
  for (const [flags, message] of cases) assert.throws(() => sidecarConfig({ flags, env: {} }), says(message));
});

test('the MCP token comes from --mcp-token-file, else CAUSEWAY_MCP_TOKEN, and opens MCP beyond loopback', () => {
  const flags = { mcp: '0.0.0.0:4419' };
  assert.equal(sidecarConfig({ flags, env: { CAUSEWAY_MCP_TOKEN: 'from-env' } }).mcp.token, 'from-env');
  const fileFirst = { ...flags, 'mcp-token-file': join(TESTDATA, 'token.txt') };
  assert.equal(
    sidecarConfig({ flags: fileFirst, env: { CAUSEWAY_MCP_TOKEN: 'from-env' } }).mcp.token,
    's3cret-from-file',
  );
  assert.throws(() => sidecarConfig({ flags, env: { CAUSEWAY_MCP_TOKEN: '' } }), /needs a bearer token/);
  assert.throws(
    () => sidecarConfig({ flags: { 'mcp-token-file': '/nonexistent/token' }, env: {} }),
    says(/^--mcp-token-file \/nonexistent\/token: ENOENT/),
  );
});

const WITHOUT_DEFAULT = new Set(['mcp-token-file', 'mcp-allow-origin', 'pid', 'comm', 'query-backend']);

test('`causeway run --help` names every key, and the defaults it gives are the defaults', () => {
  const options = RUN_HELP.slice(RUN_HELP.indexOf('\n  --'));
  const blocks = options.split(/\n(?= {2}--)/);
  for (const key of CONFIG_KEYS) {
    const block = blocks.find((b) => new RegExp(`^\\s*(?:--\\S+ \\S+, )?--${key} `).test(b));
    assert.ok(block, `--help lists --${key}`);
    const shown = /\(default ([^)\s]+)\)/.exec(block)?.[1];
    assert.equal(shown === undefined, WITHOUT_DEFAULT.has(key), `--${key}: ${block}`);
    if (shown !== undefined)
      assert.deepEqual(
        sidecarConfig({ flags: { [key]: shown }, env: {} }),
        DEFAULT_CONFIG,
        `--${key} default ${shown}`,
      );
  }
});
