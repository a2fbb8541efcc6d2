/* bench/flowgen.py in C, for storm rates one Python sender cannot reach on a
 * small machine: the same arguments (DST RATE SECONDS [--sockets N]), the same
 * flows (one 16-byte UDP datagram per source port x destination port, ports
 * 1024..65535 on each of N sockets, paced in 1 ms slices) and the same JSON
 * line, but datagrams leave in batches of up to 256 per sendmmsg(2).
 * IPv4 only. Built by bench/stormtable.py with the system's cc.
 * `--cycle N` (after --sockets): the first N flows over and over, at RATE
 * datagrams/s, until SECONDS: N flows whose counters all move (bench/ptydash.py
 * --live); `walked` then says how far the first pass went. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FIRST_PORT 1024
#define LAST_PORT 65535
#define BATCH 256
#define MAX_FAILED 10000

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	int nsock = 8;
	long cycle = 0;
	if (argc < 4) {
		fprintf(stderr, "usage: flowgen DST RATE SECONDS [--sockets N [--cycle N]]\n");
		return 2;
	}
	if (argc >= 6 && !strcmp(argv[4], "--sockets"))
		nsock = atoi(argv[5]);
	if (argc >= 8 && !strcmp(argv[6], "--cycle"))
		cycle = atol(argv[7]);
	double rate = atof(argv[2]), seconds = atof(argv[3]);
	struct in_addr dst;
	if (nsock < 1 || inet_pton(AF_INET, argv[1], &dst) != 1) {
		fprintf(stderr, "flowgen: bad destination or socket count\n");
		return 2;
	}
	int *fds = calloc(nsock, sizeof(int)), *sports = calloc(nsock, sizeof(int));
	long *walked = calloc(nsock, sizeof(long));
	int (*failed)[2] = calloc(MAX_FAILED, sizeof(*failed));
	for (int i = 0; i < nsock; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET};
		socklen_t len = sizeof(a);
		fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
		if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof(a)) ||
		    getsockname(fds[i], (struct sockaddr *)&a, &len)) {
			perror("flowgen: socket");
			return 1;
		}
		sports[i] = ntohs(a.sin_port);
	}
	static char payload[] = "lwtui-bench-flow";
	static struct sockaddr_in to[BATCH];
	static struct iovec iov[BATCH];
	static struct mmsghdr msgs[BATCH];
	for (int j = 0; j < BATCH; j++) {
		to[j] = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr = dst};
		iov[j] = (struct iovec){.iov_base = payload, .iov_len = 16};
		msgs[j].msg_hdr = (struct msghdr){.msg_name = &to[j], .msg_namelen = sizeof(to[j]),
						  .msg_iov = &iov[j], .msg_iovlen = 1};
	}
	long sent = 0, errors = 0, nfailed = 0, span = LAST_PORT - FIRST_PORT + 1;
	int sock = 0, port = FIRST_PORT;
	if (cycle > span * nsock) {
		fprintf(stderr, "flowgen: --cycle %ld is more flows than %d sockets have ports\n", cycle, nsock);
		return 2;
	}
	double t0 = mono(), end = t0 + seconds, slice = 0.001;
	for (;;) {
		double now = mono();
		if (now >= end || sock >= nsock)
			break;
		long due = rate > 0 ? (long)((now - t0 + slice) * rate) : sent + errors + BATCH;
		while (sent + errors < due && port <= LAST_PORT) {
			if (cycle && sock * span + port - FIRST_PORT >= cycle)
				break;	/* the cycle's end: back to its first flow below */
			long n = due - (sent + errors);
			if (n > BATCH)
				n = BATCH;
			if (n > LAST_PORT - port + 1)
				n = LAST_PORT - port + 1;
			if (cycle && n > cycle - (sock * span + port - FIRST_PORT))
				n = cycle - (sock * span + port - FIRST_PORT);
			for (int j = 0; j < n; j++)
				to[j].sin_port = htons(port + j);
			int r = sendmmsg(fds[sock], msgs, n, 0);
			if (r < 0)
				r = 0;
			sent += r;
			port += r;
			if (r < n) {	/* the next one failed: note it and skip it */
				if (nfailed < MAX_FAILED) {
					failed[nfailed][0] = sock;
					failed[nfailed][1] = port;
					nfailed++;
				}
				errors++;
				port++;
			}
		}
		if (port - FIRST_PORT > walked[sock])
			walked[sock] = port - FIRST_PORT;
		if (port > LAST_PORT) {
			sock++;
			port = FIRST_PORT;
		}
		if (cycle && sock * span + port - FIRST_PORT >= cycle) {	/* back to the first flow */
			sock = 0;
			port = FIRST_PORT;
		}
		if (rate > 0) {
			double pause = t0 + due / rate - mono();
			if (pause > 0) {
				struct timespec ts = {(time_t)pause, (long)((pause - (time_t)pause) * 1e9)};
				nanosleep(&ts, NULL);
			}
		}
	}
	double took = mono() - t0;
	printf("{\"sent\": %ld, \"errors\": %ld, \"seconds\": %.4f, \"rate\": %.1f, \"sports\": [",
	       sent, errors, took, took > 0 ? sent / took : 0.0);
	for (int i = 0; i < nsock; i++)
		printf("%s%d", i ? ", " : "", sports[i]);
	printf("], \"walked\": [");
	for (int i = 0; i < nsock; i++)
		printf("%s%ld", i ? ", " : "", walked[i]);
	printf("], \"failed_at\": [");
	for (long i = 0; i < nfailed; i++)
		printf("%s[%d, %d]", i ? ", " : "", failed[i][0], failed[i][1]);
	printf("]}\n");
	return 0;
}
