/* lwtui: flow accounting and verdicts at Lightweight Tunnel (LWT) BPF hooks.
 *
 * Compiled at run time by BCC (lwtui/kernel/probe.py) from this file, configured
 * with -D flags only:
 *   -DMAX_FLOWS=N   entries of the `flows` per-CPU LRU hash (default 65536)
 *   -DMAX_RULES=N   entries of each rule map (default 4096)
 *   -DMAX_FRAGS=N   fragmented datagrams whose verdict is remembered (default 4096)
 *   -DMAX_COMPOUND=N  entries of the `compound` array (default LWTUI_COMPOUND_MAX)
 *   -DIPV6_EXT_MAX=N  IPv6 extension headers walked (default LWTUI_IPV6_EXT_MAX)
 *   -DLWTUI_COARSE_CLOCK  stamp flows and events with bpf_ktime_get_coarse_ns
 *                   (CLOCK_MONOTONIC_COARSE, one tick of resolution) instead of
 *                   bpf_ktime_get_ns; rule TTLs stay exact. A precise clock read
 *                   costs ~25 ns per packet on a kvm-clock/tsc VM. The
 *                   coarse clock is read once per jiffy and CPU (clock_cache,
 *                   bpf_jiffies64), not per packet.
 *   -DLWTUI_NO_CLOCK_CACHE  with LWTUI_COARSE_CLOCK: read it on every packet
 *                   (measurement only: bench/ablation.py).
 *   -DLWTUI_NO_DIRECT_ACCESS  read headers with bpf_skb_load_bytes only: the
 *                   path non-linear skbs take, which the tests run this way.
 *   -DLWTUI_WITH_IN, -DLWTUI_WITH_OUT, -DLWTUI_WITH_XMIT  compile only these
 *                   hooks' entry points (lwtui_in ...); none of them: all three.
 *   -DLWTUI_RINGBUF  send events through a BPF ring buffer (kernel 5.8+)
 *                   instead of the perf buffer: ~90 ns per event in the program
 *                   against ~170 ns for a perf buffer with wakeup_events=128.
 *   -DLWTUI_RINGBUF_PAGES=N  the ring buffer's size in pages, a power of two
 *                   (default 64: 256 KiB with 4 KiB pages, shared by all CPUs)
 *   -DLWTUI_NO_GSO_SEGS  for kernels whose __sk_buff has no gso_segs (before
 *                   5.1): every skb counts as one packet.
 *   -DLWTUI_NO_BOUNDED_LOOPS  for verifiers without bounded loops (before 5.3),
 *                   which refuse any cycle in a program: the IPv6 extension
 *                   walk and the compound rules' loops are unrolled (the
 *                   program grows about four times); give a small
 *                   IPV6_EXT_MAX with it (lwtui/kernel/features.py gives 8).
 * lwtui/kernel/features.py probes the running kernel and picks these flags.
 *
 * At every LWT hook `data` starts at the IPv4/IPv6 header. Each packet is
 * parsed into a struct flow_key, counted in `flows` (as max(1, gso_segs)
 * packets), and given a verdict: exact flow rule (either direction) -> host
 * rule (LPM trie) -> port rule -> compound rules (a bounded loop over the
 * `compound` array, see match_compound). A packet parsed only in part is a parse error
 * judged by the rules what was read allows (see handle_bad); later fragments
 * follow the verdict of their datagram's first fragment (`frags`).
 * The verdict is cached in the flow entry together with the rules generation
 * (config slot LWTUI_CFG_RULES_GEN, one word), so an allowed flow costs one
 * flow lookup until user space writes a new generation;
 * dropped flows re-evaluate every packet so TTLs and hit counts stay exact.
 *
 * Dropped and would-drop packets are also sent, their first bytes, to the
 * `captures` perf buffer while user space has a pcap file open (config slot
 * LWTUI_CFG_CAPTURE; see capture()): allowed packets never reach that code.
 *
 * The structs shared with user space live in lwtui.h (mirrored by
 * lwtui/kernel/kstructs.py).
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/in.h>
#include <uapi/linux/in6.h>
#include "lwtui.h"

#ifndef MAX_FLOWS
#define MAX_FLOWS 65536
#endif
#ifndef MAX_RULES
#define MAX_RULES 4096
#endif
#ifndef MAX_FRAGS
#define MAX_FRAGS 4096
#endif

#ifndef MAX_COMPOUND
#define MAX_COMPOUND LWTUI_COMPOUND_MAX
#endif

#ifndef IPV6_EXT_MAX
#define IPV6_EXT_MAX LWTUI_IPV6_EXT_MAX  /* -DIPV6_EXT_MAX=N: a smaller bound (tests) */
#endif
#ifdef LWTUI_NO_BOUNDED_LOOPS
#define EXT_WALK_LOOP _Pragma("unroll")  /* no back-edges: an unrolled walk */
#define COMPOUND_LOOP _Pragma("unroll")
/* Unrolled, the terms would be computed all at once and spill past the
 * 512-byte stack: one at a time. */
#define TERM_DONE(ok) asm volatile("" : "+r"(ok) :: "memory")
#else
#define EXT_WALK_LOOP _Pragma("clang loop unroll(disable)")
#define COMPOUND_LOOP _Pragma("clang loop unroll(disable)")
#define TERM_DONE(ok)
#endif
#define DROP_EVENT_INTERVAL_NS 1000000000ULL  /* when config says 0 */
#define LOAD_MAX_OFF 0x7fff         /* bound for the verifier (direct access needs < 64 KiB) */
#define ERR_EEXIST 17

/* Per-CPU values: each CPU counts into its own copy without atomics, and user
 * space sums the copies once per read (no count is lost between CPUs, and
 * the cached verdict is one CPU's own word). */
