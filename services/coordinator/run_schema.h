// The schema of a run's state database (runs/<name>/state.db), as ordered
// migrations for StateDb::Open, and the integer codes stored in it.
//
// Tables (schema version 1; times are microseconds since the Unix epoch, UTC):
//   meta            key/value: "db_id" (random, fixes lease ids to this file)
//   runs            the run: name, config YAML, RunState, Phase, iteration,
//                   progress, error, times (one row per state.db)
//   run_events      RunEvent protos by sequence (1, 2, ... without gaps)
//   evaluations     Evaluation protos, one per (phase, iteration, point)
//   cursors         named positions (per phase position in a dataset)
//   problems        ProblemRecord fields + content hash; seq = import order
//   proofs          LabelledProof fields + content hash; iteration 0 =
//                   imported, >= 1 = auto-labelled in that iteration (phase 5)
//   analyses        LabelledAnalysis fields + content hash
//   work_items      queued work: kind, role, priority, payload (serialized
//                   GenerateWork/ScoreWork), state, attempts, the accepted
//                   result (or failure) and its result_seq
//   leases          one row per grant: lease_id, item, worker, attempt,
//                   expiry, state; reclaimed = the LeaseState it was taken
//                   back with (expired/released; kept when a late answer
//                   changes state), 0 = never
//   training_groups ScoredGroups built from results, with their learner status
//   samples         one row per sample of a group (tokens, text, reward,
//                   adapter version); sample_rewards: named reward parts
//
// Thread safety: constants and a pure function.
#ifndef DSM_SERVICES_COORDINATOR_RUN_SCHEMA_H_
#define DSM_SERVICES_COORDINATOR_RUN_SCHEMA_H_

#include <vector>

#include "services/coordinator/state_db.h"

namespace dsm {

// work_items.state
enum class WorkState : int {
  kQueued = 0,     // waiting for a lease
  kLeased = 1,     // an ACTIVE lease holds it
  kDone = 2,       // a result was accepted (terminal)
  kFailed = 3,     // out of attempts, or a non-retryable error (terminal)
  kCancelled = 4,  // the run was cancelled (terminal)
};

// leases.state
enum class LeaseState : int {
  kActive = 0,     // granted, not expired, not answered
  kCompleted = 1,  // its result was accepted
  kExpired = 2,    // not renewed in time; work requeued (or failed)
  kReleased = 3,   // its worker went away; work requeued (or failed)
  kCancelled = 4,  // another lease's result for the same work was accepted, or the run was cancelled
  kErrored = 5,    // the worker answered with a LeaseError
  kDiscarded = 6,  // answered after the work was finished by another lease
};

// work_items.kind
enum class WorkKind : int {
  kGenerate = 1,  // payload: serialized v1::GenerateWork
  kScore = 2,     // payload: serialized v1::ScoreWork
};

// Every migration of the run state schema, oldest first.
const std::vector<StateDbMigration>& RunStateMigrations();

const char* WorkStateName(WorkState state);
const char* LeaseStateName(LeaseState state);

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_RUN_SCHEMA_H_
