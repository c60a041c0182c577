// `npm run dashboards`: writes every dashboard's JSON into docker/grafana/dashboards/.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DASHBOARDS, render } from './dashboards.js';

// Compiled to dist/docker/grafana/src/: the repository root is four levels up.
const OUT = fileURLToPath(new URL('../../../../docker/grafana/dashboards/', import.meta.url));

for (const { file, build } of DASHBOARDS) {
  writeFileSync(join(OUT, file), render(build()));
  process.stdout.write(`wrote docker/grafana/dashboards/${file}\n`);
}
