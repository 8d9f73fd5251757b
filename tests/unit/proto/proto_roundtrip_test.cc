// Round-trips every message type of the wire API through the binary format,
// checks each file registers the expected number of message types, each
// service the expected rpcs, and that generated stubs and gMock mocks exist.

#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/client_context.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "dsm/v1/common.pb.h"
#include "dsm/v1/coordinator.grpc.pb.h"
#include "dsm/v1/coordinator_mock.grpc.pb.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "dsm/v1/learner_mock.grpc.pb.h"
#include "dsm/v1/sampler.grpc.pb.h"
#include "dsm/v1/sampler_mock.grpc.pb.h"
#include "dsm/v1/scoring.grpc.pb.h"
#include "dsm/v1/scoring_mock.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/health/v1/health_mock.grpc.pb.h"

namespace dsm {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::FileDescriptor;
using google::protobuf::Message;
using google::protobuf::MessageFactory;
using google::protobuf::OneofDescriptor;
using google::protobuf::Reflection;
using google::protobuf::util::MessageDifferencer;

// Message fields nested deeper than this are left present but empty.
constexpr int kMaxDepth = 5;
// Elements added to every repeated (and map) field.
constexpr int kRepeatedElements = 2;

// Every message type in a file, nested types included, map entries excluded
// (they are covered through their map fields).
void CollectMessages(const Descriptor* d, std::vector<const Descriptor*>* out) {
  if (d->options().map_entry()) return;
  out->push_back(d);
  for (int i = 0; i < d->nested_type_count(); ++i) CollectMessages(d->nested_type(i), out);
}

std::vector<const Descriptor*> MessagesOf(const FileDescriptor* file) {
  std::vector<const Descriptor*> out;
  for (int i = 0; i < file->message_type_count(); ++i) CollectMessages(file->message_type(i), &out);
  return out;
}

// Largest real (non-synthetic) oneof reachable from d within kMaxDepth: the
// number of fill variants needed so that every oneof member is set once.
int MaxOneofSize(const Descriptor* d, int depth) {
  int best = 1;
  if (depth >= kMaxDepth) return best;
  for (int i = 0; i < d->oneof_decl_count(); ++i) {
    const OneofDescriptor* o = d->oneof_decl(i);
    if (!o->is_synthetic()) best = std::max(best, o->field_count());
  }
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && f->message_type() != d) {
      best = std::max(best, MaxOneofSize(f->message_type(), depth + 1));
    }
  }
  return best;
}

// A non-zero enum value, varied by element index.
const google::protobuf::EnumValueDescriptor* NonDefaultEnum(const EnumDescriptor* e, int element) {
  if (e->value_count() < 2) return e->value(0);
  return e->value(1 + element % (e->value_count() - 1));
}

void FillMessage(Message* m, int variant, int depth);

