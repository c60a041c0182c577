"""What a PyTorch service does on the GPU, with PyTorch's own account of it, for the real-GPU check.

Eager launches (elementwise and cuBLAS), a CUDA graph captured and replayed, and every way
PyTorch waits on the GPU: device, stream and event synchronisation, polling an event, and
.item(). Each wait follows a sleep kernel of a known length, so its duration is known twice:
as PyTorch timed the call and as the capture saw it. Writes that account as JSON to argv[1].
"""

import json
import os
import sys
import threading
import time

import torch

EAGER_ITERATIONS = 500
MATMULS = 20
GRAPH_REPLAYS = 20
WAIT_MS = (10, 30, 100)


def clock():
    """Both clocks: the loader's records are CLOCK_MONOTONIC, the exported spans Unix time."""
    return {"monotonic_ns": time.monotonic_ns(), "unix_ns": time.time_ns()}


def cycles_per_ms():
    """torch.cuda._sleep spins for clock cycles: how many make a millisecond on this GPU."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    cycles = 50_000_000
    start.record()
    torch.cuda._sleep(cycles)
    end.record()
    end.synchronize()
    return cycles / start.elapsed_time(end)


def timed(waits, api, gpu_ms, wait):
    began = clock()
    t0 = time.perf_counter_ns()
    result = wait()
    wall_ns = time.perf_counter_ns() - t0
    wait = {"api": api, "gpu_ms": gpu_ms, "wall_ns": wall_ns, **began}
    if api == "cudaEventQuery":
        wait["polls"] = result
    waits.append(wait)


def poll(event):
    polls = 0
    while not event.query():
        polls += 1
    return polls + 1


def eager(x):
    for _ in range(EAGER_ITERATIONS):
        torch.relu(x * 2.0 + 1.0)
    for _ in range(MATMULS):
        x @ x
    torch.cuda.synchronize()


def profiled_eager(x):
    """The eager phase under PyTorch's profiler (CUPTI): its kernels and runtime calls, counted."""
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as profiler:
        eager(x)
    kernels, calls = {}, {}
    for event in profiler.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            kernels[event.name] = kernels.get(event.name, 0) + 1
        elif event.name.startswith("cuda") or event.name.startswith("cu"):
            calls[event.name] = calls.get(event.name, 0) + 1
    return {"kernels": kernels, "runtime_calls": calls}


def waits_after_sleep(per_ms):
    waits = []
    stream = torch.cuda.current_stream()
    x = torch.ones(1024, device="cuda")
    for ms in WAIT_MS:
        cycles = int(ms * per_ms)
        torch.cuda._sleep(cycles)
        timed(waits, "cudaDeviceSynchronize", ms, lambda: torch.cuda.synchronize())
        torch.cuda._sleep(cycles)
        timed(waits, "cudaStreamSynchronize", ms, lambda: stream.synchronize())
        torch.cuda._sleep(cycles)
        event = torch.cuda.Event()
        event.record()
        timed(waits, "cudaEventSynchronize", ms, lambda: event.synchronize())
        torch.cuda._sleep(cycles)
        event = torch.cuda.Event()
        event.record()
        timed(waits, "cudaEventQuery", ms, lambda: poll(event))
        torch.cuda._sleep(cycles)
        timed(waits, "item", ms, lambda: x.sum().item())
    return waits


def graph(per_ms):
    """A graph captured on a side stream (as torch.cuda.graph does), then replayed and waited for."""
    static_x = torch.randn(1024, 1024, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            torch.relu(static_x * 2.0 + 1.0) @ static_x
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        torch.cuda._sleep(int(5 * per_ms))
        static_y = torch.relu(static_x * 2.0 + 1.0) @ static_x
    replays = []
    for _ in range(GRAPH_REPLAYS):
        g.replay()
        timed(replays, "cudaDeviceSynchronize", 5, lambda: torch.cuda.synchronize())
    del static_y
    return replays


def main():
    out = sys.argv[1]
    report = {"pid": os.getpid(), "tid": threading.get_native_id(), "torch": torch.__version__}
    report["device"] = torch.cuda.get_device_name(0)
    x = torch.randn(4096, 4096, device="cuda")
    eager(x)  # warm-up: kernels loaded, cuBLAS handles made
    per_ms = cycles_per_ms()
    report["sleep_cycles_per_ms"] = per_ms
    phases = {}
    began = clock()
    eager(x)
    phases["eager"] = {"began": began, "ended": clock()}
    try:
        report["profiler"] = profiled_eager(x)
    except Exception as error:  # the profiler is PyTorch's ground truth, not the check's point
        report["profiler"] = {"error": repr(error)}
    began = clock()
    report["waits"] = waits_after_sleep(per_ms)
    phases["waits"] = {"began": began, "ended": clock()}
    began = clock()
    report["graph_replays"] = graph(per_ms)
    phases["graph"] = {"began": began, "ended": clock(), "replays": GRAPH_REPLAYS}
    report["phases"] = phases
    with open("/proc/self/maps") as maps:  # to tell which mapping a captured address lies in
        report["maps"] = maps.read().splitlines()
    with open(out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
