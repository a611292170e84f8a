/*
 * vsw_shim.c - exported wrappers over DPDK 22.11 for VSwitch's C# dataplane.
 *
 * DPDK's fast path (rte_eth_rx_burst, rte_eth_tx_burst, rte_pktmbuf_alloc_bulk, ...) is made of
 * static inline functions that C# cannot call; each gets one exported vsw_ function here. Setup
 * calls are wrapped too so that C# sees fixed-size integers and flat structs only. No switching
 * logic lives here: every decision is made in C#.
 */
#define _GNU_SOURCE
#include "vsw_shim.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_bus.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_net.h>
#include <rte_bpf.h>
#include <rte_memzone.h>
#include <rte_pcapng.h>
#include <rte_pdump.h>
#include <rte_ring.h>
#include <rte_vhost.h>

void vsw_mbuf_layout_get(struct vsw_mbuf_layout *out)
{
	out->struct_size = sizeof(struct rte_mbuf);
	out->headroom = RTE_PKTMBUF_HEADROOM;
	out->buf_addr = offsetof(struct rte_mbuf, buf_addr);
	out->data_off = offsetof(struct rte_mbuf, data_off);
	out->refcnt = offsetof(struct rte_mbuf, refcnt);
	out->nb_segs = offsetof(struct rte_mbuf, nb_segs);
	out->port = offsetof(struct rte_mbuf, port);
	out->ol_flags = offsetof(struct rte_mbuf, ol_flags);
	out->packet_type = offsetof(struct rte_mbuf, packet_type);
	out->pkt_len = offsetof(struct rte_mbuf, pkt_len);
	out->data_len = offsetof(struct rte_mbuf, data_len);
	out->vlan_tci = offsetof(struct rte_mbuf, vlan_tci);
	out->rss_hash = offsetof(struct rte_mbuf, hash.rss);
	out->buf_len = offsetof(struct rte_mbuf, buf_len);
	out->pool = offsetof(struct rte_mbuf, pool);
	out->next = offsetof(struct rte_mbuf, next);
	out->rss_hash_flag = RTE_MBUF_F_RX_RSS_HASH;
	out->vlan_flag = RTE_MBUF_F_RX_VLAN;
}

/* ---- EAL ---------------------------------------------------------------------------------- */

int32_t vsw_eal_init(int32_t argc, char **argv)
{
	int ret = rte_eal_init(argc, argv);
	return ret < 0 ? -rte_errno : ret;
}

/* ---- Packet capture server ---------------------------------------------------------------
 * dpdk-dumpcap (or dpdk-pdump), a secondary process started with the same --file-prefix, sends
 * rte_pdump's "mp_pdump" requests: enable (device, queue, flags, its ring and mempool, a BPF
 * program, snap length) and disable. rte_pdump's own server in DPDK 22.11 answers a disable as soon
 * as it has unlinked the rx/tx callbacks, and the client then frees its ring and mempool at once,
 * while a PMD may still be inside the callback copying into them: a capture stopped under load
 * (Ctrl-C on dpdk-dumpcap) crashed the switch. This server speaks the same protocol (22.11's
 * request layout), keeps rte_pdump's statistics memzone up to date, and before it answers a disable
 * waits until every PMD has finished a round (the switch's epoch, through the quiesce function C#
 * registers), so nothing the client frees is still in use. */
#define VSW_PDUMP_MP "mp_pdump"
enum { VSW_PDUMP_DISABLE = 1, VSW_PDUMP_ENABLE = 2 };
enum { VSW_PDUMP_V1 = 1, VSW_PDUMP_V2 = 2 };

struct vsw_pdump_request { /* rte_pdump.c (22.11): struct pdump_request */
	uint16_t ver;
	uint16_t op;
	uint32_t flags;
	char device[RTE_DEV_NAME_MAX_LEN];
	uint16_t queue;
	struct rte_ring *ring;
	struct rte_mempool *mp;
	const struct rte_bpf_prm *prm;
	uint32_t snaplen;
};

struct vsw_pdump_response { /* struct pdump_response */
	uint16_t ver;
	uint16_t res_op;
	int32_t err_value;
};

struct vsw_pdump_stats_zone { /* the "rte_pdump_stats" memzone rte_pdump_stats() reads */
	struct rte_pdump_stats rx[RTE_MAX_ETHPORTS][RTE_MAX_QUEUES_PER_PORT];
	struct rte_pdump_stats tx[RTE_MAX_ETHPORTS][RTE_MAX_QUEUES_PER_PORT];
	const struct rte_memzone *mz;
};

struct vsw_cap {
	struct rte_ring *ring;
	struct rte_mempool *mp;
	const struct rte_eth_rxtx_callback *cb;
	struct rte_bpf *filter;
	uint16_t ver;
	uint32_t snaplen;
	struct rte_pdump_stats *stats;
	int owner; /* the client's pid, from its multi-process socket name */
};

static struct vsw_cap cap_rx[RTE_MAX_ETHPORTS][RTE_MAX_QUEUES_PER_PORT];
static struct vsw_cap cap_tx[RTE_MAX_ETHPORTS][RTE_MAX_QUEUES_PER_PORT];
static struct vsw_pdump_stats_zone *cap_stats;
static void (*cap_quiesce)(void);
static int pdump_on;

