/* Structures shared by the BPF programs (lwtui.bpf.c) and user space.
 *
 * lwtui/kernel/kstructs.py mirrors every struct here with ctypes; tests/unit checks
 * the two layouts against each other (sizes and offsets compiled from this
 * file), so change both together.
 *
 * Addresses are 16 bytes in network byte order; IPv4 is stored IPv4-mapped
 * (::ffff:a.b.c.d) so one LPM trie and one key type serve both families.
 * Ports are in host byte order. ICMP and ICMPv6 flows carry type in sport and
 * code in dport.
 */
#ifndef LWTUI_H
#define LWTUI_H

#ifndef __KERNEL__
#include <stdint.h>
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
#endif

/* Hooks (key.hook, event.key.hook). */
#define LWTUI_HOOK_IN   0
#define LWTUI_HOOK_OUT  1
#define LWTUI_HOOK_XMIT 2
#define LWTUI_HOOKS     3

/* IPv6 extension headers the programs walk before giving up on the ports:
 * every chain a 9216-byte MTU can carry (8 bytes a header at least). */
#define LWTUI_IPV6_EXT_MAX 1152

/* key.flags */
#define LWTUI_KEY_FRAGMENT 0x01  /* a non-first fragment: no L4 header, ports 0 */

/* Verdicts (flow_stats.verdict, event.verdict). */
#define LWTUI_ALLOW 0
#define LWTUI_DROP  1
#define LWTUI_WOULD_DROP 2  /* only dry-run rules matched: counted, passed */

/* Which rule produced a drop verdict (flow_stats.rule_kind, event.rule_kind). */
#define LWTUI_RULE_NONE 0
#define LWTUI_RULE_FLOW 1
#define LWTUI_RULE_HOST 2
#define LWTUI_RULE_PORT 3
#define LWTUI_RULE_COMPOUND 4  /* an entry of `compound`; its index in LWTUI_CACHED_RULE */
#define LWTUI_RULE_COMPOUND_DRY 5  /* a dry-run entry of `compound` (LWTUI_COMPOUND_DRY_RUN) */

/* Event types. */
#define LWTUI_EV_NEW  1  /* first packet of a flow */
#define LWTUI_EV_DROP 2  /* drops (or would-drops) of a flow, rate-limited */

/* Indices into a row of the per-CPU `stats` array, one row (struct
 * hook_stats) per hook: stats[hook].v[LWTUI_ST_*]. Packets, drops, would-drops and
 * parse errors count packets on the wire (a GSO packet as its gso_segs);
 * bytes are skb->len. A packet crossing two hooks (out, then xmit) is counted
 * in both rows. */
#define LWTUI_ST_PACKETS      0
#define LWTUI_ST_BYTES        1
#define LWTUI_ST_DROPS        2  /* packets dropped (BPF_DROP returned) */
#define LWTUI_ST_WOULD_DROPS  3  /* dry-run: packets a rule matched, passed */
#define LWTUI_ST_PARSE_ERRORS 4
#define LWTUI_ST_EVENTS_FAILED 5 /* perf output failed in the program */
#define LWTUI_ST_NEW_FLOWS    6
#define LWTUI_ST_FLOW_UPDATE_FAILED 7 /* could not insert into `flows` */
#define LWTUI_ST_MAX          8

/* Value of `stats`: one hook's counters, so a packet's packets and bytes
 * are one map lookup. */
struct hook_stats {
	__u64 v[LWTUI_ST_MAX];
};

/* Slots of the `config` array (__u64 each). Every writer owns its slots and
 * writes one whole slot per update, never a read-modify-write of another's:
 * the dashboard writes DRY_RUN, every rule change (any process) RULES_GEN,
 * the session at start DROP_EVENT_INTERVAL_NS. */
