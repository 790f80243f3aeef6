// micro_cache.cc - Google Benchmark micro-benchmarks of the semantic cache's hot paths: a thin
// C++ wrapper over the C API (cx/cache.h, cx/embed.h). Not a pass/fail test; bench_cache.c
// prints the side-by-side 1-vs-2-thread ratios the project reports.
//
//   BM_Embed                 cx_embed of a typical prompt
//   BM_ExactGet/threads:N    exact hits at 500 entries, 1 and 2 threads on one cache
//   BM_SimilarGet/threads:N  similarity hits (exact misses) at 500 entries, 1 and 2 threads
//   BM_Miss                  a lookup that matches nothing (full similarity scan, no copy)
//   BM_Put                   cx_cache_put of a new key (insert + eviction, one per transaction)
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "cx/cache.h"
#include "cx/dbpool.h"
#include "cx/embed.h"

namespace {

constexpr int kEntries = 500;
const char *const kSystem = "You are a Linux system administration assistant.";
const char *const kWords[] = {"nginx", "redis", "postgresql", "docker", "nodejs", "python",
                              "mysql", "apache", "git",   "curl",   "vim",    "htop"};
constexpr int kNWords = sizeof kWords / sizeof kWords[0];

std::string Prompt(int i, bool similar) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%sinstall %s and %s then configure %s service number %d",
                  similar ? "please " : "", kWords[i % kNWords], kWords[(i / kNWords) % kNWords],
                  kWords[(i * 7) % kNWords], i);
    return buf;
}

// One pool and cache for the whole run, filled with kEntries entries; removed at exit.
struct Fixture {
    std::string path;
    cx_pool *pool = nullptr;
    cx_cache *cache = nullptr;
    Fixture() {
        const char *dir = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
        path = std::string(dir) + "/micro_cache_" + std::to_string(getpid()) + ".db";
        cx_pool_options po;
        cx_pool_options_init(&po);
        po.path = path.c_str();
        cx_errinfo ei;
        if (cx_pool_new(&po, &pool, &ei) < 0 || cx_cache_new(pool, nullptr, &cache, &ei) < 0) {
            std::fprintf(stderr, "micro_cache: %s\n", ei.msg);
            std::abort();
        }
        for (int i = 0; i < kEntries; i++) {
            std::string p = Prompt(i, false);
            cx_cache_key k = {"openai", "gpt-4o", kSystem, p.c_str()};
            cx_cache_put(cache, &k, "[\"sudo apt-get install -y pkg\"]", nullptr);
        }
    }
    ~Fixture() {
        cx_cache_free(cache);
        cx_pool_free(pool);
        for (const char *suffix : {"", "-wal", "-shm"}) unlink((path + suffix).c_str());
    }
};

Fixture &F() {
    static Fixture f;  // constructed once, thread-safely, by the first benchmark to run
    return f;
}

void BM_Embed(benchmark::State &state) {
    std::string p = Prompt(42, false);
    float v[CX_EMBED_DIM];
    for (auto _ : state) {
        cx_embed(p.c_str(), v);
        benchmark::DoNotOptimize(v[0]);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Embed);

void Lookups(benchmark::State &state, bool similar) {
    cx_cache *c = F().cache;
    std::string prompts[64];
    for (int i = 0; i < 64; i++)
        prompts[i] = Prompt((i * 37 + state.thread_index() * 11) % kEntries, similar);
    long wrong = 0;
    int i = 0;
    for (auto _ : state) {
        cx_cache_key k = {"openai", "gpt-4o", kSystem, prompts[i++ & 63].c_str()};
        char *json = nullptr;
        int sim = 0;
        if (cx_cache_get(c, &k, &json, &sim, nullptr) != 0 || sim != (similar ? 1 : 0)) wrong++;
        cx_free(json);
    }
    state.SetItemsProcessed(state.iterations());
    state.counters["wrong"] = benchmark::Counter(static_cast<double>(wrong));
}

void BM_ExactGet(benchmark::State &state) { Lookups(state, false); }
BENCHMARK(BM_ExactGet)->Threads(1)->Threads(2)->UseRealTime();

void BM_SimilarGet(benchmark::State &state) { Lookups(state, true); }
BENCHMARK(BM_SimilarGet)->Threads(1)->Threads(2)->UseRealTime();

void BM_Miss(benchmark::State &state) {
    cx_cache *c = F().cache;
    cx_cache_key k = {"openai", "gpt-4o", kSystem, "compile the linux kernel from source"};
    for (auto _ : state) {
        char *json = nullptr;
        benchmark::DoNotOptimize(cx_cache_get(c, &k, &json, nullptr, nullptr));
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Miss);

void BM_Put(benchmark::State &state) {
    cx_cache *c = F().cache;
    long n = 0;
    for (auto _ : state) {
        std::string p = "micro put " + std::to_string(n++) + " install something";
        cx_cache_key k = {"openai", "gpt-4o", kSystem, p.c_str()};
        benchmark::DoNotOptimize(cx_cache_put(c, &k, "[\"x\"]", nullptr));
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Put)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