BPF_TABLE("lru_percpu_hash", struct flow_key, struct flow_stats, flows, MAX_FLOWS);
BPF_HASH(verdicts, struct flow_key, struct rule_val, MAX_RULES);
BPF_LPM_TRIE(host_rules, struct host_key, struct rule_val, MAX_RULES);
BPF_HASH(port_rules, struct port_key, struct rule_val, MAX_RULES);
BPF_ARRAY(compound, struct compound_rule, MAX_COMPOUND);
BPF_ARRAY(config, __u64, LWTUI_CFG_MAX);
BPF_PERCPU_ARRAY(stats, struct hook_stats, LWTUI_HOOKS);
#ifdef LWTUI_RINGBUF
#ifndef LWTUI_RINGBUF_PAGES
#define LWTUI_RINGBUF_PAGES 64
#endif
BPF_RINGBUF_OUTPUT(events, LWTUI_RINGBUF_PAGES);
#else
BPF_PERF_OUTPUT(events);
#endif

BPF_TABLE("lru_hash", struct frag_key, __u64, frags, MAX_FRAGS);  /* datagram -> LWTUI_RULE_* */

/* Header layouts, as copied from the packet into stack buffers. */
struct ip4_hdr {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 proto;
	__be16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ip6_hdr {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* The first 8 bytes of any IPv6 extension header (all are at least 8 long);
 * frag_off is meaningful for the fragment header only. */
struct ip6_ext {
	__u8 nexthdr;
	__u8 hdrlen;
	__be16 frag_off;
	__be32 id;
};

struct tcp_hdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff_res;
	__u8 flags;
	__be16 window;
	__be16 check;
	__be16 urg_ptr;
};

struct l4_ports {  /* UDP header; also the first 8 bytes of ICMP (type, code, ...) */
	__be16 a;
	__be16 b;
	__be32 rest;
};

/* Copy len bytes at offset off of the packet into dst.
 * Direct packet access when the bytes are in the linear part, else
 * bpf_skb_load_bytes (non-linear skbs); negative when the packet is short. */
static __always_inline int load(struct __sk_buff *skb, __u32 off, void *dst, __u32 len)
{
	if (off > LOAD_MAX_OFF)
		return -1;
#ifndef LWTUI_NO_DIRECT_ACCESS
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (data + off + len <= data_end) {
		/* Word loads, not byte loads: dst is a 4-aligned stack buffer and
		 * packet access needs no alignment where unaligned loads are cheap
		 * (the verifier checks it where they are not). */
		__builtin_memcpy(dst, __builtin_assume_aligned(data + off, 4), len);
		return 0;
	}
#endif
	return bpf_skb_load_bytes(skb, off, dst, len);
}

/* Count v at stats[hook].v[idx]: every hook has its own row. */
static __always_inline void stat_add(__u8 hook, __u32 idx, __u64 v)
{
	__u32 at = hook;
	struct hook_stats *p = stats.lookup(&at);

	if (p)
		p->v[idx] += v;
}

/* One config slot (LWTUI_CFG_*); 0 if the index were ever out of range. */
static __always_inline __u64 cfg_get(__u32 idx)
{
	__u64 *v = config.lookup(&idx);

	return v ? *v : 0;
}

static __always_inline void map_v4(__u8 *dst, __be32 addr)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr, 4);
}

/* What parse() learnt beyond the key. `level` says how far the key can be
 * trusted: PARSED_NOTHING (no addresses: nothing to judge the packet by),
 * PARSED_ADDRS (addresses and protocol, no ports: a non-first fragment, or a
 * header chain cut short or too long), PARSED_PORTS (the whole key). `bad`
 * marks a parse error: the packet is judged by what was read, counted as a
 * parse error, and gets no flow entry. */
#define PARSED_NOTHING 0
#define PARSED_ADDRS   1
#define PARSED_PORTS   2

struct pkt_info {
	__u32 frag_id;     /* IPv4 identification or IPv6 fragment header id */
	__u8 level;        /* PARSED_* */
	__u8 bad;          /* a parse error */
	__u8 first_frag;   /* fragment offset 0 with more fragments to come */
	__u8 tcp_flags;
	__u8 direct;       /* the L4 offset may be used for direct packet access */
	__u8 pad[3];
	__u32 segs;        /* packets on the wire: max(1, gso_segs) */
};

/* Mark a parse error. Errors travel in pi->bad, never as a negative offset:
 * a sign test on the offset would make the verifier track its exact range
 * through the IPv6 extension walk (see parse_ipv6). */
static __always_inline __u32 fail(struct pkt_info *pi)
{
	pi->bad = 1;
	return 0;
}

/* IPv4 header (with options) -> key addresses, proto, fragment fields.
 * Returns the L4 offset; pi->bad when the header is short or malformed. */
static __always_inline __u32 parse_ipv4(struct __sk_buff *skb, struct flow_key *key, struct pkt_info *pi)
{
	struct ip4_hdr ip;
	__u32 hlen;

	if (load(skb, 0, &ip, sizeof(ip)) < 0)
		return fail(pi);
	if ((ip.ver_ihl >> 4) != 4)
		return fail(pi);
	key->family = 4;
	key->proto = ip.proto;
	map_v4(key->saddr, ip.saddr);
	map_v4(key->daddr, ip.daddr);
	pi->level = PARSED_ADDRS;
	pi->frag_id = bpf_ntohs(ip.id);
	hlen = (ip.ver_ihl & 0x0f) * 4;
	if (hlen < sizeof(ip) || hlen > skb->len)
		return fail(pi);
	if (ip.frag_off & bpf_htons(0x1fff))
		key->flags = LWTUI_KEY_FRAGMENT;
	else if (ip.frag_off & bpf_htons(0x2000))
		pi->first_frag = 1;
	pi->direct = 1;
	return hlen;
}

