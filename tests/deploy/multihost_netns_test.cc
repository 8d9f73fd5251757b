// Several hosts on one machine (acceptance 4 of issue 7): three network
// namespaces on one LAN (a bridge on the head host, a veth pair to each
// worker host), the tiny pipeline across them, and one worker host's link
// cut in the middle of the generator phase.
//
//   head 10.77.0.1   `dsm serve learner,verifier,meta-verifier` and
//                    `dsm serve coordinator` (the pipeline: phases 1-5 on
//                    a few imported problems and one labelled proof)
//   w1   10.77.0.2   `dsm serve worker --coordinator HEAD --learner HEAD`
//   w2   10.77.0.3   the same
//
// Every gRPC call crosses the network with mutual TLS and the bearer token
// (non-loopback addresses require them). Once w1 has results accepted and
// holds leases, its link goes down: no FIN, no RST, the coordinator only
// stops hearing from it (gRPC keep-alive stays at its 30 s default, so the
// 2 s lease expiry must notice). Then the run must end SUCCEEDED with every
// generator work item accepted exactly once (w1's stranded leases reissued
// to w2, no item failed, no result from behind the cut), the coordinator
// must have seen w1 go within seconds and granted it nothing since, and
// there must be one training group per item, each acked by the learner once
// (no duplicate). Items have the default three attempts: a coordinator
// that kept granting the stranded work to the cut host would fail it.
//
// Needs root and network namespaces (`ip netns add`); skips with a message
// naming what failed elsewhere.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/time_util.h"
#include "services/coordinator/run_store.h"
#include "tests/deploy/deploy_stack.h"
#include "tests/integration/child_process.h"
#include "tests/integration/dsm_process.h"
#include "tests/integration/test_certs.h"

namespace dsm {
namespace {

using dsm_test::ChildProcess;

constexpr char kHeadIp[] = "10.77.0.1";
constexpr char kRun[] = "multihost";
constexpr int kProblems = 16;  // generator work items, one per problem
constexpr char kCoordinator[] = "10.77.0.1:50051";
constexpr char kLearner[] = "10.77.0.1:50052";

// The `ip` program, or "" when there is none.
std::string IpProgram() {
  for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return "";
}

// Runs a shell command; the error names the command and holds its output.
absl::Status Shell(const std::string& command, const std::string& output_file) {
  const int rc = std::system((command + " >'" + output_file + "' 2>&1").c_str());
  if (rc == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("`", command, "` failed (status ", rc, "): ",
                                          dsm_test::ReadWholeFile(output_file)));
}

// Three network namespaces joined into one LAN: a bridge in the head's
// namespace holds its address and one end of a veth pair per worker host;
// nothing is added to the caller's namespace. Deleting the namespaces (the
// destructor) deletes every link in them.
class Lan {
 public:
  explicit Lan(std::string scratch) : scratch_(std::move(scratch)), ip_(IpProgram()) {
    const std::string suffix = absl::StrCat("-", getpid());
    head_ = "dsm-head" + suffix;
    workers_ = {"dsm-w1" + suffix, "dsm-w2" + suffix};
  }
  ~Lan() {
    for (const std::string& ns : created_) (void)Ip("netns delete " + ns);
  }

  const std::string& ip() const { return ip_; }
  const std::string& head() const { return head_; }
  const std::string& worker(int i) const { return workers_[i]; }
  static std::string WorkerIp(int i) { return absl::StrCat("10.77.0.", i + 2); }

  absl::Status Build() {
    if (ip_.empty()) return absl::NotFoundError("no `ip` program (Debian package iproute2)");
    RemoveStale();
    for (const std::string& ns : {head_, workers_[0], workers_[1]}) {
      if (absl::Status s = Ip("netns add " + ns); !s.ok()) return s;
      created_.push_back(ns);
      if (absl::Status s = Ip("-n " + ns + " link set lo up"); !s.ok()) return s;
    }
    const std::string h = "-n " + head_ + " ";
    for (const std::string& step : {h + "link add br0 type bridge", h + "addr add 10.77.0.1/24 dev br0",
                                    h + "link set br0 up"}) {
      if (absl::Status s = Ip(step); !s.ok()) return s;
    }
    for (int i = 0; i < 2; ++i) {
      const std::string end = absl::StrCat("h", i + 1);  // the head's end of worker i's cable
      const std::string w = "-n " + workers_[i] + " ";
      for (const std::string& step :
           {h + "link add " + end + " type veth peer name eth0 netns " + workers_[i],
            h + "link set " + end + " master br0", h + "link set " + end + " up",
            w + "addr add " + WorkerIp(i) + "/24 dev eth0", w + "link set eth0 up"}) {
        if (absl::Status s = Ip(step); !s.ok()) return s;
      }
    }
    return absl::OkStatus();
  }

