// Causeway's own counters in the Prometheus text format, served on --metrics: what was
// captured, dropped, received, joined and exported, so that nothing is lost silently.
import http from 'node:http';

export type Sample = [name: string, help: string, value: number, labels?: Record<string, string>];

function render(samples: Sample[]): string {
  const lines: string[] = [];
  const described = new Set<string>();
  for (const [name, help, value, labels] of samples) {
    if (!described.has(name)) {
      described.add(name);
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${name.endsWith('_total') ? 'counter' : 'gauge'}`);
    }
    const labelText =
      labels === undefined
        ? ''
        : `{${Object.entries(labels)
            .map(([k, v]) => `${k}="${v}"`)
            .join(',')}}`;
    lines.push(`${name}${labelText} ${value}`);
  }
  return `${lines.join('\n')}\n`;
}

export async function serveMetrics(
  host: string,
  port: number,
  samples: () => Sample[],
): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer((request, response) => {
    if (request.url !== '/metrics') {
      response.writeHead(404).end('see /metrics\n');
      return;
    }
    response.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' }).end(render(samples()));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : port,
    close: () =>
      new Promise((resolve) =>
        server.close(() => {
          resolve();
        }),
      ),
  };
}
