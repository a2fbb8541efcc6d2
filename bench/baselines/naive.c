/* The benchmarks' "naive" design: parse every packet and send it to user
 * space as one perf event, with no aggregation in the kernel. It is what
 * lwtui avoids (a perf buffer wakeup per event costs microseconds per packet
 * in the program, see docs/ARCHITECTURE.md); the throughput benchmark runs it with
 * a Python reader to show what per-packet events cost on the data path.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/tcp.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/in.h>

struct pkt_event {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
	__u32 len;
	__u64 ts_ns;
};

BPF_PERF_OUTPUT(naive_events);
BPF_PERCPU_ARRAY(naive_failed, u64, 1);

static __always_inline int report(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *iph = data;
	struct pkt_event ev = {};

	if ((void *)(iph + 1) > data_end || iph->version != 4)
		return BPF_OK;
	ev.saddr = iph->saddr;
	ev.daddr = iph->daddr;
	ev.proto = iph->protocol;
	ev.len = skb->len;
	ev.ts_ns = bpf_ktime_get_ns();
	if (iph->protocol == IPPROTO_TCP || iph->protocol == IPPROTO_UDP) {
		struct udphdr *l4 = data + iph->ihl * 4;  /* ports sit at the same offsets in TCP */
		if ((void *)(l4 + 1) <= data_end) {
			ev.sport = bpf_ntohs(l4->source);
			ev.dport = bpf_ntohs(l4->dest);
		}
	}
	if (naive_events.perf_submit(skb, &ev, sizeof(ev)) != 0) {
		u32 zero = 0;
		u64 *failed = naive_failed.lookup(&zero);
		if (failed)
			*failed += 1;
	}
	return BPF_OK;
}

int naive_out(struct __sk_buff *skb) { return report(skb); }
