#include "common/run_states.h"

namespace dsm {

bool IsTerminalRunState(v1::RunState state) {
  return state == v1::RUN_STATE_SUCCEEDED || state == v1::RUN_STATE_FAILED || state == v1::RUN_STATE_CANCELLED;
}

bool IsRunEndEvent(const v1::RunEvent& event) {
  return event.has_state_changed() && IsTerminalRunState(event.state_changed().state());
}

}  // namespace dsm
