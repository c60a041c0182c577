// What query_sql may name, checked on DuckDB's own parse tree (json_serialize_sql) before the
// query is bound, so that nothing it refuses is ever opened: tables of the store (or the
// query's own CTEs and subqueries), table functions that only generate rows from their
// arguments, and DuckDB functions whose result depends only on their arguments (and the
// clock). Everything else is refused, including what is unknown: a table reference of a kind
// this check does not know, a function added by a later DuckDB. DuckDB's own settings stay
// the second wall: external access disabled, configuration locked.
//
// ALLOWED_FUNCTIONS is DuckDB 1.5's catalog (duckdb_functions()) filtered by these rules, and
// test/store/sql-confined.test checks it against the catalog: its aggregates; its scalar
// functions marked CONSISTENT, less those that read the session rather than their arguments
// (current_setting, getvariable, version) or take SQL text (json_serialize_plan,
// json_serialize_sql, json_deserialize_sql), less collations (icu_collate_*) and DuckDB's
// internals (__internal_*); the clock (now, today, ...) and UNNEST (a keyword, in the catalog
// only as a table function); and its macros whose bodies pass this same check.

/** A node of json_serialize_sql's tree. */
type Node = Record<string, unknown>;

export const STORE_TABLE_NAMES = new Set(['spans', 'kernel_events', 'attachments', 'processes', 'shed_times']);

/** Table functions that make rows from their arguments alone. */
export const TABLE_FUNCTIONS = new Set(['range', 'generate_series', 'unnest', 'json_each', 'json_tree']);

/** Where the store's tables are: the store's catalog (the connection's default) and its main schema. */
const STORE_PLACES = new Set(['/', '/main', '/causeway', 'causeway/main']);

/** Table references this check knows; their children are checked like the rest of the tree. */
const NESTING_REFS = new Set(['JOIN', 'SUBQUERY', 'EXPRESSION_LIST', 'EMPTY', 'PIVOT']);

const text = (value: unknown) => (typeof value === 'string' ? value : '');

