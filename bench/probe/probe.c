// Memory-bandwidth probe for the bench suite's floors. Compiled by bench/run.js at bench time
// (cc -O3 -march=native -pthread) into a temp dir and run as its own process.
//
// Measures, over a buffer far larger than the last-level cache (default 1 GiB):
//   copy  : memcpy(dst, src), each thread its contiguous slice. Reported as bytes MOVED per
//           second, read + write counted: 2 * size / time. (glibc's memcpy uses non-temporal
//           stores at this size, so there is no read-for-ownership of dst.)
//   read  : a sum of every 64-bit word (vectorised), 1 * size / time.
//   write : memset, 1 * size / time.
// Each test runs `reps` times after one warm-up pass (which also faults the pages in); the
// median is reported. Threads: argv[2] (default 2, the kernels' default on the 2-core box).
//
// Usage: probe [MiB=1024] [threads=2] [reps=7]     Prints one JSON line.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  int op;  // 0 copy, 1 read, 2 write
  char *src, *dst;
  size_t bytes;
  uint64_t sum;  // read result, kept so the loop cannot be removed
} job_t;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *work(void *p) {
  job_t *j = (job_t *)p;
  if (j->op == 0) {
    memcpy(j->dst, j->src, j->bytes);
  } else if (j->op == 1) {
    const uint64_t *a = (const uint64_t *)j->src;
    size_t n = j->bytes / 8;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) { s0 += a[i]; s1 += a[i + 1]; s2 += a[i + 2]; s3 += a[i + 3]; }
    j->sum = s0 + s1 + s2 + s3;
  } else {
    memset(j->dst, 1, j->bytes);
  }
  return NULL;
}

// One timed pass of `op` over the whole buffer, split into `nt` contiguous slices.
static double pass(int op, char *src, char *dst, size_t bytes, int nt, uint64_t *sink) {
  pthread_t th[64];
  job_t jobs[64];
  size_t slice = (bytes / nt) & ~(size_t)4095;
  double t0 = now_s();
  for (int t = 0; t < nt; t++) {
    size_t off = slice * t, len = t == nt - 1 ? bytes - off : slice;
    jobs[t] = (job_t){op, src + off, dst + off, len, 0};
    pthread_create(&th[t], NULL, work, &jobs[t]);
  }
  for (int t = 0; t < nt; t++) {
    pthread_join(th[t], NULL);
    *sink += jobs[t].sum;
  }
  return now_s() - t0;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
  int nt = argc > 2 ? atoi(argv[2]) : 2;
  int reps = argc > 3 ? atoi(argv[3]) : 7;
  if (nt < 1) nt = 1;
  if (nt > 64) nt = 64;
  if (reps < 1) reps = 1;
  if (reps > 99) reps = 99;
  size_t bytes = mib << 20;
  char *src = aligned_alloc(4096, bytes), *dst = aligned_alloc(4096, bytes);
  if (!src || !dst) { fprintf(stderr, "probe: cannot allocate 2 x %zu MiB\n", mib); return 1; }
  uint64_t sink = 0;
  const char *names[3] = {"copy", "read", "write"};
  const double moved[3] = {2.0, 1.0, 1.0};  // bytes moved per buffer byte
  double med[3], best[3];
  pass(2, src, src, bytes, nt, &sink);  // fault in both buffers
  pass(2, dst, dst, bytes, nt, &sink);
  for (int op = 0; op < 3; op++) {
    double t[99];
    pass(op, src, dst, bytes, nt, &sink);  // warm-up
    for (int r = 0; r < reps; r++) t[r] = pass(op, src, dst, bytes, nt, &sink);
    qsort(t, reps, sizeof(double), cmp);
    med[op] = moved[op] * bytes / t[reps / 2] / 1e9;
    best[op] = moved[op] * bytes / t[0] / 1e9;
  }
  printf("{\"tool\":\"probe.c\",\"mib\":%zu,\"threads\":%d,\"reps\":%d", mib, nt, reps);
  for (int op = 0; op < 3; op++) printf(",\"%s_gbs\":%.3f,\"%s_best_gbs\":%.3f", names[op], med[op], names[op], best[op]);
  printf(",\"sink\":%llu}\n", (unsigned long long)(sink & 1));
  free(src);
  free(dst);
  return 0;
}