#define LWTUI_CFG_DRY_RUN      0  /* 1: count would-drops, never return BPF_DROP */
#define LWTUI_CFG_RULES_GEN    1  /* a new value (low 32 bits) after every rule change */
#define LWTUI_CFG_DROP_EVENT_INTERVAL_NS 2 /* at most one drop event per flow and CPU per interval */
#define LWTUI_CFG_CAPTURE      3  /* 0: off; else the snaplen: dropped and would-drop packets go
                                   * to `captures`, their first CAPTURE bytes (the session writes it) */
#define LWTUI_CFG_CAPTURE_RATE 4  /* captures per second and CPU at most (0: the default) */
#define LWTUI_CFG_CAPTURE_FLOW 5  /* 1: capture only the flow in `capture_flow` (exact key, hook too) */
#define LWTUI_CFG_MAX          6

/* flow_stats.cached: the cached verdict, one word written with one store, so
 * no reader sees a verdict of one generation stamped with another. */
#define LWTUI_CACHED(gen, verdict, kind) \
	((__u64)(__u32)(gen) | ((__u64)(verdict) << 32) | ((__u64)(kind) << 40))
#define LWTUI_CACHED_GEN(w)     ((__u32)(w))
#define LWTUI_CACHED_VERDICT(w) ((__u8)((w) >> 32))
#define LWTUI_CACHED_KIND(w)    ((__u8)((w) >> 40))
/* A compound rule's decision is LWTUI_RULE_COMPOUND | index << 8 (see
 * LWTUI_DECISION): in the cached word the index lands in bits 48..63. */
#define LWTUI_CACHED_RULE(w)    ((__u16)((w) >> 48))
#define LWTUI_DECISION(kind, index) ((__u32)(kind) | ((__u32)(index) << 8))

struct flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;  /* ICMP: type */
	__u16 dport;  /* ICMP: code */
	__u8 proto;   /* IPPROTO_* */
	__u8 family;  /* 4 or 6 */
	__u8 hook;    /* LWTUI_HOOK_*; 0 in `verdicts` keys (a verdict covers every hook) */
	__u8 flags;   /* LWTUI_KEY_* */
};

/* Value of `flows`, a per-CPU LRU hash: each CPU has its own flow_stats and
 * user space sums them (first_seen: the earliest non-zero, last_seen and
 * last_event: the latest, tcp_flags: OR, cached: the latest CPU's). */
struct flow_stats {
	__u64 packets;        /* packets on the wire: a GSO packet counts its gso_segs */
	__u64 bytes;          /* skb->len: IP bytes as the hook sees them (a GSO
	                       * packet's headers once, before segmentation) */
	__u64 first_seen_ns;  /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__u64 last_seen_ns;
	__u64 drops;          /* packets dropped, or would-dropped in dry-run */
	__u64 last_event_ns;  /* last drop event this CPU sent for this flow */
	__u64 cached;         /* LWTUI_CACHED(rules gen, LWTUI_ALLOW/DROP, LWTUI_RULE_*) */
	__u8 tcp_flags;       /* OR of the TCP flags seen (FIN=0x01 ... CWR=0x80) */
	__u8 pad[7];
};

/* Key of `frags` (value: the LWTUI_RULE_* its first fragment got, as __u64):
 * one fragmented datagram at one hook. */
struct frag_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 id;     /* IPv4 identification, IPv6 fragment header id */
	__u8 proto;
	__u8 family;
	__u8 hook;
	__u8 pad;
};

/* LPM trie key of `host_rules`: prefixlen counts bits of addr (IPv4 rules are
 * IPv4-mapped, so 10.0.0.0/8 is ::ffff:10.0.0.0/104). */
struct host_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Key of `port_rules`: proto 0 means any protocol. */
struct port_key {
	__u16 port;
	__u8 proto;
	__u8 pad;
};

/* Value of every rule map (verdicts, host_rules, port_rules). */
struct rule_val {
	__u64 hits;        /* packets (GSO: segments) this rule matched (dropped or would-drop) */
	__u64 expires_ns;  /* CLOCK_MONOTONIC; 0 = no TTL. Expired rules never match */
	__u64 created_ns;  /* CLOCK_REALTIME, for listing */
};

