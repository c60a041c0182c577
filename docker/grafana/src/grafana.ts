// What the three dashboards share: the provisioned datasources, the template variables, and
// panels that each carry a unit, a description, numbered ids and lettered refIds. Everything is
// built through @grafana/grafana-foundation-sdk's types; Jaeger, for which the SDK has no
// package, gets a query type of its own in the SDK's way (a cog.Dataquery variant).
import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import type * as common from '@grafana/grafana-foundation-sdk/common';
import {
  CustomVariableBuilder,
  DashboardBuilder,
  DashboardCursorSync,
  DatasourceVariableBuilder,
  QueryVariableBuilder,
  RowBuilder,
  VariableRefresh,
  VariableSort,
  type Dashboard,
  type VariableModel,
} from '@grafana/grafana-foundation-sdk/dashboard';
import { DataqueryBuilder as PrometheusQuery } from '@grafana/grafana-foundation-sdk/prometheus';
import { PanelBuilder as TablePanel } from '@grafana/grafana-foundation-sdk/table';
import { DataqueryBuilder as TempoQuery } from '@grafana/grafana-foundation-sdk/tempo';
import { PanelBuilder as TimeseriesPanel } from '@grafana/grafana-foundation-sdk/timeseries';
import { LegendDisplayMode, LegendPlacement, VizLegendOptionsBuilder } from '@grafana/grafana-foundation-sdk/common';

/** The datasource uids docker/grafana/provisioning/datasources/causeway.yaml gives. */
export const PROVISIONED = { prometheus: 'causeway-prometheus', jaeger: 'causeway-jaeger', tempo: 'causeway-tempo' };

/** Panels query the datasource chosen in these variables (default: the provisioned one). */
export const DATASOURCE = {
  prometheus: { type: 'prometheus', uid: '${datasource}' },
  jaeger: { type: 'jaeger', uid: '${jaeger}' },
  tempo: { type: 'tempo', uid: '${tempo}' },
} satisfies Record<string, common.DataSourceRef>;

const datasourceVariable = (name: string, type: keyof typeof PROVISIONED, label: string) =>
  new DatasourceVariableBuilder(name)
    .label(label)
    .type(type)
    .current({ text: PROVISIONED[type], value: PROVISIONED[type] });

export const prometheusVariable = () => datasourceVariable('datasource', 'prometheus', 'Prometheus');
export const jaegerVariable = () => datasourceVariable('jaeger', 'jaeger', 'Jaeger');
export const tempoVariable = () => datasourceVariable('tempo', 'tempo', 'Tempo');

/** A variable of label values from Prometheus; `multi` also offers All. */
function labelVariable(name: string, label: string, query: string, multi: boolean, description: string) {
  const variable = new QueryVariableBuilder(name)
    .label(label)
    .description(description)
    .datasource(DATASOURCE.prometheus)
    .query(query)
    .definition(query)
    .refresh(VariableRefresh.OnTimeRangeChanged)
    .sort(VariableSort.AlphabeticalAsc);
  return multi ? variable.multi(true).includeAll(true).allValue('.*') : variable;
}

/** The Causeway sidecars: the instances that serve Causeway's metrics. */
export const instanceVariable = () =>
  labelVariable(
    'instance',
    'Causeway',
    'label_values(causeway_export_collector_up, instance)',
    true,
    'The Causeway sidecars (one per node) to show.',
  );

/** The services whose spans had kernel waits attached, on the chosen sidecars. */
export const serviceVariable = (multi: boolean) =>
  labelVariable(
    'service',
    'Service',
    'label_values(causeway_kernel_wait_seconds_count{instance=~"$instance"}, service)',
    multi,
    "The app spans' service.name.",
  );

/** The collectors that take Causeway's kernel spans back (their own telemetry). */
export const collectorVariable = () =>
  labelVariable(
    'collector',
    'Collector',
    'label_values(target_info{service_name=~"otelcol.*"}, instance)',
    true,
    "The OpenTelemetry Collectors, by their own metrics' address.",
  );

/** The minimum waits offered, as a duration and in milliseconds; the third is the default. */
const MIN_WAITS = [
  ['1ms', '1'],
  ['10ms', '10'],
  ['100ms', '100'],
  ['1s', '1000'],
] as const;
const DEFAULT_MIN_WAIT = 2;