static __always_inline int ipv6_is_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
	       nh == IPPROTO_FRAGMENT || nh == IPPROTO_AH;
}

/* IPv6 header and its extension headers, up to IPV6_EXT_MAX of them.
 * Returns the L4 offset; pi->bad when the chain is cut short or longer.
 *
 * The walk is a bounded loop (not unrolled) that reads with
 * bpf_skb_load_bytes only, and nothing after it touches the packet through
 * an offset it computed (pi->direct stays 0): the verifier then never needs
 * the offset's exact range, so each iteration is verified once instead of
 * once per combination of header lengths. */
static __always_inline __u32 parse_ipv6(struct __sk_buff *skb, struct flow_key *key, struct pkt_info *pi)
{
	struct ip6_hdr ip6;
	struct ip6_ext ext;
	__u32 off = sizeof(ip6), len;
	__u8 nh;
	int i;

	if (load(skb, 0, &ip6, sizeof(ip6)) < 0)
		return fail(pi);
	if ((ip6.ver_tc_flow & bpf_htonl(0xf0000000)) != bpf_htonl(0x60000000))
		return fail(pi);
	key->family = 6;
	__builtin_memcpy(key->saddr, ip6.saddr, 16);
	__builtin_memcpy(key->daddr, ip6.daddr, 16);
	nh = ip6.nexthdr;
	key->proto = nh;
	pi->level = PARSED_ADDRS;
	if (!ipv6_is_ext(nh)) {
		pi->direct = 1;
		return off;
	}

	EXT_WALK_LOOP
	for (i = 0; i < IPV6_EXT_MAX; i++) {
		if (bpf_skb_load_bytes(skb, off, &ext, sizeof(ext)) < 0)
			return fail(pi);
		if (nh == IPPROTO_FRAGMENT) {
			pi->frag_id = bpf_ntohl(ext.id);
			if (ext.frag_off & bpf_htons(0xfff8)) {  /* non-first: no L4 here */
				key->flags = LWTUI_KEY_FRAGMENT;
				key->proto = ext.nexthdr;
				return 0;
			}
			pi->first_frag = ext.frag_off & bpf_htons(1) ? 1 : 0;
			len = 8;
		} else if (nh == IPPROTO_AH) {
			len = ((__u32)ext.hdrlen + 2) * 4;
		} else {
			len = ((__u32)ext.hdrlen + 1) * 8;
		}
		off += len;
		nh = ext.nexthdr;
		key->proto = nh;
		if (!ipv6_is_ext(nh))
			break;
	}
	if (ipv6_is_ext(nh) || off > skb->len)
		return fail(pi);  /* a longer chain, or the last header cut short */
	return off;
}

/* Read L4 bytes: through load() when the offset was not computed by the IPv6
 * extension walk (see parse_ipv6), else with bpf_skb_load_bytes. */
static __always_inline int load_l4(struct __sk_buff *skb, struct pkt_info *pi, __u32 off, void *dst,
				   __u32 len)
{
	if (pi->direct)
		return load(skb, off, dst, len);
	return bpf_skb_load_bytes(skb, off, dst, len);
}

/* Ports (ICMP: type and code) and TCP flags. The whole L4 header is read
 * first (the common case, one copy); when it is not all there the packet is
 * bad, and the key still gets its ports when their bytes are (4 bytes; ICMP's
 * type and code 2): a tiny first fragment is judged by its ports. A TCP
 * header whose data offset is under 5 is bad too. */
static __always_inline void parse_l4(struct __sk_buff *skb, struct flow_key *key, __u32 off,
				     struct pkt_info *pi)
{
	struct tcp_hdr th;
	int icmp = 0;

	if (key->flags & LWTUI_KEY_FRAGMENT)
		return;  /* addresses only, and not a parse error */
	switch (key->proto) {
	case IPPROTO_TCP:
		if (load_l4(skb, pi, off, &th, sizeof(th)) < 0)
			break;
		key->sport = bpf_ntohs(th.source);
		key->dport = bpf_ntohs(th.dest);
		pi->level = PARSED_PORTS;
		if ((th.doff_res >> 4) < 5)
			pi->bad = 1;
		else
			pi->tcp_flags = th.flags;
		return;
	case IPPROTO_UDP:
		if (load_l4(skb, pi, off, &th, 8) < 0)
			break;
		key->sport = bpf_ntohs(th.source);
		key->dport = bpf_ntohs(th.dest);
		pi->level = PARSED_PORTS;
		return;
	case IPPROTO_ICMP:   /* 8 bytes: type, code, checksum, rest of header */
		icmp = 1;
		if (load_l4(skb, pi, off, &th, 8) < 0)
			break;
		key->sport = ((__u8 *)&th)[0];
		key->dport = ((__u8 *)&th)[1];
		pi->level = PARSED_PORTS;
		return;
	case IPPROTO_ICMPV6: /* 4 bytes: type, code, checksum */
		icmp = 1;
		if (load_l4(skb, pi, off, &th, 4) < 0)
			break;
		key->sport = ((__u8 *)&th)[0];
		key->dport = ((__u8 *)&th)[1];
		pi->level = PARSED_PORTS;
		return;
	default:
		pi->level = PARSED_PORTS;  /* no ports to read */
		return;
	}
	pi->bad = 1;  /* the header is cut short: its ports, if they are there */
	if (icmp) {
		if (load_l4(skb, pi, off, &th, 2) < 0)
			return;
		key->sport = ((__u8 *)&th)[0];
		key->dport = ((__u8 *)&th)[1];
	} else {
		if (load_l4(skb, pi, off, &th, 4) < 0)
			return;
		key->sport = bpf_ntohs(th.source);
		key->dport = bpf_ntohs(th.dest);
	}
	pi->level = PARSED_PORTS;
}

