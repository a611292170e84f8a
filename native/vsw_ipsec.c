/*
 * vsw_ipsec.c - the shim over DPDK's cryptodev and rte_ipsec (lookaside-none) for ESP tunnels.
 *
 * Thin as the rest of the shim: the switch decides which packets go to which SA, when an SA ends
 * and what happens to a packet afterwards (src/VSwitch/Ipsec); this file only turns an SA's
 * parameters into DPDK's structures and moves one burst at a time between mbuf arrays and a crypto
 * queue pair. Two fast-path calls, each per burst and per SA:
 *   vsw_ipsec_enqueue  rte_ipsec_pkt_crypto_prepare (ESP header, IV, padding, trailer, sequence
 *                      number, replay pre-check) + rte_cryptodev_enqueue_burst;
 *   vsw_ipsec_dequeue  rte_cryptodev_dequeue_burst + rte_ipsec_pkt_crypto_group +
 *                      rte_ipsec_pkt_process per group (ICV verdict, replay window update, trailer
 *                      checks, header removal), results written in completion order.
 * What rte_ipsec leaves undone in lookaside-none mode is done here, per completed packet, because
 * only here are the packets at hand between the two library calls: the outer IPv4 header checksum
 * (rte_ipsec expects a NIC's checksum offload) and the NAT-T UDP length (the library writes it at
 * the wrong offset in DPDK 22.11); on the inbound side the inner packet comes out bare (IP first) and
 * gets back an Ethernet header whose addresses the caller saved.
 */
#include <errno.h>
#include <string.h>
#include <netinet/in.h>

#include <rte_common.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>
#include <rte_cryptodev.h>
#include <rte_dev.h>
#include <rte_ipsec.h>

#include "vsw_shim.h"

/* Room after the crypto op for rte_ipsec's IV/counter block and AAD (it uses iv_ofs onwards). */
#define VSW_CRYPTO_OP_PRIV 64
#define VSW_IV_OFFSET (sizeof(struct rte_crypto_op) + sizeof(struct rte_crypto_sym_op))
/* Where an outbound packet's Ethernet addresses wait in its crypto op (after the 16-byte IV). */
#define VSW_MAC_OFFSET (VSW_IV_OFFSET + 32)

struct vsw_crypto_dev {
	uint8_t dev_id;
	struct rte_mempool *sess_pool;
	struct rte_mempool *op_pool;
};

/* One SA: its rte_ipsec session (cache aligned, as rte_ipsec wants it) and the things the burst
 * calls need without chasing the library's private structures. */
struct vsw_sa {
	struct rte_ipsec_session ss;
	struct rte_ipsec_sa *sa;
	void *cses;
	struct vsw_crypto_dev *dev;
	uint32_t id;          /* the switch's SA id, returned with each completed packet */
	uint8_t outbound;
	uint8_t outer_ipv6;
	uint8_t natt;
} __rte_cache_aligned;

/* The tunnel header template starts with an Ethernet header: the outer IP header is at 14. */
#define VSW_TUN_L3_OFS RTE_ETHER_HDR_LEN

