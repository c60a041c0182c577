/* The OpenTelemetry thread-context slot (OTEP 4947) for Node.js apps: a Node-API addon that
 * defines otel_thread_ctx_v1, which Causeway's probes read for the thread an event happened on,
 * at event time, to find the span it belongs to; thread-ctx.ts points it at a record holding the
 * thread's active span (NULL: none). The record layout is the Python writer's
 * (src/otlp/python/causeway_thread_ctx.c):
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
 * library have a few bytes of static TLS. Every thread (the main one, each worker) has its own.
 * The napi_* functions are left undefined: the node binary that loads the addon defines them.
 * Build: cc -O2 -shared -fPIC -I node_modules/node-api-headers/include -o causeway_thread_ctx.node
 * causeway_thread_ctx.c
 */
#include <stdint.h>
#include <node_api.h>

struct otel_thread_ctx_record;

__attribute__((visibility("default"), tls_model("initial-exec"))) __thread struct otel_thread_ctx_record
    *otel_thread_ctx_v1;

/* slot(): the calling thread's otel_thread_ctx_v1 as an 8-byte ArrayBuffer, which the writer
 * stores record addresses into through a BigUint64Array, without a call into the addon per store
 * (one aligned 8-byte store: a reader sees the old record or the new one). */
static napi_value slot(napi_env env, napi_callback_info info)
{
	napi_value buffer = NULL;

	(void)info;
	if (napi_create_external_arraybuffer(env, &otel_thread_ctx_v1, sizeof(otel_thread_ctx_v1), NULL, NULL,
					     &buffer) != napi_ok)
		napi_throw_error(env, NULL, "no ArrayBuffer over the thread-context slot (external buffers not allowed)");
	return buffer;
}

/* address(buffer): where a Buffer's bytes are, as a bigint (a record's address to publish). The
 * writer gives it Buffers of their own ArrayBuffer, whose bytes do not move. */
static napi_value address(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], result = NULL;
	void *data = NULL;
	size_t length = 0;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
	    napi_get_buffer_info(env, argv[0], &data, &length) != napi_ok) {
		napi_throw_type_error(env, NULL, "address() takes a Buffer");
		return NULL;
	}
	napi_create_bigint_uint64(env, (uint64_t)(uintptr_t)data, &result);
	return result;
}

NAPI_MODULE_INIT()
{
	napi_property_descriptor functions[] = {
		{ "slot", NULL, slot, NULL, NULL, NULL, napi_default, NULL },
		{ "address", NULL, address, NULL, NULL, NULL, napi_default, NULL },
	};

	if (napi_define_properties(env, exports, 2, functions) != napi_ok)
		return NULL;
	return exports;
}