/* The common packet in one pass over the linear data: IPv4 without options,
 * not a fragment, TCP (data offset 5 or more) or UDP, its first 40 bytes
 * linear. Returns 1 with key and pi filled exactly as the general path below
 * fills them for such a packet; 0, having written nothing, for any other. */
static __always_inline int parse_fast_ipv4(struct __sk_buff *skb, struct flow_key *key, struct pkt_info *pi)
{
#ifdef LWTUI_NO_DIRECT_ACCESS
	return 0;
#else
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ip4_hdr *ip = data;
	struct tcp_hdr *th = data + sizeof(*ip);
	__u8 flags = 0;

	if ((void *)(th + 1) > data_end)
		return 0;
	if (ip->ver_ihl != 0x45 || (ip->frag_off & bpf_htons(0x3fff)))
		return 0;  /* options, or a fragment (more fragments, or an offset) */
	if (ip->proto == IPPROTO_TCP) {
		if ((th->doff_res >> 4) < 5)
			return 0;  /* bad: the general path says so */
		flags = th->flags;
	} else if (ip->proto != IPPROTO_UDP) {
		return 0;
	}
	key->family = 4;
	key->proto = ip->proto;
	map_v4(key->saddr, ip->saddr);
	map_v4(key->daddr, ip->daddr);
	key->sport = bpf_ntohs(th->source);
	key->dport = bpf_ntohs(th->dest);
	pi->frag_id = bpf_ntohs(ip->id);
	pi->level = PARSED_PORTS;
	pi->direct = 1;
	pi->tcp_flags = flags;
	return 1;
#endif
}

/* Fill the key as far as the headers allow; pi says how far (PARSED_*) and
 * whether the packet is a parse error. */
static __always_inline void parse(struct __sk_buff *skb, struct flow_key *key, struct pkt_info *pi)
{
	__u32 word = 0, off;
	__u8 version;

	if (parse_fast_ipv4(skb, key, pi))
		return;

	if (load(skb, 0, &word, 1) < 0) {
		pi->bad = 1;
		return;
	}
	version = *(__u8 *)&word >> 4;
	if (version == 4)
		off = parse_ipv4(skb, key, pi);
	else if (version == 6)
		off = parse_ipv6(skb, key, pi);
	else
		off = fail(pi);
	if (!pi->bad)
		parse_l4(skb, key, off, pi);
}

/* Packets on the wire this skb stands for: a GSO packet (TCP send offload,
 * UDP GSO) is gso_segs packets; without gso_segs (LWTUI_NO_GSO_SEGS) one. */
static __always_inline __u32 skb_segs(struct __sk_buff *skb)
{
#ifdef LWTUI_NO_GSO_SEGS
	return 1;
#else
	__u32 segs = skb->gso_segs;

	return segs ? segs : 1;
#endif
}

#if defined(LWTUI_COARSE_CLOCK) && !defined(LWTUI_NO_CLOCK_CACHE)
#define CLOCK_CACHE
/* The coarse clock as this CPU last read it, and the jiffy it read it in. */
struct clock_cache {
	__u64 jiffies;
	__u64 ns;
};

BPF_PERCPU_ARRAY(clock_cache, struct clock_cache, 1);
#endif

/* Timestamp for flows and events (see LWTUI_COARSE_CLOCK above). The coarse
 * clock is read once per jiffy and CPU and kept in clock_cache: it moves once
 * per tick, as jiffies do, and bpf_jiffies64 is a single load (the verifier
 * inlines it on 64-bit JITs) where the clock is a helper call. A packet in
 * the short window between a tick's jiffies update and its clock update
 * caches the previous tick's time for the rest of that jiffy: one tick late
 * at most, the coarse clock's own resolution. */
static __always_inline __u64 flow_clock(void)
{
#ifdef CLOCK_CACHE
	__u32 zero = 0;
	struct clock_cache *c = clock_cache.lookup(&zero);
	__u64 j = bpf_jiffies64();

	if (!c)
		return bpf_ktime_get_coarse_ns();
	if (c->jiffies != j || !c->ns) {
		c->ns = bpf_ktime_get_coarse_ns();
		c->jiffies = j;
	}
	return c->ns;
#elif defined(LWTUI_COARSE_CLOCK)
	return bpf_ktime_get_coarse_ns();
#else
	return bpf_ktime_get_ns();
#endif
}

/* The exact clock rule TTLs are checked against, given the flow clock's now. */
static __always_inline __u64 rule_clock(__u64 now)
{
#ifdef LWTUI_COARSE_CLOCK
	return bpf_ktime_get_ns();
#else
	return now;
#endif
}

/* A rule that exists and has not expired; counts the hit. */
static __always_inline int rule_hit(struct rule_val *r, __u64 now, __u32 segs)
{
	if (!r || (r->expires_ns && r->expires_ns <= now))
		return 0;
	__sync_fetch_and_add(&r->hits, segs);
	return 1;
}

/* The ICMP type that answers `type` (or asks for it): echo 8/0, timestamp
 * 13/14, information 15/16, address mask 17/18; ICMPv6 echo 128/129, node
 * information 139/140. Any other type is its own counterpart. */
static __always_inline __u16 icmp_pair(__u8 proto, __u16 type)
{
	if (proto == IPPROTO_ICMP) {
		switch (type) {
		case 0: return 8;
		case 8: return 0;
		case 13: return 14;
		case 14: return 13;
		case 15: return 16;
		case 16: return 15;
		case 17: return 18;
		case 18: return 17;
		}
	} else if (proto == IPPROTO_ICMPV6) {
		switch (type) {
		case 128: return 129;
		case 129: return 128;
		case 139: return 140;
		case 140: return 139;
		}
	}
	return type;
}