/** A minimum wait: `${min_wait:text}` is a duration (Jaeger), `$min_wait` the same in milliseconds (TraceQL). */
export const minWaitVariable = () =>
  new CustomVariableBuilder('min_wait')
    .label('Minimum wait')
    .description('Kernel waits shorter than this are not listed.')
    .values(MIN_WAITS.map(([text, ms]) => `${text} : ${ms}`).join(','))
    .options(MIN_WAITS.map(([text, value], i) => ({ text, value, selected: i === DEFAULT_MIN_WAIT })))
    .current({ text: MIN_WAITS[DEFAULT_MIN_WAIT][0], value: MIN_WAITS[DEFAULT_MIN_WAIT][1] });

/** A Prometheus query and its series' legend. */
export interface Series {
  expr: string;
  legend: string;
}

/** Grafana's Jaeger search query, as its data source plugin defines it. */
export interface JaegerSearch extends cog.Dataquery {
  refId: string;
  datasource: common.DataSourceRef;
  queryType: 'search';
  service: string;
  /** A span name. */
  operation?: string;
  /** logfmt: `causeway.kind=cuda.sync`. */
  tags?: string;
  /** A Go duration: `100ms`. */
  minDuration: string;
  limit: number;
}

class JaegerSearchBuilder implements cog.Builder<cog.Dataquery> {
  constructor(private readonly query: Omit<JaegerSearch, '_implementsDataqueryVariant'>) {}

  build(): JaegerSearch {
    return {
      ...this.query,
      _implementsDataqueryVariant() {
        return undefined;
      },
    };
  }
}

const refId = (i: number) => String.fromCharCode('A'.charCodeAt(0) + i);

export interface PanelText {
  title: string;
  description: string;
  unit: string;
  /** Of 24 columns; default 12. */
  width?: number;
}

type Panel = TimeseriesPanel | TablePanel;

/** Title, description, unit, size and datasource: what every panel carries. */
function framed<P extends Panel>(panel: P, text: PanelText, datasource: common.DataSourceRef): P {
  panel
    .title(text.title)
    .description(text.description)
    .unit(text.unit)
    .span(text.width ?? 12)
    .height(8)
    .datasource(datasource);
  return panel;
}

/** Prometheus series over time. */
export function timeseries(text: PanelText, series: Series[], options: { stacked?: boolean } = {}): TimeseriesPanel {
  return framed(new TimeseriesPanel(), text, DATASOURCE.prometheus)
    .legend(
      new VizLegendOptionsBuilder()
        .showLegend(true)
        .displayMode(LegendDisplayMode.List)
        .placement(LegendPlacement.Bottom),
    )
    .fillOpacity(options.stacked === true ? 30 : 10)
    .min(0)
    .targets(
      series.map(({ expr, legend }, i) =>
        new PrometheusQuery().datasource(DATASOURCE.prometheus).refId(refId(i)).expr(expr).legendFormat(legend).range(),
      ),
    );
}

/** A table of Jaeger's trace search; each row's trace id links to the trace (the Jaeger data source's own link). */
export function jaegerTable(
  text: PanelText,
  search: Omit<JaegerSearch, '_implementsDataqueryVariant' | 'refId' | 'datasource' | 'queryType'>,
) {
  return framed(new TablePanel(), text, DATASOURCE.jaeger).withTarget(
    new JaegerSearchBuilder({ ...search, refId: refId(0), datasource: DATASOURCE.jaeger, queryType: 'search' }),
  );
}

/** A table of Tempo's TraceQL search; each row's trace id links to the trace (the Tempo data source's own link). */
export function tempoTable(text: PanelText, traceql: string) {
  return framed(new TablePanel(), text, DATASOURCE.tempo).withTarget(
    new TempoQuery().datasource(DATASOURCE.tempo).refId(refId(0)).queryType('traceql').query(traceql).limit(20),
  );
}

export interface Board {
  uid: string;
  title: string;
  description: string;
  variables: cog.Builder<VariableModel>[];
  rows: [title: string, panels: Panel[]][];
}

/** The dashboard: rows in order, every panel and row numbered from 1. */
export function dashboard(board: Board): Dashboard {
  const builder = new DashboardBuilder(board.title)
    .uid(board.uid)
    .description(board.description)
    .tags(['causeway'])
    .readonly()
    .tooltip(DashboardCursorSync.Crosshair)
    .time({ from: 'now-1h', to: 'now' })
    .refresh('30s')
    .timezone('browser')
    .variables(board.variables);
  let id = 1;
  for (const [title, panels] of board.rows) {
    builder.withRow(new RowBuilder(title).id(id++));
    for (const panel of panels) builder.withPanel(panel.id(id++));
  }
  return builder.build();
}
