/* The benchmarks' "minimal" baseline: the seed article's drop-port-8080
 * program (parse IPv4 and TCP, compare the destination port, drop on a match),
 * without its bpf_printk, in BCC's dialect. Like the article's program it reads
 * an IPv4 header only; an IPv6 packet gets compared as if it were one.
 *
 * One entry point per hook, because BCC caches load_func by function name and
 * a program loaded as one LWT type cannot be attached as another.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/tcp.h>
#include <uapi/linux/in.h>

#ifndef DROP_PORT
#define DROP_PORT 8080
#endif

static __always_inline int parse_and_compare(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *iph = data;

	if ((void *)(iph + 1) > data_end)
		return BPF_OK;
	if (iph->protocol != IPPROTO_TCP)
		return BPF_OK;
	struct tcphdr *tcph = data + iph->ihl * 4;
	if ((void *)(tcph + 1) > data_end)
		return BPF_OK;
	if (bpf_ntohs(tcph->dest) == DROP_PORT)
		return BPF_DROP;
	return BPF_OK;
}

int minimal_in(struct __sk_buff *skb) { return parse_and_compare(skb); }
int minimal_out(struct __sk_buff *skb) { return parse_and_compare(skb); }
int minimal_xmit(struct __sk_buff *skb) { return parse_and_compare(skb); }
