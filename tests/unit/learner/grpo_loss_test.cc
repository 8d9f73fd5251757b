#include "learner/grpo_loss.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "learner/token_logprobs.h"
#include "model/llama_model.h"
#include "model/lora.h"
#include "model/safetensors.h"
#include "tests/unit/model/reference_fixtures.h"

namespace dsm {
namespace {

using ::dsm::model_test::MaxAbsDiff;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The acceptance tolerance: loss and gradients equal the Python reference.
constexpr double kTol = 1e-5;

// ---------------------------------------------------------------- fixtures

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs tests/fixtures/learner/grpo_reference.py once into
// $DSM_BINARY_DIR/fixtures/learner/<hash of it and make_reference.py>
// (temp folder + rename, as reference_fixtures.h does).
absl::StatusOr<std::string> MakeGrpoFixtures() {
  const std::string models = model_test::ReferenceDir();
  if (models.empty()) return absl::FailedPreconditionError("no model reference fixtures");
  const std::string src = std::getenv("DSM_SOURCE_DIR");
  const std::string bin = std::getenv("DSM_BINARY_DIR");
  const std::string script = src + "/tests/fixtures/learner/grpo_reference.py";
  const std::string text = ReadText(script) + ReadText(src + "/tests/fixtures/models/make_reference.py");
  if (text.empty()) return absl::NotFoundError(absl::StrCat("cannot read ", script));
  uint64_t hash = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : text) hash = (hash ^ ch) * 1099511628211ull;
  namespace fs = std::filesystem;
  const std::string dir = absl::StrFormat("%s/fixtures/learner/%016x", bin, hash);
  if (fs::exists(dir + "/.complete")) return dir;

  absl::StatusOr<std::string> python = model_test::FindTorchPython();
  if (!python.ok()) return python.status();
  const std::string tmp = absl::StrCat(dir, ".tmp.", ::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  const std::string cmd =
      absl::StrCat("'", *python, "' '", script, "' '", models, "' '", tmp, "' > '", tmp, ".log' 2>&1");
  if (std::system(cmd.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("grpo_reference.py failed:\n", cmd, "\n", ReadText(tmp + ".log")));
  }
  fs::remove(tmp + ".log", ec);
  std::ofstream(tmp + "/.complete") << "ok\n";
  fs::rename(tmp, dir, ec);
  if (ec) fs::remove_all(tmp, ec);  // another test binary finished first
  if (!fs::exists(dir + "/.complete")) return absl::InternalError(absl::StrCat("could not create ", dir));
  return dir;
}

std::string GrpoDir() {
  static const absl::StatusOr<std::string>* dir = new absl::StatusOr<std::string>(MakeGrpoFixtures());
  if (!dir->ok()) {
    ADD_FAILURE() << "GRPO reference fixtures: " << dir->status();
    return "";
  }
  return **dir;
}

class Reference {
 public:
  bool Open(const std::string& dir, const std::string& name) {
    json_ = nlohmann::json::parse(ReadText(dir + "/" + name + ".json"));
    auto file = SafetensorsFile::Open(dir + "/" + name + ".safetensors");
    EXPECT_TRUE(file.ok()) << file.status();
    if (!file.ok()) return false;
    file_ = std::move(*file);
    return true;
  }
  torch::Tensor Get(const std::string& name) const {
    auto t = file_->Load(name);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : torch::Tensor();
  }
  const nlohmann::json& json() const { return json_; }