  // Pulls worker i's cable at the head's end: packets are dropped, no
  // connection is told.
  absl::Status Cut(int i) { return Ip(absl::StrCat("-n ", head_, " link set h", i + 1, " down")); }

  // argv (after the program) to run the dsm binary in namespace `ns`.
  static std::vector<std::string> DsmIn(const std::string& ns, std::vector<std::string> args) {
    std::vector<std::string> argv = {"netns", "exec", ns, std::string(std::getenv("DSM_BINARY_DIR")) + "/dsm"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

 private:
  absl::Status Ip(const std::string& args) { return Shell(ip_ + " " + args, scratch_ + "/ip.out"); }

  // The namespaces of a run of this test that was killed (its pid is gone,
  // so no destructor ran): their processes are killed, they are deleted.
  void RemoveStale() {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/var/run/netns", ec)) {
      const std::string name = entry.path().filename().string();
      int pid = 0;
      for (const char* prefix : {"dsm-head-", "dsm-w1-", "dsm-w2-"}) {
        if (absl::StartsWith(name, prefix)) (void)absl::SimpleAtoi(name.substr(std::strlen(prefix)), &pid);
      }
      if (pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH) continue;
      (void)Shell(ip_ + " netns pids " + name + " | xargs -r kill -9", scratch_ + "/ip.out");
      (void)Ip("netns delete " + name);
    }
  }

  std::string scratch_;
  std::string ip_;
  std::string head_;
  std::vector<std::string> workers_;
  std::vector<std::string> created_;
};

// GET http://ADDRESS/PATH from inside network namespace `ns`: this thread
// enters it while the socket is made (a socket stays in the namespace it was
// made in), then comes back.
dsm_test::HttpResult HttpGetIn(const std::string& ns, const std::string& address, const std::string& path) {
  const int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  const int there = open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  dsm_test::HttpResult result;
  if (home >= 0 && there >= 0 && setns(there, CLONE_NEWNET) == 0) {
    result = dsm_test::HttpGet(address, path);
    if (setns(home, CLONE_NEWNET) != 0) std::abort();  // the rest of the test must not run in `ns`
  }
  if (home >= 0) close(home);
  if (there >= 0) close(there);
  return result;
}

// The value of the sample `name{labels}` in a Prometheus exposition; -1 if absent.
double SampleValue(const std::string& exposition, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (absl::StartsWith(line, series + " ")) return std::stod(std::string(line.substr(series.size() + 1)));
  }
  return -1;
}

// How many leases `worker` was granted at or after `since`; -1 on error.
int64_t LeasesGrantedSince(RunStore& store, const std::string& worker, absl::Time since) {
  int64_t n = -1;
  const absl::Status read = store.db().Read([&](StateDb::Connection& c) -> absl::Status {
    auto st = c.Prepare("SELECT COUNT(*) FROM leases WHERE worker_id = ?1 AND granted_us >= ?2");
    if (!st.ok()) return st.status();
    st->BindText(1, worker).BindInt(2, absl::ToUnixMicros(since));
    auto row = st->Step();
    if (!row.ok()) return row.status();
    n = st->ColumnInt(0);
    return absl::OkStatus();
  });
  return read.ok() ? n : -1;
}

// The end of a log (the whole of a short one).
std::string Tail(const std::string& text, size_t bytes = 4000) {
  return text.size() <= bytes ? text : "..." + text.substr(text.size() - bytes);
}

class MultiHostNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to make network namespaces (`ip netns add`); uid " << geteuid();
    dir_ = absl::StrCat(::testing::TempDir(), "/deploy-multihost-", getpid());
    std::system(("rm -rf " + dir_ + " && mkdir -p " + dir_).c_str());
    lan_ = std::make_unique<Lan>(dir_);
    if (absl::Status s = lan_->Build(); !s.ok()) {
      GTEST_SKIP() << "cannot build the three-host network (network namespaces, bridge, veth): " << s.message();
    }
    ASSERT_TRUE(dsm_test::MakeTestCerts(&certs_)) << "openssl failed; see " << certs_.dir << "/openssl.log";
    std::ofstream(dir_ + "/token") << "multihost-netns-test-token-0123456789\n";
  }