/* rte_pcapng_copy (22.11) turns the TSC into the packet's time as base + delta * 1e9 / hz, which
 * overflows 64 bits once the process has run for a few seconds (delta > 2^64 / 1e9 cycles): the
 * capture's timestamps went wrong by hours. The server writes the enhanced packet block's time
 * itself, from its own base, without the overflow. */
static uint64_t cap_base_ns, cap_base_tsc, cap_hz;

static inline uint64_t cap_ns(uint64_t tsc)
{
	uint64_t d = tsc - cap_base_tsc;
	return cap_base_ns + (d / cap_hz) * 1000000000ULL + (d % cap_hz) * 1000000000ULL / cap_hz;
}

static void cap_copy(uint16_t port, uint16_t queue, enum rte_pcapng_direction dir,
		     struct rte_mbuf **pkts, uint16_t n, const struct vsw_cap *c)
{
	struct rte_mbuf *dup[n > 0 ? n : 1];
	uint64_t rcs[n > 0 ? n : 1];
	uint16_t d = 0;
	uint64_t ts = rte_get_tsc_cycles();

	if (c->filter != NULL)
		rte_bpf_exec_burst(c->filter, (void **)pkts, rcs, n);
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *p;
		if (c->filter != NULL && rcs[i] == 0) {
			__atomic_fetch_add(&c->stats->filtered, 1, __ATOMIC_RELAXED);
			continue;
		}
		p = c->ver == VSW_PDUMP_V2 ? rte_pcapng_copy(port, queue, pkts[i], c->mp, c->snaplen, ts, dir)
					   : rte_pktmbuf_copy(pkts[i], c->mp, 0, c->snaplen);
		if (unlikely(p == NULL)) {
			__atomic_fetch_add(&c->stats->nombuf, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (c->ver == VSW_PDUMP_V2 && p->data_len >= 20) {
			uint32_t *epb = rte_pktmbuf_mtod(p, uint32_t *); /* type, length, interface, time high, time low */
			if (epb[0] == 6) {
				uint64_t ns = cap_ns(ts);
				epb[3] = (uint32_t)(ns >> 32);
				epb[4] = (uint32_t)ns;
			}
		}
		dup[d++] = p;
	}
	__atomic_fetch_add(&c->stats->accepted, d, __ATOMIC_RELAXED);
	if (d > 0) {
		unsigned int enq = rte_ring_enqueue_burst(c->ring, (void **)dup, d, NULL);
		if (unlikely(enq < d)) {
			__atomic_fetch_add(&c->stats->ringfull, d - enq, __ATOMIC_RELAXED);
			rte_pktmbuf_free_bulk(&dup[enq], d - enq);
		}
	}
}

static uint16_t cap_rx_cb(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n,
			  uint16_t max __rte_unused, void *arg)
{
	cap_copy(port, queue, RTE_PCAPNG_DIRECTION_IN, pkts, n, arg);
	return n;
}

static uint16_t cap_tx_cb(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n, void *arg)
{
	cap_copy(port, queue, RTE_PCAPNG_DIRECTION_OUT, pkts, n, arg);
	return n;
}

/* The pid in a client's multi-process socket path (".../mp_socket_PID_SERIAL"), or 0. */
static int cap_peer_pid(const void *peer)
{
	const char *s = peer != NULL ? strrchr((const char *)peer, '/') : NULL;
	int pid = 0;
	if (s != NULL && sscanf(s, "/mp_socket_%d_", &pid) == 1 && pid > 0)
		return pid;
	return 0;
}

/* A capture whose client process is gone (killed before it could disable it) holds its queue
 * for ever: it is removed when a new capture asks for that queue. */
static int cap_stale(const struct vsw_cap *c) { return c->owner > 0 && kill(c->owner, 0) != 0 && errno == ESRCH; }

static void cap_drop_stale(uint16_t port, uint16_t first, uint16_t nrx, uint16_t ntx)
{
	int removed = 0;
	for (uint16_t q = first; q < nrx; q++)
		if (cap_rx[port][q].cb != NULL && cap_stale(&cap_rx[port][q]) &&
		    rte_eth_remove_rx_callback(port, q, cap_rx[port][q].cb) == 0) {
			cap_rx[port][q].cb = NULL;
			removed = 1;
		}
	for (uint16_t q = first; q < ntx; q++)
		if (cap_tx[port][q].cb != NULL && cap_stale(&cap_tx[port][q]) &&
		    rte_eth_remove_tx_callback(port, q, cap_tx[port][q].cb) == 0) {
			cap_tx[port][q].cb = NULL;
			removed = 1;
		}
	if (removed && cap_quiesce != NULL)
		cap_quiesce(); /* its ring and mempool stay allocated (leaked): nobody else may free them */
}

static int cap_owner;

/* Enables or disables one direction on queues [first, end) of a port; -errno. */
static int cap_queues(int tx, uint16_t port, uint16_t first, uint16_t end, const struct vsw_pdump_request *r,
		      struct rte_bpf *filter)
{
	for (uint16_t q = first; q < end; q++) {
		struct vsw_cap *c = tx ? &cap_tx[port][q] : &cap_rx[port][q];
		if (r->op == VSW_PDUMP_ENABLE) {
			if (c->cb != NULL)
				return -EEXIST;
			c->owner = cap_owner;
			c->ver = r->ver;
			c->ring = r->ring;
			c->mp = r->mp;
			c->snaplen = r->snaplen;
			c->filter = filter;
			c->stats = tx ? &cap_stats->tx[port][q] : &cap_stats->rx[port][q];
			c->cb = tx ? rte_eth_add_tx_callback(port, q, cap_tx_cb, c)
				   : rte_eth_add_first_rx_callback(port, q, cap_rx_cb, c);
			if (c->cb == NULL)
				return -rte_errno;
		} else {
			int ret;
			if (c->cb == NULL)
				return -EINVAL;
			ret = tx ? rte_eth_remove_tx_callback(port, q, c->cb) : rte_eth_remove_rx_callback(port, q, c->cb);
			if (ret < 0)
				return ret;
			c->cb = NULL;
		}
	}
	return 0;
}

static int cap_request(const struct vsw_pdump_request *r)
{
	struct rte_eth_dev_info info;
	struct rte_bpf *filter = NULL;
	uint16_t port, nrx, ntx, first;
	int ret;

	if (r->ver != VSW_PDUMP_V1 && r->ver != VSW_PDUMP_V2)
		return -EINVAL;
	if (r->op != VSW_PDUMP_ENABLE && r->op != VSW_PDUMP_DISABLE)
		return -EINVAL;
	if ((r->flags & RTE_PDUMP_FLAG_RXTX) == 0)
		return -EINVAL;
	if (rte_eth_dev_get_port_by_name(r->device, &port) != 0 || rte_eth_dev_info_get(port, &info) != 0)
		return -EINVAL;
	nrx = info.nb_rx_queues;
	ntx = info.nb_tx_queues;
	if (r->queue != RTE_PDUMP_ALL_QUEUES) {
		if (((r->flags & RTE_PDUMP_FLAG_RX) && r->queue >= nrx) || ((r->flags & RTE_PDUMP_FLAG_TX) && r->queue >= ntx))
			return -EINVAL;
		first = r->queue;
		nrx = ntx = r->queue + 1;
	} else {
		first = 0;
	}
	if (r->op == VSW_PDUMP_ENABLE) {
		if (r->ring == NULL || r->mp == NULL)
			return -EINVAL;
		cap_drop_stale(port, first, (r->flags & RTE_PDUMP_FLAG_RX) ? nrx : 0, (r->flags & RTE_PDUMP_FLAG_TX) ? ntx : 0);
		if (r->prm != NULL) {
			if (r->prm->prog_arg.type != RTE_BPF_ARG_PTR_MBUF)
				return -EINVAL;
			filter = rte_bpf_load(r->prm);
			if (filter == NULL)
				return -rte_errno;
		}
		ret = (r->flags & RTE_PDUMP_FLAG_RX) ? cap_queues(0, port, first, nrx, r, filter) : 0;
		if (ret == 0 && (r->flags & RTE_PDUMP_FLAG_TX))
			ret = cap_queues(1, port, first, ntx, r, filter);
		return ret; /* a half-enabled capture is disabled by the client, as with rte_pdump */
	}

	/* Disable: unlink every callback, wait until no PMD can still be inside one, and only then
	 * answer (the client frees its ring and mempool when it has the answer), then free filters. */
	{
		struct rte_bpf *old[2] = { NULL, NULL };
		if (r->flags & RTE_PDUMP_FLAG_RX)
			old[0] = cap_rx[port][first].filter;
		if (r->flags & RTE_PDUMP_FLAG_TX)
			old[1] = cap_tx[port][first].filter;
		ret = (r->flags & RTE_PDUMP_FLAG_RX) ? cap_queues(0, port, first, nrx, r, NULL) : 0;
		if (ret == 0 && (r->flags & RTE_PDUMP_FLAG_TX))
			ret = cap_queues(1, port, first, ntx, r, NULL);
		rte_atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (cap_quiesce != NULL)
			cap_quiesce();
		else
			rte_delay_us_sleep(100000);
		if (old[0] != NULL)
			rte_bpf_destroy(old[0]);
		if (old[1] != NULL && old[1] != old[0])
			rte_bpf_destroy(old[1]);
		return ret;
	}
}

static int cap_server(const struct rte_mp_msg *msg, const void *peer)
{
	struct rte_mp_msg reply;
	struct vsw_pdump_response *resp = (struct vsw_pdump_response *)reply.param;

	memset(&reply, 0, sizeof(reply));
	if (msg->len_param != sizeof(struct vsw_pdump_request)) {
		resp->err_value = -EINVAL;
	} else {
		const struct vsw_pdump_request *r = (const struct vsw_pdump_request *)msg->param;
		resp->ver = r->ver;
		resp->res_op = r->op;
		cap_owner = cap_peer_pid(peer); /* requests come one at a time, on the mp thread */
		resp->err_value = cap_request(r);
	}
	snprintf(reply.name, sizeof(reply.name), "%s", VSW_PDUMP_MP);
	reply.len_param = sizeof(*resp);
	return rte_mp_reply(&reply, peer) < 0 ? -1 : 0;
}

void vsw_capture_set_quiesce(void (*fn)(void)) { cap_quiesce = fn; }

int32_t vsw_pdump_init(void)
{
	const struct rte_memzone *mz;

	if (rte_pdump_init() != 0) /* reserves the statistics memzone, registers rte_pdump's server */
		return -rte_errno;
	mz = rte_memzone_lookup("rte_pdump_stats");
	if (mz == NULL || mz->len < sizeof(struct vsw_pdump_stats_zone) - sizeof(void *)) {
		rte_pdump_uninit();
		return -ENOMEM;
	}
	cap_stats = mz->addr;
	{
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		cap_base_tsc = rte_get_tsc_cycles();
		cap_base_ns = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
		cap_hz = rte_get_tsc_hz();
	}
	pdump_on = 1;
	if (getenv("VSW_RTE_PDUMP_SERVER") != NULL)
		return 0; /* keep rte_pdump's own server (only to show what this one fixes) */
	rte_mp_action_unregister(VSW_PDUMP_MP);
	if (rte_mp_action_register(VSW_PDUMP_MP, cap_server) != 0) {
		rte_pdump_uninit();
		return -rte_errno;
	}
	pdump_on = 1;
	return 0;
}

const char *vsw_runtime_dir(void) { return rte_eal_get_runtime_dir(); }

int32_t vsw_eal_cleanup(void)
{
	if (pdump_on) {
		rte_mp_action_unregister(VSW_PDUMP_MP);
		for (uint16_t port = 0; port < RTE_MAX_ETHPORTS; port++) /* the PMDs have stopped */
			for (uint16_t q = 0; q < RTE_MAX_QUEUES_PER_PORT; q++) {
				if (cap_rx[port][q].cb != NULL)
					rte_eth_remove_rx_callback(port, q, cap_rx[port][q].cb);
				if (cap_tx[port][q].cb != NULL)
					rte_eth_remove_tx_callback(port, q, cap_tx[port][q].cb);
			}
		rte_pdump_uninit();
		pdump_on = 0;
	}
	return rte_eal_cleanup();
}

int32_t vsw_errno(void) { return rte_errno; }

const char *vsw_strerror(int32_t errnum) { return rte_strerror(errnum < 0 ? -errnum : errnum); }

int32_t vsw_log_set_level(uint32_t level)
{
	rte_log_set_global_level(level);
	return 0;
}

/* Level of every DPDK log type matching a glob (e.g. "pmd.net.vhost*"); later registrations too. */
int32_t vsw_log_set_pattern(const char *pattern, uint32_t level)
{
	return rte_log_set_level_pattern(pattern, level) == 0 ? 0 : -EINVAL;
}

uint32_t vsw_log_global_level(void) { return rte_log_get_global_level(); }

/* DPDK log capture: the last few KiB of log text, written by whichever thread logs. Control-plane
 * only (logging is off the fast path); a lost race garbles a diagnostic, never the datapath. */
static char s_log[4096];
static size_t s_log_len;
static int s_log_passthrough;
static FILE *s_log_stream;

static ssize_t log_write(void *cookie, const char *buf, size_t size)
{
	(void)cookie;
	if (s_log_passthrough)
		fwrite(buf, 1, size, stderr);
	if (size >= sizeof(s_log)) {
		buf += size - (sizeof(s_log) - 1);
		size = sizeof(s_log) - 1;
	}
	if (s_log_len + size >= sizeof(s_log)) {
		size_t drop = s_log_len + size - (sizeof(s_log) - 1);
		memmove(s_log, s_log + drop, s_log_len - drop);
		s_log_len -= drop;
	}
	memcpy(s_log + s_log_len, buf, size);
	s_log_len += size;
	s_log[s_log_len] = '\0';
	return (ssize_t)size;
}

int32_t vsw_log_capture(int32_t passthrough)
{
	s_log_passthrough = passthrough;
	if (s_log_stream == NULL) {
		cookie_io_functions_t fns = { .write = log_write };
		s_log_stream = fopencookie(NULL, "w", fns);
		if (s_log_stream == NULL)
			return -errno;
		setvbuf(s_log_stream, NULL, _IOLBF, 0);
		rte_openlog_stream(s_log_stream);
	}
	return 0;
}

/* Copies the last non-empty line of captured log text into buf. Returns its length. */
int32_t vsw_log_last(char *buf, uint32_t len)
{
	size_t end = s_log_len, start;
	if (len == 0)
		return -EINVAL;
	while (end > 0 && (s_log[end - 1] == '\n' || s_log[end - 1] == ' '))
		end--;
	start = end;
	while (start > 0 && s_log[start - 1] != '\n')
		start--;
	if (end - start >= len)
		start = end - (len - 1);
	memcpy(buf, s_log + start, end - start);
	buf[end - start] = '\0';
	return (int32_t)(end - start);
}

void vsw_log_clear(void)
{
	if (s_log_stream)
		fflush(s_log_stream);
	s_log_len = 0;
	s_log[0] = '\0';
}

/* ---- Threads ------------------------------------------------------------------------------ */

int32_t vsw_thread_pin(int32_t cpu)
{
	cpu_set_t set;
	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return -EINVAL;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int32_t vsw_gettid(void) { return (int32_t)gettid(); }

int32_t vsw_tid_set_affinity(int32_t tid, uint64_t cpu_mask)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	for (int cpu = 0; cpu < 64; cpu++)
		if (cpu_mask & (1ULL << cpu))
			CPU_SET(cpu, &set);
	return sched_setaffinity(tid, sizeof(set), &set) == 0 ? 0 : -errno;
}

int32_t vsw_thread_register(void) { return rte_thread_register() < 0 ? -rte_errno : 0; }

/* PMDs run on the EAL's own worker lcores (rte_eal_remote_launch), as a DPDK application's loops
 * do: registering extra threads with rte_thread_register would turn off multi-process support, and
 * with it rte_pdump (dpdk-dumpcap). The worker lcore pinned to exactly {cpu} and idle, or -ENOENT. */
int32_t vsw_lcore_on_cpu(int32_t cpu)
{
	unsigned int l;
	RTE_LCORE_FOREACH_WORKER(l) {
		rte_cpuset_t set = rte_lcore_cpuset(l);
		if (cpu >= 0 && cpu < CPU_SETSIZE && CPU_COUNT(&set) == 1 && CPU_ISSET(cpu, &set) &&
		    rte_eal_get_lcore_state(l) != RUNNING)
			return (int32_t)l;
	}
	return -ENOENT;
}

int32_t vsw_lcore_launch(uint32_t lcore, int (*fn)(void *), void *arg) { return rte_eal_remote_launch(fn, arg, lcore); }

int32_t vsw_lcore_wait(uint32_t lcore) { return rte_eal_wait_lcore(lcore); }

int32_t vsw_thread_set_name(const char *name) { return -pthread_setname_np(pthread_self(), name); }

void vsw_thread_unregister(void) { rte_thread_unregister(); }

uint32_t vsw_lcore_id(void) { return rte_lcore_id(); }

uint64_t vsw_tsc_hz(void) { return rte_get_tsc_hz(); }

uint64_t vsw_rdtsc(void) { return rte_rdtsc(); }

void vsw_sleep_us(uint32_t us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
}

/* ---- Mempools ----------------------------------------------------------------------------- */

void *vsw_mempool_create(const char *name, uint32_t n, uint32_t cache_size, uint16_t data_room,
			 int32_t socket_id)
{
	return rte_pktmbuf_pool_create(name, n, cache_size, 0, data_room, socket_id);
}

void vsw_mempool_free(void *mp) { rte_mempool_free(mp); }

uint32_t vsw_mempool_in_use(const void *mp) { return rte_mempool_in_use_count(mp); }

uint32_t vsw_mempool_avail(const void *mp) { return rte_mempool_avail_count(mp); }

int32_t vsw_mbuf_alloc_bulk(void *mp, void **mbufs, uint32_t n)
{
	return rte_pktmbuf_alloc_bulk(mp, (struct rte_mbuf **)mbufs, n);
}

void vsw_mbuf_free_bulk(void **mbufs, uint32_t n)
{
	rte_pktmbuf_free_bulk((struct rte_mbuf **)mbufs, n);
}

uint32_t vsw_mbuf_copy_bulk(void *const *src, void **dst, uint32_t n)
{
	uint32_t made = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct rte_mbuf *m = (struct rte_mbuf *)src[i];
		dst[i] = rte_pktmbuf_copy(m, m->pool, 0, UINT32_MAX);
		made += dst[i] != NULL;
	}
	return made;
}

