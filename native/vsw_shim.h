/*
 * vsw_shim.h - the C ABI between VSwitch (C#) and DPDK 22.11.
 *
 * Rules (see docs/ARCHITECTURE.md): thin and 1:1, no switching policy in C; fixed-size integer
 * types and raw pointers only; errors are negative errno values; the fast-path calls take a whole
 * burst, never one packet. C# mirrors every struct here in src/VSwitch/Interop/Native.cs.
 */
#ifndef VSW_SHIM_H
#define VSW_SHIM_H

#include <stdint.h>

#define VSW_API __attribute__((visibility("default")))

/* Offsets of the rte_mbuf fields C# reads or writes, checked against C#'s constants at start-up. */
struct vsw_mbuf_layout {
	uint32_t struct_size;   /* sizeof(struct rte_mbuf) */
	uint32_t headroom;      /* RTE_PKTMBUF_HEADROOM */
	uint32_t buf_addr;
	uint32_t data_off;
	uint32_t refcnt;
	uint32_t nb_segs;
	uint32_t port;
	uint32_t ol_flags;
	uint32_t packet_type;
	uint32_t pkt_len;
	uint32_t data_len;
	uint32_t vlan_tci;
	uint32_t rss_hash;
	uint32_t buf_len;
	uint32_t pool;
	uint32_t next;
	uint64_t rss_hash_flag; /* RTE_MBUF_F_RX_RSS_HASH */
	uint64_t vlan_flag;     /* RTE_MBUF_F_RX_VLAN */
};

struct vsw_port_stats {
	uint64_t ipackets, opackets, ibytes, obytes, imissed, ierrors, oerrors, rx_nombuf;
};

struct vsw_link {
	uint32_t speed_mbps;
	uint16_t up;
	uint16_t full_duplex;
};

struct vsw_port_info {
	uint16_t max_rx_queues;
	uint16_t max_tx_queues;
	uint16_t min_mtu;
	uint16_t max_mtu;
	int32_t socket_id;
	uint32_t rx_offload_capa_lo;
	char driver_name[64];
	char device_name[128];
};

VSW_API void vsw_mbuf_layout_get(struct vsw_mbuf_layout *out);

/* EAL */
VSW_API int32_t vsw_eal_init(int32_t argc, char **argv);
VSW_API int32_t vsw_eal_cleanup(void);
/* Starts rte_pdump (dpdk-dumpcap support) in this primary process; 0 or -errno. */
VSW_API int32_t vsw_pdump_init(void);
/* The function the capture server calls, on DPDK's multi-process thread, after it unlinked a
 * capture's callbacks and before it answers: it returns once no PMD can still be inside one. */
VSW_API void vsw_capture_set_quiesce(void (*fn)(void));
/* The EAL's runtime directory (/var/run/dpdk/PREFIX for root). */
VSW_API const char *vsw_runtime_dir(void);
VSW_API int32_t vsw_errno(void);
VSW_API const char *vsw_strerror(int32_t errnum);
VSW_API int32_t vsw_log_set_level(uint32_t level);
/* rte_log_set_level_pattern; 0 or -EINVAL. */
VSW_API int32_t vsw_log_set_pattern(const char *pattern, uint32_t level);
VSW_API uint32_t vsw_log_global_level(void);
/* Route DPDK's log into a buffer (and to stderr too when passthrough != 0), so that start-up errors
 * can quote DPDK's last message in one line instead of DPDK printing its own lines around ours. */
VSW_API int32_t vsw_log_capture(int32_t passthrough);
VSW_API int32_t vsw_log_last(char *buf, uint32_t len);
VSW_API void vsw_log_clear(void);

/* Threads */
VSW_API int32_t vsw_thread_pin(int32_t cpu);
VSW_API int32_t vsw_thread_register(void);
/* The idle EAL worker lcore pinned to exactly {cpu}, or -ENOENT. */
VSW_API int32_t vsw_lcore_on_cpu(int32_t cpu);
/* rte_eal_remote_launch / rte_eal_wait_lcore. */
VSW_API int32_t vsw_lcore_launch(uint32_t lcore, int (*fn)(void *), void *arg);
VSW_API int32_t vsw_lcore_wait(uint32_t lcore);
/* Names the calling thread (at most 15 bytes), as top -H and /proc/PID/task/TID/comm show it. */
VSW_API int32_t vsw_thread_set_name(const char *name);
VSW_API int32_t vsw_gettid(void);
/* Affinity of any thread of this process (tid), to the CPUs in a 64-bit mask. */
VSW_API int32_t vsw_tid_set_affinity(int32_t tid, uint64_t cpu_mask);
VSW_API void vsw_thread_unregister(void);
VSW_API uint32_t vsw_lcore_id(void);
VSW_API uint64_t vsw_tsc_hz(void);
VSW_API uint64_t vsw_rdtsc(void);
/* Sleeps the calling thread (PMD idle back-off). Blocking: not for the fast path. */
VSW_API void vsw_sleep_us(uint32_t us);

/* Mempools and mbufs */
VSW_API void *vsw_mempool_create(const char *name, uint32_t n, uint32_t cache_size,
				 uint16_t data_room, int32_t socket_id);
VSW_API void vsw_mempool_free(void *mp);
VSW_API uint32_t vsw_mempool_in_use(const void *mp);
VSW_API uint32_t vsw_mempool_avail(const void *mp);
VSW_API int32_t vsw_mbuf_alloc_bulk(void *mp, void **mbufs, uint32_t n);
VSW_API void vsw_mbuf_free_bulk(void **mbufs, uint32_t n);
/* Deep-copies n packets (rte_pktmbuf_copy into each one's own pool); dst[i] is NULL when the pool is
 * empty. Returns how many copies were made. One call per group of packets, never per packet. */
