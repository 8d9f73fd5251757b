// What ends a run, in one place: the terminal run states and the event that
// announces one.
#ifndef DSM_COMMON_RUN_STATES_H_
#define DSM_COMMON_RUN_STATES_H_

#include "dsm/v1/coordinator.pb.h"

namespace dsm {

// SUCCEEDED, FAILED or CANCELLED: the run will not change again.
bool IsTerminalRunState(v1::RunState state);

// An event that changes the run's state to a terminal one.
bool IsRunEndEvent(const v1::RunEvent& event);

}  // namespace dsm

#endif  // DSM_COMMON_RUN_STATES_H_