 private:
  nlohmann::json json_;
  std::unique_ptr<SafetensorsFile> file_;
};

GrpoOptions OptionsFromJson(const nlohmann::json& c) {
  GrpoOptions o;
  o.scale_rewards = c.at("scale_rewards").get<bool>();
  const std::string agg = c.at("aggregation").get<std::string>();
  o.aggregation = agg == "sequence" ? LossAggregation::kSequenceMean
                  : agg == "token"  ? LossAggregation::kTokenMean
                                    : LossAggregation::kConstantNorm;
  o.kl_beta = c.at("kl_beta").get<double>();
  o.importance_correction = c.at("importance_correction").get<bool>();
  o.epsilon_low = c.at("epsilon_low").get<double>();
  o.epsilon_high = c.at("epsilon_high").get<double>();
  o.dynamic_sampling = c.at("dynamic_sampling").get<bool>();
  o.max_completion_tokens = c.at("max_completion_tokens").get<int64_t>();
  o.advantage_epsilon = c.at("advantage_epsilon").get<double>();
  return o;
}

torch::Tensor Rows(const torch::Tensor& t, const std::vector<int64_t>& rows) {
  return t.index_select(0, torch::tensor(rows, torch::kLong));
}

// The loss cases: N samples padded to T, with garbage in the padding.
class GrpoLossReference : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = GrpoDir();
    ASSERT_FALSE(dir.empty());
    ASSERT_TRUE(ref_.Open(dir, "loss_cases"));
    for (const auto& g : ref_.json().at("groups")) groups_.push_back(g.get<std::vector<double>>());
    lengths_ = ref_.json().at("lengths").get<std::vector<int64_t>>();
    logprobs_ = ref_.Get("logprobs");
    behaviour_ = ref_.Get("behaviour_logprobs");
    reference_ = ref_.Get("reference_logprobs");
    const int64_t t = logprobs_.size(1);
    mask_ = torch::arange(t).unsqueeze(0) < torch::tensor(lengths_).unsqueeze(1);  // bool [N, T]
  }

  // Inputs of the kept rows; `leaf` is the full [N, T] logprobs that requires grad.
  GrpoInputs Inputs(const torch::Tensor& leaf, const BatchAdvantages& adv, const std::vector<int64_t>& rows) {
    std::vector<int64_t> kept;
    std::vector<double> advantages;
    for (int64_t r : rows) {
      kept.push_back(adv.kept[static_cast<size_t>(r)]);
      advantages.push_back(adv.advantages[static_cast<size_t>(r)]);
    }
    GrpoInputs in;
    in.logprobs = Rows(leaf, kept);
    in.behaviour_logprobs = Rows(behaviour_, kept);
    in.reference_logprobs = Rows(reference_, kept);
    in.mask = Rows(mask_, kept);
    in.advantages = torch::tensor(advantages, torch::kDouble).to(torch::kFloat);
    return in;
  }

  std::vector<int64_t> AllRows(const BatchAdvantages& adv) {
    std::vector<int64_t> rows(adv.kept.size());
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int64_t>(i);
    return rows;
  }

  Reference ref_;
  std::vector<std::vector<double>> groups_;
  std::vector<int64_t> lengths_;
  torch::Tensor logprobs_, behaviour_, reference_, mask_;
};