/* Compound rules: `compound` is an array of LWTUI_COMPOUND_MAX entries, each
 * a conjunction of up to LWTUI_COMPOUND_TERMS terms; a rule with `or` takes
 * one entry per conjunction, all with the same `group`. A free entry has
 * group 0. Entries are tried in index order on a flow's first packet and
 * whenever the rules generation changes. */
#define LWTUI_COMPOUND_MAX   8   /* the verifier walks every entry's terms: ~25k instructions each */
#define LWTUI_COMPOUND_TERMS 8

/* compound_term.field: which facts of a packet the term looks at, as bits;
 * the term holds when any of them does (ADDR: either address, PORT: either
 * port). An unused term slot has field 0 and negate 1: it always holds. */
#define LWTUI_TERM_SADDR 0x01  /* (saddr & mask) == addr */
#define LWTUI_TERM_DADDR 0x02
#define LWTUI_TERM_ADDR  0x03
#define LWTUI_TERM_SPORT 0x04  /* a TCP/UDP packet (proto: that one) with this source port */
#define LWTUI_TERM_DPORT 0x08
#define LWTUI_TERM_PORT  0x0c
#define LWTUI_TERM_PROTO 0x10  /* key.proto == proto */

struct compound_term {
	__u8 addr[16];   /* network (IPv4-mapped for IPv4), host bits 0 */
	__u8 mask[16];
	__u16 port;
	__u8 field;      /* LWTUI_TERM_* */
	__u8 proto;      /* PROTO: the protocol; port terms: 0 = tcp or udp */
	__u8 negate;     /* 1: the term holds when the comparison fails */
	__u8 pad[3];
};

/* compound_rule.flags */
#define LWTUI_COMPOUND_DRY_RUN 0x01  /* count would-drops for this rule, never drop */

struct compound_rule {
	struct rule_val val;  /* hits, TTL, creation, as for the other rule maps */
	__u32 group;          /* shared by the entries of one rule; 0: a free entry */
	__u8 nterms;          /* terms used, 1..LWTUI_COMPOUND_TERMS */
	__u8 flags;           /* LWTUI_COMPOUND_* */
	__u8 part;            /* this conjunction's place in its rule, 0.. */
	__u8 parts;           /* the rule's conjunctions */
	struct compound_term terms[LWTUI_COMPOUND_TERMS];
};

/* Perf event record. */
struct lwtui_event {
	struct flow_key key;
	__u64 ts_ns;      /* bpf_ktime_get_ns */
	__u64 packets;    /* the sending CPU's share of the flow's counters */
	__u64 bytes;
	__u64 drops;
	__u32 len;        /* skb->len of the packet that caused the event */
	__u8 type;        /* LWTUI_EV_* */
	__u8 verdict;
	__u8 rule_kind;
	__u8 tcp_flags;
};

/* Packet capture (--pcap, the dashboard's w): the record sent to `captures`
 * for a dropped or would-drop packet while LWTUI_CFG_CAPTURE is set, followed
 * in the same perf sample by the packet's first bytes (from the IP header on). */
struct lwtui_capture {
	struct flow_key key;
	__u64 ts_ns;      /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__u32 len;        /* skb->len: the packet's whole length */
	__u32 caplen;     /* bytes that follow this record */
	__u8 verdict;     /* LWTUI_DROP or LWTUI_WOULD_DROP */
	__u8 pad[7];
};

/* Indices of the per-CPU `capture_stats` array. */
#define LWTUI_CAP_SENT    0  /* records sent to `captures` */
#define LWTUI_CAP_LIMITED 1  /* not sent: over LWTUI_CFG_CAPTURE_RATE */
#define LWTUI_CAP_FAILED  2  /* perf output failed (the reader's buffer was full) */
#define LWTUI_CAP_MAX     3

#endif /* LWTUI_H */