/* ---- Ports -------------------------------------------------------------------------------- */

/* The ethdev ports whose device is named `name`; returns how many (ids of the first max_ports). */
static int32_t ports_of_device(const char *name, uint16_t *port_ids, int32_t max_ports)
{
	int32_t count = 0;
	uint16_t pid;

	RTE_ETH_FOREACH_DEV(pid) {
		struct rte_eth_dev_info info;
		if (rte_eth_dev_info_get(pid, &info) != 0 || info.device == NULL)
			continue;
		if (strcmp(rte_dev_name(info.device), name) != 0)
			continue;
		if (count < max_ports)
			port_ids[count] = pid;
		count++;
	}
	return count;
}

/* Probe a device by devargs ("net_null0,size=64", "0000:00:04.0", ...) and report the ethdev
 * ports it created. Returns the number of ports, or a negative errno: -EEXIST when the device
 * is already probed (its ports belong to someone else: rte_dev_probe reports success for an
 * existing device, and handing its live port out again would let the caller reconfigure or
 * close a port that PMDs are polling). */
int32_t vsw_dev_probe(const char *devargs, uint16_t *port_ids, int32_t max_ports)
{
	struct rte_devargs da;
	char name[RTE_DEV_NAME_MAX_LEN];
	int ret, count;

	memset(&da, 0, sizeof(da));
	/* the bus's own parser gives the canonical name ("00:04.0" -> "0000:00:04.0") */
	if (rte_devargs_parse(&da, devargs) != 0)
		return -EINVAL;
	snprintf(name, sizeof(name), "%s", da.name);
	rte_devargs_reset(&da);
	if (name[0] == '\0')
		return -EINVAL;
	if (ports_of_device(name, port_ids, max_ports) > 0)
		return -EEXIST;

	ret = rte_dev_probe(devargs);
	if (ret < 0)
		return ret;
	count = ports_of_device(name, port_ids, max_ports);
	return count > 0 ? count : -ENODEV;
}