VSW_API uint32_t vsw_mbuf_copy_bulk(void *const *src, void **dst, uint32_t n);

/* Ports */
VSW_API int32_t vsw_dev_probe(const char *devargs, uint16_t *port_ids, int32_t max_ports);
VSW_API int32_t vsw_dev_remove(uint16_t port_id);
VSW_API int32_t vsw_port_info_get(uint16_t port_id, struct vsw_port_info *out);
/* mtu 0 keeps the device's default (-ERANGE outside the device's range); a frame larger than one
 * mbuf holds turns on scatter rx where the device offers it; multi-segment tx wherever offered. */
VSW_API int32_t vsw_port_configure(uint16_t port_id, uint16_t nb_rxq, uint16_t nb_txq,
				   uint16_t nb_rxd, uint16_t nb_txd, void *mp, uint16_t mtu);
VSW_API int32_t vsw_port_start(uint16_t port_id);
VSW_API int32_t vsw_port_stop(uint16_t port_id);
VSW_API int32_t vsw_port_close(uint16_t port_id);
/* Queues of the port that take the shim's direct vhost-user path (0: rte_eth_rx/tx_burst). */
VSW_API int32_t vsw_port_direct_queues(uint16_t port_id);
VSW_API int32_t vsw_port_link(uint16_t port_id, struct vsw_link *out);
VSW_API int32_t vsw_port_mac(uint16_t port_id, uint8_t *mac6);
VSW_API int32_t vsw_port_promiscuous(uint16_t port_id, int32_t on);
VSW_API int32_t vsw_port_stats(uint16_t port_id, struct vsw_port_stats *out);
VSW_API int32_t vsw_port_stats_reset(uint16_t port_id);
VSW_API int32_t vsw_port_xstats_count(uint16_t port_id);
VSW_API int32_t vsw_port_xstat_name(uint16_t port_id, uint32_t index, char *buf, uint32_t len);
VSW_API int32_t vsw_port_xstats(uint16_t port_id, uint64_t *values, uint32_t n);

/* Fast path: one call per burst. */
VSW_API uint16_t vsw_rx_burst(uint16_t port_id, uint16_t queue_id, void **mbufs, uint16_t n);
VSW_API uint16_t vsw_tx_burst(uint16_t port_id, uint16_t queue_id, void **mbufs, uint16_t n);

/* IPsec (vsw_ipsec.c): a cryptodev and ESP tunnel SAs through rte_ipsec, lookaside-none. */
#define VSW_IPSEC_BURST 64
#define VSW_SA_ALG_AES_GCM 1        /* RFC 4106, 16-byte ICV */
#define VSW_SA_ALG_AES_CBC_SHA256 2 /* RFC 3602 + RFC 4868 HMAC-SHA-256-128 */

struct vsw_sa_conf {
	uint32_t id;            /* the switch's SA id, returned with every completed packet */
	uint32_t spi;
	uint32_t replay_window; /* inbound; 0 = no replay check */
	uint32_t salt;          /* AES-GCM: the 4 salt bytes in wire order */
	uint32_t flow_label;    /* outer IPv6 flow label */
	uint16_t natt_sport;    /* host order */
	uint16_t natt_dport;
	uint8_t outbound;       /* 1 encrypt, 0 decrypt */
	uint8_t outer_ipv6;
	uint8_t inner_ipv6;
	uint8_t alg;            /* VSW_SA_ALG_* */
	uint8_t esn;
	uint8_t natt;           /* RFC 3948 UDP encapsulation */
	uint8_t copy_dscp;      /* outer DSCP copied from the inner header (else dscp) */
	uint8_t ecn;            /* RFC 6040 ECN propagation */
	uint8_t ttl;            /* outer TTL / hop limit */
	uint8_t dscp;
	uint8_t df;             /* outer IPv4 DF */
	uint8_t key_len;        /* cipher key bytes: 16 or 32 */
	uint8_t auth_key_len;   /* HMAC key bytes (32) */
	uint8_t pad[3];
	uint8_t key[32];
	uint8_t auth_key[64];
	uint8_t src[16];        /* outer addresses (IPv4: first 4 bytes) */
	uint8_t dst[16];
};

/* Probes the crypto vdev {name} with {vdev_args} unless it exists, configures nb_qp queue pairs of
 * nb_desc descriptors, a session pool and an op pool; starts it. NULL and *err = -errno on failure. */
VSW_API void *vsw_crypto_setup(const char *name, const char *vdev_args, uint16_t nb_qp,
			       uint32_t nb_desc, uint32_t max_sessions, uint32_t nb_ops,
			       int32_t socket_id, int32_t *err);
VSW_API void vsw_crypto_close(void *dev);
/* The device id; its driver name; crypto ops currently out of the pool (in flight). */
VSW_API int32_t vsw_crypto_info(void *dev, char *driver, uint32_t len, uint32_t *ops_in_use);
VSW_API void *vsw_ipsec_sa_create(void *dev, const struct vsw_sa_conf *conf, int32_t *err);
VSW_API void vsw_ipsec_sa_destroy(void *sa);
/* Fast path: one call per burst of one SA / per queue pair (see vsw_ipsec.c). */
VSW_API int32_t vsw_ipsec_enqueue(void *sa, uint16_t qp, void **mbufs, const uint8_t *l2_lens,
				  const uint16_t *l3_lens, uint16_t n, uint16_t *counts);
VSW_API int32_t vsw_ipsec_dequeue(void *dev, uint16_t qp, void **mbufs, uint32_t *sa_ids,
				  uint8_t *status, uint16_t n);

#endif
