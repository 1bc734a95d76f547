#include "interrupt.h"

#include <csignal>

#include <atomic>

namespace nmmfit {
namespace {

std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the SIGINT handler needs a lock-free flag");
int g_depth = 0;  // only touched by the main thread (begin/end), never by the handler
struct sigaction g_previous;

extern "C" void on_sigint(int) { g_interrupted.store(true, std::memory_order_relaxed); }

}  // namespace

bool interrupt_requested() { return g_interrupted.load(std::memory_order_relaxed); }

void begin_interruptible() {
  if (g_depth++ > 0) return;
  g_interrupted.store(false);
  struct sigaction sa = {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_previous);
}

bool end_interruptible() {
  const bool interrupted = g_interrupted.load();
  if (g_depth > 0 && --g_depth == 0) {
    sigaction(SIGINT, &g_previous, nullptr);
    g_interrupted.store(false);
  }
  return interrupted;
}

}  // namespace nmmfit