int32_t vsw_dev_remove(uint16_t port_id)
{
	struct rte_eth_dev_info info;
	int ret = rte_eth_dev_info_get(port_id, &info);
	if (ret != 0)
		return ret;
	vsw_port_close(port_id);
	return info.device ? rte_dev_remove(info.device) : 0;
}

int32_t vsw_port_info_get(uint16_t port_id, struct vsw_port_info *out)
{
	struct rte_eth_dev_info info;
	int ret = rte_eth_dev_info_get(port_id, &info);
	if (ret != 0)
		return ret;
	memset(out, 0, sizeof(*out));
	out->max_rx_queues = info.max_rx_queues;
	out->max_tx_queues = info.max_tx_queues;
	out->min_mtu = info.min_mtu;
	out->max_mtu = info.max_mtu;
	out->socket_id = rte_eth_dev_socket_id(port_id);
	out->rx_offload_capa_lo = (uint32_t)info.rx_offload_capa;
	snprintf(out->driver_name, sizeof(out->driver_name), "%s",
		 info.driver_name ? info.driver_name : "");
	snprintf(out->device_name, sizeof(out->device_name), "%s",
		 info.device ? rte_dev_name(info.device) : "");
	return 0;
}

/* each port's rx mempool as given to vsw_port_configure (checked by the vhost-user direct path) */
static struct rte_mempool *rx_pool[RTE_MAX_ETHPORTS];

