// docker/compose.yaml checked by the Compose v2 CLI itself (`docker-compose config`, which
// needs no engine), and against the configurations it mounts: the services must agree on
// where each one listens.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { ROOT, compose, installed, output, run } from './tools.js';

interface Volume {
  type: string;
  source: string;
  target: string;
}
interface Service {
  command?: string[];
  environment?: Record<string, string>;
  volumes?: Volume[];
  ports?: { host_ip?: string; published: string; target: number }[];
}

const COMPOSE_FILE = 'docker/compose.yaml';

/** The file as Compose resolves it: paths absolute, defaults filled in. */
function resolved(profiles: string[] = []): Record<string, Service> {
  const config = run(compose, [
    '-f',
    COMPOSE_FILE,
    ...profiles.flatMap((p) => ['--profile', p]),
    'config',
    '--format',
    'json',
  ]);
  assert.equal(config.status, 0, output(config));
  return (JSON.parse(config.stdout) as { services: Record<string, Service> }).services;
}

const yamlOf = (path: string) => parse(readFileSync(join(ROOT, path), 'utf8')) as Record<string, unknown>;
/** The default of a `${env:VAR:-default}` address in a collector configuration. */
const envDefault = (value: unknown) => String(value).replace(/^\$\{env:\w+:-(.*)\}$/, '$1');

test('docker-compose accepts the compose file without profiles and with the grafana profile', (t) => {
  if (!installed(t, compose)) return;
  for (const profiles of [[], ['--profile', 'grafana']]) {
    const check = run(compose, ['-f', COMPOSE_FILE, ...profiles, 'config', '--quiet']);
    assert.equal(check.status, 0, `${profiles.join(' ')}: ${output(check)}`);
  }
  assert.deepEqual(Object.keys(resolved()).sort(), ['causeway', 'jaeger', 'otel-collector', 'prometheus']);
  assert.ok('grafana' in resolved(['grafana']));
});

test('every file or folder the services mount from the repository exists', (t) => {
  if (!installed(t, compose)) return;
  const mounts = Object.values(resolved(['grafana'])).flatMap((s) => s.volumes ?? []);
  const fromRepo = mounts.filter((m) => m.type === 'bind' && m.source.startsWith(ROOT));
  assert.ok(fromRepo.length >= 4, `expected the collector, Prometheus and Grafana mounts, got ${fromRepo.length}`);
  for (const mount of fromRepo) assert.ok(existsSync(mount.source), `${mount.source} (mounted at ${mount.target})`);
});

test("Causeway keeps its store in a named volume at the store's default directory", (t) => {
  if (!installed(t, compose)) return;
  const store = resolved().causeway?.volumes?.find((v) => v.target === '/var/lib/causeway');
  // A named volume, which starts as a copy of the image's directory, owned by Causeway's user
  // (the image test checks that copy); a bind mount would keep the host's owner.
  assert.deepEqual({ type: store?.type, source: store?.source }, { type: 'volume', source: 'store' });
});

test('the services agree on addresses: collector, Causeway, Jaeger and Prometheus', (t) => {
  if (!installed(t, compose)) return;
  const services = resolved();
  const collector = yamlOf('otel-config/collector.yaml') as {
    receivers: Record<string, { protocols: { grpc: { endpoint: string } } }>;
    exporters: Record<string, { endpoint: string }>;
    service: { telemetry: { metrics: { readers: { pull: { exporter: { prometheus: { port: string } } } }[] } } };
  };
  // Causeway exports its kernel spans to the collector's otlp/kernel receiver.
  const kernelReceiver = envDefault(collector.receivers['otlp/kernel']?.protocols.grpc.endpoint);
  assert.equal(services.causeway?.environment?.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, `http://${kernelReceiver}`);
  // The collector sends app spans to Causeway's default OTLP/gRPC address, and to Jaeger's published port.
  const help = run(process.execPath, ['dist/src/cli/main.js', 'run', '--help']);
  const causewayDefault = (flag: string) =>
    new RegExp(`${flag} HOST:PORT .*\\(default ([\\d.:]+)`).exec(help.stdout)?.[1];
  assert.equal(envDefault(collector.exporters['otlp_grpc/causeway']?.endpoint), causewayDefault('--otlp-grpc'));
  const jaegerOtlp = services.jaeger?.ports?.find((p) => p.target === 4317);
  assert.equal(
    envDefault(collector.exporters['otlp_grpc/jaeger']?.endpoint),
    `${jaegerOtlp?.host_ip}:${jaegerOtlp?.published}`,
  );
  // Prometheus scrapes Causeway's default metrics address and the collector's own metrics.
  const prometheus = yamlOf('docker/prometheus/prometheus.yml') as {
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
  };
  const targets = (job: string) =>
    prometheus.scrape_configs.find((c) => c.job_name === job)?.static_configs[0]?.targets;
  assert.deepEqual(targets('causeway'), [causewayDefault('--metrics')]);
  const collectorMetrics = envDefault(collector.service.telemetry.metrics.readers[0]?.pull.exporter.prometheus.port);
  assert.deepEqual(targets('otel-collector'), [`127.0.0.1:${collectorMetrics}`]);
});

test('Grafana gets three datasources with fixed uids and loads dashboards from the mounted folder', (t) => {
  if (!installed(t, compose)) return;
  const datasources = (
    yamlOf('docker/grafana/provisioning/datasources/causeway.yaml') as {
      datasources: { type: string; uid: string; url: string }[];
    }
  ).datasources;
  assert.deepEqual(
    datasources.map((d) => [d.type, d.uid]),
    [
      ['prometheus', 'causeway-prometheus'],
      ['jaeger', 'causeway-jaeger'],
      ['tempo', 'causeway-tempo'],
    ],
  );
  const services = resolved(['grafana']);
  const grafana = services.grafana;
  // Grafana shares the host's network: Prometheus's listen address, Jaeger's published UI port.
  const listen = services.prometheus?.command?.find((a) => a.startsWith('--web.listen-address='))?.split('=')[1];
  assert.equal(datasources[0]?.url, `http://${listen}`);
  const jaegerUi = services.jaeger?.ports?.find((p) => p.target === 16686);
  assert.equal(datasources[1]?.url, `http://${jaegerUi?.host_ip}:${jaegerUi?.published}`);
  const dashboards = grafana?.volumes?.find((v) => v.source === join(ROOT, 'docker', 'grafana', 'dashboards'));
  const provider = (
    yamlOf('docker/grafana/provisioning/dashboards/causeway.yaml') as { providers: { options: { path: string } }[] }
  ).providers[0];
  assert.equal(provider?.options.path, dashboards?.target);
  // The Tempo URL comes from the compose file's environment (Grafana expands $VAR in provisioning).
  assert.equal(datasources[2]?.url, '$CAUSEWAY_TEMPO_URL');
  assert.equal(grafana?.environment?.CAUSEWAY_TEMPO_URL, 'http://127.0.0.1:3200');
});
