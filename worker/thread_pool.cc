#include "worker/thread_pool.h"

#include <algorithm>

namespace tlm::worker {
namespace {

// Bounds of chunk `i` of `chunks` over [0, extent).
std::pair<int64_t, int64_t> Chunk(int64_t extent, int chunks, int i) {
  const int64_t base = extent / chunks;
  const int64_t extra = extent % chunks;
  const int64_t begin = i * base + std::min<int64_t>(i, extra);
  return {begin, begin + base + (i < extra ? 1 : 0)};
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  for (int i = 1; i < std::max(num_threads, 1); ++i) {
    workers_.emplace_back([this, i] { WorkerLoop(i); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    std::unique_lock<std::mutex> lock(mu_);
    start_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    if (index >= chunks_) continue;
    const auto [begin, end] = Chunk(extent_, chunks_, index);
    const auto* fn = fn_;
    lock.unlock();
    (*fn)(begin, end);
    lock.lock();
    if (--pending_ == 0) done_.notify_one();
  }
}

void ThreadPool::ParallelFor(int64_t extent, const std::function<void(int64_t, int64_t)>& fn) {
  if (extent <= 0) return;
  const int chunks = static_cast<int>(std::min<int64_t>(extent, num_threads()));
  if (chunks == 1) {
    fn(0, extent);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    extent_ = extent;
    chunks_ = chunks;
    fn_ = &fn;
    pending_ = chunks - 1;
    ++generation_;
  }
  start_.notify_all();
  const auto [begin, end] = Chunk(extent, chunks, 0);
  fn(begin, end);
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [&] { return pending_ == 0; });
}

int HardwareThreads() { return std::max(1u, std::thread::hardware_concurrency()); }

}  // namespace tlm::worker
