// The CPU one launch of an empty kernel costs its caller, for the real-GPU check (test/gpu/check.sh).
// Usage: launch_cost LAUNCHES   prints "CPU_NS_PER_LAUNCH WALL_NS_PER_LAUNCH"
//        launch_cost --libs     prints the CUDA runtime and driver files this program maps
// Launches go in batches of 1,000, timed on the thread's CPU clock, the stream drained between
// batches outside the timing: a launch never waits for a full launch queue, so the figure is
// the call's own cost, probes' traps included (they run in the caller's context).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <cuda_runtime.h>

static const int BATCH = 1000;

__global__ void empty_kernel() {}

static long long now_ns(clockid_t clock)
{
	timespec t;
	clock_gettime(clock, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void check(cudaError_t error, const char *what)
{
	if (error != cudaSuccess) {
		fprintf(stderr, "launch_cost: %s: %s\n", what, cudaGetErrorString(error));
		exit(1);
	}
}

static int print_libraries()
{
	char line[4096], printed[2][4096] = { "", "" };
	FILE *maps = fopen("/proc/self/maps", "r");

	if (!maps)
		return 1;
	while (fgets(line, sizeof(line), maps)) {
		const char *path = strchr(line, '/');
		int which = !path ? -1 : strstr(path, "libcudart.so") ? 0 : strstr(path, "libcuda.so") ? 1 : -1;

		if (which < 0 || !strcmp(printed[which], path))
			continue;
		strcpy(printed[which], path);
		fputs(path, stdout);
	}
	fclose(maps);
	return 0;
}

int main(int argc, char **argv)
{
	long launches = argc > 1 ? atol(argv[1]) : 200000;
	long long cpu = 0, wall = 0;

	check(cudaFree(0), "cudaFree");
	if (argc > 1 && !strcmp(argv[1], "--libs"))
		return print_libraries();
	if (launches < BATCH) {
		fprintf(stderr, "usage: launch_cost LAUNCHES (at least %d) | --libs\n", BATCH);
		return 2;
	}
	empty_kernel<<<1, 1>>>();
	check(cudaDeviceSynchronize(), "warm-up");
	for (long done = 0; done < launches; done += BATCH) {
		long long cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID), wall0 = now_ns(CLOCK_MONOTONIC);

		for (int i = 0; i < BATCH; i++)
			empty_kernel<<<1, 1>>>();
		cpu += now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
		wall += now_ns(CLOCK_MONOTONIC) - wall0;
		check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
	}
	check(cudaGetLastError(), "launch");
	printf("%.1f %.1f\n", (double)cpu / launches, (double)wall / launches);
	return 0;
}
