/* gaploop: the longest gap between two consecutive TSC reads of a tight C loop, per window.
 * No DPDK, no .NET, no system calls inside a window: whatever gap it sees is the platform's
 * (the hypervisor or the kernel taking the CPU away), a floor under any PMD on the same core.
 * usage: gaploop WINDOW_SECONDS WINDOWS -> one line per window: "<max gap us> <gaps over 1 ms>" */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <x86intrin.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: gaploop WINDOW_SECONDS WINDOWS\n");
		return 2;
	}
	double window = atof(argv[1]);
	int windows = atoi(argv[2]);
	double t0 = now();
	uint64_t c0 = __rdtsc();
	while (now() - t0 < 0.2)
		;
	double hz = (double)(__rdtsc() - c0) / (now() - t0);
	uint64_t ms = (uint64_t)(hz / 1000);
	for (int w = 0; w < windows; w++) {
		uint64_t prev = __rdtsc(), end = prev + (uint64_t)(window * hz), max = 0, over = 0;
		for (;;) {
			uint64_t t = __rdtsc(), d = t - prev;
			if (d > max)
				max = d;
			if (d > ms)
				over++;
			prev = t;
			if (t > end)
				break;
		}
		printf("%.1f %llu\n", (double)max * 1e6 / hz, (unsigned long long)over);
		fflush(stdout);
	}
	return 0;
}
