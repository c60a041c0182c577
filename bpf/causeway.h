/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The kernel/user ABI of Causeway: the fixed-layout records that the eBPF
 * programs write to the ring buffer, the settings the loader writes into the
 * programs' settings map, and the frames the loader writes on its stdout.
 * Included by every NAME.bpf.c, by the loader, and by
 * test/kernel/layout.c, which prints the offsets the TypeScript decoder
 * (src/kernel/record.ts) is checked against. Change a field here and bump
 * CW_ABI_VERSION.
 */
#ifndef CAUSEWAY_H
#define CAUSEWAY_H

#define CW_ABI_VERSION 11
#define CW_COMM_LEN 16
#define CW_NAME_LEN 96
#define CW_MAX_FOLLOWED 16384 /* processes in the followed table; the sidecar remembers as many (loader.ts) */

/* Event kinds: the DESIGN vocabulary, then two bookkeeping records. */
enum cw_kind {
	CW_KIND_CUDA_LAUNCH = 1,
	CW_KIND_CUDA_SYNC = 2,
	CW_KIND_CUDA_MEMCPY = 3,
	CW_KIND_CUDA_MALLOC = 4,
	CW_KIND_SCHED_RUNQUEUE = 5,
	CW_KIND_SCHED_BLOCKED = 6,
	CW_KIND_FUTEX_WAIT = 7,
	CW_KIND_BLOCK_IO = 8,
	CW_KIND_TCP_RETRANSMIT = 9,
	CW_KIND_CUDA_REGISTER = 10, /* a kernel's host stub and its device name */
	CW_KIND_PROC_EXEC = 11,     /* a process exec'd: follow by comm, look for a static CUDA runtime */
	CW_KIND_CUDA_OP = 12,       /* graph capture, instantiation, event record, stream wait: in-flight bookkeeping */
	CW_KIND_CUDA_MAPPED = 13,   /* a process mapped a CUDA library executable: probe it, list the process */
	CW_KIND_PROC_EXIT = 14,     /* a followed or GPU process exited: it leaves their lists */
	CW_KIND_IPC_MESSAGE = 15,   /* a message sent or received on a socket or pipe: links a request to the process serving it */
	CW_KIND_CUDA_LAUNCHES = 16, /* a thread's quick launches in one window, summed (struct cw_launches) */
	CW_KIND_SCHED_RUNQUEUE_SUM = 17, /* a thread's short run-queue waits in one window, summed (struct cw_wait_sum) */
	CW_KIND_CODE_MAPPED = 18,   /* a followed process mapped code from a file: look for its thread context */
	CW_KIND_SCHED_BLOCKED_SUM = 19, /* a thread's short blocked waits in one window, summed (struct cw_wait_sum) */
	CW_KIND_FUTEX_WAIT_SUM = 20, /* a thread's short futex waits in one window, summed (struct cw_wait_sum) */
	CW_KIND_CUDA_NAME_MORE = 21, /* the next part of a registration's name, too long for its record (struct cw_register; the loader's) */
	CW_KIND_MAX = 22,
};

/*
 * The CUDA entry points, passed to the probes as the uprobe's bpf cookie. A per-thread
 * default stream variant (cudaLaunchKernel_ptsz, cuMemcpy_ptds, what nvcc
 * --default-stream per-thread calls) has the same value with CW_API_PER_THREAD set: its
 * stream 0 is the calling thread's own default stream, not the legacy one.
 */
enum cw_cuda_api {
	CW_API_cudaLaunchKernel = 1,
	CW_API_cudaLaunchKernelExC,
	CW_API_cuLaunchKernel,
	CW_API_cuLaunchKernelEx,
	CW_API_cudaGraphLaunch,
	CW_API_cuGraphLaunch,
	CW_API_cudaStreamSynchronize,
	CW_API_cudaDeviceSynchronize,
	CW_API_cudaEventSynchronize,
	CW_API_cuCtxSynchronize,
	CW_API_cuStreamSynchronize,
	CW_API_cuEventSynchronize,
	CW_API_cudaEventQuery,
	CW_API_cudaStreamQuery,
	CW_API_cuEventQuery,
	CW_API_cuStreamQuery,
	CW_API_cudaMemcpy,
	CW_API_cudaMemcpyAsync,
	CW_API_cuMemcpy,
	CW_API_cuMemcpyAsync,
	CW_API_cuMemcpyHtoD,
	CW_API_cuMemcpyDtoH,
	CW_API_cuMemcpyDtoD,
	CW_API_cuMemcpyHtoDAsync,
	CW_API_cuMemcpyDtoHAsync,
	CW_API_cudaMalloc,
	CW_API_cudaFree,
	CW_API___cudaRegisterFunction,
	CW_API_cuModuleGetFunction,
	CW_API_cudaStreamBeginCapture,
	CW_API_cudaStreamEndCapture,
	CW_API_cudaGraphInstantiate,
	CW_API_cuStreamBeginCapture,
	CW_API_cuStreamEndCapture,
	CW_API_cuGraphInstantiate,
	CW_API_cudaEventRecord,
	CW_API_cudaStreamWaitEvent,
	CW_API_cuEventRecord,
	CW_API_cuStreamWaitEvent,
	CW_API_cudaSetDevice,     /* the thread's device: no record, the probes remember it */
	CW_API_cuCtxCreate,       /* a context on a device, made current */
	CW_API_cuCtxSetCurrent,
	CW_API_cuDevicePrimaryCtxRetain,
	CW_API_cudaGetKernel,     /* a handle launched in place of a named function (a stub, a library's kernel): no record, the probes map it back */
	CW_API_MAX,
};