  void TearDown() override {
    // The cut host cannot say goodbye; the others shut down cleanly.
    if (workers_[0] != nullptr) workers_[0]->Stop(SIGKILL);
    for (ChildProcess* p : {workers_[1].get(), coordinator_.get(), head_.get()}) {
      if (p != nullptr) {
        EXPECT_EQ(p->Stop(SIGTERM), 0) << Tail(p->Log());
      }
    }
    lan_.reset();
    if (!certs_.dir.empty()) std::filesystem::remove_all(certs_.dir);
    if (!dir_.empty() && !HasFailure()) std::system(("rm -rf " + dir_).c_str());  // kept to debug a failure
  }

  std::string Logs() const {
    std::string logs;
    auto add = [&logs](const char* name, const std::unique_ptr<ChildProcess>& p) {
      if (p != nullptr) absl::StrAppend(&logs, "--- ", name, "\n", Tail(p->Log()), "\n");
    };
    add("head (learner, verifier, meta-verifier)", head_);
    add("coordinator", coordinator_);
    add("worker w1", workers_[0]);
    add("worker w2", workers_[1]);
    return logs;
  }

  // The config of the host at `host` (every host has its own file).
  std::string WriteConfig(const std::string& name, const std::string& host, const std::string& worker_id,
                          const std::string& model, const std::string& prompts) {
    const std::string path = dir_ + "/" + name + ".yaml";
    std::ofstream(path)
        << "run: {name: " << kRun << ", runs_dir: " << dir_ << "/runs, seed: 5}\n"
        << "runtime: {threads: 1}\n"
        << "server: {host: " << host << ", drain_seconds: 0, shutdown_grace_seconds: 1,"
        << " tls_cert_file: " << certs_.server_crt << ", tls_key_file: " << certs_.server_key
        << ", tls_client_ca_file: " << certs_.ca_crt << ", token_file: " << dir_ << "/token}\n"
        // The test certificate names localhost; every host checks that name.
        << "client: {tls_ca_file: " << certs_.ca_crt << ", tls_cert_file: " << certs_.client_crt
        << ", tls_key_file: " << certs_.client_key << ", tls_server_name: localhost}\n"
        << "services: {coordinator: {port: 50051, metrics_port: 9101}, learner: {port: 50052, metrics_port: 9102},"
        << " worker: {port: 50053, metrics_port: 9103}, verifier: {port: 50054, metrics_port: 9104},"
        << " meta_verifier: {port: 50055, metrics_port: 9105}}\n"
        << "model: {path: " << model << ", max_batch: 8, max_len: 384}\n"
        << "limits: {max_prompt_tokens: 120}\n"
        << "lora: {r: 4, alpha: 8}\n"
        << "learner: {roles: [generator, verifier, meta_verifier], groups_per_step: 4, max_policy_lag: 1000}\n"
        << "worker: {" << (worker_id.empty() ? "" : "id: " + worker_id + ", ") << "roles: [generator], capacity: 2}\n"
        << "coordinator: {lease_ttl_seconds: 2, heartbeat_seconds: 0.5, pipeline: true,"
        << " learner: " << kLearner
        << ", verifier: " << kHeadIp << ":50054, meta_verifier: " << kHeadIp << ":50055, prompts_dir: " << prompts
        << ", group_size: 2, generator_problems: " << kProblems << ", auto_label_problems: 1}\n";
    return path;
  }

