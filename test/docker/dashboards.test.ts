// The Grafana dashboards: the committed JSON is what the TypeScript (typed by
// @grafana/grafana-foundation-sdk) generates, and a lint of what Grafana would otherwise show
// broken or silently empty: unique panel ids, a refId on every query, datasources that the
// provisioning defines (directly or through a variable that defaults to one), a unit and a
// description on every panel, rates over $__rate_interval, and every variable defined and used.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { DASHBOARDS, render } from '../../docker/grafana/src/dashboards.js';
import { ROOT } from './tools.js';
import { dashboardQueries, panelsOf, type DashboardJson } from './grafana.js';

const DIR = join(ROOT, 'docker', 'grafana', 'dashboards');
const committed = (file: string) => JSON.parse(readFileSync(join(DIR, file), 'utf8')) as DashboardJson;

/** The provisioned datasources: uid -> type. */
function provisioned(): Map<string, string> {
  const file = readFileSync(join(ROOT, 'docker', 'grafana', 'provisioning', 'datasources', 'causeway.yaml'), 'utf8');
  const { datasources } = parse(file) as { datasources: { uid: string; type: string }[] };
  return new Map(datasources.map((d) => [d.uid, d.type]));
}

test('the committed dashboards are exactly what `npm run dashboards` generates', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.json'));
  assert.deepEqual(files.sort(), DASHBOARDS.map((d) => d.file).sort(), 'a JSON file without its code, or the reverse');
  for (const { file, build } of DASHBOARDS)
    assert.equal(
      readFileSync(join(DIR, file), 'utf8'),
      render(build()),
      `${file} drifted from docker/grafana/src: run npm run dashboards and commit the result`,
    );
});

test('three dashboards with distinct uids and titles, tagged causeway', () => {
  const all = DASHBOARDS.map((d) => committed(d.file));
  assert.ok(all.length >= 3);
  assert.equal(new Set(all.map((d) => d.uid)).size, all.length);
  assert.equal(new Set(all.map((d) => d.title)).size, all.length);
  for (const d of all) assert.ok(d.tags.includes('causeway'), d.title);
});

for (const { file } of DASHBOARDS) {
  test(`${file}: unique panel ids, a refId on every query, a unit and a description on every panel`, () => {
    const d = committed(file);
    const panels = panelsOf(d);
    const ids = panels.map((p) => p.id);
    assert.ok(
      ids.every((id) => Number.isInteger(id)),
      'every panel and row has an id',
    );
    assert.equal(new Set(ids).size, ids.length, `duplicate ids: ${ids.join(', ')}`);
    for (const panel of panels.filter((p) => p.type !== 'row')) {
      const targets = panel.targets ?? [];
      assert.ok(targets.length > 0, `${panel.title}: no query`);
      const refIds = targets.map((q) => q.refId);
      assert.ok(
        refIds.every((r) => typeof r === 'string' && r !== ''),
        `${panel.title}: a query without refId`,
      );
      assert.equal(new Set(refIds).size, refIds.length, `${panel.title}: duplicate refIds`);
      assert.ok((panel.description ?? '').length > 20, `${panel.title}: no description`);
      assert.ok((panel.fieldConfig?.defaults.unit ?? '') !== '', `${panel.title}: no unit`);
    }
  });

  test(`${file}: every datasource is provisioned, directly or as the default of a datasource variable of its type`, () => {
    const d = committed(file);
    const uids = provisioned();
    const variables = new Map(d.templating.list.map((v) => [v.name, v]));
    const check = (ref: { type?: string; uid?: string } | undefined, where: string) => {
      assert.ok(ref?.uid !== undefined && ref.type !== undefined, `${where}: no datasource`);
      const variable = /^\$\{(\w+)\}$/.exec(ref.uid)?.[1];
      if (variable === undefined) {
        assert.equal(uids.get(ref.uid), ref.type, `${where}: ${ref.uid} is not a provisioned ${ref.type} datasource`);
        return;
      }
      const v = variables.get(variable);
      assert.equal(v?.type, 'datasource', `${where}: $${variable} is not a datasource variable`);
      assert.equal(v.query, ref.type, `${where}: $${variable} chooses ${String(v.query)}, not ${ref.type}`);
      const current = String(v.current?.value);
      assert.equal(uids.get(current), ref.type, `${where}: $${variable} defaults to ${current}, not provisioned`);
    };
    for (const panel of panelsOf(d).filter((p) => p.type !== 'row')) {
      check(panel.datasource, panel.title);
      for (const q of panel.targets ?? []) check(q.datasource, `${panel.title} ${String(q.refId)}`);
    }
    for (const v of d.templating.list.filter((x) => x.type === 'query')) check(v.datasource, `variable ${v.name}`);
  });

  test(`${file}: Prometheus queries rate over $__rate_interval and filter by sidecar; every variable is defined and used`, () => {
    const d = committed(file);
    const queries = dashboardQueries(d);
    for (const q of queries.filter((x) => x.kind === 'prometheus')) {
      assert.match(q.text, /\[\$__rate_interval\]/, `${q.where}: ${q.text}`);
      assert.match(q.text, /instance=~"\$(instance|collector)"/, `${q.where}: ${q.text}`);
    }
    for (const q of queries.filter((x) => x.kind === 'jaeger' || x.kind === 'tempo'))
      assert.match(q.text, /\$service\b/, q.where);
    const defined = new Set(d.templating.list.map((v) => v.name));
    const text = JSON.stringify(d.panels) + JSON.stringify(d.templating.list.map((v) => v.query));
    const used = new Set(Array.from(text.matchAll(/\$\{?(\w+)/g), (m) => m[1]).filter((v) => v !== '__rate_interval'));
    assert.deepEqual(
      [...used].filter((v) => v !== undefined && !defined.has(v)),
      [],
      'variables used but not defined',
    );
    assert.deepEqual(
      [...defined].filter((v) => !used.has(v)),
      [],
      'variables defined but not used',
    );
  });
}
