/* The OpenTelemetry thread-context slot (OTEP 4947) for Python apps, and the hot path that keeps
 * it current, as a CPython extension module that causeway_thread_ctx.py loads. Causeway's probes
 * read otel_thread_ctx_v1 of the thread an event happened on, at event time, to find the span it
 * belongs to; it points at a record holding the thread's active span (NULL: none):
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
 * library have a few bytes of static TLS.
 *
 * In C because an asyncio task switch costs about 2 us and a Python frame around each handle
 * alone adds ~180 ns: the hooks here look the task's span up in the handle's context and store
 * only when it changed, then run asyncio's own Handle._run (its exception handling unchanged).
 *
 * Build, with the headers of the Python that runs the app:
 *   cc -O2 -shared -fPIC $(python3-config --includes) -o libcauseway_thread_ctx.so causeway_thread_ctx.c
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct otel_thread_ctx_record {
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t valid;
	uint8_t reserved;
	uint16_t attrs_data_size;
};

__attribute__((visibility("default"), tls_model("initial-exec"))) __thread struct otel_thread_ctx_record
    *otel_thread_ctx_v1;

/* What configure() was given: OpenTelemetry's current-context ContextVar, its value in an empty
 * context, and the Python function that finds the record of an OpenTelemetry context (slow path,
 * once per context: the result is cached on the context under cache_name). */
static PyObject *current_var, *root_context, *resolve;
/* callback_failed(Handle._run, handle, exception): asyncio's own handling of what a callback raised. */
static PyObject *callback_failed;
static PyObject *cache_name, *handle_context_name, *handle_callback_name, *handle_args_name, *slot_key;

/* A span's record, immutable once built; ended: contexts that still hold the span publish NULL. */
typedef struct {
	PyObject_HEAD struct otel_thread_ctx_record record;
	char ended;
} RecordObject;

static int record_init(RecordObject *self, PyObject *args, PyObject *kwds)
{
	Py_buffer ids;
	if (!PyArg_ParseTuple(args, "y*:Record", &ids))
		return -1;
	(void)kwds;
	if (ids.len != 24) {
		PyErr_Format(PyExc_ValueError, "a record takes trace_id[16] + span_id[8], not %zd bytes", ids.len);
		PyBuffer_Release(&ids);
		return -1;
	}
	memcpy(self->record.trace_id, ids.buf, 16);
	memcpy(self->record.span_id, (const char *)ids.buf + 16, 8);
	self->record.valid = 1;
	PyBuffer_Release(&ids);
	return 0;
}

static PyObject *record_end(RecordObject *self, PyObject *unused)
{
	(void)unused;
	self->ended = 1;
	Py_RETURN_NONE;
}

static PyMethodDef record_methods[] = {
	{ "end", (PyCFunction)record_end, METH_NOARGS, "The span ended: publish NULL for it from now on." },
	{ NULL, NULL, 0, NULL },
};

static PyTypeObject RecordType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_causeway_thread_ctx.Record",
	.tp_basicsize = sizeof(RecordObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Record(ids): the thread-context record of one span (ids: trace_id[16] + span_id[8])",
	.tp_methods = record_methods,
	.tp_init = (initproc)record_init,
	.tp_new = PyType_GenericNew,
};

/* One thread's slot: the OpenTelemetry context it publishes and that context's record, held so
 * that the record stays alive while otel_thread_ctx_v1 points into it. Kept in the thread state's
 * dict, so that it goes (and the slot is emptied) when the thread ends. */
typedef struct SlotObject {
	PyObject_HEAD PyObject *context;
	PyObject *record;
	pthread_t thread;
	struct otel_thread_ctx_record **tls;
	struct SlotObject **owner;
} SlotObject;

static __thread SlotObject *thread_slot;