/* A flow rule for this packet's flow or its reverse: addresses swapped, and
 * ports swapped (ICMP: the counterpart type with the same code, so the
 * reverse of an echo request is its reply). */
static __always_inline int match_flow(struct flow_key *key, __u64 now, __u32 segs)
{
	struct flow_key k = *key;

	k.hook = 0;
	k.flags = 0;
	if (rule_hit(verdicts.lookup(&k), now, segs))
		return 1;
	__builtin_memcpy(k.saddr, key->daddr, 16);
	__builtin_memcpy(k.daddr, key->saddr, 16);
	if (key->proto == IPPROTO_ICMP || key->proto == IPPROTO_ICMPV6) {
		k.sport = icmp_pair(key->proto, key->sport);
	} else {
		k.sport = key->dport;
		k.dport = key->sport;
	}
	return rule_hit(verdicts.lookup(&k), now, segs);
}

static __always_inline int match_host(struct flow_key *key, __u64 now, __u32 segs)
{
	struct host_key hk = {.prefixlen = 128};

	__builtin_memcpy(hk.addr, key->saddr, 16);
	if (rule_hit(host_rules.lookup(&hk), now, segs))
		return 1;
	__builtin_memcpy(hk.addr, key->daddr, 16);
	return rule_hit(host_rules.lookup(&hk), now, segs);
}

static __always_inline int match_port(struct flow_key *key, __u64 now, __u32 segs)
{
	struct port_key pk = {.port = key->sport, .proto = key->proto};

	if ((key->proto != IPPROTO_TCP && key->proto != IPPROTO_UDP) ||
	    (key->flags & LWTUI_KEY_FRAGMENT))
		return 0;  /* no ports to match */
	if (rule_hit(port_rules.lookup(&pk), now, segs))
		return 1;
	pk.port = key->dport;
	if (rule_hit(port_rules.lookup(&pk), now, segs))
		return 1;
	pk.proto = 0;
	if (rule_hit(port_rules.lookup(&pk), now, segs))
		return 1;
	pk.port = key->sport;
	return rule_hit(port_rules.lookup(&pk), now, segs);
}

/* 1 when a == b, else 0, without a branch: compound rules are evaluated in
 * a loop, and a branch-free term keeps the verifier's work per entry small. */
static __always_inline __u64 eq64(__u64 a, __u64 b)
{
	__u64 x = a ^ b;

	return ((x | -x) >> 63) ^ 1;
}

/* What a compound term can ask of a packet, read once per evaluation. */
struct term_facts {
	__u64 s[2], d[2];  /* the addresses, as two 64-bit halves each */
	__u64 ports;       /* 1: a TCP/UDP packet whose ports were read */
	__u64 sport, dport, proto;
	__s64 dry;             /* match_compound: the first dry-run entry that held, or -1 */
	struct flow_key key;   /* the caller's, passed through this map (see launder) */
	struct pkt_info pi;
};

/* Per-CPU scratch for them: the stack has no 64 bytes to spare. */
BPF_PERCPU_ARRAY(facts_scratch, struct term_facts, 1);

static __always_inline void term_facts(struct flow_key *key, struct pkt_info *pi, struct term_facts *f)
{
	__builtin_memcpy(f->s, key->saddr, 16);
	__builtin_memcpy(f->d, key->daddr, 16);
	f->ports = pi->level >= PARSED_PORTS && !(key->flags & LWTUI_KEY_FRAGMENT) &&
		   (key->proto == IPPROTO_TCP || key->proto == IPPROTO_UDP);
	f->sport = key->sport;
	f->dport = key->dport;
	f->proto = key->proto;
}

/* Whether one term holds (negation applied), without a branch. Port terms
 * hold only for TCP and UDP packets whose ports were read (never a
 * non-first fragment), as port rules do. */
static __always_inline __u64 term_holds(const struct term_facts *f, const struct compound_term *t)
{
	const __u64 *n = (const __u64 *)t->addr;  /* 8-aligned in the map value */
	const __u64 *m = (const __u64 *)t->mask;
	__u64 facts, ports;

	ports = f->ports & (eq64(t->proto, 0) | eq64(t->proto, f->proto));
	facts = (eq64(f->s[0] & m[0], n[0]) & eq64(f->s[1] & m[1], n[1])) * LWTUI_TERM_SADDR |
		(eq64(f->d[0] & m[0], n[0]) & eq64(f->d[1] & m[1], n[1])) * LWTUI_TERM_DADDR |
		(ports & eq64(f->sport, t->port)) * LWTUI_TERM_SPORT |
		(ports & eq64(f->dport, t->port)) * LWTUI_TERM_DPORT |
		eq64(f->proto, t->proto) * LWTUI_TERM_PROTO;
	return (1 ^ eq64(facts & t->field, 0)) ^ (t->negate & 1);
}

/* Pass the key and what parse() learnt through map memory and back. The
 * values stay the same; the verifier forgets the constants it knew about them
 * on each path through the parser, so the paths that reach the compound loop
 * become one state there and the loop is verified a few times instead of once
 * per path (which exceeds its 1M-instruction budget). */
static __always_inline void launder(struct flow_key *key, struct pkt_info *pi, struct term_facts *f)
{
	__builtin_memcpy(&f->key, key, sizeof(*key));
	__builtin_memcpy(&f->pi, pi, sizeof(*pi));
	asm volatile("" ::: "memory");  /* read back from the map, not from registers */
	__builtin_memcpy(key, &f->key, sizeof(*key));
	__builtin_memcpy(pi, &f->pi, sizeof(*pi));
}