TEST_F(GrpoLossReference, EveryOptionCombinationMatchesPython) {
  const auto& cases = ref_.json().at("cases");
  ASSERT_EQ(cases.size(), 96u);  // 2 scale × 3 aggregation × 2 β × 2 importance × 2 clip × 2 dynamic sampling
  double worst_loss = 0;
  double worst_grad = 0;
  for (const auto& c : cases) {
    const std::string name = c.at("name").get<std::string>();
    SCOPED_TRACE(name);
    const GrpoOptions options = OptionsFromJson(c);
    const BatchAdvantages adv = ComputeBatchAdvantages(groups_, options);
    const torch::Tensor stats = ref_.Get(name + ".stats").to(torch::kDouble);
    const auto s = [&](int i) { return stats[i].item<double>(); };

    // Advantages and dynamic sampling.
    const torch::Tensor kept_ref = ref_.Get(name + ".kept");
    const torch::Tensor adv_ref = ref_.Get(name + ".advantages");
    torch::Tensor kept = torch::zeros_like(kept_ref);
    torch::Tensor adv_full = torch::zeros_like(adv_ref);
    for (size_t k = 0; k < adv.kept.size(); ++k) {
      kept[adv.kept[k]] = 1.0;
      adv_full[adv.kept[k]] = adv.advantages[k];
    }
    EXPECT_TRUE(torch::equal(kept, kept_ref));
    EXPECT_LT(MaxAbsDiff(adv_full, adv_ref), 1e-12);
    EXPECT_EQ(adv.dropped_groups, static_cast<int64_t>(s(5)));
    EXPECT_EQ(adv.degenerate_groups, static_cast<int64_t>(s(6)));
    EXPECT_EQ(adv.degenerate_groups, 1);
    EXPECT_EQ(adv.groups, static_cast<int64_t>(groups_.size()));

    torch::Tensor leaf = logprobs_.clone().requires_grad_(true);
    absl::StatusOr<GrpoLoss> loss = ComputeGrpoLoss(Inputs(leaf, adv, AllRows(adv)), options);
    ASSERT_TRUE(loss.ok()) << loss.status();
    loss->loss.backward();
    const double loss_diff = std::abs(loss->loss.item<double>() - ref_.Get(name + ".loss").item<double>());
    const double grad_diff = MaxAbsDiff(leaf.grad(), ref_.Get(name + ".grad"));
    EXPECT_LT(loss_diff, kTol);
    EXPECT_LT(grad_diff, kTol);
    worst_loss = std::max(worst_loss, loss_diff);
    worst_grad = std::max(worst_grad, grad_diff);
    EXPECT_NEAR(loss->kl, s(0), 1e-9);
    EXPECT_NEAR(loss->clip_fraction, s(1), 1e-12);
    EXPECT_NEAR(loss->ratio_mean, s(2), 1e-9);
    EXPECT_EQ(loss->tokens, static_cast<int64_t>(s(3)));
    EXPECT_EQ(loss->clipped_tokens, static_cast<int64_t>(s(4)));
    if (options.importance_correction) {
      EXPECT_GT(loss->clipped_tokens, 0);  // the inputs exercise the clipped branch
    } else {
      EXPECT_EQ(loss->clipped_tokens, 0);
      EXPECT_DOUBLE_EQ(loss->ratio_mean, 1.0);
    }
  }
  std::printf("max |loss - python| = %.3g, max |grad - python| = %.3g over %zu cases\n", worst_loss, worst_grad,
              cases.size());
}

TEST_F(GrpoLossReference, MicroBatchesWithStepNormalisersEqualOneBatch) {
  for (LossAggregation agg :
       {LossAggregation::kSequenceMean, LossAggregation::kTokenMean, LossAggregation::kConstantNorm}) {
    SCOPED_TRACE(static_cast<int>(agg));
    GrpoOptions options;
    options.aggregation = agg;
    options.epsilon_high = 0.28;
    options.max_completion_tokens = 12;
    const BatchAdvantages adv = ComputeBatchAdvantages(groups_, options);
    const std::vector<int64_t> all = AllRows(adv);

    torch::Tensor whole_leaf = logprobs_.clone().requires_grad_(true);
    absl::StatusOr<GrpoLoss> whole = ComputeGrpoLoss(Inputs(whole_leaf, adv, all), options);
    ASSERT_TRUE(whole.ok()) << whole.status();
    whole->loss.backward();

    // Two uneven halves, each normalised by the whole step.
    const std::vector<int64_t> first(all.begin(), all.begin() + 5);
    const std::vector<int64_t> second(all.begin() + 5, all.end());
    torch::Tensor leaf = logprobs_.clone().requires_grad_(true);
    double sum = 0;
    int64_t tokens = 0;
    for (const auto& rows : {first, second}) {
      GrpoInputs in = Inputs(leaf, adv, rows);
      in.step_samples = static_cast<int64_t>(all.size());
      in.step_tokens = whole->tokens;
      absl::StatusOr<GrpoLoss> part = ComputeGrpoLoss(in, options);
      ASSERT_TRUE(part.ok()) << part.status();
      part->loss.backward();
      sum += part->loss.item<double>();
      tokens += part->tokens;
    }
    EXPECT_EQ(tokens, whole->tokens);
    EXPECT_NEAR(sum, whole->loss.item<double>(), 1e-6);
    EXPECT_LT(MaxAbsDiff(leaf.grad(), whole_leaf.grad()), 1e-7);
  }
}

