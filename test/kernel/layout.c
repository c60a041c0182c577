/*
 * Prints, as JSON, the C compiler's view of bpf/causeway.h: every struct's size and field
 * offsets, every enum value and constant. test/kernel/layout.test.ts compares it with the
 * TypeScript decoder's table (src/kernel/record.ts).
 */
#include <stddef.h>
#include <stdio.h>
#include <linux/types.h>
#include "../../bpf/causeway.h"

static const char *sep;

#define BEGIN(obj) (printf("%s\"%s\":{", sep, obj), sep = "")
#define END() (printf("}"), sep = ",")
#define STRUCT(s) (printf("%s\"%s\":{\"size\":%zu,\"fields\":{", sep, #s, sizeof(struct s)), sep = "")
#define FIELD(s, f) (printf("%s\"%s\":%zu", sep, #f, offsetof(struct s, f)), sep = ",")
#define END_STRUCT() (printf("}}"), sep = ",")
#define VALUE(v) (printf("%s\"%s\":%lld", sep, #v, (long long)(v)), sep = ",")

int main(void)
{
	sep = "";
	printf("{");
	BEGIN("structs");
	STRUCT(cw_event); FIELD(cw_event, kind); FIELD(cw_event, api); FIELD(cw_event, cpu); FIELD(cw_event, pid);
	FIELD(cw_event, tid); FIELD(cw_event, start_ns); FIELD(cw_event, end_ns); FIELD(cw_event, comm);
	FIELD(cw_event, context); FIELD(cw_event, u);
	END_STRUCT();
	STRUCT(cw_task); FIELD(cw_task, pid); FIELD(cw_task, tid); FIELD(cw_task, comm); END_STRUCT();
	STRUCT(cw_launch); FIELD(cw_launch, func); FIELD(cw_launch, stream); FIELD(cw_launch, shared_mem);
	FIELD(cw_launch, grid); FIELD(cw_launch, block); FIELD(cw_launch, ret); FIELD(cw_launch, device); END_STRUCT();
	STRUCT(cw_sync); FIELD(cw_sync, handle); FIELD(cw_sync, ret); FIELD(cw_sync, device); FIELD(cw_sync, polls);
	END_STRUCT();
	STRUCT(cw_memcpy); FIELD(cw_memcpy, bytes); FIELD(cw_memcpy, stream); FIELD(cw_memcpy, direction);
	FIELD(cw_memcpy, async); FIELD(cw_memcpy, ret); FIELD(cw_memcpy, device); END_STRUCT();
	STRUCT(cw_malloc); FIELD(cw_malloc, ptr); FIELD(cw_malloc, bytes); FIELD(cw_malloc, free); FIELD(cw_malloc, ret);
	FIELD(cw_malloc, device); END_STRUCT();
	STRUCT(cw_cuda_op); FIELD(cw_cuda_op, stream); FIELD(cw_cuda_op, event); FIELD(cw_cuda_op, graph);
	FIELD(cw_cuda_op, exec); FIELD(cw_cuda_op, ret); FIELD(cw_cuda_op, device); END_STRUCT();
	STRUCT(cw_holder); FIELD(cw_holder, task); FIELD(cw_holder, oncpu_ns); END_STRUCT();
	STRUCT(cw_runqueue); FIELD(cw_runqueue, holders); FIELD(cw_runqueue, seen_ns); FIELD(cw_runqueue, preempted);
	END_STRUCT();
	STRUCT(cw_blocked); FIELD(cw_blocked, waker); FIELD(cw_blocked, state); END_STRUCT();
	STRUCT(cw_futex); FIELD(cw_futex, uaddr); FIELD(cw_futex, waker); FIELD(cw_futex, op); FIELD(cw_futex, ret);
	END_STRUCT();
	STRUCT(cw_block); FIELD(cw_block, sector); FIELD(cw_block, dev); FIELD(cw_block, bytes); FIELD(cw_block, rwbs);
	FIELD(cw_block, error); FIELD(cw_block, submitter); END_STRUCT();
	STRUCT(cw_tcp); FIELD(cw_tcp, saddr); FIELD(cw_tcp, daddr); FIELD(cw_tcp, family); FIELD(cw_tcp, sport);
	FIELD(cw_tcp, dport); FIELD(cw_tcp, state); FIELD(cw_tcp, owner_known); END_STRUCT();
	STRUCT(cw_register); FIELD(cw_register, func); FIELD(cw_register, name); FIELD(cw_register, name_addr);
	END_STRUCT();
	STRUCT(cw_exec); FIELD(cw_exec, ppid); END_STRUCT();
	STRUCT(cw_mapped); FIELD(cw_mapped, ino); FIELD(cw_mapped, dev); END_STRUCT();
	STRUCT(cw_span_context); FIELD(cw_span_context, trace_id); FIELD(cw_span_context, span_id); END_STRUCT();
	STRUCT(cw_otel_thread_ctx_record); FIELD(cw_otel_thread_ctx_record, ids); FIELD(cw_otel_thread_ctx_record, valid);
	END_STRUCT();
	STRUCT(cw_message); FIELD(cw_message, ends); FIELD(cw_message, bytes); FIELD(cw_message, family);
	FIELD(cw_message, send); END_STRUCT();
	STRUCT(cw_func_count); FIELD(cw_func_count, func); FIELD(cw_func_count, count); END_STRUCT();
	STRUCT(cw_launches); FIELD(cw_launches, stream); FIELD(cw_launches, call_ns); FIELD(cw_launches, max_call_ns);
	FIELD(cw_launches, count); FIELD(cw_launches, device); FIELD(cw_launches, funcs); END_STRUCT();
	STRUCT(cw_wait_sum); FIELD(cw_wait_sum, wait_ns); FIELD(cw_wait_sum, max_ns);
	FIELD(cw_wait_sum, count); FIELD(cw_wait_sum, preempted); FIELD(cw_wait_sum, waker); END_STRUCT();
	STRUCT(cw_settings); FIELD(cw_settings, min_ns); FIELD(cw_settings, window_ns); FIELD(cw_settings, launch_whole_ns);
	FIELD(cw_settings, runqueue_whole_ns); FIELD(cw_settings, wait_whole_ns); FIELD(cw_settings, follow_all); FIELD(cw_settings, exclude);
	FIELD(cw_settings, shed); FIELD(cw_settings, obi_traces_ctx); FIELD(cw_settings, thread_ctx);
	END_STRUCT();
	STRUCT(cw_frame); FIELD(cw_frame, type); FIELD(cw_frame, size); END_STRUCT();
	STRUCT(cw_hello); FIELD(cw_hello, abi_version); FIELD(cw_hello, event_size); FIELD(cw_hello, ringbuf_bytes);
	FIELD(cw_hello, ncpus); END_STRUCT();
	STRUCT(cw_stats); FIELD(cw_stats, mono_ns); FIELD(cw_stats, real_ns); FIELD(cw_stats, drops); FIELD(cw_stats, shed);
	FIELD(cw_stats, events); FIELD(cw_stats, ringbuf_used); FIELD(cw_stats, followed); FIELD(cw_stats, libraries);
	FIELD(cw_stats, gpu_processes); FIELD(cw_stats, unnamed_kernels); FIELD(cw_stats, thread_ctx_processes);
	FIELD(cw_stats, thread_ctx_unresolved); END_STRUCT();
	STRUCT(cw_watermark); FIELD(cw_watermark, mono_ns); END_STRUCT();
	END();

	BEGIN("constants");
	VALUE(CW_ABI_VERSION); VALUE(CW_COMM_LEN); VALUE(CW_NAME_LEN); VALUE(CW_RUNQUEUE_HOLDERS); VALUE(CW_API_PER_THREAD);
	VALUE(CW_DEVICE_UNKNOWN); VALUE(CW_MESSAGE_PIPE);
	VALUE(CW_LAUNCH_FUNCS);
	END();

	BEGIN("kinds");
	VALUE(CW_KIND_CUDA_LAUNCH); VALUE(CW_KIND_CUDA_SYNC); VALUE(CW_KIND_CUDA_MEMCPY); VALUE(CW_KIND_CUDA_MALLOC);
	VALUE(CW_KIND_SCHED_RUNQUEUE); VALUE(CW_KIND_SCHED_BLOCKED); VALUE(CW_KIND_FUTEX_WAIT); VALUE(CW_KIND_BLOCK_IO);
	VALUE(CW_KIND_TCP_RETRANSMIT); VALUE(CW_KIND_CUDA_REGISTER); VALUE(CW_KIND_PROC_EXEC); VALUE(CW_KIND_CUDA_OP);
	VALUE(CW_KIND_CUDA_MAPPED); VALUE(CW_KIND_PROC_EXIT); VALUE(CW_KIND_IPC_MESSAGE);
	VALUE(CW_KIND_CUDA_LAUNCHES); VALUE(CW_KIND_SCHED_RUNQUEUE_SUM); VALUE(CW_KIND_CODE_MAPPED);
	VALUE(CW_KIND_SCHED_BLOCKED_SUM); VALUE(CW_KIND_FUTEX_WAIT_SUM); VALUE(CW_KIND_CUDA_NAME_MORE);
	VALUE(CW_KIND_MAX);
	END();

	BEGIN("apis");
	VALUE(CW_API_cudaLaunchKernel); VALUE(CW_API_cudaLaunchKernelExC); VALUE(CW_API_cuLaunchKernel);
	VALUE(CW_API_cuLaunchKernelEx); VALUE(CW_API_cudaGraphLaunch); VALUE(CW_API_cuGraphLaunch);
	VALUE(CW_API_cudaStreamSynchronize); VALUE(CW_API_cudaDeviceSynchronize); VALUE(CW_API_cudaEventSynchronize);
	VALUE(CW_API_cuCtxSynchronize); VALUE(CW_API_cuStreamSynchronize); VALUE(CW_API_cuEventSynchronize);
	VALUE(CW_API_cudaEventQuery); VALUE(CW_API_cudaStreamQuery); VALUE(CW_API_cuEventQuery); VALUE(CW_API_cuStreamQuery);
	VALUE(CW_API_cudaMemcpy); VALUE(CW_API_cudaMemcpyAsync); VALUE(CW_API_cuMemcpy); VALUE(CW_API_cuMemcpyAsync);
	VALUE(CW_API_cuMemcpyHtoD); VALUE(CW_API_cuMemcpyDtoH); VALUE(CW_API_cuMemcpyDtoD); VALUE(CW_API_cuMemcpyHtoDAsync);
	VALUE(CW_API_cuMemcpyDtoHAsync); VALUE(CW_API_cudaMalloc); VALUE(CW_API_cudaFree);
	VALUE(CW_API___cudaRegisterFunction); VALUE(CW_API_cuModuleGetFunction); VALUE(CW_API_cudaStreamBeginCapture);
	VALUE(CW_API_cudaStreamEndCapture); VALUE(CW_API_cudaGraphInstantiate); VALUE(CW_API_cuStreamBeginCapture);
	VALUE(CW_API_cuStreamEndCapture); VALUE(CW_API_cuGraphInstantiate); VALUE(CW_API_cudaEventRecord);
	VALUE(CW_API_cudaStreamWaitEvent); VALUE(CW_API_cuEventRecord); VALUE(CW_API_cuStreamWaitEvent);
	VALUE(CW_API_cudaSetDevice); VALUE(CW_API_cuCtxCreate); VALUE(CW_API_cuCtxSetCurrent);
	VALUE(CW_API_cuDevicePrimaryCtxRetain); VALUE(CW_API_cudaGetKernel); VALUE(CW_API_MAX);
	END();

	BEGIN("gpu_processes");
	VALUE(CW_GPU_FOUND_RUNNING); VALUE(CW_GPU_SEEN_STARTING);
	END();

	BEGIN("directions");
	VALUE(CW_MEMCPY_HTOH); VALUE(CW_MEMCPY_HTOD); VALUE(CW_MEMCPY_DTOH); VALUE(CW_MEMCPY_DTOD); VALUE(CW_MEMCPY_DEFAULT);
	END();

	BEGIN("frames");
	VALUE(CW_FRAME_HELLO); VALUE(CW_FRAME_EVENTS); VALUE(CW_FRAME_STATS); VALUE(CW_FRAME_MESSAGE); VALUE(CW_FRAME_CONTEXT);
	VALUE(CW_FRAME_WATERMARK);
	END();
	printf("}\n");
	return 0;
}