/* Whether every term of one compound entry holds. */
static __always_inline __u64 compound_holds(const struct term_facts *f, struct compound_rule *r)
{
	__u64 ok = 1;
	int j;

	COMPOUND_LOOP
	for (j = 0; j < LWTUI_COMPOUND_TERMS; j++) {
		ok &= term_holds(f, &r->terms[j]);
		TERM_DONE(ok);
	}
	return ok;
}

/* The index of the first live compound entry whose terms all hold, counting
 * its hit; -1 when none does. Dry-run entries (LWTUI_COMPOUND_DRY_RUN) count
 * their hit and let the loop go on: when no other entry holds, the first of
 * them is returned with COMPOUND_DRY_BIT. A bounded loop over the array
 * (unrolled with LWTUI_NO_BOUNDED_LOOPS): it
 * runs on a flow's first packet and when the rules generation changes, never
 * for an allowed flow's later packets. */
#define COMPOUND_DRY_BIT 0x10000
static __always_inline int match_compound(struct flow_key *key, struct pkt_info *pi, __u64 now, __u32 segs)
{
	struct compound_rule *r;
	struct term_facts *f;
	__u32 i = 0;

	f = facts_scratch.lookup(&i);
	if (!f)
		return -1;
	launder(key, pi, f);
	term_facts(key, pi, f);
	f->dry = -1;  /* in map memory, not a register: the verifier keeps no state per value */
	COMPOUND_LOOP
	for (int e = 0; e < MAX_COMPOUND; e++) {
		i = e;  /* the lookup takes an address: not the counter's, which unrolling makes constants */
		r = compound.lookup(&i);
		if (!r || !r->group)
			continue;
		if (r->val.expires_ns && r->val.expires_ns <= now)
			continue;
		if (!compound_holds(f, r))
			continue;
		__sync_fetch_and_add(&r->val.hits, segs);
		if (!(r->flags & LWTUI_COMPOUND_DRY_RUN))
			return e;
		if (f->dry < 0)
			f->dry = e | COMPOUND_DRY_BIT;
	}
	return f->dry < 0 ? -1 : (int)f->dry;
}

/* The decision of the first rule that matches (LWTUI_DECISION: its
 * LWTUI_RULE_*, and a compound entry's index), LWTUI_RULE_NONE if none.
 * Flow and port rules need ports: without them only host and compound rules
 * apply (a compound rule's port terms then do not hold). */
static __always_inline __u32 eval_rules(struct flow_key *key, struct pkt_info *pi, __u64 flow_now)
{
	__u64 now = rule_clock(flow_now);
	__u32 segs = pi->segs;
	int i;

	if (pi->level >= PARSED_PORTS && match_flow(key, now, segs))
		return LWTUI_RULE_FLOW;
	if (match_host(key, now, segs))
		return LWTUI_RULE_HOST;
	if (pi->level >= PARSED_PORTS && match_port(key, now, segs))
		return LWTUI_RULE_PORT;
	i = match_compound(key, pi, now, segs);
	if (i >= 0)
		return i & COMPOUND_DRY_BIT ? LWTUI_DECISION(LWTUI_RULE_COMPOUND_DRY, i & 0xffff)
					    : LWTUI_DECISION(LWTUI_RULE_COMPOUND, i);
	return LWTUI_RULE_NONE;
}

/* Remember a first fragment's verdict for the rest of its datagram. */
static __always_inline void frag_note(struct flow_key *key, struct pkt_info *pi, __u8 kind)
{
	struct frag_key fk = {};
	__u64 v = kind;

	__builtin_memcpy(fk.saddr, key->saddr, 16);
	__builtin_memcpy(fk.daddr, key->daddr, 16);
	fk.id = pi->frag_id;
	fk.proto = key->proto;
	fk.family = key->family;
	fk.hook = key->hook;
	frags.update(&fk, &v);
}

/* A non-first fragment: a flow rule with ports 0 or a host rule, then the
 * verdict its datagram's first fragment got at this hook (when seen). */
static __always_inline __u8 eval_fragment(struct flow_key *key, struct pkt_info *pi, __u64 flow_now)
{
	struct frag_key fk = {};
	__u64 now = rule_clock(flow_now), *v;
	__u32 segs = pi->segs;

	if (match_flow(key, now, segs))
		return LWTUI_RULE_FLOW;
	if (match_host(key, now, segs))
		return LWTUI_RULE_HOST;
	__builtin_memcpy(fk.saddr, key->saddr, 16);
	__builtin_memcpy(fk.daddr, key->daddr, 16);
	fk.id = pi->frag_id;
	fk.proto = key->proto;
	fk.family = key->family;
	fk.hook = key->hook;
	v = frags.lookup(&fk);
	return v ? (__u8)*v : LWTUI_RULE_NONE;
}

static __always_inline void send_event(struct __sk_buff *skb, struct flow_key *key,
				       struct flow_stats *fs, __u8 type, __u32 len, __u64 now)
{
	struct lwtui_event ev = {};

	ev.key = *key;
	ev.ts_ns = now;
	ev.packets = fs->packets;
	ev.bytes = fs->bytes;
	ev.drops = fs->drops;
	ev.len = len;
	ev.type = type;
	ev.verdict = LWTUI_CACHED_VERDICT(fs->cached);
	ev.rule_kind = LWTUI_CACHED_KIND(fs->cached);
	ev.tcp_flags = fs->tcp_flags;
	/* A ring buffer has no lost callback: this counter is its only loss count
	 * (the perf buffer's lost_cb reports the same failures, later). */
#ifdef LWTUI_RINGBUF
	if (events.ringbuf_output(&ev, sizeof(ev), 0) < 0)
#else
	if (events.perf_submit(skb, &ev, sizeof(ev)) < 0)
#endif
		stat_add(key->hook, LWTUI_ST_EVENTS_FAILED, 1);
}

