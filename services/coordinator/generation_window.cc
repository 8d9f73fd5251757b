#include "services/coordinator/generation_window.h"

#include <algorithm>

namespace dsm {

uint32_t GenerationWindow::ToEnqueue() const {
  if (exhausted_ || enqueued_ >= planned_) return 0;
  const uint32_t left = planned_ - enqueued_;
  if (window_ == 0) return left;
  return in_flight_ >= window_ ? 0 : std::min(left, window_ - in_flight_);
}

uint32_t GenerationWindow::Enqueued(uint32_t asked, uint32_t got) {
  got = std::min(got, planned_ - std::min(planned_, enqueued_));
  enqueued_ += got;
  in_flight_ += got;
  if (got >= asked) return 0;
  exhausted_ = true;
  return planned_ - enqueued_;
}

void GenerationWindow::Finished(uint32_t n) { in_flight_ -= std::min(n, in_flight_); }

}  // namespace dsm
