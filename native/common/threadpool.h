// A small fixed thread pool for the CPU kernels. Never the libuv pool: compute runs here, and
// the async driver (async.h) only waits for it.
//
// parallel_for(n, fn) splits [0, n) into contiguous chunks, one per worker (the caller takes
// part as worker 0), and calls fn(begin, end, worker). Results must never depend on how rows
// are split: kernels make every row's computation independent of the chunking.
#pragma once
#include <cstdint>
#include <functional>

namespace grpo {

// Number of workers (>= 1). Default: GRPO_NUM_THREADS if set, else hardware concurrency.
int num_threads();
// Resize the pool (n >= 1). Waits for running work first.
void set_num_threads(int n);

// fn(begin, end, worker). Work is split into at most num_threads() chunks of at least
// `min_chunk` items. Calls from several threads at once are serialised.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                  int64_t min_chunk = 1);

}  // namespace grpo
