// Lints the wire API sources: every message, field, oneof, enum, enum value,
// service and rpc carries a comment (the comments are the contract: meaning,
// units, range, default), every dsm enum starts with *_UNSPECIFIED = 0 and
// every dsm service has GetServerInfo. Reads the descriptor set protoc
// writes with --include_source_info (see proto.tests.cmake).

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace dsm {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::EnumDescriptor;
using google::protobuf::FileDescriptor;
using google::protobuf::FileDescriptorSet;
using google::protobuf::SourceLocation;

template <typename D>
bool HasComment(const D* d) {
  SourceLocation loc;
  if (!d->GetSourceLocation(&loc)) return false;
  auto blank = [](const std::string& s) { return s.find_first_not_of(" \t\n") == std::string::npos; };
  return !blank(loc.leading_comments) || !blank(loc.trailing_comments);
}

// protoc's descriptor set (imports first, with comments), read once.
const FileDescriptorSet& DescriptorSet() {
  static const FileDescriptorSet* set = [] {
    auto* result = new FileDescriptorSet();
    std::ifstream in(DSM_PROTO_DESCRIPTOR_SET, std::ios::binary);
    if (!in || !result->ParseFromIstream(&in)) result->Clear();
    return result;
  }();
  return *set;
}

// A pool built from DescriptorSet(); nullptr if a file fails to build.
const DescriptorPool* Pool() {
  static const DescriptorPool* pool = []() -> const DescriptorPool* {
    auto* result = new DescriptorPool();
    for (const auto& file : DescriptorSet().file()) {
      if (result->BuildFile(file) == nullptr) return nullptr;
    }
    return result;
  }();
  return pool;
}

void CheckEnum(const EnumDescriptor* e, bool dsm_package, std::vector<std::string>* missing) {
  if (!HasComment(e)) missing->push_back("enum " + e->full_name());
  for (int i = 0; i < e->value_count(); ++i) {
    if (!HasComment(e->value(i))) missing->push_back("enum value " + e->value(i)->full_name());
  }
  if (dsm_package) {
    const std::string& first = e->value(0)->name();
    EXPECT_EQ(e->value(0)->number(), 0) << e->full_name();
    EXPECT_TRUE(first.size() > 12 && first.substr(first.size() - 12) == "_UNSPECIFIED")
        << e->full_name() << ": first value " << first << " should be *_UNSPECIFIED";
  }
}

void CheckMessage(const Descriptor* d, bool dsm_package, std::vector<std::string>* missing) {
  if (d->options().map_entry()) return;
  if (!HasComment(d)) missing->push_back("message " + d->full_name());
  for (int i = 0; i < d->field_count(); ++i) {
    if (!HasComment(d->field(i))) missing->push_back("field " + d->field(i)->full_name());
  }
  for (int i = 0; i < d->oneof_decl_count(); ++i) {
    if (!d->oneof_decl(i)->is_synthetic() && !HasComment(d->oneof_decl(i))) {
      missing->push_back("oneof " + d->oneof_decl(i)->full_name());
    }
  }
  for (int i = 0; i < d->nested_type_count(); ++i) CheckMessage(d->nested_type(i), dsm_package, missing);
  for (int i = 0; i < d->enum_type_count(); ++i) CheckEnum(d->enum_type(i), dsm_package, missing);
}

class ProtoDocs : public testing::TestWithParam<const char*> {};

TEST_P(ProtoDocs, EveryElementIsDocumented) {
  ASSERT_NE(Pool(), nullptr) << "cannot build a pool from " << DSM_PROTO_DESCRIPTOR_SET;
  const FileDescriptor* file = Pool()->FindFileByName(GetParam());
  ASSERT_NE(file, nullptr) << GetParam() << " is missing from the descriptor set";
  const bool dsm_package = file->package() == "dsm.v1";

  std::vector<std::string> missing;
  for (int i = 0; i < file->message_type_count(); ++i)
    CheckMessage(file->message_type(i), dsm_package, &missing);
  for (int i = 0; i < file->enum_type_count(); ++i) CheckEnum(file->enum_type(i), dsm_package, &missing);
  for (int i = 0; i < file->service_count(); ++i) {
    const auto* service = file->service(i);
    if (!HasComment(service)) missing.push_back("service " + service->full_name());
    bool has_server_info = false;
    for (int j = 0; j < service->method_count(); ++j) {
      if (!HasComment(service->method(j))) missing.push_back("rpc " + service->method(j)->full_name());
      has_server_info |= service->method(j)->name() == "GetServerInfo";
    }
    if (dsm_package) {
      EXPECT_TRUE(has_server_info) << service->full_name() << " lacks GetServerInfo";
    }
  }
  EXPECT_TRUE(missing.empty()) << "undocumented: " << testing::PrintToString(missing);
}

// The files checked here and in proto_roundtrip_test.cc.
const std::vector<std::string> kDsmFiles = {"dsm/v1/common.proto", "dsm/v1/coordinator.proto",
                                            "dsm/v1/learner.proto", "dsm/v1/sampler.proto",
                                            "dsm/v1/scoring.proto"};

// A new .proto under dsm/v1 (globbed into the descriptor set) must be added
// to both tests' lists.
TEST(ProtoFiles, EveryDsmProtoFileIsListed) {
  ASSERT_GT(DescriptorSet().file_size(), 0) << "cannot read " << DSM_PROTO_DESCRIPTOR_SET;
  std::vector<std::string> in_set;
  for (const auto& file : DescriptorSet().file()) {
    if (file.name().rfind("dsm/v1/", 0) == 0) in_set.push_back(file.name());
  }
  std::sort(in_set.begin(), in_set.end());
  EXPECT_EQ(in_set, kDsmFiles);
}

INSTANTIATE_TEST_SUITE_P(WireApi, ProtoDocs,
                         testing::Values("dsm/v1/common.proto", "dsm/v1/sampler.proto",
                                         "dsm/v1/scoring.proto", "dsm/v1/learner.proto",
                                         "dsm/v1/coordinator.proto", "grpc/health/v1/health.proto"),
                         [](const testing::TestParamInfo<const char*>& info) {
                           std::string name = info.param;
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace dsm