void *vsw_crypto_setup(const char *name, const char *vdev_args, uint16_t nb_qp, uint32_t nb_desc,
		       uint32_t max_sessions, uint32_t nb_ops, int32_t socket_id, int32_t *err)
{
	struct rte_cryptodev_info info;
	struct rte_cryptodev_config conf;
	struct rte_cryptodev_qp_conf qp_conf;
	struct vsw_crypto_dev *d;
	char pname[RTE_MEMPOOL_NAMESIZE];
	int dev, rc;
	uint16_t q;

	*err = 0;
	dev = rte_cryptodev_get_dev_id(name);
	if (dev < 0) {
		char devargs[256];
		snprintf(devargs, sizeof(devargs), "%s%s%s", name, vdev_args[0] ? "," : "", vdev_args);
		rc = rte_dev_probe(devargs);
		if (rc != 0) {
			*err = rc < 0 ? rc : -EINVAL;
			return NULL;
		}
		dev = rte_cryptodev_get_dev_id(name);
		if (dev < 0) {
			*err = -ENODEV;
			return NULL;
		}
	}
	rte_cryptodev_info_get((uint8_t)dev, &info);
	if (info.max_nb_queue_pairs < nb_qp) {
		*err = -ERANGE;
		return NULL;
	}
	d = rte_zmalloc_socket("vsw_crypto_dev", sizeof(*d), RTE_CACHE_LINE_SIZE, socket_id);
	if (d == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	d->dev_id = (uint8_t)dev;
	snprintf(pname, sizeof(pname), "vsw_cses_%d", dev);
	d->sess_pool = rte_cryptodev_sym_session_pool_create(pname, max_sessions,
		rte_cryptodev_sym_get_private_session_size((uint8_t)dev), 0, 0, socket_id);
	snprintf(pname, sizeof(pname), "vsw_cops_%d", dev);
	d->op_pool = rte_crypto_op_pool_create(pname, RTE_CRYPTO_OP_TYPE_SYMMETRIC, nb_ops, 256,
					       VSW_CRYPTO_OP_PRIV, socket_id);
	if (d->sess_pool == NULL || d->op_pool == NULL) {
		*err = -ENOMEM;
		goto fail;
	}
	memset(&conf, 0, sizeof(conf));
	conf.socket_id = socket_id;
	conf.nb_queue_pairs = nb_qp;
	conf.ff_disable = RTE_CRYPTODEV_FF_ASYMMETRIC_CRYPTO | RTE_CRYPTODEV_FF_SECURITY;
	rc = rte_cryptodev_configure(d->dev_id, &conf);
	if (rc < 0) {
		*err = rc;
		goto fail;
	}
	memset(&qp_conf, 0, sizeof(qp_conf));
	qp_conf.nb_descriptors = nb_desc;
	qp_conf.mp_session = d->sess_pool;
	for (q = 0; q < nb_qp; q++) {
		rc = rte_cryptodev_queue_pair_setup(d->dev_id, q, &qp_conf, socket_id);
		if (rc < 0) {
			*err = rc;
			goto fail;
		}
	}
	rc = rte_cryptodev_start(d->dev_id);
	if (rc < 0) {
		*err = rc;
		goto fail;
	}
	return d;
fail:
	rte_mempool_free(d->op_pool);
	rte_mempool_free(d->sess_pool);
	rte_free(d);
	return NULL;
}

void vsw_crypto_close(void *h)
{
	struct vsw_crypto_dev *d = h;
	if (d == NULL)
		return;
	rte_cryptodev_stop(d->dev_id);
	rte_cryptodev_close(d->dev_id);
	rte_mempool_free(d->op_pool);
	rte_mempool_free(d->sess_pool);
	rte_free(d);
}

int32_t vsw_crypto_info(void *h, char *driver, uint32_t len, uint32_t *ops_in_use)
{
	struct vsw_crypto_dev *d = h;
	struct rte_cryptodev_info info;
	rte_cryptodev_info_get(d->dev_id, &info);
	snprintf(driver, len, "%s", info.driver_name ? info.driver_name : "?");
	*ops_in_use = rte_mempool_in_use_count(d->op_pool);
	return d->dev_id;
}

/* Builds the outbound tunnel template: Ethernet (addresses filled per packet), outer IP. */
static uint16_t build_template(const struct vsw_sa_conf *c, uint8_t *hdr)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)hdr;
	memset(hdr, 0, VSW_TUN_L3_OFS + 40);
	if (!c->outer_ipv6) {
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(hdr + VSW_TUN_L3_OFS);
		eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
		ip->version_ihl = 0x45;
		ip->type_of_service = (uint8_t)(c->dscp << 2);
		ip->fragment_offset = c->df ? rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG) : 0;
		ip->time_to_live = c->ttl;
		ip->next_proto_id = c->natt ? IPPROTO_UDP : IPPROTO_ESP;
		memcpy(&ip->src_addr, c->src, 4);
		memcpy(&ip->dst_addr, c->dst, 4);
		return VSW_TUN_L3_OFS + 20;
	} else {
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)(hdr + VSW_TUN_L3_OFS);
		eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
		ip->vtc_flow = rte_cpu_to_be_32((6u << 28) | ((uint32_t)(c->dscp << 2) << 20) |
						(c->flow_label & 0xfffff));
		ip->proto = c->natt ? IPPROTO_UDP : IPPROTO_ESP;
		ip->hop_limits = c->ttl;
		memcpy(ip->src_addr, c->src, 16);
		memcpy(ip->dst_addr, c->dst, 16);
		return VSW_TUN_L3_OFS + 40;
	}
}