TEST(GroupAdvantages, StdScaledUnbiased) {
  GrpoOptions options;
  const GroupAdvantages a = ComputeGroupAdvantages({1.0, 0.0, 0.5, 0.5}, options);
  EXPECT_FALSE(a.degenerate);
  const double std = std::sqrt(0.5 / 3.0);  // unbiased: Σ(r - mean)² / (n - 1)
  ASSERT_EQ(a.advantages.size(), 4u);
  EXPECT_NEAR(a.advantages[0], 0.5 / (std + 1e-4), 1e-12);
  EXPECT_NEAR(a.advantages[1], -0.5 / (std + 1e-4), 1e-12);
  EXPECT_NEAR(a.advantages[2], 0.0, 1e-12);
}

TEST(GroupAdvantages, WithoutStdScalingIsCentredReward) {
  GrpoOptions options;
  options.scale_rewards = false;
  const GroupAdvantages a = ComputeGroupAdvantages({1.0, 0.0, 0.0, 0.0}, options);
  EXPECT_THAT(a.advantages, ElementsAre(0.75, -0.25, -0.25, -0.25));
}

TEST(GroupAdvantages, EqualRewardsAreDegenerateWithZeroAdvantages) {
  GrpoOptions options;
  for (const std::vector<double>& rewards : std::vector<std::vector<double>>{{1, 1, 1}, {0.5}, {}}) {
    const GroupAdvantages a = ComputeGroupAdvantages(rewards, options);
    EXPECT_TRUE(a.degenerate);
    EXPECT_EQ(a.advantages, std::vector<double>(rewards.size(), 0.0));
  }
}

TEST(BatchAdvantages, DynamicSamplingDropsAndCountsDegenerateGroups) {
  GrpoOptions options;
  options.scale_rewards = false;
  const std::vector<std::vector<double>> groups = {{1, 0}, {1, 1, 1}, {0, 0}, {0, 1}};
  const BatchAdvantages on = ComputeBatchAdvantages(groups, options);
  EXPECT_THAT(on.kept, ElementsAre(0, 1, 7, 8));
  EXPECT_THAT(on.advantages, ElementsAre(0.5, -0.5, -0.5, 0.5));
  EXPECT_EQ(on.groups, 4);
  EXPECT_EQ(on.degenerate_groups, 2);
  EXPECT_EQ(on.dropped_groups, 2);
  EXPECT_EQ(on.dropped_samples, 5);

  options.dynamic_sampling = false;
  const BatchAdvantages off = ComputeBatchAdvantages(groups, options);
  EXPECT_EQ(off.kept.size(), 9u);
  EXPECT_THAT(off.advantages, ElementsAre(0.5, -0.5, 0, 0, 0, 0, 0, -0.5, 0.5));
  EXPECT_EQ(off.degenerate_groups, 2);
  EXPECT_EQ(off.dropped_groups, 0);
  EXPECT_EQ(off.dropped_samples, 0);
}

// ------------------------------------------------------------ error cases

GrpoInputs SmallInputs() {
  GrpoInputs in;
  in.logprobs = torch::full({2, 3}, -1.0f).requires_grad_(true);
  in.behaviour_logprobs = torch::full({2, 3}, -1.1f);
  in.reference_logprobs = torch::full({2, 3}, -0.9f);
  in.advantages = torch::tensor({1.0f, -1.0f});
  in.mask = torch::tensor({{1, 1, 1}, {1, 1, 0}});
  return in;
}

TEST(GrpoLoss, SmallInputsAreValid) {
  absl::StatusOr<GrpoLoss> loss = ComputeGrpoLoss(SmallInputs(), GrpoOptions());
  ASSERT_TRUE(loss.ok()) << loss.status();
  EXPECT_EQ(loss->tokens, 5);
  EXPECT_EQ(loss->loss.scalar_type(), torch::kFloat);
  EXPECT_TRUE(loss->loss.requires_grad());
}

