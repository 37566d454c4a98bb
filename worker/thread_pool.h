// A fixed pool of threads for the parallel loops of CPU kernels.
#ifndef TLMD_WORKER_THREAD_POOL_H_
#define TLMD_WORKER_THREAD_POOL_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tlm::worker {

class ThreadPool {
 public:
  // `num_threads` includes the calling thread; at least 1.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on contiguous, non-empty chunks that partition
  // [0, extent), at most one per thread, the caller taking the first; returns
  // when all are done. Calls must not overlap (one kernel runs at a time).
  void ParallelFor(int64_t extent, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void WorkerLoop(int index);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_;
  std::condition_variable done_;
  uint64_t generation_ = 0;  // guarded by mu_
  int pending_ = 0;          // guarded by mu_
  bool stop_ = false;        // guarded by mu_
  int64_t extent_ = 0;
  int chunks_ = 0;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
};

// The number of hardware threads (at least 1).
int HardwareThreads();

}  // namespace tlm::worker

#endif  // TLMD_WORKER_THREAD_POOL_H_