static void slot_dealloc(SlotObject *self)
{
	/* Another thread clears it only while this one cannot run (finalizing, or after a fork). */
	if (pthread_equal(self->thread, pthread_self())) {
		*self->tls = NULL;
		*self->owner = NULL;
	}
	Py_XDECREF(self->context);
	Py_XDECREF(self->record);
	PyObject_Free(self);
}

static PyTypeObject SlotType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_causeway_thread_ctx.Slot",
	.tp_basicsize = sizeof(SlotObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_dealloc = (destructor)slot_dealloc,
};

static SlotObject *current_slot(void)
{
	if (thread_slot != NULL)
		return thread_slot;
	PyObject *dict = PyThreadState_GetDict();
	if (dict == NULL) {
		PyErr_SetString(PyExc_RuntimeError, "causeway_thread_ctx: this thread has no thread state dict");
		return NULL;
	}
	SlotObject *slot = PyObject_New(SlotObject, &SlotType);
	if (slot == NULL)
		return NULL;
	slot->context = slot->record = NULL;
	slot->thread = pthread_self();
	slot->tls = &otel_thread_ctx_v1;
	slot->owner = &thread_slot;
	thread_slot = slot;
	int set = PyDict_SetItem(dict, slot_key, (PyObject *)slot);
	Py_DECREF(slot); /* the dict holds it, or it is gone and thread_slot with it */
	return set < 0 ? NULL : slot;
}

/* Make the calling thread's record the span of the OpenTelemetry context `context`. */
static int publish(SlotObject *slot, PyObject *context)
{
	PyObject *record = PyObject_GetAttr(context, cache_name);
	if (record == NULL) {
		if (!PyErr_ExceptionMatches(PyExc_AttributeError))
			return -1;
		PyErr_Clear();
		record = PyObject_CallOneArg(resolve, context);
		if (record == NULL)
			return -1;
		if (PyObject_SetAttr(context, cache_name, record) < 0) {
			if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
				Py_DECREF(record);
				return -1;
			}
			PyErr_Clear(); /* a context that takes no attributes: resolved each time */
		}
	}
	struct otel_thread_ctx_record *published = NULL;
	if (Py_IS_TYPE(record, &RecordType) && !((RecordObject *)record)->ended)
		published = &((RecordObject *)record)->record;
	PyObject *old_context = slot->context, *old_record = slot->record;
	Py_INCREF(context);
	slot->context = context;
	slot->record = record;
	/* One aligned 8-byte store: a reader sees the old record or the new one, both whole and
	 * alive (the slot holds the one it points to). */
	__atomic_store_n(&otel_thread_ctx_v1, published, __ATOMIC_RELEASE);
	Py_XDECREF(old_context);
	Py_XDECREF(old_record);
	return 0;
}

/* The span of `context` (an OpenTelemetry context), if it is not the one published already. A
 * failure is reported as unraisable: the app's handle runs on regardless. */
static void follow(PyObject *context, PyObject *where)
{
	SlotObject *slot = current_slot();
	if (slot == NULL || (context != slot->context && publish(slot, context) < 0))
		PyErr_WriteUnraisable(where);
}

/* A hook in place of an asyncio method: BaseEventLoop._run_once follows the span of the loop's
 * own context, then runs the original; Handle._run is run here, in C (a Python frame costs about
 * as much as the whole writer): in the handle's context, it follows the span there and calls the
 * callback, as asyncio's does. A method descriptor, so that `handle._run()` calls it with the
 * handle as its first argument, with no bound method. */
typedef struct {
	PyObject_HEAD PyObject *original;
	int of_handle;
	vectorcallfunc vectorcall;
} HookObject;

static void follow_current(PyObject *where)
{
	PyObject *context;
	if (PyContextVar_Get(current_var, root_context, &context) < 0) {
		PyErr_WriteUnraisable(where);
		return;
	}
	follow(context, where);
	Py_DECREF(context);
}

/* asyncio.events.Handle._run: `self._context.run(self._callback, *self._args)`, and what an
 * exception becomes left to asyncio's own _run (through callback_failed in Python). */