  // The run's state.db: kProblems problems and one labelled proof, the run
  // RUNNING (the coordinator starts the pipeline when it starts).
  void WriteRun() {
    auto store = RunStore::Open(RunStore::StatePath(dir_ + "/runs", kRun), RunStoreOptions{});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateRun(kRun, "", v1::RUN_STATE_RUNNING, absl::Now()).ok());
    std::vector<v1::ImportRecordsRequest> records(kProblems + 1);
    for (int i = 0; i < kProblems; ++i) {
      v1::ProblemRecord* p = records[i].mutable_problem();
      p->set_problem_id(absl::StrCat("q", i));
      p->set_statement(absl::StrCat("Given: a", i, "=b", i, ", b", i, "=c", i, ". Prove: a", i, "=c", i, "."));
    }
    v1::LabelledProof* proof = records[kProblems].mutable_proof();
    proof->set_proof_id("y0");
    proof->set_problem_id("q0");
    proof->set_proof("1. a0=b0, so a0=b0\n2. b0=c0, so a0=c0\nThus a0=c0.");
    proof->set_score(1);
    auto imported = (*store)->ImportRecords(records, /*atomic=*/true);
    ASSERT_TRUE(imported.ok()) << imported.status();
    ASSERT_EQ(imported->imported(), static_cast<uint64_t>(kProblems + 1));
  }

  // Starts `dsm ARGS` in namespace `ns` and waits for each "dsm serve ROLE:" line.
  std::unique_ptr<ChildProcess> Serve(const std::string& ns, const std::vector<std::string>& args,
                                      const std::vector<std::string>& roles, const std::string& log) {
    auto p = std::make_unique<ChildProcess>(dsm_test::Program{lan_->ip()}, Lan::DsmIn(ns, args), dir_ + "/" + log);
    for (const std::string& role : roles) {
      if (!p->WaitForLine("dsm serve " + role + ": grpc ", absl::Seconds(60)).has_value()) {
        ADD_FAILURE() << "dsm serve " << role << " in " << ns << " did not start:\n" << Tail(p->Log());
        return p;
      }
    }
    return p;
  }

  std::string dir_;
  dsm_test::TestCerts certs_;
  std::unique_ptr<Lan> lan_;  // destroyed after the processes in it
  std::unique_ptr<ChildProcess> head_;
  std::unique_ptr<ChildProcess> coordinator_;
  std::unique_ptr<ChildProcess> workers_[2];
};

