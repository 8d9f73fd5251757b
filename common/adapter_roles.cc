#include "common/adapter_roles.h"

namespace dsm {

const char* AdapterRoleName(v1::AdapterRole role) {
  switch (role) {
    case v1::ADAPTER_ROLE_GENERATOR:
      return "generator";
    case v1::ADAPTER_ROLE_VERIFIER:
      return "verifier";
    case v1::ADAPTER_ROLE_META_VERIFIER:
      return "meta_verifier";
    case v1::ADAPTER_ROLE_BASE:
      return "base";
    default:
      return "unspecified";
  }
}

}  // namespace dsm