#define CW_API_PER_THREAD 0x8000 /* or'ed into the api: the _ptsz / _ptds variant */
#define CW_DEVICE_UNKNOWN (-1)   /* the thread chose its device before the probes were attached */
#define CW_NOT_READY 600         /* cudaErrorNotReady and CUDA_ERROR_NOT_READY: a query of unfinished work */

/*
 * A copy's direction: cudaMemcpyKind's values, as cudaMemcpy and cudaMemcpyAsync take
 * them (and the record passes on whatever the caller gave); the driver's HtoD, DtoH
 * and DtoD entry points say theirs in the name.
 */
enum cw_memcpy_direction {
	CW_MEMCPY_HTOH = 0,
	CW_MEMCPY_HTOD = 1,
	CW_MEMCPY_DTOH = 2,
	CW_MEMCPY_DTOD = 3,
	CW_MEMCPY_DEFAULT = 4, /* inferred from the pointers (unified addressing): cuMemcpy, cuMemcpyAsync */
};

/* Every CUDA record says on which device: the thread's (cudaSetDevice) or its context's. */
struct cw_launch {
	__u64 func;       /* host stub (runtime), CUfunction (driver), or the executable graph of a graph launch */
	__u64 stream;
	__u64 shared_mem;
	__u32 grid[3];    /* zero for a graph launch */
	__u32 block[3];
	__s32 ret;
	__s32 device;     /* CW_DEVICE_UNKNOWN when not known */
};

struct cw_sync {
	__u64 handle;     /* stream or event; 0 for device and context syncs */
	__s32 ret;
	__s32 device;
	__u32 polls;      /* 0: a blocking sync; else the queries of a polling wait, first not-ready to done */
};

struct cw_memcpy {
	__u64 bytes;
	__u64 stream;
	__u32 direction;  /* enum cw_memcpy_direction */
	__u32 async;
	__s32 ret;
	__s32 device;
};

struct cw_malloc {
	__u64 ptr;
	__u64 bytes;      /* 0 for cudaFree: user space remembers the size */
	__u32 free;
	__s32 ret;
	__s32 device;
};

/* What the in-flight bookkeeping needs from calls that are not events themselves. */
struct cw_cuda_op {
	__u64 stream;     /* captured, recorded on, or made to wait */
	__u64 event;      /* recorded or waited for */
	__u64 graph;      /* the graph a capture ended with, or the one instantiated */
	__u64 exec;       /* the executable graph instantiated */
	__s32 ret;
	__s32 device;
};

/*
 * In-kernel reduction (common.bpf.h): a thread's launches that returned at once and succeeded
 * are summed in a window, one per thread, and written as one record when the window closes. A
 * window holds one stream, device and entry point, and at most CW_LAUNCH_FUNCS distinct
 * functions: a launch that differs closes it first, so every launch summed is named with its
 * count and user space queues them on the right stream. The record's start_ns is the first
 * launch's entry, end_ns the last one's return.
 */
#define CW_LAUNCH_FUNCS 5

struct cw_func_count {
	__u64 func;       /* 0 past the last one */
	__u32 count;
	__u32 pad;
};

struct cw_launches {
	__u64 stream;
	__u64 call_ns;    /* time inside the launch calls, summed */
	__u64 max_call_ns;
	__u32 count;      /* launches summed: the funcs' counts add up to it */
	__s32 device;
	struct cw_func_count funcs[CW_LAUNCH_FUNCS]; /* in first-launch order */
};

struct cw_task {
	__u32 pid;
	__u32 tid;
	char comm[CW_COMM_LEN];
};

/*
 * A thread's short waits of one kind in one window, summed: run-queue waits shorter than
 * cw_settings.runqueue_whole_ns, blocked and futex waits shorter than wait_whole_ns. Each
 * wait's own times and waker are not kept, only the longest one's waker.
 */
