/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The CUDA entry points probed, by exported symbol: the loader's (cuda_libs.c) and the
 * benchmark floor's (floor.c), which must attach at the same places. A static table, so each
 * includer has NSYMBOLS as a constant.
 */
#ifndef CAUSEWAY_CUDA_SYMBOLS_H
#define CAUSEWAY_CUDA_SYMBOLS_H

#include <linux/types.h>
#include "causeway.h"

#define PT CW_API_PER_THREAD

/* Each entry point's exported symbols: the per-thread default stream variants carry PT. */
static const struct {
	__u32 api;
	const char *symbol;
} cuda_symbols[] = {
	{ CW_API_cudaLaunchKernel, "cudaLaunchKernel" },
	{ CW_API_cudaLaunchKernel | PT, "cudaLaunchKernel_ptsz" },
	{ CW_API_cudaLaunchKernelExC, "cudaLaunchKernelExC" },
	{ CW_API_cudaLaunchKernelExC | PT, "cudaLaunchKernelExC_ptsz" },
	{ CW_API_cuLaunchKernel, "cuLaunchKernel" },
	{ CW_API_cuLaunchKernel | PT, "cuLaunchKernel_ptsz" },
	{ CW_API_cuLaunchKernelEx, "cuLaunchKernelEx" },
	{ CW_API_cuLaunchKernelEx | PT, "cuLaunchKernelEx_ptsz" },
	{ CW_API_cudaGraphLaunch, "cudaGraphLaunch" },
	{ CW_API_cudaGraphLaunch | PT, "cudaGraphLaunch_ptsz" },
	{ CW_API_cuGraphLaunch, "cuGraphLaunch" },
	{ CW_API_cuGraphLaunch | PT, "cuGraphLaunch_ptsz" },
	{ CW_API_cudaStreamSynchronize, "cudaStreamSynchronize" },
	{ CW_API_cudaStreamSynchronize | PT, "cudaStreamSynchronize_ptsz" },
	{ CW_API_cudaDeviceSynchronize, "cudaDeviceSynchronize" },
	{ CW_API_cudaEventSynchronize, "cudaEventSynchronize" },
	{ CW_API_cuCtxSynchronize, "cuCtxSynchronize" },
	{ CW_API_cuStreamSynchronize, "cuStreamSynchronize" },
	{ CW_API_cuStreamSynchronize | PT, "cuStreamSynchronize_ptsz" },
	{ CW_API_cuEventSynchronize, "cuEventSynchronize" },
	{ CW_API_cudaEventQuery, "cudaEventQuery" },
	{ CW_API_cudaStreamQuery, "cudaStreamQuery" },
	{ CW_API_cudaStreamQuery | PT, "cudaStreamQuery_ptsz" },
	{ CW_API_cuEventQuery, "cuEventQuery" },
	{ CW_API_cuStreamQuery, "cuStreamQuery" },
	{ CW_API_cuStreamQuery | PT, "cuStreamQuery_ptsz" },
	{ CW_API_cudaMemcpy, "cudaMemcpy" },
	{ CW_API_cudaMemcpy | PT, "cudaMemcpy_ptds" },
	{ CW_API_cudaMemcpyAsync, "cudaMemcpyAsync" },
	{ CW_API_cudaMemcpyAsync | PT, "cudaMemcpyAsync_ptsz" },
	{ CW_API_cuMemcpy, "cuMemcpy" },
	{ CW_API_cuMemcpy | PT, "cuMemcpy_ptds" },
	{ CW_API_cuMemcpyAsync, "cuMemcpyAsync" },
	{ CW_API_cuMemcpyAsync | PT, "cuMemcpyAsync_ptsz" },
	{ CW_API_cuMemcpyHtoD, "cuMemcpyHtoD_v2" },
	{ CW_API_cuMemcpyHtoD | PT, "cuMemcpyHtoD_v2_ptds" },
	{ CW_API_cuMemcpyDtoH, "cuMemcpyDtoH_v2" },
	{ CW_API_cuMemcpyDtoH | PT, "cuMemcpyDtoH_v2_ptds" },
	{ CW_API_cuMemcpyDtoD, "cuMemcpyDtoD_v2" },
	{ CW_API_cuMemcpyDtoD | PT, "cuMemcpyDtoD_v2_ptds" },
	{ CW_API_cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2" },
	{ CW_API_cuMemcpyHtoDAsync | PT, "cuMemcpyHtoDAsync_v2_ptsz" },
	{ CW_API_cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2" },
	{ CW_API_cuMemcpyDtoHAsync | PT, "cuMemcpyDtoHAsync_v2_ptsz" },
	{ CW_API_cudaMalloc, "cudaMalloc" },
	{ CW_API_cudaFree, "cudaFree" },
	{ CW_API___cudaRegisterFunction, "__cudaRegisterFunction" },
	{ CW_API_cuModuleGetFunction, "cuModuleGetFunction" },
	{ CW_API_cuModuleGetFunction, "cuLibraryGetKernel" }, /* the same arguments: (handle out, library, name) */
	{ CW_API_cudaStreamBeginCapture, "cudaStreamBeginCapture" },
	{ CW_API_cudaStreamBeginCapture | PT, "cudaStreamBeginCapture_ptsz" },
	{ CW_API_cudaStreamEndCapture, "cudaStreamEndCapture" },
	{ CW_API_cudaStreamEndCapture | PT, "cudaStreamEndCapture_ptsz" },
	{ CW_API_cudaGraphInstantiate, "cudaGraphInstantiate" },
	{ CW_API_cudaGraphInstantiate, "cudaGraphInstantiateWithFlags" },
	{ CW_API_cudaGraphInstantiate, "cudaGraphInstantiateWithParams" },
	{ CW_API_cudaGraphInstantiate | PT, "cudaGraphInstantiateWithParams_ptsz" },
	{ CW_API_cuStreamBeginCapture, "cuStreamBeginCapture" },
	{ CW_API_cuStreamBeginCapture | PT, "cuStreamBeginCapture_ptsz" },
	{ CW_API_cuStreamBeginCapture, "cuStreamBeginCapture_v2" },
	{ CW_API_cuStreamBeginCapture | PT, "cuStreamBeginCapture_v2_ptsz" },
	{ CW_API_cuStreamEndCapture, "cuStreamEndCapture" },
	{ CW_API_cuStreamEndCapture | PT, "cuStreamEndCapture_ptsz" },
	{ CW_API_cuGraphInstantiate, "cuGraphInstantiate_v2" },
	{ CW_API_cuGraphInstantiate, "cuGraphInstantiateWithFlags" },
	{ CW_API_cuGraphInstantiate, "cuGraphInstantiateWithParams" },
	{ CW_API_cuGraphInstantiate | PT, "cuGraphInstantiateWithParams_ptsz" },
	{ CW_API_cudaEventRecord, "cudaEventRecord" },
	{ CW_API_cudaEventRecord | PT, "cudaEventRecord_ptsz" },
	{ CW_API_cudaEventRecord, "cudaEventRecordWithFlags" },
	{ CW_API_cudaEventRecord | PT, "cudaEventRecordWithFlags_ptsz" },
	{ CW_API_cudaStreamWaitEvent, "cudaStreamWaitEvent" },
	{ CW_API_cudaStreamWaitEvent | PT, "cudaStreamWaitEvent_ptsz" },
	{ CW_API_cuEventRecord, "cuEventRecord" },
	{ CW_API_cuEventRecord | PT, "cuEventRecord_ptsz" },
	{ CW_API_cuEventRecord, "cuEventRecordWithFlags" },
	{ CW_API_cuEventRecord | PT, "cuEventRecordWithFlags_ptsz" },
	{ CW_API_cuStreamWaitEvent, "cuStreamWaitEvent" },
	{ CW_API_cuStreamWaitEvent | PT, "cuStreamWaitEvent_ptsz" },
	{ CW_API_cudaSetDevice, "cudaSetDevice" },
	{ CW_API_cuCtxCreate, "cuCtxCreate_v2" },
	{ CW_API_cuCtxSetCurrent, "cuCtxSetCurrent" },
	{ CW_API_cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain" },
	{ CW_API_cudaGetKernel, "__cudaGetKernel" }, /* what nvcc 13's launch code calls */
	{ CW_API_cudaGetKernel, "cudaGetKernel" },
	{ CW_API_cudaGetKernel, "cuKernelGetFunction" }, /* the same arguments: (handle out, what it stands for) */
};
#define NSYMBOLS (sizeof(cuda_symbols) / sizeof(cuda_symbols[0]))
#undef PT

#endif /* CAUSEWAY_CUDA_SYMBOLS_H */
