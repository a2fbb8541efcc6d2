/* The benchmarks' "lookup" floor: one lookup of lwtui's 40-byte flow key in
 * a kernel map of the kind -DLOOKUP_MAP names (lru_percpu_hash, percpu_hash,
 * lru_hash, hash; default the flow map's kind), and two counter adds on a
 * hit, nothing else (no parse, no clock, no verdict). It says what the flow
 * lookup alone costs on this kernel and CPU, whatever program surrounds it:
 * the ablation compiles it once per kind and times it against the no-op like
 * its variants. -DLOOKUP_ARRAY instead looks up a per-CPU array at a constant
 * index, the one lookup the verifier inlines into loads.
 *
 * The key is built on the stack from the packet's length (so the compiler
 * cannot fold it) and constants; a miss inserts it, so every timed run after
 * the first is a hit. Loaded as LWT out.
 */
#include <uapi/linux/bpf.h>
#include "lwtui.h"

#ifndef LOOKUP_MAP
#define LOOKUP_MAP "lru_percpu_hash"
#endif

#ifdef LOOKUP_ARRAY
BPF_PERCPU_ARRAY(lk_map, struct flow_stats, 1);
#else
BPF_TABLE(LOOKUP_MAP, struct flow_key, struct flow_stats, lk_map, 65536);
#endif

int lookup_floor(struct __sk_buff *skb)
{
#ifdef LOOKUP_ARRAY
	int key = 0;
#else
	struct flow_key key = {};
	key.sport = (__u16)skb->len;
	key.dport = 80;
	key.proto = 6;
	key.family = 4;
	key.hook = LWTUI_HOOK_OUT;
#endif
	struct flow_stats *v = lk_map.lookup(&key);
	if (!v) {
		struct flow_stats z = {};
		lk_map.update(&key, &z);
		return BPF_OK;
	}
	v->packets += 1;
	v->bytes += skb->len;
	return BPF_OK;
}