/* The verdict of a decision (LWTUI_DECISION): a dry-run rule's would-drop. */
static __always_inline __u8 verdict_of(__u32 kind)
{
	if (!kind)
		return LWTUI_ALLOW;
	return (__u8)kind == LWTUI_RULE_COMPOUND_DRY ? LWTUI_WOULD_DROP : LWTUI_DROP;
}

/* Packet capture: only on the drop and would-drop paths, and only while
 * LWTUI_CFG_CAPTURE holds a snaplen, so it costs allowed packets nothing and
 * dropped ones one config lookup when off. */
#define CAPTURE_RATE_DEFAULT 1000  /* captures per second and CPU */
#define CAPTURE_WINDOW_NS 1000000000ULL

struct capture_window {
	__u64 start_ns;  /* when this CPU's current one-second window began */
	__u64 sent;      /* captures sent in it */
};

BPF_PERF_OUTPUT(captures);
BPF_PERCPU_ARRAY(capture_window, struct capture_window, 1);
BPF_PERCPU_ARRAY(capture_stats, u64, LWTUI_CAP_MAX);
BPF_ARRAY(capture_flow, struct flow_key, 1);  /* the one flow to capture (LWTUI_CFG_CAPTURE_FLOW) */

/* Whether the key is the one in `capture_flow` (when LWTUI_CFG_CAPTURE_FLOW
 * says to ask): five 8-byte words (struct flow_key has no padding, and every
 * key is built from zero). */
static __always_inline int capture_wanted(struct flow_key *key)
{
	__u64 a[5], b[5];  /* copies: the key on the stack need not be 8-aligned */
	__u32 zero = 0;
	struct flow_key *want;

	if (!cfg_get(LWTUI_CFG_CAPTURE_FLOW))
		return 1;
	want = capture_flow.lookup(&zero);
	if (!want)
		return 0;
	__builtin_memcpy(a, want, sizeof(a));
	__builtin_memcpy(b, key, sizeof(b));
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4];
}

static __always_inline void capture_stat(__u32 idx)
{
	__u64 *p = capture_stats.lookup(&idx);

	if (p)
		*p += 1;
}

/* Send the packet's first snaplen bytes, with its flow and verdict, to
 * `captures`; at most LWTUI_CFG_CAPTURE_RATE a second per CPU, the rest counted. */
static __always_inline void capture(struct __sk_buff *skb, struct flow_key *key, __u8 verdict)
{
	__u64 snaplen = cfg_get(LWTUI_CFG_CAPTURE), rate, now;
	struct lwtui_capture rec = {};
	struct capture_window *w;
	__u32 zero = 0;
	int err;

	if (!snaplen || !capture_wanted(key))
		return;
	w = capture_window.lookup(&zero);
	if (!w)
		return;
	rate = cfg_get(LWTUI_CFG_CAPTURE_RATE);
	if (!rate)
		rate = CAPTURE_RATE_DEFAULT;
	now = bpf_ktime_get_ns();
	if (now - w->start_ns >= CAPTURE_WINDOW_NS) {
		w->start_ns = now;
		w->sent = 0;
	}
	if (w->sent >= rate) {
		capture_stat(LWTUI_CAP_LIMITED);
		return;
	}
	w->sent++;
	rec.key = *key;
	rec.ts_ns = now;
	rec.len = skb->len;
	rec.caplen = skb->len < snaplen ? skb->len : (__u32)snaplen;
	rec.verdict = verdict;
	/* A statement of its own: BCC rewrites perf_submit_skb into one, ';' included. */
	err = captures.perf_submit_skb(skb, rec.caplen, &rec, sizeof(rec));
	if (err < 0)
		capture_stat(LWTUI_CAP_FAILED);
	else
		capture_stat(LWTUI_CAP_SENT);
}

/* Count a matched packet and decide: dry-run (the session's, or `dry`: the
 * rule's) passes it, else drop. Either way the packet may be captured. */
static __always_inline int drop_verdict(struct __sk_buff *skb, struct flow_key *key, __u32 segs, int dry)
{
	if (dry || cfg_get(LWTUI_CFG_DRY_RUN)) {
		stat_add(key->hook, LWTUI_ST_WOULD_DROPS, segs);
		capture(skb, key, LWTUI_WOULD_DROP);
		return BPF_OK;
	}
	stat_add(key->hook, LWTUI_ST_DROPS, segs);
	capture(skb, key, LWTUI_DROP);
	return BPF_DROP;
}

static __always_inline int drop_flow(struct __sk_buff *skb, struct flow_key *key,
				     struct flow_stats *fs, __u32 len, __u32 segs, __u64 now)
{
	__u64 interval = cfg_get(LWTUI_CFG_DROP_EVENT_INTERVAL_NS);

	fs->drops += segs;
	if (!interval)
		interval = DROP_EVENT_INTERVAL_NS;
	if (!fs->last_event_ns || now - fs->last_event_ns >= interval) {
		fs->last_event_ns = now;
		send_event(skb, key, fs, LWTUI_EV_DROP, len, now);
	}
	return drop_verdict(skb, key, segs, LWTUI_CACHED_VERDICT(fs->cached) == LWTUI_WOULD_DROP);
}

