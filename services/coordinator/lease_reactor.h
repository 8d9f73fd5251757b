// LeaseReactor: one worker's Coordinator.Lease stream, a thin gRPC callback
// bidi reactor over LeaseDispatcher. It reads WorkerMessages one at a time
// and hands them to the dispatcher (Hello first, else FAILED_PRECONDITION);
// messages to the worker go through an Outbox the dispatcher may feed from
// any thread (bounded: a worker that stops reading past max_queued messages
// loses its stream with RESOURCE_EXHAUSTED, its leases go back to the
// queue). When the stream ends for any reason the dispatcher is told once.
#ifndef DSM_SERVICES_COORDINATOR_LEASE_REACTOR_H_
#define DSM_SERVICES_COORDINATOR_LEASE_REACTOR_H_

#include <cstddef>
#include <memory>

#include <grpcpp/grpcpp.h>

#include "dsm/v1/coordinator.pb.h"
#include "services/coordinator/lease_dispatcher.h"

namespace dsm {

// Starts the reactor for one Lease call; it deletes itself when done.
grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* StartLeaseReactor(LeaseDispatcher* dispatcher,
                                                                                    size_t max_queued);

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_LEASE_REACTOR_H_