TEST_F(MultiHostNetns, ACutWorkerHostsLeasesAreReissuedAndEveryItemIsAcceptedOnce) {
  const absl::Time started = absl::Now();
  const std::string prompts = dsm_test::PromptsDir(dir_ + "/prompts");
  const std::string model = dir_ + "/model";
  const dsm_test::DsmResult init = dsm_test::RunDsm("init-model --out " + model + " --templates " + prompts);
  ASSERT_EQ(init.exit_code, 0) << init.out << init.err;
  const std::string head_config = WriteConfig("head", kHeadIp, "", model, prompts);
  ASSERT_NO_FATAL_FAILURE(WriteRun());

  head_ = Serve(lan_->head(),
                {"serve", "learner,verifier,meta-verifier", "--config", head_config, "--learner", kLearner,
                 "--prompts", prompts},
                {"learner", "verifier", "meta-verifier"}, "head.log");
  ASSERT_FALSE(HasFailure());
  coordinator_ = Serve(lan_->head(), {"serve", "coordinator", "--config", head_config}, {"coordinator"},
                       "coordinator.log");
  ASSERT_FALSE(HasFailure());
  const std::string worker_ids[2] = {"w1", "w2"};
  for (int i = 0; i < 2; ++i) {
    const std::string config = WriteConfig(worker_ids[i], Lan::WorkerIp(i), worker_ids[i], model, prompts);
    workers_[i] = Serve(lan_->worker(i),
                        {"serve", "worker", "--config", config, "--coordinator", kCoordinator, "--learner", kLearner},
                        {"worker"}, worker_ids[i] + ".log");
    ASSERT_FALSE(HasFailure());
  }

  auto store = RunStore::Open(RunStore::StatePath(dir_ + "/runs", kRun), RunStoreOptions{});
  ASSERT_TRUE(store.ok()) << store.status();
  LeaseQueue& queue = (*store)->queue();

  // Cut w1 once it has had results accepted and holds leases, with work
  // still queued.
  const absl::Time cut_deadline = absl::Now() + absl::Seconds(90);
  bool ready = false;
  while (!ready && absl::Now() < cut_deadline) {
    auto counters = queue.Counters();
    auto held = queue.ActiveLeases("w1");
    ASSERT_TRUE(counters.ok() && held.ok());
    ready = counters->completed_by_worker["w1"] >= 1 && !held->empty() && counters->queued >= 2;
    if (!ready) absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(ready) << "w1 never had a result accepted while holding leases with work queued\n" << Logs();
  ASSERT_TRUE(lan_->Cut(0).ok());
  const absl::Time cut_at = absl::Now();
  // What w1 holds once anything already on the wire has landed: the leases
  // only another host can finish now.
  absl::SleepFor(absl::Milliseconds(300));
  auto stranded = queue.ActiveLeases("w1");
  ASSERT_TRUE(stranded.ok());
  ASSERT_FALSE(stranded->empty()) << "w1 finished its leases before its link went down\n" << Logs();
  auto before = queue.Counters();
  ASSERT_TRUE(before.ok());
  const uint64_t w1_accepted = before->completed_by_worker["w1"];

  // The run carries on without w1 and ends.
  v1::RunState state = v1::RUN_STATE_RUNNING;
  const absl::Time run_deadline = absl::Now() + absl::Seconds(90);
  while (absl::Now() < run_deadline) {
    auto run = (*store)->GetRun();
    ASSERT_TRUE(run.ok()) << run.status();
    state = run->state();
    if (state != v1::RUN_STATE_RUNNING) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  const absl::Duration after_cut = absl::Now() - cut_at;
  ASSERT_EQ(state, v1::RUN_STATE_SUCCEEDED) << (*store)->GetRun()->error() << "\n" << Logs();

  // Every generator item accepted exactly once; none failed or left over.
  auto counters = queue.Counters();
  ASSERT_TRUE(counters.ok());
  EXPECT_EQ(counters->queued, 0u);
  EXPECT_EQ(counters->leased, 0u);
  EXPECT_EQ(counters->failed, 0u);
  EXPECT_EQ(counters->cancelled, 0u);
  auto results = queue.ResultsAfter(0, 100000);
  ASSERT_TRUE(results.ok());
  std::set<std::string> keys, accepted_leases;
  std::map<int64_t, WorkItem> generator_items;
  for (const WorkItem& item : *results) {
    EXPECT_EQ(item.state, WorkState::kDone) << "item " << item.item_id << ": " << item.error;
    EXPECT_TRUE(accepted_leases.insert(item.accepted_lease_id).second) << item.accepted_lease_id;
    EXPECT_TRUE(keys.insert(item.key).second) << "work enqueued twice: " << item.key;
    if (item.phase == v1::PHASE_GENERATOR_RL) generator_items[item.item_id] = item;
  }
  EXPECT_EQ(generator_items.size(), static_cast<size_t>(kProblems));
  EXPECT_EQ(counters->done, results->size());
  EXPECT_EQ(counters->completed_by_worker["w1"] + counters->completed_by_worker["w2"], counters->done);
  EXPECT_EQ(counters->completed_by_worker["w1"], w1_accepted) << "a result from behind the cut was accepted";
  EXPECT_GE(counters->completed_by_worker["w2"], stranded->size());

  // w1's stranded leases were reissued and finished by w2.
  for (const LeaseRef& lease : *stranded) {
    auto item = queue.GetItem(lease.item_id);
    ASSERT_TRUE(item.ok()) << item.status();
    EXPECT_EQ(item->state, WorkState::kDone) << item->error;
    EXPECT_GE(item->attempts, 2u) << "item " << lease.item_id;
    EXPECT_NE(item->accepted_lease_id, lease.lease_id);
  }

  // The coordinator saw w1 go once its leases expired (not minutes later,
  // when TCP or keep-alive would notice), and gave it no work after that.
  auto events = (*store)->EventsFrom(0, 100000);
  ASSERT_TRUE(events.ok()) << events.status();
  std::optional<absl::Time> w1_left;
  bool generator_phase_finished = false;
  for (const v1::RunEvent& e : *events) {
    if (e.has_worker_left() && e.worker_left().worker_id() == "w1" && !w1_left.has_value()) {
      w1_left = absl::FromUnixMicros(google::protobuf::util::TimeUtil::TimestampToMicroseconds(e.time()));
      EXPECT_THAT(e.worker_left().reason(), ::testing::HasSubstr("the worker is gone"));
    }
    generator_phase_finished |= e.has_phase_finished() && e.phase_finished().phase() == v1::PHASE_GENERATOR_RL;
  }
  EXPECT_TRUE(generator_phase_finished);
  ASSERT_TRUE(w1_left.has_value()) << "the coordinator never noticed that w1 was gone\n" << Logs();
  EXPECT_LT(*w1_left - cut_at, absl::Seconds(2 + 3)) << "lease_ttl is 2 s";
  EXPECT_EQ(LeasesGrantedSince(**store, "w1", *w1_left), 0);

  // One training group per generator item, acked by the learner; and the
  // learner counted each group of the run once.
  const absl::Time fed_deadline = absl::Now() + absl::Seconds(20);
  std::vector<GroupRecord> pending;
  while (absl::Now() < fed_deadline) {
    auto p = (*store)->GroupsWithStatus(kGroupPending, 1000);
    ASSERT_TRUE(p.ok());
    pending = *p;
    if (pending.empty()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(pending.empty()) << pending.size() << " groups never acked by the learner\n" << Logs();
  for (const auto& [id, item] : generator_items) {
    v1::GenerateWork work;
    ASSERT_TRUE(work.ParseFromString(item.payload));
    auto group = (*store)->GetGroup(absl::StrCat("p5-i1-", work.metadata().problem_id(), "-", id));
    ASSERT_TRUE(group.ok()) << group.status();
    ASSERT_TRUE(group->has_value()) << "no group for item " << id;
    EXPECT_EQ((*group)->samples.size(), 2u);
    EXPECT_NE((*group)->status, v1::GROUP_STATUS_DUPLICATE);
  }
  uint64_t groups = 0;
  for (int status : {v1::GROUP_STATUS_ACCEPTED, v1::GROUP_STATUS_DUPLICATE, v1::GROUP_STATUS_DROPPED_STALE,
                     v1::GROUP_STATUS_DROPPED_NO_VARIANCE, v1::GROUP_STATUS_REJECTED}) {
    auto g = (*store)->GroupsWithStatus(status, 100000);
    ASSERT_TRUE(g.ok());
    if (status == v1::GROUP_STATUS_DUPLICATE) {
      EXPECT_TRUE(g->empty()) << g->size() << " groups acked DUPLICATE";
    }
    groups += g->size();
  }
  EXPECT_GE(groups, static_cast<uint64_t>(kProblems));
  const dsm_test::HttpResult metrics = HttpGetIn(lan_->head(), absl::StrCat(kHeadIp, ":9102"), "/metrics");
  ASSERT_TRUE(metrics.ok) << metrics.code << " " << metrics.body;
  double learner_groups = 0;
  for (const char* result : {"accepted", "dropped_stale", "dropped_no_variance", "rejected"}) {
    const double v = SampleValue(metrics.body, absl::StrCat("dsm_learner_groups_total{result=\"", result, "\"}"));
    ASSERT_GE(v, 0) << result << " missing from\n" << metrics.body;
    learner_groups += v;
  }
  EXPECT_EQ(learner_groups, static_cast<double>(groups));
  EXPECT_EQ(SampleValue(metrics.body, "dsm_learner_groups_total{result=\"duplicate\"}"), 0);

  std::cout << "[ multihost ] " << kProblems << " generator items, " << stranded->size()
            << " leases stranded on the cut host and reissued (" << counters->leases_expired << " expired, "
            << counters->leases_released << " released), w1 " << counters->completed_by_worker["w1"] << " / w2 "
            << counters->completed_by_worker["w2"] << " results, run ended "
            << absl::FormatDuration(absl::Trunc(after_cut, absl::Milliseconds(100))) << " after the cut, "
            << absl::FormatDuration(absl::Trunc(absl::Now() - started, absl::Milliseconds(100))) << " in all\n";
}

}  // namespace
}  // namespace dsm
