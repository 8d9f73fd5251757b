// The name of each adapter role, as metrics labels, logs and reports spell it.
#ifndef DSM_COMMON_ADAPTER_ROLES_H_
#define DSM_COMMON_ADAPTER_ROLES_H_

#include "dsm/v1/common.pb.h"

namespace dsm {

// "generator", "verifier", "meta_verifier", "base"; "unspecified" otherwise.
const char* AdapterRoleName(v1::AdapterRole role);

}  // namespace dsm

#endif  // DSM_COMMON_ADAPTER_ROLES_H_