static PyObject *run_handle(HookObject *self, PyObject *handle)
{
	PyObject *context = PyObject_GetAttr(handle, handle_context_name);
	PyObject *callback = context == NULL ? NULL : PyObject_GetAttr(handle, handle_callback_name);
	PyObject *args = callback == NULL ? NULL : PyObject_GetAttr(handle, handle_args_name);
	PyObject *result;
	if (args == NULL || !PyContext_CheckExact(context) || !PyTuple_CheckExact(args)) {
		/* Not a handle as asyncio makes them: its own _run says what of it. */
		PyErr_Clear();
		result = PyObject_CallOneArg(self->original, handle);
		goto done;
	}
	if (PyContext_Enter(context) < 0) {
		result = NULL;
	} else {
		follow_current(handle);
		result = PyObject_Vectorcall(callback, &PyTuple_GET_ITEM(args, 0), PyTuple_GET_SIZE(args), NULL);
		if (PyContext_Exit(context) < 0)
			Py_CLEAR(result);
	}
	if (result != NULL) {
		Py_SETREF(result, Py_NewRef(Py_None));
	} else {
#if PY_VERSION_HEX >= 0x030C0000
		PyObject *error = PyErr_GetRaisedException();
#else
		PyObject *type, *error, *traceback;
		PyErr_Fetch(&type, &error, &traceback);
		PyErr_NormalizeException(&type, &error, &traceback);
		if (traceback != NULL)
			PyException_SetTraceback(error, traceback);
		Py_XDECREF(type);
		Py_XDECREF(traceback);
#endif
		PyObject *failed_args[3] = { self->original, handle, error };
		result = PyObject_Vectorcall(callback_failed, failed_args, 3, NULL);
		Py_XDECREF(error);
	}
done:
	Py_XDECREF(context);
	Py_XDECREF(callback);
	Py_XDECREF(args);
	return result;
}

static PyObject *hook_call(HookObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
	if (PyVectorcall_NARGS(nargsf) == 1 && kwnames == NULL) {
		if (self->of_handle)
			return run_handle(self, args[0]);
		follow_current(args[0]);
	}
	return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
}

static PyObject *hook_get(PyObject *self, PyObject *obj, PyObject *type)
{
	(void)type;
	if (obj == NULL || obj == Py_None)
		return Py_NewRef(self);
	return PyMethod_New(self, obj);
}

static int hook_traverse(HookObject *self, visitproc visit, void *arg)
{
	Py_VISIT(self->original);
	return 0;
}

static int hook_clear(HookObject *self)
{
	Py_CLEAR(self->original);
	return 0;
}

static void hook_dealloc(HookObject *self)
{
	PyObject_GC_UnTrack(self);
	hook_clear(self);
	PyObject_GC_Del(self);
}

static PyObject *hook_original(HookObject *self, void *closure)
{
	(void)closure;
	return Py_NewRef(self->original);
}