void *vsw_ipsec_sa_create(void *devh, const struct vsw_sa_conf *c, int32_t *err)
{
	struct vsw_crypto_dev *d = devh;
	struct rte_crypto_sym_xform xf[2];
	struct rte_ipsec_sa_prm prm;
	uint8_t hdr[VSW_TUN_L3_OFS + 40];
	struct vsw_sa *s;
	int sz, rc;

	*err = 0;
	memset(xf, 0, sizeof(xf));
	memset(&prm, 0, sizeof(prm));
	if (c->alg == VSW_SA_ALG_AES_GCM) {
		if (c->key_len != 16 && c->key_len != 32) {
			*err = -EINVAL;
			return NULL;
		}
		xf[0].type = RTE_CRYPTO_SYM_XFORM_AEAD;
		xf[0].aead.op = c->outbound ? RTE_CRYPTO_AEAD_OP_ENCRYPT : RTE_CRYPTO_AEAD_OP_DECRYPT;
		xf[0].aead.algo = RTE_CRYPTO_AEAD_AES_GCM;
		xf[0].aead.key.data = c->key;
		xf[0].aead.key.length = c->key_len;
		xf[0].aead.iv.offset = VSW_IV_OFFSET;
		xf[0].aead.iv.length = 12;
		xf[0].aead.digest_length = 16;
		xf[0].aead.aad_length = c->esn ? 12 : 8;
	} else if (c->alg == VSW_SA_ALG_AES_CBC_SHA256) {
		struct rte_crypto_sym_xform *ciph, *auth;
		if ((c->key_len != 16 && c->key_len != 32) || c->auth_key_len != 32) {
			*err = -EINVAL;
			return NULL;
		}
		/* rte_ipsec wants CIPHER then AUTH outbound, AUTH then CIPHER inbound */
		ciph = c->outbound ? &xf[0] : &xf[1];
		auth = c->outbound ? &xf[1] : &xf[0];
		ciph->type = RTE_CRYPTO_SYM_XFORM_CIPHER;
		ciph->cipher.op = c->outbound ? RTE_CRYPTO_CIPHER_OP_ENCRYPT : RTE_CRYPTO_CIPHER_OP_DECRYPT;
		ciph->cipher.algo = RTE_CRYPTO_CIPHER_AES_CBC;
		ciph->cipher.key.data = c->key;
		ciph->cipher.key.length = c->key_len;
		ciph->cipher.iv.offset = VSW_IV_OFFSET;
		ciph->cipher.iv.length = 16;
		auth->type = RTE_CRYPTO_SYM_XFORM_AUTH;
		auth->auth.op = c->outbound ? RTE_CRYPTO_AUTH_OP_GENERATE : RTE_CRYPTO_AUTH_OP_VERIFY;
		auth->auth.algo = RTE_CRYPTO_AUTH_SHA256_HMAC;
		auth->auth.key.data = c->auth_key;
		auth->auth.key.length = c->auth_key_len;
		auth->auth.digest_length = 16;
		xf[0].next = &xf[1];
	} else {
		*err = -EINVAL;
		return NULL;
	}

	prm.userdata = c->id;
	/* Outbound: sequence numbers taken atomically, so several PMDs may share an SA. Inbound: one
	 * writer of the replay window (one PMD polls the queue an SA's ESP arrives on); the atomic
	 * double-buffered window of DPDK 22.11 lets replays of packets still in flight through. */
	prm.flags = c->outbound ? RTE_IPSEC_SAFLAG_SQN_ATOM : 0;
	prm.ipsec_xform.spi = c->spi;
	memcpy(&prm.ipsec_xform.salt, &c->salt, 4);
	prm.ipsec_xform.options.esn = c->esn ? 1 : 0;
	/* rte_ipsec 22.11 encapsulates outbound NAT-T itself but has no inbound NAT-T SA type (its
	 * init leaves such an SA half set up): inbound, the caller's l3_len covers the UDP header,
	 * so the library sees ESP right after it and strips both. */
	prm.ipsec_xform.options.udp_encap = c->natt && c->outbound ? 1 : 0;
	prm.ipsec_xform.options.copy_dscp = c->copy_dscp ? 1 : 0;
	prm.ipsec_xform.options.ecn = c->ecn ? 1 : 0;
	prm.ipsec_xform.direction = c->outbound ? RTE_SECURITY_IPSEC_SA_DIR_EGRESS
						: RTE_SECURITY_IPSEC_SA_DIR_INGRESS;
	prm.ipsec_xform.proto = RTE_SECURITY_IPSEC_SA_PROTO_ESP;
	prm.ipsec_xform.mode = RTE_SECURITY_IPSEC_SA_MODE_TUNNEL;
	prm.ipsec_xform.tunnel.type = c->outer_ipv6 ? RTE_SECURITY_IPSEC_TUNNEL_IPV6
						    : RTE_SECURITY_IPSEC_TUNNEL_IPV4;
	prm.ipsec_xform.replay_win_sz = c->outbound ? 0 : c->replay_window;
	prm.ipsec_xform.udp.sport = c->natt_sport; /* rte_ipsec 22.11 swaps them itself */
	prm.ipsec_xform.udp.dport = c->natt_dport;
	prm.crypto_xform = &xf[0];
	prm.tun.next_proto = c->inner_ipv6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
	if (c->outbound) {
		prm.tun.hdr_len = (uint8_t)build_template(c, hdr);
		prm.tun.hdr_l3_off = VSW_TUN_L3_OFS;
		prm.tun.hdr = hdr;
	}

	sz = rte_ipsec_sa_size(&prm);
	if (sz < 0) {
		*err = sz;
		return NULL;
	}
	s = rte_zmalloc("vsw_sa", sizeof(*s), RTE_CACHE_LINE_SIZE);
	if (s == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	s->sa = rte_zmalloc("vsw_sa_state", (size_t)sz, RTE_CACHE_LINE_SIZE);
	if (s->sa == NULL) {
		*err = -ENOMEM;
		goto fail;
	}
	rc = rte_ipsec_sa_init(s->sa, &prm, (uint32_t)sz);
	if (rc < 0) {
		*err = rc;
		goto fail;
	}
	s->cses = rte_cryptodev_sym_session_create(d->dev_id, &xf[0], d->sess_pool);
	if (s->cses == NULL) {
		*err = rte_errno ? -rte_errno : -ENOTSUP;
		goto fail;
	}
	s->ss.sa = s->sa;
	s->ss.type = RTE_SECURITY_ACTION_TYPE_NONE;
	s->ss.crypto.ses = s->cses;
	s->ss.crypto.dev_id = d->dev_id;
	rc = rte_ipsec_session_prepare(&s->ss);
	if (rc < 0) {
		*err = rc;
		goto fail;
	}
	s->dev = d;
	s->id = c->id;
	s->outbound = c->outbound;
	s->outer_ipv6 = c->outer_ipv6;
	s->natt = c->natt;
	return s;
fail:
	if (s->cses != NULL)
		rte_cryptodev_sym_session_free(d->dev_id, s->cses);
	rte_free(s->sa);
	rte_free(s);
	return NULL;
}

void vsw_ipsec_sa_destroy(void *h)
{
	struct vsw_sa *s = h;
	if (s == NULL)
		return;
	rte_cryptodev_sym_session_free(s->dev->dev_id, s->cses);
	rte_ipsec_sa_fini(s->sa);
	rte_free(s->sa);
	rte_free(s);
}

/*
 * Prepares and enqueues n packets of one SA on queue pair qp. l2_lens / l3_lens: per packet, the
 * Ethernet header length and (inbound) the outer IP header length plus the NAT-T UDP header, i.e.
 * where ESP starts. Returns the number enqueued, which are at mbufs[0..r); counts[0] = packets
 * prepared (those at [r, counts[0]) were prepared but the queue was full: the caller frees them);
 * the ones at [counts[0], n) failed preparation (rte_errno in counts[1]). Nothing is freed here.
 */
int32_t vsw_ipsec_enqueue(void *h, uint16_t qp, void **mbufs, const uint8_t *l2_lens,
			  const uint16_t *l3_lens, uint16_t n, uint16_t *counts)
{
	struct vsw_sa *s = h;
	struct rte_crypto_op *cops[VSW_IPSEC_BURST];
	struct rte_mbuf *orig[VSW_IPSEC_BURST];
	uint8_t macs[VSW_IPSEC_BURST][12];
	struct rte_mbuf **mb = (struct rte_mbuf **)mbufs;
	uint16_t i, j, k, r;

	counts[0] = 0;
	counts[1] = 0;
	if (n > VSW_IPSEC_BURST)
		return -EINVAL;
	if (n == 0)
		return 0;
	if (rte_crypto_op_bulk_alloc(s->dev->op_pool, RTE_CRYPTO_OP_TYPE_SYMMETRIC, cops, n) == 0)
		return -ENOBUFS;
	for (i = 0; i < n; i++) {
		mb[i]->l2_len = l2_lens[i];
		mb[i]->l3_len = l3_lens[i];
		if (s->outbound) {
			/* the frame's Ethernet addresses, which the tunnel header replaces */
			memcpy(macs[i], rte_pktmbuf_mtod(mb[i], void *), 12);
			orig[i] = mb[i];
		}
	}
	rte_errno = 0;
	k = rte_ipsec_pkt_crypto_prepare(&s->ss, mb, cops, n);
	if (s->outbound) {
		/* they travel in the op (prepared packets keep their order; the refused ones moved last) */
		for (i = 0, j = 0; i < n && j < k; i++)
			if (orig[i] == mb[j])
				memcpy(rte_crypto_op_ctod_offset(cops[j++], void *, VSW_MAC_OFFSET), macs[i], 12);
	}
	counts[0] = k;
	counts[1] = (uint16_t)rte_errno;
	r = k == 0 ? 0 : rte_cryptodev_enqueue_burst(s->dev->dev_id, qp, cops, k);
	if (r < n)
		rte_mempool_put_bulk(s->dev->op_pool, (void **)&cops[r], n - r);
	return r;
}

static inline void outb_finish(const struct vsw_sa *s, struct rte_mbuf *m)
{
	uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *) + VSW_TUN_L3_OFS;
	uint16_t l3;
	if (!s->outer_ipv6) {
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)p;
		ip->hdr_checksum = 0;
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		l3 = 20;
	} else {
		l3 = 40;
	}
	if (s->natt) {
		struct rte_udp_hdr *u = (struct rte_udp_hdr *)(p + l3);
		u->dgram_len = rte_cpu_to_be_16((uint16_t)(m->pkt_len - VSW_TUN_L3_OFS - l3));
		u->dgram_cksum = 0;
	}
	m->l2_len = 0;
	m->l3_len = 0;
}

