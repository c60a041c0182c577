/* The OpenTelemetry thread-context slot (OTEP 4947) for apps that cannot define a TLS symbol
 * themselves (Python, loaded with ctypes). Causeway's probes read otel_thread_ctx_v1 of the
 * thread an event happened on, at event time, to find the span it belongs to; the app points it
 * at a record holding its active span (NULL: none). The record layout:
 *
 *   struct otel_thread_ctx_record {
 *       uint8_t trace_id[16];
 *       uint8_t span_id[8];
 *       uint8_t valid;              1 = valid
 *       uint8_t _reserved;
 *       uint16_t attrs_data_size;   attrs_data[] follows
 *   };
 *
 * Initial-exec so that a reader finds the slot at a fixed offset from the thread pointer (the
 * GOT slot of its TPOFF relocation), not through the dynamic TLS vector; glibc lets a dlopen()ed
 * library have a few bytes of static TLS. Build: cc -O2 -shared -fPIC -o
 * libcauseway_thread_ctx.so causeway_thread_ctx.c
 */
struct otel_thread_ctx_record;

__attribute__((visibility("default"), tls_model("initial-exec"))) __thread struct otel_thread_ctx_record
    *otel_thread_ctx_v1;

/* The calling thread's slot: the writer stores record addresses in it through a memoryview,
 * without a foreign call per store. */
__attribute__((visibility("default"))) struct otel_thread_ctx_record **causeway_thread_ctx_slot(void)
{
	return &otel_thread_ctx_v1;
}