static PyGetSetDef hook_getset[] = {
	{ "__wrapped__", (getter)hook_original, NULL, "the asyncio method this hook runs", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject HookType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_causeway_thread_ctx.Hook",
	.tp_basicsize = sizeof(HookObject),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
	.tp_vectorcall_offset = offsetof(HookObject, vectorcall),
	.tp_call = PyVectorcall_Call,
	.tp_descr_get = hook_get,
	.tp_getset = hook_getset,
	.tp_traverse = (traverseproc)hook_traverse,
	.tp_clear = (inquiry)hook_clear,
	.tp_dealloc = (destructor)hook_dealloc,
};

static PyObject *new_hook(PyObject *original, int of_handle)
{
	if (current_var == NULL) {
		PyErr_SetString(PyExc_RuntimeError, "call configure() first");
		return NULL;
	}
	HookObject *hook = PyObject_GC_New(HookObject, &HookType);
	if (hook == NULL)
		return NULL;
	hook->original = Py_NewRef(original);
	hook->of_handle = of_handle;
	hook->vectorcall = (vectorcallfunc)hook_call;
	PyObject_GC_Track(hook);
	return (PyObject *)hook;
}

static PyObject *module_configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
	(void)module;
	if (nargs != 4 || !PyContextVar_CheckExact(args[0]) || !PyCallable_Check(args[2]) || !PyCallable_Check(args[3])) {
		PyErr_SetString(PyExc_TypeError, "configure(current_context_var, root_context, resolve, callback_failed)");
		return NULL;
	}
	Py_XSETREF(current_var, Py_NewRef(args[0]));
	Py_XSETREF(root_context, Py_NewRef(args[1]));
	Py_XSETREF(resolve, Py_NewRef(args[2]));
	Py_XSETREF(callback_failed, Py_NewRef(args[3]));
	Py_RETURN_NONE;
}

static PyObject *module_hook_handle(PyObject *module, PyObject *original)
{
	(void)module;
	return new_hook(original, 1);
}

static PyObject *module_hook_turn(PyObject *module, PyObject *original)
{
	(void)module;
	return new_hook(original, 0);
}

static PyObject *module_publish(PyObject *module, PyObject *context)
{
	(void)module;
	if (resolve == NULL) {
		PyErr_SetString(PyExc_RuntimeError, "call configure() first");
		return NULL;
	}
	SlotObject *slot = current_slot();
	if (slot == NULL || publish(slot, context) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
	{ "configure", (PyCFunction)(void (*)(void))module_configure, METH_FASTCALL,
	  "configure(current_context_var, root_context, resolve, callback_failed): resolve(context) -> Record or None,"
	  " callback_failed(Handle._run, handle, exception)" },
	{ "hook_handle", module_hook_handle, METH_O,
	  "hook_handle(Handle._run): a Handle._run that publishes the span of the handle's context" },
	{ "hook_turn", module_hook_turn, METH_O,
	  "hook_turn(BaseEventLoop._run_once): a _run_once that first publishes the span of the loop's context" },
	{ "publish", module_publish, METH_O, "publish(context): this thread's record holds the span of context" },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT,
	.m_name = "_causeway_thread_ctx",
	.m_doc = "The OpenTelemetry thread context (otel_thread_ctx_v1) of Python threads and asyncio tasks",
	.m_size = -1,
	.m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__causeway_thread_ctx(void)
{
	/* Built with another Python's headers, the objects' layouts may differ: refuse to load. */
	if ((Py_Version >> 16) != (PY_VERSION_HEX >> 16)) {
		PyErr_Format(PyExc_ImportError, "built for Python %d.%d, loaded in %d.%d", PY_MAJOR_VERSION,
			     PY_MINOR_VERSION, (int)(Py_Version >> 24), (int)((Py_Version >> 16) & 0xff));
		return NULL;
	}
	if (PyType_Ready(&RecordType) < 0 || PyType_Ready(&SlotType) < 0 || PyType_Ready(&HookType) < 0)
		return NULL;
	cache_name = PyUnicode_InternFromString("_causeway_thread_ctx_record");
	handle_context_name = PyUnicode_InternFromString("_context");
	handle_callback_name = PyUnicode_InternFromString("_callback");
	handle_args_name = PyUnicode_InternFromString("_args");
	slot_key = PyUnicode_InternFromString("causeway_thread_ctx.slot");
	if (cache_name == NULL || handle_context_name == NULL || handle_callback_name == NULL || handle_args_name == NULL ||
	    slot_key == NULL)
		return NULL;
	PyObject *module = PyModule_Create(&module_def);
	if (module == NULL)
		return NULL;
	if (PyModule_AddObjectRef(module, "Record", (PyObject *)&RecordType) < 0) {
		Py_DECREF(module);
		return NULL;
	}
	return module;
}