// Sets field f of m (or adds element `element` if f is repeated) to a
// non-default value.
void FillValue(Message* m, const FieldDescriptor* f, int element, int variant, int depth) {
  const Reflection* r = m->GetReflection();
  const bool rep = f->is_repeated();
  const int e = element;
  const std::string text = "v_" + std::string(f->name()) + "_" + std::to_string(e);
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      rep ? r->AddInt32(m, f, -7 - e) : r->SetInt32(m, f, -7 - e);
      break;
    case FieldDescriptor::CPPTYPE_INT64: {
      const int64_t v = -(int64_t{1} << 40) - e;
      rep ? r->AddInt64(m, f, v) : r->SetInt64(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT32:
      rep ? r->AddUInt32(m, f, 300u + e) : r->SetUInt32(m, f, 300u + e);
      break;
    case FieldDescriptor::CPPTYPE_UINT64: {
      const uint64_t v = (uint64_t{1} << 50) + e;
      rep ? r->AddUInt64(m, f, v) : r->SetUInt64(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_FLOAT:
      rep ? r->AddFloat(m, f, 0.5f + e) : r->SetFloat(m, f, 0.5f + e);
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      rep ? r->AddDouble(m, f, -0.25 + e) : r->SetDouble(m, f, -0.25 + e);
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      rep ? r->AddBool(m, f, e % 2 == 0) : r->SetBool(m, f, true);
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      rep ? r->AddEnum(m, f, NonDefaultEnum(f->enum_type(), e))
          : r->SetEnum(m, f, NonDefaultEnum(f->enum_type(), e));
      break;
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string v = text;
      if (f->type() == FieldDescriptor::TYPE_BYTES) v += std::string("\0\xff\x01", 3);
      rep ? r->AddString(m, f, v) : r->SetString(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      Message* sub = rep ? r->AddMessage(m, f) : r->MutableMessage(m, f);
      if (f->is_map()) {
        // Map keys must differ, or the parsed map collapses the entries.
        const FieldDescriptor* key = sub->GetDescriptor()->map_key();
        const FieldDescriptor* value = sub->GetDescriptor()->map_value();
        const Reflection* sr = sub->GetReflection();
        switch (key->cpp_type()) {
          case FieldDescriptor::CPPTYPE_STRING:
            sr->SetString(sub, key, "key" + std::to_string(e));
            break;
          case FieldDescriptor::CPPTYPE_INT32:
            sr->SetInt32(sub, key, e + 1);
            break;
          case FieldDescriptor::CPPTYPE_INT64:
            sr->SetInt64(sub, key, e + 1);
            break;
          case FieldDescriptor::CPPTYPE_UINT32:
            sr->SetUInt32(sub, key, e + 1);
            break;
          case FieldDescriptor::CPPTYPE_UINT64:
            sr->SetUInt64(sub, key, e + 1);
            break;
          case FieldDescriptor::CPPTYPE_BOOL:
            sr->SetBool(sub, key, e % 2 == 0);
            break;
          default:
            ADD_FAILURE() << "unexpected map key type in " << f->full_name();
        }
        FillValue(sub, value, e, variant, depth + 1);
      } else if (depth < kMaxDepth) {
        FillMessage(sub, variant, depth + 1);
      }
      break;
    }
  }
}

// Fills every field of m. In each real oneof, member (variant % size) is set.
void FillMessage(Message* m, int variant, int depth) {
  const Descriptor* d = m->GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (const OneofDescriptor* o = f->real_containing_oneof()) {
      if (o->field(variant % o->field_count()) != f) continue;
    }
    if (f->is_repeated()) {
      for (int e = 0; e < kRepeatedElements; ++e) FillValue(m, f, e, variant, depth);
    } else {
      FillValue(m, f, 0, variant, depth);
    }
  }
}

// Files of the wire API and how many message types each must register.
// dsm_proto is a static library: a generated file registers its descriptors
// only if the linker pulls its object in, so each case names one message of
// the file (the anchor) whose descriptor() forces that. Code that looks types
// up by name only (FindFileByName, FindMessageTypeByName) needs the same.
struct FileCase {
  const char* file;
  const Descriptor* (*anchor)();
  int expected_messages;
};

class ProtoRoundTrip : public testing::TestWithParam<FileCase> {};

TEST_P(ProtoRoundTrip, EveryMessageSurvivesSerializeAndParse) {
  const FileCase& c = GetParam();
  const FileDescriptor* anchored = c.anchor()->file();
  const FileDescriptor* file = DescriptorPool::generated_pool()->FindFileByName(c.file);
  ASSERT_NE(file, nullptr) << c.file << " is not registered in the generated pool";
  ASSERT_EQ(file, anchored) << "anchor of " << c.file << " lives in " << anchored->name();
  const std::vector<const Descriptor*> messages = MessagesOf(file);
  EXPECT_EQ(static_cast<int>(messages.size()), c.expected_messages)
      << c.file << ": message count changed; update the expected count";

  for (const Descriptor* d : messages) {
    const Message* prototype = MessageFactory::generated_factory()->GetPrototype(d);
    ASSERT_NE(prototype, nullptr) << d->full_name();
    const int variants = MaxOneofSize(d, 0);
    for (int variant = 0; variant < variants; ++variant) {
      SCOPED_TRACE(d->full_name() + " variant " + std::to_string(variant));
      std::unique_ptr<Message> original(prototype->New());
      FillMessage(original.get(), variant, 0);
      ASSERT_TRUE(original->IsInitialized());

      // Every field (or the chosen oneof member) holds a non-default value.
      const Reflection* r = original->GetReflection();
      for (int i = 0; i < d->field_count(); ++i) {
        const FieldDescriptor* f = d->field(i);
        if (const OneofDescriptor* o = f->real_containing_oneof()) {
          if (o->field(variant % o->field_count()) != f) {
            EXPECT_FALSE(r->HasField(*original, f)) << f->name();
            continue;
          }
        }
        if (f->is_repeated()) {
          EXPECT_EQ(r->FieldSize(*original, f), kRepeatedElements) << f->name();
        } else {
          EXPECT_TRUE(r->HasField(*original, f)) << f->name() << " was left at its default";
        }
      }

      std::string wire;
      ASSERT_TRUE(original->SerializeToString(&wire));
      if (d->field_count() > 0) {
        EXPECT_FALSE(wire.empty()) << "filled message serialized to nothing";
      }

      std::unique_ptr<Message> parsed(prototype->New());
      ASSERT_TRUE(parsed->ParseFromString(wire));
      std::string diff;
      MessageDifferencer differencer;
      differencer.ReportDifferencesToString(&diff);
      EXPECT_TRUE(differencer.Compare(*original, *parsed)) << diff;
      EXPECT_TRUE(MessageDifferencer::Equals(*original, *parsed));
      EXPECT_EQ(parsed->ByteSizeLong(), wire.size());
    }
  }
}

// Hand-counted so that a file that fails to register (or loses a message)
// fails the test. Nested types count; map entries do not.
INSTANTIATE_TEST_SUITE_P(
    WireApi, ProtoRoundTrip,
    testing::Values(FileCase{"dsm/v1/common.proto", &v1::Completion::descriptor, 11},
                    FileCase{"dsm/v1/sampler.proto", &v1::GenerateRequest::descriptor, 4},
                    FileCase{"dsm/v1/scoring.proto", &v1::VerifyRequest::descriptor, 5},
                    FileCase{"dsm/v1/learner.proto", &v1::ScoredGroup::descriptor, 21},
                    FileCase{"dsm/v1/coordinator.proto", &v1::WorkerMessage::descriptor, 38},
                    FileCase{"grpc/health/v1/health.proto", &grpc::health::v1::HealthCheckRequest::descriptor,
                             2}),
    [](const testing::TestParamInfo<FileCase>& info) {
      std::string name = info.param.file;
      std::replace_if(
          name.begin(), name.end(), [](char ch) { return !std::isalnum(static_cast<unsigned char>(ch)); },
          '_');
      return name;
    });

// The rpc list of each service, with its streaming shape: the contract that
// servers and clients are written against.
enum class Shape { kUnary, kServerStream, kClientStream, kBidi };

struct Rpc {
  const char* name;
  Shape shape;
};

void ExpectRpcs(const std::string& service_name, const std::vector<Rpc>& rpcs) {
  SCOPED_TRACE(service_name);
  const auto* service = DescriptorPool::generated_pool()->FindServiceByName(service_name);
  ASSERT_NE(service, nullptr);
  ASSERT_EQ(service->method_count(), static_cast<int>(rpcs.size()));
  for (int i = 0; i < service->method_count(); ++i) {
    const auto* method = service->method(i);
    EXPECT_EQ(method->name(), rpcs[i].name);
    const Shape shape = method->client_streaming()
                            ? (method->server_streaming() ? Shape::kBidi : Shape::kClientStream)
                            : (method->server_streaming() ? Shape::kServerStream : Shape::kUnary);
    EXPECT_EQ(static_cast<int>(shape), static_cast<int>(rpcs[i].shape)) << method->name();
  }
}

TEST(ProtoServices, RpcListsAndStreamingShapes) {
  // Link every file in (see FileCase).
  for (const Descriptor* anchor :
       {v1::GenerateRequest::descriptor(), v1::VerifyRequest::descriptor(), v1::ScoredGroup::descriptor(),
        v1::WorkerMessage::descriptor(), grpc::health::v1::HealthCheckRequest::descriptor()}) {
    ASSERT_NE(anchor, nullptr);
  }
  using S = Shape;
  ExpectRpcs("dsm.v1.Sampler", {{"Generate", S::kServerStream}, {"GetServerInfo", S::kUnary}});
  ExpectRpcs("dsm.v1.Verifier", {{"Verify", S::kUnary}, {"GetServerInfo", S::kUnary}});
  ExpectRpcs("dsm.v1.MetaVerifier", {{"Assess", S::kUnary}, {"GetServerInfo", S::kUnary}});
  ExpectRpcs("dsm.v1.Learner", {{"SubmitGroups", S::kBidi},
                                {"WatchAdapters", S::kServerStream},
                                {"GetState", S::kUnary},
                                {"Checkpoint", S::kUnary},
                                {"InitAdapter", S::kUnary},
                                {"Flush", S::kUnary},
                                {"GetServerInfo", S::kUnary}});
  ExpectRpcs("dsm.v1.Coordinator", {{"Lease", S::kBidi},
                                    {"StartRun", S::kUnary},
                                    {"GetRun", S::kUnary},
                                    {"ListRuns", S::kUnary},
                                    {"WatchRun", S::kServerStream},
                                    {"ImportRecords", S::kClientStream},
                                    {"CancelRun", S::kUnary},
                                    {"GetServerInfo", S::kUnary}});
  ExpectRpcs("grpc.health.v1.Health", {{"Check", S::kUnary}, {"Watch", S::kServerStream}});
}

// Generated service, stub and mock of each dsm service.
template <typename ServiceT, typename MockT>
struct ServiceTraits {
  using Service = ServiceT;
  using Mock = MockT;
};

template <typename T>
class GeneratedService : public testing::Test {};

using DsmServices = testing::Types<
    ServiceTraits<v1::Sampler, v1::MockSamplerStub>, ServiceTraits<v1::Verifier, v1::MockVerifierStub>,
    ServiceTraits<v1::MetaVerifier, v1::MockMetaVerifierStub>,
    ServiceTraits<v1::Learner, v1::MockLearnerStub>, ServiceTraits<v1::Coordinator, v1::MockCoordinatorStub>>;
TYPED_TEST_SUITE(GeneratedService, DsmServices);

TYPED_TEST(GeneratedService, StubAndMockImplementTheInterface) {
  using Service = typename TypeParam::Service;
  using Mock = typename TypeParam::Mock;
  static_assert(std::is_base_of_v<typename Service::StubInterface, typename Service::Stub>);
  static_assert(std::is_base_of_v<typename Service::StubInterface, Mock>);
  static_assert(std::is_base_of_v<grpc::Service, typename Service::Service>);
  static_assert(std::is_base_of_v<grpc::Service, typename Service::CallbackService>);

  // A mock stands in for a peer through the stub interface.
  Mock mock;
  v1::ServerInfo canned;
  canned.set_service(Service::service_full_name());
  canned.mutable_limits()->set_max_n(64);
  EXPECT_CALL(mock, GetServerInfo(testing::_, testing::_, testing::_))
      .WillOnce(testing::DoAll(testing::SetArgPointee<2>(canned), testing::Return(grpc::Status::OK)));
  typename Service::StubInterface& stub = mock;
  grpc::ClientContext context;
  v1::ServerInfo info;
  ASSERT_TRUE(stub.GetServerInfo(&context, v1::GetServerInfoRequest(), &info).ok());
  EXPECT_EQ(info.service(), Service::service_full_name());
  EXPECT_EQ(info.limits().max_n(), 64u);
  EXPECT_EQ(std::string(Service::service_full_name()).rfind("dsm.v1.", 0), 0u);
}

TEST(GeneratedService, HealthStubAndMockImplementTheInterface) {
  using grpc::health::v1::Health;
  static_assert(std::is_base_of_v<Health::StubInterface, Health::Stub>);
  static_assert(std::is_base_of_v<Health::StubInterface, grpc::health::v1::MockHealthStub>);
  EXPECT_STREQ(Health::service_full_name(), "grpc.health.v1.Health");

  grpc::health::v1::MockHealthStub mock;
  grpc::health::v1::HealthCheckResponse serving;
  serving.set_status(grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_CALL(mock, Check(testing::_, testing::_, testing::_))
      .WillOnce(testing::DoAll(testing::SetArgPointee<2>(serving), testing::Return(grpc::Status::OK)));
  Health::StubInterface& stub = mock;
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("dsm.v1.Sampler");
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(stub.Check(&context, request, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

}  // namespace
}  // namespace dsm