/* The decrypted inner packet starts with its IP header: an Ethernet header goes back in front,
 * with the ESP frame's addresses. Returns 0, or -1 without headroom. */
static inline int inb_finish(struct rte_mbuf *m)
{
	/* the ESP frame's header is still in the headroom, where the frame started (vlan_tci_outer) */
	const uint8_t *old = (const uint8_t *)m->buf_addr + m->vlan_tci_outer;
	uint8_t *p = (uint8_t *)rte_pktmbuf_prepend(m, RTE_ETHER_HDR_LEN);
	if (p == NULL)
		return -1;
	memcpy(p, old, 12);
	m->vlan_tci_outer = 0;
	*(uint16_t *)(p + 12) = rte_cpu_to_be_16((p[14] >> 4) == 6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4);
	m->l2_len = 0;
	m->l3_len = 0;
	return 0;
}

/*
 * Dequeues up to n completed operations from queue pair qp and finishes them. Every mbuf comes out
 * in mbufs[] in completion order (which is submission order per queue pair, so order within an SA
 * is kept) with, per packet: sa_ids[i] the SA's id, status[i] 0 = done (outbound: an ESP frame whose
 * Ethernet addresses are the original frame's; inbound: the inner packet behind an Ethernet header
 * with the ESP frame's addresses), 1 = the crypto device failed it (an ICV mismatch inbound), 2 = rte_ipsec's
 * post-processing refused it (replay window, padding, next header), 3 = no headroom for the inner
 * frame's Ethernet header. Failed mbufs are the caller's
 * to free. Returns the count.
 */