struct cw_wait_sum {
	__u64 wait_ns;         /* the waits' durations, summed */
	__u64 max_ns;
	__u32 count;
	__u32 preempted;       /* run-queue waits: how many began with a preemption (the others with a wakeup); 0 otherwise */
	struct cw_task waker;  /* the longest wait's waker (blocked and futex waits); pid 0 when none (run-queue waits, a timeout, an interrupt) */
};

/*
 * A run-queue wait's holders: the tasks that ran on the cpu the waiter finally ran on, during
 * the wait, with their on-cpu time within it, most first (pid 0 and tid 0 past the last one).
 * From that cpu's last CW_RUNQUEUE_RUNS runs (sched.bpf.c); seen_ns is the part of the wait
 * those runs cover, the idle task's included, so user space knows what the history missed.
 */
#define CW_RUNQUEUE_HOLDERS 3

struct cw_holder {
	struct cw_task task;
	__u64 oncpu_ns;
};

struct cw_runqueue {
	struct cw_holder holders[CW_RUNQUEUE_HOLDERS];
	__u64 seen_ns;
	__u32 preempted;       /* 1: we were preempted, 0: we were woken */
};

struct cw_blocked {
	struct cw_task waker;
	__u32 state;           /* prev_state at switch-out */
};

struct cw_futex {
	__u64 uaddr;
	struct cw_task waker;  /* pid 0 when the wait ended without a wake (timeout, signal) */
	__u32 op;
	__s32 ret;
};

struct cw_block {
	__u64 sector;
	__u32 dev;             /* MKDEV as the kernel encodes it: major << 20 | minor */
	__u32 bytes;
	char rwbs[8];
	__s32 error;
	__u32 submitter;       /* 1: attributed to the thread that submitted the request, 0: to the issuer */
};

struct cw_tcp {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u16 state;
	__u32 owner_known;     /* 1: pid/tid are the socket's last sender, 0: unknown */
};

struct cw_register {
	__u64 func;
	char name[CW_NAME_LEN]; /* empty when the probe could not read it, cut when long: the loader reads it whole from name_addr */
	__u64 name_addr;
};

struct cw_exec {
	__u32 ppid;
};

/* CW_KIND_CODE_MAPPED: the file mapped, as /proc/PID/maps names it (the loader skips files it knows). */
struct cw_mapped {
	__u64 ino;
	__u32 dev;             /* MKDEV as the kernel encodes it: major << 20 | minor */
};

/*
 * One send or receive on a socket, or write or read on a pipe. Both ends of a connection
 * compute the same two endpoint ids, ordered: a unix socket's end is its struct sock address
 * (the peer's is unix_sk(sk)->peer); an inet socket's is address << 16 | port (an IPv6 address
 * folded to 32 bits), so the sorted pair is the connection whichever end reports it. A pipe
 * (or FIFO) is one-way and has one id for both ends, its struct pipe_inode_info address, in
 * both ends[].
 */
#define CW_MESSAGE_PIPE 0xffff /* cw_message.family of a pipe, which has no address family */

struct cw_message {
	__u64 ends[2];         /* lower endpoint id first */
	__u32 bytes;
	__u16 family;          /* AF_UNIX, AF_INET, AF_INET6, or CW_MESSAGE_PIPE */
	__u8 send;             /* 1: sent, 0: received */
	__u8 pad;
};

/*
 * The app span active on the task when its event began, as its SDK published it (OpenTelemetry
 * thread context, OTEP 4947: the TLS variable otel_thread_ctx_v1 points at a record whose first
 * bytes are these two ids, then a valid flag). All zero: no context was read (the process
 * publishes none, no record was active, or the event has no moment in its task's context).
 */
struct cw_span_context {
	__u8 trace_id[16];
	__u8 span_id[8];
};

/* What the probes read of a published record (struct otel_thread_ctx_record's head). */
struct cw_otel_thread_ctx_record {
	struct cw_span_context ids;
	__u8 valid;            /* 1: valid; a writer clears it while updating the record in place */
};

/* One ring-buffer record: 184 bytes, every kind. */
struct cw_event {
	__u16 kind;            /* enum cw_kind */
	__u16 api;             /* enum cw_cuda_api for CUDA records, 0 otherwise */
	__u32 cpu;
	__u32 pid;             /* tgid */
	__u32 tid;
	__u64 start_ns;        /* CLOCK_MONOTONIC */
	__u64 end_ns;          /* == start_ns for point events */
	char comm[CW_COMM_LEN];
	struct cw_span_context context;
	union {
		struct cw_launch launch;
		struct cw_sync sync;
		struct cw_memcpy memcpy;
		struct cw_malloc malloc;
		struct cw_runqueue runqueue;
		struct cw_blocked blocked;
		struct cw_futex futex;
		struct cw_block block;
		struct cw_tcp tcp;
		struct cw_register reg;
		struct cw_exec exec;
		struct cw_mapped mapped;
		struct cw_cuda_op op;
		struct cw_message message;
		struct cw_launches launches;
		struct cw_wait_sum wait_sum;
		__u8 raw[112];
	} u;
};

