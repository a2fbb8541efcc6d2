/* Event transport alone: every run sends one record the size of
 * struct lwtui_event (80 bytes) through a perf buffer, or with -DUSE_RINGBUF
 * through a BPF ring buffer. The new-flow storm benchmark drives it with
 * BPF_PROG_TEST_RUN to compare the two at equal buffer memory. Failed outputs
 * are counted here because a ring buffer has no lost callback.
 */
#include <uapi/linux/bpf.h>

#ifndef RINGBUF_PAGES
#define RINGBUF_PAGES 64
#endif

struct storm_event {
	__u8 key[40];
	__u64 seq;
	__u64 ts_ns;
	__u64 pad[2];
	__u32 len;
	__u32 cpu;
};

#ifdef USE_RINGBUF
BPF_RINGBUF_OUTPUT(storm_ring, RINGBUF_PAGES);
#else
BPF_PERF_OUTPUT(storm_perf);
#endif
BPF_ARRAY(storm_seq, u64, 1);
BPF_PERCPU_ARRAY(storm_failed, u64, 1);

int storm_out(struct __sk_buff *skb)
{
	u32 zero = 0;
	struct storm_event ev = {};
	u64 *seq = storm_seq.lookup(&zero);

	if (seq)
		ev.seq = __sync_fetch_and_add(seq, 1);
	ev.ts_ns = bpf_ktime_get_ns();
	ev.len = skb->len;
	ev.cpu = bpf_get_smp_processor_id();
#ifdef USE_RINGBUF
	int err = storm_ring.ringbuf_output(&ev, sizeof(ev), 0);
#else
	int err = storm_perf.perf_submit(skb, &ev, sizeof(ev));
#endif
	if (err) {
		u64 *failed = storm_failed.lookup(&zero);
		if (failed)
			*failed += 1;
	}
	return BPF_OK;
}