int32_t vsw_port_configure(uint16_t port_id, uint16_t nb_rxq, uint16_t nb_txq, uint16_t nb_rxd,
			   uint16_t nb_txd, void *mp, uint16_t mtu)
{
	struct rte_eth_conf conf;
	struct rte_eth_dev_info info;
	int socket = rte_eth_dev_socket_id(port_id);
	int ret;
	uint16_t q;

	ret = rte_eth_dev_info_get(port_id, &info);
	if (ret != 0)
		return ret;
	if (nb_rxq > info.max_rx_queues || nb_txq > info.max_tx_queues)
		return -EINVAL;
	memset(&conf, 0, sizeof(conf));
	if (nb_rxq > 1 && info.flow_type_rss_offloads != 0) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf =
		    (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
	}
	if (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_RSS_HASH)
		conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_RSS_HASH;
	if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS)
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	else if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
	if (mtu != 0) {
		if (mtu < info.min_mtu || mtu > info.max_mtu)
			return -ERANGE;
		conf.rxmode.mtu = mtu;
		if ((uint32_t)mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN + 8 >
		    (uint32_t)rte_pktmbuf_data_room_size((struct rte_mempool *)mp) - RTE_PKTMBUF_HEADROOM) {
			/* virtual devices (net_pcap, net_vhost) chain mbufs without offering it */
			if (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER)
				conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
		}
	}
	ret = rte_eth_dev_configure(port_id, nb_rxq, nb_txq, &conf);
	if (ret != 0)
		return ret;
	ret = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nb_rxd, &nb_txd);
	if (ret != 0)
		return ret;
	if (socket < 0)
		socket = (int)rte_socket_id();
	rx_pool[port_id] = mp;
	for (q = 0; q < nb_rxq; q++) {
		ret = rte_eth_rx_queue_setup(port_id, q, nb_rxd, socket, NULL, mp);
		if (ret != 0)
			return ret;
	}
	for (q = 0; q < nb_txq; q++) {
		struct rte_eth_txconf txconf = info.default_txconf;
		txconf.offloads = conf.txmode.offloads;
		ret = rte_eth_tx_queue_setup(port_id, q, nb_txd, socket, &txconf);
		if (ret != 0)
			return ret;
	}
	return 0;
}

