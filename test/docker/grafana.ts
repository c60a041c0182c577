// Reading the dashboard JSON as Grafana would: its panels, every query in it (panels' targets
// and the variables' own queries), and the substitution of template variables that Grafana
// makes before a query reaches its datasource.

export interface DatasourceRef {
  type?: string;
  uid?: string;
}

export interface Target {
  refId?: string;
  datasource?: DatasourceRef;
  /** Prometheus. */
  expr?: string;
  /** Tempo (TraceQL). */
  query?: string;
  /** Jaeger search. */
  queryType?: string;
  service?: string;
  operation?: string;
  tags?: string;
  minDuration?: string;
  limit?: number;
}

export interface PanelJson {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: DatasourceRef;
  targets?: Target[];
  fieldConfig?: { defaults: { unit?: string } };
  panels?: PanelJson[];
}

export interface VariableJson {
  name: string;
  type: string;
  query?: unknown;
  datasource?: DatasourceRef;
  multi?: boolean;
  includeAll?: boolean;
  current?: { text: string | string[]; value: string | string[] };
  options?: { text: string; value: string }[];
}

export interface DashboardJson {
  uid: string;
  title: string;
  tags: string[];
  panels: PanelJson[];
  templating: { list: VariableJson[] };
}

/** Every panel, rows and the panels inside collapsed rows included. */
export const panelsOf = (d: DashboardJson): PanelJson[] => d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);

export interface Query {
  kind: 'prometheus' | 'jaeger' | 'tempo' | 'variable';
  /** Where it is, for messages: the panel's title and the refId, or the variable's name. */
  where: string;
  /** PromQL, TraceQL, the Jaeger search as JSON, or a variable's label_values(...). */
  text: string;
  target?: Target;
}

export function dashboardQueries(d: DashboardJson): Query[] {
  const queries: Query[] = [];
  for (const panel of panelsOf(d))
    for (const target of panel.targets ?? []) {
      const where = `${d.title} / ${panel.title} ${String(target.refId)}`;
      const type = target.datasource?.type;
      if (type === 'prometheus') queries.push({ kind: 'prometheus', where, text: target.expr ?? '', target });
      else if (type === 'tempo') queries.push({ kind: 'tempo', where, text: target.query ?? '', target });
      else if (type === 'jaeger') queries.push({ kind: 'jaeger', where, text: JSON.stringify(target), target });
      else throw new Error(`${where}: a query of an unknown datasource type ${String(type)}`);
    }
  for (const v of d.templating.list)
    if (v.type === 'query') queries.push({ kind: 'variable', where: `${d.title} / $${v.name}`, text: String(v.query) });
  return queries;
}

/** A variable's value for the substitution: `text` is what `${name:text}` gives. */
export interface Value {
  value: string;
  text?: string;
}

/** Grafana escapes a multi-value or All variable's value as a regex inside PromQL (its Prometheus datasource does). */
const promRegex = (value: string) => value.replace(/[$^*{}[\]'+?.()|\\]/g, '\\\\$&');

/**
 * `text` with Grafana's template variables replaced: $name, ${name}, ${name:text}; `promql`
 * escapes the values of multi-value variables as Grafana's Prometheus datasource does.
 */
export function interpolate(
  text: string,
  values: Record<string, Value>,
  variables: VariableJson[],
  promql = false,
): string {
  return text.replace(/\$\{(\w+)(?::(\w+))?\}|\$(\w+)/g, (whole, braced?: string, format?: string, bare?: string) => {
    const name = braced ?? bare ?? '';
    const value = values[name];
    if (value === undefined) throw new Error(`no value for $${name} in ${text}`);
    if (format === 'text') return value.text ?? value.value;
    if (format !== undefined) throw new Error(`format :${format} is not one Grafana's datasources here use`);
    const variable = variables.find((v) => v.name === name);
    return promql && (variable?.multi === true || variable?.includeAll === true) ? promRegex(value.value) : value.value;
  });
}