export const ALLOWED_FUNCTIONS = new Set(
  `
  !__postfix !~~ !~~* % & && * ** + - ->> / // <-> << <=> <@ >> @ @> ^ ^@ abs acos acosh add age aggregate ago
  alias any_value apply approx_count_distinct approx_quantile approx_top_k arbitrary arg_max arg_max_null
  arg_max_nulls_last arg_min arg_min_null arg_min_nulls_last argmax argmin array_agg array_aggr array_aggregate
  array_append array_apply array_cat array_concat array_contains array_cosine_distance array_cosine_similarity
  array_cross_product array_distance array_distinct array_dot_product array_extract array_filter array_grade_up
  array_has array_has_all array_has_any array_indexof array_inner_product array_intersect array_length
  array_negative_dot_product array_negative_inner_product array_pop_back array_pop_front array_position
  array_prepend array_push_back array_push_front array_reduce array_resize array_reverse array_reverse_sort
  array_select array_slice array_sort array_to_json array_to_string array_to_string_comma_default array_transform
  array_unique array_value array_where array_zip ascii asin asinh atan atan2 atanh avg bar base64 bin bit_and
  bit_count bit_length bit_or bit_position bit_xor bitstring bitstring_agg bool_and bool_or can_cast_implicitly
  cardinality cast_to_type cbrt ceil ceiling century char_length character_length chr combine concat concat_ws
  constant_or_null contains corr cos cosh cot count count_if count_star countif covar_pop covar_samp
  create_sort_key cume_dist current_date current_localtime current_localtimestamp current_role current_user
  damerau_levenshtein date_add date_diff date_part date_sub date_trunc datediff datepart datesub datetrunc day
  dayname dayofmonth dayofweek dayofyear days_in_month decade decode degrees dense_rank divide editdist3
  element_at encode ends_with entropy enum_code enum_first enum_last enum_range enum_range_boundary epoch epoch_ms
  epoch_ns epoch_us equi_width_bins era even exp factorial favg fdiv fill filter finalize first first_value
  flatten floor fmod format formatReadableDecimalSize formatReadableSize format_bytes from_base64 from_binary
  from_hex from_json from_json_strict fsum gamma gcd generate_series generate_subscripts geomean geometric_mean
  get_bit get_current_time get_current_timestamp get_type grade_up greatest greatest_common_divisor group_concat
  hamming hash hex histogram histogram_exact hour icu_sort_key ilike_escape instr is_histogram_other_bin isfinite
  isinf isnan isodow isoyear jaccard jaro_similarity jaro_winkler_similarity json json_array json_array_length
  json_contains json_exists json_extract json_extract_path json_extract_path_text json_extract_string
  json_group_array json_group_structure json_keys json_merge_patch json_object json_pretty json_quote
  json_structure json_transform json_transform_strict json_type json_valid json_value julian kahan_sum kurtosis
  kurtosis_pop lag last last_day last_value lcase lcm lead least least_common_multiple left left_grapheme len
  length length_grapheme levenshtein lgamma like_escape list list_aggr list_aggregate list_any_value list_append
  list_apply list_approx_count_distinct list_avg list_bit_and list_bit_or list_bit_xor list_bool_and list_bool_or
  list_cat list_concat list_contains list_cosine_distance list_cosine_similarity list_count list_distance
  list_distinct list_dot_product list_element list_entropy list_extract list_filter list_first list_grade_up
  list_has list_has_all list_has_any list_histogram list_indexof list_inner_product list_intersect list_kurtosis
  list_kurtosis_pop list_last list_mad list_max list_median list_min list_mode list_negative_dot_product
  list_negative_inner_product list_pack list_position list_prepend list_product list_reduce list_resize
  list_reverse list_reverse_sort list_select list_sem list_skewness list_slice list_sort list_stddev_pop
  list_stddev_samp list_string_agg list_sum list_transform list_unique list_value list_var_pop list_var_samp
  list_where list_zip listagg ln log log10 log2 lower lpad ltrim mad make_date make_time make_timestamp
  make_timestamp_ms make_timestamp_ns make_timestamptz make_type map map_concat map_contains map_contains_entry
  map_contains_value map_entries map_extract map_extract_value map_from_entries map_keys map_values max max_by md5
  md5_number md5_number_lower md5_number_upper mean median microsecond millennium millisecond min min_by minute
  mismatches mod mode month monthname multiply nanosecond nextafter nfc_normalize normalized_interval
  not_ilike_escape not_like_escape now nth_value ntile nullif octet_length ord parse_dirname parse_dirpath
  parse_duckdb_log_message parse_filename parse_formatted_bytes parse_path percent_rank pi position pow power
  prefix printf product quantile quantile_cont quantile_disc quarter radians range rank rank_dense reduce
  regexp_escape regexp_extract regexp_extract_all regexp_full_match regexp_matches regexp_replace
  regexp_split_to_array regexp_split_to_table regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope
  regr_sxx regr_sxy regr_syy remap_struct repeat replace replace_type reservoir_quantile reverse right
  right_grapheme round round_even roundbankers row row_number row_to_json rpad rtrim second sem session_user
  set_bit sha1 sha256 sign signbit sin sinh skewness split split_part sqrt st_asbinary st_astext st_aswkb st_aswkt
  st_crs st_geomfromwkb st_intersects_extent st_setcrs starts_with stddev stddev_pop stddev_samp str_split
  str_split_regex strftime string_agg string_split string_split_regex string_to_array strip_accents strlen strpos
  strptime struct_concat struct_contains struct_extract struct_extract_at struct_has struct_indexof struct_insert
  struct_keys struct_pack struct_position struct_update struct_values substr substring substring_grapheme subtract
  suffix sum sum_no_overflow sumkahan switch tan tanh time_bucket timetz_byte_comparable timezone timezone_hour
  timezone_minute to_base to_base64 to_binary to_centuries to_days to_decades to_hex to_hours to_json
  to_microseconds to_millennia to_milliseconds to_minutes to_months to_quarters to_seconds to_timestamp to_weeks
  to_years today transaction_timestamp translate trim trunc try_strptime typeof ucase unbin unhex unicode
  union_extract union_tag union_value unnest unpivot_list upper url_decode url_encode user uuid_extract_timestamp
  uuid_extract_version var_pop var_samp variance variant_bytes_to_variant variant_extract variant_normalize
  variant_to_parquet_variant variant_typeof vector_type wavg week weekday weekofyear weighted_avg xor year
  yearweek | || ~ ~~ ~~* ~~~
`
    .split(/\s+/)
    .filter((name) => name !== ''),
);

