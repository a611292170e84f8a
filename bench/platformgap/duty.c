/* duty: keeps one core busy BUSY_US out of every BUSY_US + IDLE_US (IDLE_US 0: always busy) for
 * SECONDS; the load that bench/platformgap.sh puts on the control core. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	double busy = atof(argv[1]) * 1e-6, end = now() + atof(argv[3]);
	useconds_t idle = (useconds_t)atoi(argv[2]);
	while (now() < end) {
		double t = now() + busy;
		while (now() < t && now() < end)
			;
		if (idle > 0)
			usleep(idle);
	}
	return 0;
}
