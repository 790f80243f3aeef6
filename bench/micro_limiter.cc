// micro_limiter.cc - Google Benchmark micro-benchmarks of the token bucket's hot paths: a thin
// C++ wrapper over the C API (cx/limiter.h). Not a pass/fail test.
//
//   BM_AcquireUncontended   cx_limiter_acquire on a limiter whose rate is so high it never waits
//   BM_TryAcquire/threads:N cx_limiter_try_acquire from 1 and 2 threads on one shared limiter
//   BM_TryAcquireEmpty      try_acquire on an exhausted bucket (the refusal path)
//   BM_Reserve              cx_limiter_reserve (never sleeps)
//   BM_Tokens               cx_limiter_tokens (the snapshot)
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>

#include "cx/limiter.h"

namespace {

// A rate no benchmark can outrun: 1e12 tokens per second with a burst of a million.
constexpr double kHugeRate = 1e12;
constexpr double kHugeBurst = 1e6;

cx_limiter *MakeLimiter(double rate, double burst) {
    cx_limiter *l = nullptr;
    cx_errinfo ei;
    if (cx_limiter_new(rate, burst, &l, &ei) < 0) {
        std::fprintf(stderr, "cx_limiter_new: %s\n", ei.msg);
        std::abort();
    }
    return l;
}

void BM_AcquireUncontended(benchmark::State &state) {
    cx_limiter *l = MakeLimiter(kHugeRate, kHugeBurst);
    for (auto _ : state) benchmark::DoNotOptimize(cx_limiter_acquire(l, 1));
    state.SetItemsProcessed(state.iterations());
    cx_limiter_free(l);
}
BENCHMARK(BM_AcquireUncontended);

// One limiter shared by every benchmark thread (created by thread 0 before the others start).
cx_limiter *g_shared = nullptr;

void BM_TryAcquire(benchmark::State &state) {
    if (state.thread_index() == 0) g_shared = MakeLimiter(kHugeRate, kHugeBurst);
    long refused = 0;
    for (auto _ : state)
        if (cx_limiter_try_acquire(g_shared, 1) != 0) refused++;
    state.SetItemsProcessed(state.iterations());
    state.counters["refused"] = benchmark::Counter(static_cast<double>(refused));
    if (state.thread_index() == 0) {
        // Google Benchmark joins the threads' loops before thread 0 gets here.
        cx_limiter_free(g_shared);
        g_shared = nullptr;
    }
}
BENCHMARK(BM_TryAcquire)->Threads(1)->Threads(2)->UseRealTime();

void BM_TryAcquireEmpty(benchmark::State &state) {
    cx_limiter *l = MakeLimiter(1e-3, 1);  // one token, then one every 1000 s
    cx_limiter_try_acquire(l, 1);
    for (auto _ : state) benchmark::DoNotOptimize(cx_limiter_try_acquire(l, 1));
    state.SetItemsProcessed(state.iterations());
    cx_limiter_free(l);
}
BENCHMARK(BM_TryAcquireEmpty);

void BM_Reserve(benchmark::State &state) {
    cx_limiter *l = MakeLimiter(kHugeRate, kHugeBurst);
    uint64_t wait = 0;
    for (auto _ : state) {
        cx_limiter_reserve(l, 1, &wait);
        benchmark::DoNotOptimize(wait);
    }
    state.SetItemsProcessed(state.iterations());
    cx_limiter_free(l);
}
BENCHMARK(BM_Reserve);

void BM_Tokens(benchmark::State &state) {
    cx_limiter *l = MakeLimiter(5, 5);
    for (auto _ : state) benchmark::DoNotOptimize(cx_limiter_tokens(l));
    cx_limiter_free(l);
}
BENCHMARK(BM_Tokens);

}  // namespace

BENCHMARK_MAIN();