/* The one entry of the settings map (common.bpf.h), written by the loader. */
struct cw_settings {
	__u64 min_ns[CW_KIND_MAX]; /* per kind: shorter records are not written */
	__u64 window_ns;           /* the reduction's window; 0: reduction off, every record whole */
	__u64 launch_whole_ns;     /* a launch call at least this long (it blocked) is written whole */
	__u64 runqueue_whole_ns;   /* a run-queue wait at least this long is written whole; shorter ones summed */
	__u64 wait_whole_ns;       /* a blocked or futex wait at least this long is written whole; shorter ones summed */
	__u32 follow_all;
	__u32 exclude[2];          /* with follow_all: the loader and its consumer, which would trace themselves */
	__u32 shed;                /* 1: the sidecar is behind; the probes write no event records (counted as shed) */
	__u32 obi_traces_ctx;      /* 1: OBI's pinned traces_ctx_v1 map is reused: read it where no thread context is */
	__u32 thread_ctx;          /* 1: a process publishes its thread context: the probes look theirs up */
};

/* Values of the gpu_processes map (common.bpf.h): how a process became known as a GPU user. */
enum cw_gpu_process {
	CW_GPU_FOUND_RUNNING = 1,  /* mapped CUDA before capture started: its threads' devices are unknown */
	CW_GPU_SEEN_STARTING = 2,  /* mapped CUDA under the probes: a thread that never chose a device is on 0 */
};

/*
 * Loader stdout: a stream of frames, each a header then `size` bytes.
 *  HELLO   struct cw_hello, once, after every probe is attached
 *  EVENTS  n * sizeof(struct cw_event), a batch as drained from the ring
 *  STATS   struct cw_stats, every stats interval and at exit
 *  MESSAGE one JSON object in UTF-8: {"level":"info|warn|error","msg":"...", ...}
 *  WATERMARK struct cw_watermark, after each drain of the ring that read up to a newer time
 *  CONTEXT never from the loader: one JSON object in UTF-8 that `causeway capture
 *          --record` adds to its recording of these frames, saying what the live capture
 *          read from /proc and /sys (process metadata, device names), so a replay can say the same
 * Loader stdin: one text command per line (see bpf/commands.c).
 */
enum cw_frame_type {
	CW_FRAME_HELLO = 1,
	CW_FRAME_EVENTS = 2,
	CW_FRAME_STATS = 3,
	CW_FRAME_MESSAGE = 4,
	CW_FRAME_CONTEXT = 5,
	CW_FRAME_WATERMARK = 6,
};

struct cw_frame {
	__u32 type;
	__u32 size;
};

struct cw_hello {
	__u32 abi_version;
	__u32 event_size;
	__u32 ringbuf_bytes;
	__u32 ncpus;
};

struct cw_stats {
	__u64 mono_ns;                 /* a CLOCK_MONOTONIC / CLOCK_REALTIME pair, */
	__u64 real_ns;                 /* sampled together, to convert times */
	__u64 drops[CW_KIND_MAX];      /* ring-buffer reservations that failed, per kind */
	__u64 shed[CW_KIND_MAX];       /* records the probes did not write while told to shed, per kind */
	__u64 events[CW_KIND_MAX];     /* records delivered, per kind */
	__u64 ringbuf_used;            /* bytes waiting in the ring at sampling time */
	__u32 followed;                /* pids followed (0 with follow-all) */
	__u32 libraries;               /* CUDA library files probed */
	__u32 gpu_processes;           /* processes found using CUDA (the loader's list) */
	__u32 unnamed_kernels;         /* host stubs launched, never seen registered, without a symbol (stub_names.c) */
	__u32 thread_ctx_processes;    /* processes whose thread context the probes read (thread_ctx.c) */
	__u32 thread_ctx_unresolved;   /* processes that export one the probes cannot read (thread_ctx.c says why) */
};

/*
 * Every record whose times are all before mono_ns (CLOCK_MONOTONIC) has been read from the ring
 * and written out before this frame: mono_ns is a time read before a drain, together with the
 * ring's producer position, and the drain went past that position (loader.c).
 */
struct cw_watermark {
	__u64 mono_ns;
};

#endif /* CAUSEWAY_H */