/* The flow's entry, created when absent; NULL when `flows` refused it. */
static __always_inline struct flow_stats *flow_entry(struct flow_key *key, __u64 now, int *created)
{
	struct flow_stats *fs = flows.lookup(key);
	struct flow_stats init;
	int err;

	if (__builtin_expect(fs != 0, 1))
		return fs;
	__builtin_memset(&init, 0, sizeof(init));  /* here, not before the lookup: an existing flow skips it */
	init.first_seen_ns = now;
	err = flows.insert(key, &init);
	if (err == 0)
		*created = 1;
	else if (err != -ERR_EEXIST)
		goto failed;
	fs = flows.lookup(key);
	if (fs)
		return fs;
failed:
	*created = 0;
	stat_add(key->hook, LWTUI_ST_FLOW_UPDATE_FAILED, 1);
	return NULL;
}

/* A packet that is a parse error: judged by the rules that what was read
 * allows (see eval_rules), counted, never given a flow entry. */
static __always_inline int handle_bad(struct __sk_buff *skb, struct flow_key *key, struct pkt_info *pi)
{
	__u32 kind;

	stat_add(key->hook, LWTUI_ST_PARSE_ERRORS, pi->segs);
	if (pi->level == PARSED_NOTHING)
		return BPF_OK;  /* no addresses: nothing to judge it by */
	kind = eval_rules(key, pi, flow_clock());
	if (pi->first_frag)
		frag_note(key, pi, kind);
	return kind ? drop_verdict(skb, key, pi->segs, verdict_of(kind) == LWTUI_WOULD_DROP) : BPF_OK;
}

static __always_inline int handle(struct __sk_buff *skb, __u8 hook)
{
	struct flow_key key = {};
	struct pkt_info pi = {};
	struct flow_stats *fs;
	struct hook_stats *st;
	__u32 len = skb->len, gen, at = hook;
	__u64 now, cached;
	__u32 kind;
	int created = 0;

	/* Bytes stay skb->len, the IP bytes as the hook sees them. One lookup
	 * of this hook's row counts both. */
	pi.segs = skb_segs(skb);
	st = stats.lookup(&at);
	if (st) {
		st->v[LWTUI_ST_PACKETS] += pi.segs;
		st->v[LWTUI_ST_BYTES] += len;
	}
	key.hook = hook;
	parse(skb, &key, &pi);
	if (pi.bad)
		return handle_bad(skb, &key, &pi);
	/* Read before the rules are: a rule changed after this read comes with
	 * a newer generation, so the verdict below is looked at again. */
	gen = (__u32)cfg_get(LWTUI_CFG_RULES_GEN);
	now = flow_clock();

	fs = flow_entry(&key, now, &created);
	if (!fs) {  /* no entry to cache in: ask the rules for this packet alone */
		kind = key.flags & LWTUI_KEY_FRAGMENT ? eval_fragment(&key, &pi, now)
						      : eval_rules(&key, &pi, now);
		if (pi.first_frag)
			frag_note(&key, &pi, kind);
		return kind ? drop_verdict(skb, &key, pi.segs, verdict_of(kind) == LWTUI_WOULD_DROP) : BPF_OK;
	}

	/* This CPU's copy: plain adds are exact (the program runs with BH off). */
	fs->packets += pi.segs;
	fs->bytes += len;
	if (!fs->first_seen_ns)  /* the first packet of the flow on this CPU */
		fs->first_seen_ns = now;
	fs->last_seen_ns = now;
	fs->tcp_flags |= pi.tcp_flags;
	cached = fs->cached;
	/* The common case, first: an allowed flow's cached word is exactly the
	 * generation (LWTUI_CACHED(gen, LWTUI_ALLOW, LWTUI_RULE_NONE)); 0 is
	 * never a cached verdict. Not a fragment, not a new flow. */
	if (__builtin_expect(cached == gen && cached && !(key.flags | pi.first_frag | created), 1))
		return BPF_OK;
	if ((key.flags & LWTUI_KEY_FRAGMENT) || !cached || LWTUI_CACHED_GEN(cached) != gen ||
	    LWTUI_CACHED_VERDICT(cached) != LWTUI_ALLOW) {
		/* fragments follow their own datagram; drops re-check every packet */
		kind = key.flags & LWTUI_KEY_FRAGMENT ? eval_fragment(&key, &pi, now)
						      : eval_rules(&key, &pi, now);
		cached = LWTUI_CACHED(gen, verdict_of(kind), kind);
		fs->cached = cached;
	}
	if (pi.first_frag)
		frag_note(&key, &pi, LWTUI_CACHED_KIND(cached));
	if (created) {
		stat_add(hook, LWTUI_ST_NEW_FLOWS, 1);
		send_event(skb, &key, fs, LWTUI_EV_NEW, len, now);
	}
	if (LWTUI_CACHED_VERDICT(cached) != LWTUI_ALLOW)
		return drop_flow(skb, &key, fs, len, pi.segs, now);
	return BPF_OK;
}

/* The entry points a probe loads (-DLWTUI_WITH_IN and so on; all three when none
 * is given): each inlines the whole program, so one not compiled is a third of
 * the compiler's work saved. */
#if !defined(LWTUI_WITH_IN) && !defined(LWTUI_WITH_OUT) && !defined(LWTUI_WITH_XMIT)
#define LWTUI_WITH_IN
#define LWTUI_WITH_OUT
#define LWTUI_WITH_XMIT
#endif

#ifdef LWTUI_WITH_IN
int lwtui_in(struct __sk_buff *skb)
{
	return handle(skb, LWTUI_HOOK_IN);
}
#endif

#ifdef LWTUI_WITH_OUT
int lwtui_out(struct __sk_buff *skb)
{
	return handle(skb, LWTUI_HOOK_OUT);
}
#endif

#ifdef LWTUI_WITH_XMIT
int lwtui_xmit(struct __sk_buff *skb)
{
	return handle(skb, LWTUI_HOOK_XMIT);
}
#endif