/* ---- vhost-user direct data path -----------------------------------------------------------
 * net_vhost's rx/tx functions add a per-packet pass (mbuf->port, vlan_tci, byte count) and free
 * every sent mbuf one at a time (one rte_lcore_id() TLS lookup and one mempool put each). The
 * shim calls rte_vhost_dequeue_burst/rte_vhost_enqueue_burst itself for net_vhost queues, keeping
 * net_vhost's queue protocol (allow_queuing/while_queuing, which its destroy_device waits on) and
 * its packet/byte counters, and frees sent mbufs in bulk. That needs the leading fields of
 * net_vhost's private per-queue struct in DPDK 22.11 (drivers/net/vhost/rte_eth_vhost.c); they are
 * checked against what queue setup stored (the mempool, the virtqueue index) before the direct
 * path is used for a queue, and any mismatch leaves the queue on rte_eth_rx/tx_burst. */

struct vsw_nv_queue { /* net_vhost 22.11: struct vhost_queue, leading fields */
	int vid;
	rte_atomic32_t allow_queuing;
	rte_atomic32_t while_queuing;
	void *internal;
	struct rte_mempool *mb_pool;
	uint16_t port;
	uint16_t virtqueue_id;
	struct {
		uint64_t pkts;
		uint64_t bytes;
		uint64_t missed_pkts;
	} stats;
};

/* ethdev rx queue q reads the guest's tx virtqueue 2q+1; tx queue q writes its rx virtqueue 2q */
#define VSW_DIRECT_QUEUES 8
#define VSW_VHOST_CHUNK 32 /* net_vhost's VHOST_MAX_PKT_BURST */
static struct vsw_nv_queue *direct_rxq[RTE_MAX_ETHPORTS][VSW_DIRECT_QUEUES];
static struct vsw_nv_queue *direct_txq[RTE_MAX_ETHPORTS][VSW_DIRECT_QUEUES];

static void vhost_direct_clear(uint16_t port_id)
{
	if (port_id >= RTE_MAX_ETHPORTS)
		return;
	memset(direct_rxq[port_id], 0, sizeof(direct_rxq[port_id]));
	memset(direct_txq[port_id], 0, sizeof(direct_txq[port_id]));
}