int32_t vsw_ipsec_dequeue(void *devh, uint16_t qp, void **mbufs, uint32_t *sa_ids,
			  uint8_t *status, uint16_t n)
{
	struct vsw_crypto_dev *d = devh;
	struct rte_crypto_op *cops[VSW_IPSEC_BURST];
	struct rte_mbuf *mb[VSW_IPSEC_BURST];
	struct rte_ipsec_group grp[VSW_IPSEC_BURST];
	struct rte_mbuf **out = (struct rte_mbuf **)mbufs;
	uint16_t got, ng, g, i, j, k, o = 0;

	if (n > VSW_IPSEC_BURST)
		n = VSW_IPSEC_BURST;
	got = rte_cryptodev_dequeue_burst(d->dev_id, qp, cops, n);
	if (got == 0)
		return 0;
	for (i = 0; i < got; i++) {
		struct rte_mbuf *m = cops[i]->sym->m_src;
		const struct rte_ipsec_session *ss = rte_ipsec_ses_from_crypto(cops[i]);
		if (ss != NULL && ((const struct vsw_sa *)ss)->outbound)
			/* outbound: the tunnel header gets the frame's Ethernet addresses back */
			memcpy(rte_pktmbuf_mtod(m, void *), rte_crypto_op_ctod_offset(cops[i], void *, VSW_MAC_OFFSET), 12);
		else
			/* inbound: where the frame starts, found again after its headers are removed */
			m->vlan_tci_outer = m->data_off;
	}
	ng = rte_ipsec_pkt_crypto_group((const struct rte_crypto_op **)cops, mb, grp, got);
	for (g = 0; g < ng; g++) {
		struct rte_ipsec_session *ss = grp[g].id.ptr;
		struct vsw_sa *s = (struct vsw_sa *)ss; /* ss is the first member */
		struct rte_mbuf **gm = grp[g].m;
		uint32_t cnt = grp[g].cnt;
		k = rte_ipsec_pkt_process(ss, gm, (uint16_t)cnt);
		for (i = 0; i < k; i++) {
			struct rte_mbuf *m = gm[i];
			uint8_t st = 0;
			m->ol_flags &= ~(RTE_MBUF_F_RX_SEC_OFFLOAD | RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED);
			if (s->outbound)
				outb_finish(s, m);
			else if (inb_finish(m) != 0)
				st = 3;
			out[o] = m;
			sa_ids[o] = s->id;
			status[o++] = st;
		}
		/* the refused ones are at gm[k..cnt): an ICV failure keeps its flag */
		for (j = k; j < cnt; j++) {
			struct rte_mbuf *m = gm[j];
			uint8_t st = (m->ol_flags & RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED) ? 1 : 2;
			m->ol_flags &= ~(RTE_MBUF_F_RX_SEC_OFFLOAD | RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED);
			out[o] = m;
			sa_ids[o] = s->id;
			status[o++] = st;
		}
	}
	/* mbufs whose op had no session (cannot happen with sessions only): failed, no SA */
	for (i = o; i < got; i++) {
		out[o] = mb[i];
		sa_ids[o] = UINT32_MAX;
		status[o++] = 1;
	}
	rte_mempool_put_bulk(d->op_pool, (void **)cops, got);
	return o;
}