/** Why the parse tree names something outside the store, or undefined when it does not. */
export function refusalOf(tree: unknown): string | undefined {
  return check(tree, new Set());
}

/** A table reference: what json_serialize_sql writes for every TableRef (expressions have a class). */
function isTableRef(node: Node): boolean {
  return typeof node.type === 'string' && !('class' in node) && 'alias' in node && 'sample' in node;
}

function check(value: unknown, ctes: ReadonlySet<string>): string | undefined {
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = check(item, ctes);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const node = value as Node;
  const scope = withCtes(node, ctes);
  if (typeof node.class === 'string') {
    const problem = expressionProblem(node);
    if (problem !== undefined) return problem;
  } else if (isTableRef(node)) {
    const problem = tableRefProblem(node, scope);
    if (problem !== undefined) return problem;
    // The table function itself is checked above, against its own list: only its arguments are left.
    if (node.type === 'TABLE_FUNCTION') return check((node.function as Node | undefined)?.children, scope);
  }
  return check(Object.values(node), scope);
}

/** The scope inside a query node: the enclosing CTEs and its own (a recursive CTE names itself). */
function withCtes(node: Node, ctes: ReadonlySet<string>): ReadonlySet<string> {
  const map = (node.cte_map as { map?: { key?: unknown }[] } | undefined)?.map;
  if (!Array.isArray(map) || map.length === 0) return ctes;
  return new Set([...ctes, ...map.map((entry) => text(entry.key).toLowerCase())]);
}

function expressionProblem(node: Node): string | undefined {
  // Operators, casts, columns, constants, subqueries and lambdas name no function; windows and calls do.
  if (node.class !== 'FUNCTION' && node.class !== 'WINDOW') return undefined;
  const name = text(node.function_name).toLowerCase();
  const qualified = text(node.catalog) !== '' || !['', 'main'].includes(text(node.schema));
  if (qualified || !ALLOWED_FUNCTIONS.has(name))
    return `the function ${JSON.stringify(name)} is not allowed: query_sql runs DuckDB functions that compute from their arguments, over the store's tables`;
  return undefined;
}

function tableRefProblem(node: Node, ctes: ReadonlySet<string>): string | undefined {
  switch (node.type) {
    case 'BASE_TABLE': {
      const name = text(node.table_name).toLowerCase();
      const place = `${text(node.catalog_name).toLowerCase()}/${text(node.schema_name).toLowerCase()}`;
      if (place === '/' && ctes.has(name)) return undefined;
      if (STORE_PLACES.has(place) && STORE_TABLE_NAMES.has(name)) return undefined;
      return `${JSON.stringify(name)} is not a table of the store: query_sql reads ${[...STORE_TABLE_NAMES].join(', ')}`;
    }
    case 'TABLE_FUNCTION': {
      const fn = (node.function ?? {}) as Node;
      const name = text(fn.function_name).toLowerCase();
      if (text(fn.catalog) === '' && text(fn.schema) === '' && TABLE_FUNCTIONS.has(name)) return undefined;
      return `the table function ${JSON.stringify(name)} is not allowed: query_sql reads the store's tables (and ${[...TABLE_FUNCTIONS].join(', ')})`;
    }
    default:
      if (NESTING_REFS.has(text(node.type))) return undefined;
      return `a ${text(node.type)} reference is not supported in query_sql (nor DESCRIBE, SHOW, SUMMARIZE): the tables and their columns are in the tool's description`;
  }
}