/* After rte_eth_dev_start: which queues of a net_vhost port take the direct path -> count. */
static int vhost_direct_setup(uint16_t port_id)
{
	struct rte_eth_dev_info info;
	int n = 0;

	vhost_direct_clear(port_id);
	if (port_id >= RTE_MAX_ETHPORTS || rte_eth_dev_info_get(port_id, &info) != 0 ||
	    info.driver_name == NULL || strcmp(info.driver_name, "net_vhost") != 0)
		return 0;
	for (uint16_t q = 0; q < info.nb_rx_queues && q < VSW_DIRECT_QUEUES; q++) {
		struct vsw_nv_queue *vq = rte_eth_fp_ops[port_id].rxq.data[q];
		if (vq != NULL && vq->mb_pool == rx_pool[port_id] && vq->mb_pool != NULL &&
		    vq->virtqueue_id == q * 2 + 1) {
			direct_rxq[port_id][q] = vq;
			n++;
		}
	}
	for (uint16_t q = 0; q < info.nb_tx_queues && q < VSW_DIRECT_QUEUES; q++) {
		struct vsw_nv_queue *vq = rte_eth_fp_ops[port_id].txq.data[q];
		if (vq != NULL && vq->mb_pool == NULL && vq->virtqueue_id == q * 2) {
			direct_txq[port_id][q] = vq;
			n++;
		}
	}
	return n;
}

/* A guest that negotiated VIRTIO_NET_F_CSUM sends TCP/UDP with a partial checksum (the field holds
 * the pseudo-header sum; VIRTIO_NET_HDR_F_NEEDS_CSUM); rte_vhost marks those RX_L4_CKSUM_NONE. The
 * port enables no rx checksum offload, so the switch completes the sum here, as net_vhost's rx does
 * in that case: packets leave the switch with valid checksums whatever their output port. */
static void vhost_complete_l4_csum(struct rte_mbuf *m)
{
	struct rte_net_hdr_lens lens;
	uint32_t ptype = rte_net_get_ptype(m, &lens, RTE_PTYPE_ALL_MASK);
	uint32_t start = lens.l2_len + lens.l3_len, field;
	uint16_t sum = 0;
	int udp = (ptype & RTE_PTYPE_L4_MASK) == RTE_PTYPE_L4_UDP;

	if ((ptype & RTE_PTYPE_L4_MASK) == RTE_PTYPE_L4_TCP)
		field = start + 16; /* TCP checksum */
	else if (udp)
		field = start + 6; /* UDP checksum */
	else
		return;
	if (field + 2 > m->data_len || rte_raw_cksum_mbuf(m, start, m->pkt_len - start, &sum) < 0)
		return;
	sum = (uint16_t)~sum;
	if (udp && sum == 0)
		sum = 0xffff; /* RFC 768: 0 means "no checksum" */
	*rte_pktmbuf_mtod_offset(m, uint16_t *, field) = sum;
	m->ol_flags = (m->ol_flags & ~RTE_MBUF_F_RX_L4_CKSUM_MASK) | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
}

/* net_vhost's queue protocol: a queue is used only while allow_queuing is set, and while_queuing
 * tells destroy_device (which clears allow_queuing, then waits) that a burst is in progress. */
static inline int vhost_queue_enter(struct vsw_nv_queue *r)
{
	if (unlikely(rte_atomic32_read(&r->allow_queuing) == 0))
		return 0;
	rte_atomic32_set(&r->while_queuing, 1);
	if (likely(rte_atomic32_read(&r->allow_queuing) != 0))
		return 1;
	rte_atomic32_set(&r->while_queuing, 0);
	return 0;
}

static inline void vhost_queue_leave(struct vsw_nv_queue *r) { rte_atomic32_set(&r->while_queuing, 0); }