TEST(GrpoLoss, NanAtACompletionTokenIsAnError) {
  for (const char* field : {"logprobs", "behaviour_logprobs", "reference_logprobs"}) {
    SCOPED_TRACE(field);
    GrpoInputs in = SmallInputs();
    torch::Tensor& t = std::string(field) == "logprobs"             ? in.logprobs
                       : std::string(field) == "behaviour_logprobs" ? in.behaviour_logprobs
                                                                    : in.reference_logprobs;
    t = t.detach().clone();
    t[1][1] = std::numeric_limits<float>::quiet_NaN();
    absl::StatusOr<GrpoLoss> loss = ComputeGrpoLoss(in, GrpoOptions());
    ASSERT_FALSE(loss.ok());
    EXPECT_EQ(loss.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(loss.status().message(), HasSubstr(field));
    EXPECT_THAT(loss.status().message(), HasSubstr("NaN"));
  }
}

TEST(GrpoLoss, NanInPaddingIsIgnored) {
  GrpoInputs in = SmallInputs();
  in.behaviour_logprobs[1][2] = std::numeric_limits<float>::quiet_NaN();
  in.reference_logprobs[1][2] = std::numeric_limits<float>::infinity();
  torch::Tensor leaf = torch::full({2, 3}, -1.0f);
  leaf[1][2] = std::numeric_limits<float>::quiet_NaN();
  leaf.requires_grad_(true);
  in.logprobs = leaf;
  absl::StatusOr<GrpoLoss> loss = ComputeGrpoLoss(in, GrpoOptions());
  ASSERT_TRUE(loss.ok()) << loss.status();
  loss->loss.backward();
  EXPECT_TRUE(std::isfinite(loss->loss.item<double>()));
  EXPECT_TRUE(leaf.grad().isfinite().all().item<bool>());
  EXPECT_EQ(leaf.grad()[1][2].item<float>(), 0.0f);
}

TEST(GrpoLoss, NanAdvantageIsAnError) {
  GrpoInputs in = SmallInputs();
  in.advantages = torch::tensor({1.0f, std::numeric_limits<float>::quiet_NaN()});
  absl::StatusOr<GrpoLoss> loss = ComputeGrpoLoss(in, GrpoOptions());
  ASSERT_FALSE(loss.ok());
  EXPECT_THAT(loss.status().message(), HasSubstr("advantages"));
}

TEST(GrpoLoss, ShapeMismatchesAreErrors) {
  {
    GrpoInputs in = SmallInputs();
    in.behaviour_logprobs = torch::zeros({2, 4});
    absl::StatusOr<GrpoLoss> loss = ComputeGrpoLoss(in, GrpoOptions());
    ASSERT_FALSE(loss.ok());
    EXPECT_EQ(loss.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(loss.status().message(), HasSubstr("behaviour_logprobs has shape [2, 4], expected [2, 3]"));
  }
  {
    GrpoInputs in = SmallInputs();
    in.advantages = torch::zeros({3});
    absl::StatusOr<GrpoLoss> loss = ComputeGrpoLoss(in, GrpoOptions());
    ASSERT_FALSE(loss.ok());
    EXPECT_THAT(loss.status().message(), HasSubstr("advantages must be a floating [2] tensor, got [3]"));
  }
  {
    GrpoInputs in = SmallInputs();
    in.mask = torch::ones({2, 3, 1});
    EXPECT_FALSE(ComputeGrpoLoss(in, GrpoOptions()).ok());
  }
}

TEST(GrpoLoss, MissingTensorsAreErrorsOnlyWhenUsed) {
  GrpoInputs in = SmallInputs();
  in.reference_logprobs = torch::Tensor();
  absl::StatusOr<GrpoLoss> loss = ComputeGrpoLoss(in, GrpoOptions());
  ASSERT_FALSE(loss.ok());
  EXPECT_THAT(loss.status().message(), HasSubstr("reference_logprobs is missing"));

  GrpoOptions no_kl;
  no_kl.kl_beta = 0;
  loss = ComputeGrpoLoss(in, no_kl);
  ASSERT_TRUE(loss.ok()) << loss.status();
  EXPECT_EQ(loss->kl, 0.0);

  in.behaviour_logprobs = torch::Tensor();
  EXPECT_FALSE(ComputeGrpoLoss(in, no_kl).ok());
  no_kl.importance_correction = false;
  loss = ComputeGrpoLoss(in, no_kl);
  ASSERT_TRUE(loss.ok()) << loss.status();
  EXPECT_DOUBLE_EQ(loss->ratio_mean, 1.0);
}

TEST(GrpoLoss, StepNormalisersBelowTheBatchAreErrors) {
  GrpoInputs in = SmallInputs();
  in.step_samples = 1;
  EXPECT_THAT(ComputeGrpoLoss(in, GrpoOptions()).status().message(), HasSubstr("step_samples"));
  in = SmallInputs();
  in.step_tokens = 4;
  EXPECT_THAT(ComputeGrpoLoss(in, GrpoOptions()).status().message(), HasSubstr("step_tokens"));
}

TEST(GrpoLoss, ConstantNormRejectsSamplesLongerThanTheConstant) {
  GrpoOptions options;
  options.aggregation = LossAggregation::kConstantNorm;
  options.max_completion_tokens = 2;
  absl::StatusOr<GrpoLoss> loss = ComputeGrpoLoss(SmallInputs(), options);
  ASSERT_FALSE(loss.ok());
  EXPECT_THAT(loss.status().message(), HasSubstr("max_completion_tokens"));
}

TEST(GrpoLoss, InvalidOptionsNameTheField) {
  GrpoOptions options;
  options.epsilon_low = 1.0;
  EXPECT_THAT(ComputeGrpoLoss(SmallInputs(), options).status().message(), HasSubstr("epsilon_low"));
  options = GrpoOptions();
  options.kl_beta = -0.1;
  EXPECT_THAT(options.Validate().message(), HasSubstr("kl_beta"));
  options = GrpoOptions();
  options.max_completion_tokens = 0;
  EXPECT_THAT(options.Validate().message(), HasSubstr("max_completion_tokens"));
}

// ------------------------------------------------------------- end to end

// The GRPO loss through ComputeTokenLogprobs on a tiny fixture model: the
// gradients of its LoRA tensors equal make_reference.py's forward + the
// Python loss.
TEST(GrpoEndToEnd, LoraGradientsMatchPython) {
  const std::string dir = GrpoDir();
  ASSERT_FALSE(dir.empty());
  Reference ref;
  ASSERT_TRUE(ref.Open(dir, "e2e"));
  const nlohmann::json& j = ref.json();
  const std::string model_dir = model_test::ReferenceDir() + "/" + j.at("model").get<std::string>();
  auto model = LlamaModel::Load(model_dir);
  ASSERT_TRUE(model.ok()) << model.status();
  auto loaded = LoraAdapter::Load(model_dir + "/" + j.at("adapter").get<std::string>(), (*model)->config());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  std::shared_ptr<LoraAdapter> adapter = std::move(*loaded);
  {
    torch::NoGradGuard no_grad;
    const double b_scale = j.at("lora_b_scale").get<double>();
    for (auto& [name, t] : adapter->NamedTensors()) {
      if (name.find(".lora_B.") != std::string::npos) t.mul_(b_scale);
    }
  }
  adapter->SetRequiresGrad(true);
  absl::StatusOr<int> index = (*model)->AddAdapter("policy", adapter);
  ASSERT_TRUE(index.ok()) << index.status();

  const GrpoOptions options = OptionsFromJson(j.at("options"));
  std::vector<std::vector<double>> groups;
  for (const auto& g : j.at("groups")) groups.push_back(g.get<std::vector<double>>());
  const BatchAdvantages adv = ComputeBatchAdvantages(groups, options);
  EXPECT_EQ(adv.dropped_groups, 1);
  std::vector<PromptCompletion> samples;
  for (int64_t i : adv.kept) {
    const auto& s = j.at("samples").at(static_cast<size_t>(i));
    samples.push_back({s.at("prompt").get<std::vector<int64_t>>(), s.at("completion").get<std::vector<int64_t>>()});
  }

  TokenLogprobsOptions policy_options;
  policy_options.adapter = *index;
  policy_options.temperature = j.at("temperature").get<double>();
  policy_options.chunk_tokens = 5;  // several chunks: exercises the recomputing backward
  absl::StatusOr<CompletionLogprobs> policy = ComputeTokenLogprobs(**model, samples, policy_options);
  ASSERT_TRUE(policy.ok()) << policy.status();
  TokenLogprobsOptions reference_options = policy_options;
  reference_options.adapter = -1;
  absl::StatusOr<CompletionLogprobs> reference = ComputeTokenLogprobs(**model, samples, reference_options);
  ASSERT_TRUE(reference.ok()) << reference.status();
  EXPECT_FALSE(reference->logprobs.requires_grad());

  const int64_t tc = policy->logprobs.size(1);
  const torch::Tensor m = policy->mask;
  auto expected = [&](const char* name) { return Rows(ref.Get(name), adv.kept).slice(1, 0, tc) * m; };
  // Log-probs of ~-30 in float32 from two independent forwards: 1e-4 as the model tests.
  EXPECT_LT(MaxAbsDiff(policy->logprobs.detach(), expected("logprobs")), 1e-4);
  EXPECT_LT(MaxAbsDiff(reference->logprobs, expected("reference_logprobs")), 1e-4);

  GrpoInputs in;
  in.logprobs = policy->logprobs;
  in.behaviour_logprobs = expected("behaviour_logprobs");
  in.reference_logprobs = reference->logprobs;
  in.mask = m;
  in.advantages = torch::tensor(adv.advantages, torch::kDouble).to(torch::kFloat);
  absl::StatusOr<GrpoLoss> loss = ComputeGrpoLoss(in, options);
  ASSERT_TRUE(loss.ok()) << loss.status();
  loss->loss.backward();
  EXPECT_NEAR(loss->loss.item<double>(), ref.Get("loss").item<double>(), kTol);
  const torch::Tensor stats = ref.Get("stats");
  EXPECT_NEAR(loss->kl, stats[0].item<double>(), 1e-4);
  EXPECT_EQ(loss->clipped_tokens, static_cast<int64_t>(stats[4].item<double>()));
  EXPECT_EQ(loss->tokens, static_cast<int64_t>(stats[3].item<double>()));

  double worst_abs = 0;
  double worst_rel = 0;
  size_t compared = 0;
  for (const auto& [name, t] : adapter->NamedTensors()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(t.grad().defined());
    const torch::Tensor want = ref.Get("grad." + name).to(torch::kDouble);
    const double abs_diff = MaxAbsDiff(t.grad(), want);
    const double rel_diff = abs_diff / std::max(want.abs().max().item<double>(), 1e-12);
    worst_abs = std::max(worst_abs, abs_diff);
    worst_rel = std::max(worst_rel, rel_diff);
    // Two independent float32 forwards (batched and padded here, one sample at
    // a time there) agree to ~1e-5 relative; gradients reach ~2, so 1e-5 is
    // taken relative to max(1, largest |gradient| of the tensor).
    EXPECT_LT(abs_diff, kTol * std::max(1.0, want.abs().max().item<double>()));
    ++compared;
  }
  EXPECT_EQ(compared, adapter->Parameters().size());
  std::printf("LoRA gradients vs Python over %zu tensors: max abs diff %.3g, max diff / max |grad| %.3g\n",
              compared, worst_abs, worst_rel);
}

}  // namespace
}  // namespace dsm
