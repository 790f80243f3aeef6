// micro_executor.cc - Google Benchmark micro-benchmarks for the executor (a thin C++ wrapper
// over the C API).
//
//   BM_TaskOverhead/<mode>/<threads>: cx_executor_run of a batch of 1000 empty tasks; the
//     items/s figure is tasks per second through submit + run + completion queue + wait, so
//     1e9 / items_per_second is the executor's overhead per task in ns.
//   BM_SuspendResume/<threads>: the same with tasks that suspend and resume themselves
//     (the hybrid-I/O continuation path).
//   BM_ResumeFromThread/<threads>: tasks suspend and a separate "I/O" thread resumes them (the
//     real hybrid path: 1000 suspended at once, continuations queued from a foreign thread).
//   BM_CompletionQueue/<lockfree|mutex>/<producers>: N producer threads push 200,000 nodes
//     each into one queue while one consumer pops them all; items/s is the queue's throughput.
//     The mutex variant is there to show the choice of the lock-free one is measured.
//
// Run: build/<dir>/bench/micro_executor --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "cx/executor.h"

#include "cqueue_bench.h"

namespace {

constexpr size_t kBatch = 1000;

int EmptyTask(cx_task_ctx *, void *, cx_task_result *) { return 0; }

int SelfResumeCont(cx_task_ctx *, void *, cx_task_result *) { return 0; }

int SelfResumeTask(cx_task_ctx *ctx, void *, cx_task_result *) {
    cx_task_handle *h = cx_task_suspend(ctx);
    cx_task_resume(h, SelfResumeCont, nullptr);
    return CX_EAGAIN;
}

// A stand-in for the curl-multi thread: resumes every handle it is given.
struct IoThread {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<cx_task_handle *> q;
    bool stop = false;
    std::thread th;
    IoThread() : th([this] { Loop(); }) {}
    ~IoThread() {
        {
            std::lock_guard<std::mutex> g(mu);
            stop = true;
        }
        cv.notify_one();
        th.join();
    }
    void Push(cx_task_handle *h) {
        {
            std::lock_guard<std::mutex> g(mu);
            q.push_back(h);
        }
        cv.notify_one();
    }
    void Loop() {
        std::unique_lock<std::mutex> lk(mu);
        for (;;) {
            cv.wait(lk, [this] { return stop || !q.empty(); });
            if (q.empty()) return;
            cx_task_handle *h = q.front();
            q.pop_front();
            lk.unlock();
            cx_task_resume(h, SelfResumeCont, nullptr);
            lk.lock();
        }
    }
};

int IoTask(cx_task_ctx *ctx, void *arg, cx_task_result *) {
    static_cast<IoThread *>(arg)->Push(cx_task_suspend(ctx));
    return CX_EAGAIN;
}

void RunBatches(benchmark::State &state, cx_exec_mode mode, int threads, cx_task_fn fn,
                void *arg = nullptr) {
    cx_executor_options o;
    cx_executor_options_init(&o);
    o.mode = mode;
    o.threads = threads;
    cx_executor *ex = nullptr;
    if (cx_executor_new(&o, &ex, nullptr) != 0) {
        state.SkipWithError("cx_executor_new failed");
        return;
    }
    std::vector<cx_task> tasks(kBatch, cx_task{fn, arg});
    for (auto _ : state) {
        cx_batch *b = nullptr;
        if (cx_executor_run(ex, tasks.data(), tasks.size(), nullptr, nullptr, &b) != 0) {
            state.SkipWithError("cx_executor_run failed");
            break;
        }
        struct cx_batch_stats st;
        cx_batch_stats(b, &st);
        if (st.successful != kBatch) state.SkipWithError("a task failed");
        cx_batch_free(b);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBatch);
    struct cx_executor_stats es;
    cx_executor_stats(ex, &es);
    state.counters["steals/batch"] =
        benchmark::Counter(static_cast<double>(es.steals) / static_cast<double>(state.iterations()));
    cx_executor_free(ex);
}

void BM_TaskOverhead(benchmark::State &state) {
    RunBatches(state, static_cast<cx_exec_mode>(state.range(0)), static_cast<int>(state.range(1)),
               EmptyTask);
}

void BM_SuspendResume(benchmark::State &state) {
    RunBatches(state, CX_MODE_FREE, static_cast<int>(state.range(0)), SelfResumeTask);
}

void BM_ResumeFromThread(benchmark::State &state) {
    IoThread io;
    RunBatches(state, CX_MODE_FREE, static_cast<int>(state.range(0)), IoTask, &io);
}

void BM_CompletionQueue(benchmark::State &state) {
    const int use_lock = static_cast<int>(state.range(0));
    const int producers = static_cast<int>(state.range(1));
    const uint64_t per = 200000;
    for (auto _ : state) {
        uint64_t ns = cx__cqueue_bench(producers, per, use_lock);
        if (ns == 0) {
            state.SkipWithError("cx__cqueue_bench failed");
            break;
        }
        state.SetIterationTime(static_cast<double>(ns) / 1e9);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * producers *
                            static_cast<int64_t>(per));
    state.SetLabel(use_lock ? "mutex" : "lockfree");
}

}  // namespace

BENCHMARK(BM_TaskOverhead)
    ->ArgNames({"mode", "threads"})
    ->Args({CX_MODE_SERIAL, 1})
    ->Args({CX_MODE_GIL, 1})
    ->Args({CX_MODE_GIL, 2})
    ->Args({CX_MODE_GIL, 4})
    ->Args({CX_MODE_FREE, 1})
    ->Args({CX_MODE_FREE, 2})
    ->Args({CX_MODE_FREE, 4})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SuspendResume)->ArgName("threads")->Arg(1)->Arg(2)->Arg(4)->UseRealTime()->Unit(
    benchmark::kMicrosecond);
BENCHMARK(BM_ResumeFromThread)->ArgName("threads")->Arg(1)->Arg(2)->Arg(4)->UseRealTime()->Unit(
    benchmark::kMicrosecond);
BENCHMARK(BM_CompletionQueue)
    ->ArgNames({"lock", "producers"})
    ->ArgsProduct({{0, 1}, {1, 2, 4, 8}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