static inline uint16_t vhost_direct_rx(struct vsw_nv_queue *r, struct rte_mbuf **bufs, uint16_t n)
{
	uint16_t got = 0;
	uint64_t bytes = 0;

	if (!vhost_queue_enter(r))
		return 0;
	while (got < n) {
		uint16_t want = RTE_MIN(n - got, VSW_VHOST_CHUNK);
		uint16_t k = rte_vhost_dequeue_burst(r->vid, r->virtqueue_id, r->mb_pool, &bufs[got], want);
		got += k;
		if (k < want)
			break;
	}
	for (uint16_t i = 0; i < got; i++) {
		bufs[i]->port = r->port;
		bytes += bufs[i]->pkt_len;
		if (unlikely((bufs[i]->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_NONE))
			vhost_complete_l4_csum(bufs[i]);
	}
	r->stats.pkts += got;
	r->stats.bytes += bytes;
	vhost_queue_leave(r);
	return got;
}

static inline uint16_t vhost_direct_tx(struct vsw_nv_queue *r, struct rte_mbuf **bufs, uint16_t n)
{
	uint16_t sent = 0;
	uint64_t bytes = 0;

	if (!vhost_queue_enter(r))
		return 0;
	while (sent < n) {
		uint16_t want = RTE_MIN(n - sent, VSW_VHOST_CHUNK);
		uint16_t k = rte_vhost_enqueue_burst(r->vid, r->virtqueue_id, &bufs[sent], want);
		sent += k;
		if (k < want)
			break;
	}
	for (uint16_t i = 0; i < sent; i++)
		bytes += bufs[i]->pkt_len;
	r->stats.pkts += sent;
	r->stats.bytes += bytes;
	r->stats.missed_pkts += n - sent;
	rte_pktmbuf_free_bulk(bufs, sent); /* enqueue copied them into guest memory */
	vhost_queue_leave(r);
	return sent;
}

int32_t vsw_port_start(uint16_t port_id)
{
	int ret = rte_eth_dev_start(port_id);
	if (ret == 0 && getenv("VSW_NO_VHOST_DIRECT") == NULL)
		vhost_direct_setup(port_id);
	return ret;
}

int32_t vsw_port_direct_queues(uint16_t port_id)
{
	int n = 0;
	if (port_id >= RTE_MAX_ETHPORTS)
		return 0;
	for (int q = 0; q < VSW_DIRECT_QUEUES; q++)
		n += (direct_rxq[port_id][q] != NULL) + (direct_txq[port_id][q] != NULL);
	return n;
}

int32_t vsw_port_stop(uint16_t port_id)
{
	vhost_direct_clear(port_id);
	return rte_eth_dev_stop(port_id);
}

int32_t vsw_port_close(uint16_t port_id)
{
	vhost_direct_clear(port_id);
	return rte_eth_dev_close(port_id);
}

int32_t vsw_port_link(uint16_t port_id, struct vsw_link *out)
{
	struct rte_eth_link link;
	int ret = rte_eth_link_get_nowait(port_id, &link);
	if (ret != 0)
		return ret;
	out->speed_mbps = link.link_speed;
	out->up = link.link_status;
	out->full_duplex = link.link_duplex;
	return 0;
}

int32_t vsw_port_mac(uint16_t port_id, uint8_t *mac6)
{
	struct rte_ether_addr addr;
	int ret = rte_eth_macaddr_get(port_id, &addr);
	if (ret != 0)
		return ret;
	memcpy(mac6, addr.addr_bytes, 6);
	return 0;
}

int32_t vsw_port_promiscuous(uint16_t port_id, int32_t on)
{
	return on ? rte_eth_promiscuous_enable(port_id) : rte_eth_promiscuous_disable(port_id);
}

int32_t vsw_port_stats(uint16_t port_id, struct vsw_port_stats *out)
{
	struct rte_eth_stats s;
	int ret = rte_eth_stats_get(port_id, &s);
	if (ret != 0)
		return ret;
	out->ipackets = s.ipackets;
	out->opackets = s.opackets;
	out->ibytes = s.ibytes;
	out->obytes = s.obytes;
	out->imissed = s.imissed;
	out->ierrors = s.ierrors;
	out->oerrors = s.oerrors;
	out->rx_nombuf = s.rx_nombuf;
	return 0;
}

int32_t vsw_port_stats_reset(uint16_t port_id) { return rte_eth_stats_reset(port_id); }

int32_t vsw_port_xstats_count(uint16_t port_id) { return rte_eth_xstats_get_names(port_id, NULL, 0); }

int32_t vsw_port_xstat_name(uint16_t port_id, uint32_t index, char *buf, uint32_t len)
{
	int n = rte_eth_xstats_get_names(port_id, NULL, 0);
	if (n < 0)
		return n;
	if (index >= (uint32_t)n || len == 0)
		return -EINVAL;
	{
		struct rte_eth_xstat_name names[n];
		int got = rte_eth_xstats_get_names(port_id, names, (unsigned int)n);
		if (got < 0)
			return got;
		snprintf(buf, len, "%s", names[index].name);
	}
	return 0;
}

int32_t vsw_port_xstats(uint16_t port_id, uint64_t *values, uint32_t n)
{
	struct rte_eth_xstat xs[n > 0 ? n : 1];
	int got = rte_eth_xstats_get(port_id, xs, n);
	if (got < 0 || (uint32_t)got > n)
		return got;
	for (int i = 0; i < got; i++)
		values[xs[i].id < n ? xs[i].id : (uint64_t)i] = xs[i].value;
	return got;
}

/* ---- Fast path ---------------------------------------------------------------------------- */

/* The vhost-user direct path bypasses rte_eth_rx_burst/rte_eth_tx_burst, so it runs the queue's
 * ethdev callbacks itself (what those inline functions do): that is how rte_pdump captures a
 * vhost-user port. One load of the callback list per burst when nothing is registered. */
uint16_t vsw_rx_burst(uint16_t port_id, uint16_t queue_id, void **mbufs, uint16_t n)
{
	struct vsw_nv_queue *vq = queue_id < VSW_DIRECT_QUEUES ? direct_rxq[port_id][queue_id] : NULL;
	if (vq != NULL) {
		uint16_t got = vhost_direct_rx(vq, (struct rte_mbuf **)mbufs, n);
		void *cb = __atomic_load_n((void **)&rte_eth_fp_ops[port_id].rxq.clbk[queue_id], __ATOMIC_RELAXED);
		if (unlikely(cb != NULL))
			got = rte_eth_call_rx_callbacks(port_id, queue_id, (struct rte_mbuf **)mbufs, got, n, cb);
		return got;
	}
	return rte_eth_rx_burst(port_id, queue_id, (struct rte_mbuf **)mbufs, n);
}

uint16_t vsw_tx_burst(uint16_t port_id, uint16_t queue_id, void **mbufs, uint16_t n)
{
	struct vsw_nv_queue *vq = queue_id < VSW_DIRECT_QUEUES ? direct_txq[port_id][queue_id] : NULL;
	if (vq != NULL) {
		void *cb = __atomic_load_n((void **)&rte_eth_fp_ops[port_id].txq.clbk[queue_id], __ATOMIC_RELAXED);
		if (unlikely(cb != NULL))
			n = rte_eth_call_tx_callbacks(port_id, queue_id, (struct rte_mbuf **)mbufs, n, cb);
		return vhost_direct_tx(vq, (struct rte_mbuf **)mbufs, n);
	}
	return rte_eth_tx_burst(port_id, queue_id, (struct rte_mbuf **)mbufs, n);
}
