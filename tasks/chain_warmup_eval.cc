#include "tasks/chain_warmup_eval.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/scoring/score_parser.h"
#include "services/scoring/wire_finish_reason.h"
#include "tasks/chain_analysis.h"
#include "tasks/chain_checker.h"
#include "tasks/chain_sampling.h"
#include "tasks/seeded_rng.h"

namespace dsm {
namespace {

constexpr uint64_t kEvalSalt = 0x6576616c73616c74ULL;  // "evalsalt"
constexpr uint64_t kSampledAnalysisSalt = 0x616e616c79736973ULL;  // "analysis"

// Share of the most common value among `values` (0, 0.5, 1).
double MajorityShare(const std::vector<double>& values) {
  if (values.empty()) return 0;
  int counts[3] = {0, 0, 0};
  for (double v : values) ++counts[v == 0 ? 0 : v == 1 ? 2 : 1];
  return static_cast<double>(*std::max_element(counts, counts + 3)) / static_cast<double>(values.size());
}

}  // namespace

absl::Status ChainWarmupEvalOptions::Validate() const {
  if (absl::Status s = domain.Validate(); !s.ok()) return absl::InvalidArgumentError(absl::StrCat("domain.", s.message()));
  if (problems < 1 || problems > 10000) {
    return absl::InvalidArgumentError(absl::StrCat("eval problems: ", problems, " is outside 1..10000"));
  }
  if (temperature_samples < 0 || temperature_samples > 64) {
    return absl::InvalidArgumentError(absl::StrCat("temperature_samples: ", temperature_samples, " is outside 0..64"));
  }
  if (sampled_analyses < 0 || sampled_analyses > 64) {
    return absl::InvalidArgumentError(absl::StrCat("sampled_analyses: ", sampled_analyses, " is outside 0..64"));
  }
  if (!(correct_fraction >= 0 && correct_fraction <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("correct_fraction: ", correct_fraction, " is outside [0, 1]"));
  }
  if (max_batch < 1) return absl::InvalidArgumentError(absl::StrCat("max_batch: ", max_batch, " is under 1"));
  if (max_new_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens: ", max_new_tokens, " is under 1"));
  }
  return absl::OkStatus();
}

std::map<std::string, double> MetaJudgementMetrics(const std::vector<MetaJudgement>& judged) {
  std::map<std::string, double> m;
  if (judged.empty()) return m;
  std::vector<double> labels;
  double right = 0, bogus_sum = 0, real_sum = 0;
  int bogus = 0, real = 0, naming = 0, note_right = 0;
  for (const MetaJudgement& j : judged) {
    const ChainAnalysisAssessment& a = j.truth;
    labels.push_back(a.meta_score);
    right += j.score.has_value() && *j.score == a.meta_score ? 1 : 0;
    if (a.claims.lines.empty()) continue;  // names no issue: neither kind
    ++naming;
    note_right += j.note_right ? 1 : 0;
    // A malformed meta-analysis pays nothing (phase 3 leaves such a sample out): counted as 0.
    const double paid = j.score.value_or(0);
    if (a.real_lines.empty()) {
      bogus_sum += paid;
      ++bogus;
    } else if (a.bogus_lines.empty()) {
      real_sum += paid;
      ++real;
    }
  }
  m["meta_sampled_agreement"] = right / static_cast<double>(judged.size());
  m["meta_sampled_majority_baseline"] = MajorityShare(labels);
  if (bogus > 0) m["meta_sampled_bogus_mean"] = bogus_sum / bogus;
  if (real > 0) m["meta_sampled_real_mean"] = real_sum / real;
  if (naming > 0) m["meta_sampled_note_right"] = static_cast<double>(note_right) / naming;
  return m;
}

absl::StatusOr<std::map<std::string, double>> EvaluateChainSkills(const LlamaModel& model,
                                                                   const Tokenizer& tokenizer,
                                                                   const ChainWarmupTemplates& templates,
                                                                   const ChainWarmupEvalOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  absl::StatusOr<std::vector<ChainProblem>> problems =
      GenerateChainProblems(options.domain, ChainSplit::kEval, CombineSeeds(options.seed, kEvalSalt), options.problems);
  if (!problems.ok()) return problems.status();

  // Prompts per problem: greedy generator, verifier, meta-verifier, verifier on a scrambled
  // proof, then the temperature-1 generator samples.
  constexpr size_t kScrambled = 3, kFirstSample = 4;
  const int per_problem = static_cast<int>(kFirstSample) + options.temperature_samples;
  std::vector<ChainWarmupExample> verifier_examples;
  std::vector<ChainWarmupExample> meta_examples;
  std::vector<ChainVerdict> scrambled_verdicts;
  std::vector<ChainPrompt> prompts;
  for (const ChainProblem& p : *problems) {
    const uint64_t seed = CombineSeeds(options.seed, p.seed);
    const std::string generator_prompt = MakeChainWarmupExample(templates, PromptRole::kGenerator, p, 1.0, seed).prompt;
    prompts.push_back(ChainPrompt{generator_prompt, 0, 0});
    verifier_examples.push_back(
        MakeChainWarmupExample(templates, PromptRole::kVerifier, p, options.correct_fraction, seed));
    prompts.push_back(ChainPrompt{verifier_examples.back().prompt, 0, 0});
    meta_examples.push_back(
        MakeChainWarmupExample(templates, PromptRole::kMetaVerifier, p, options.correct_fraction, seed ^ 1));
    prompts.push_back(ChainPrompt{meta_examples.back().prompt, 0, 0});
    const std::string scrambled = ScrambledChainProof(p, seed, /*leading_on=*/true).Text();
    scrambled_verdicts.push_back(CheckChainProof(p.statement, scrambled));
    prompts.push_back(ChainPrompt{MakeChainVerifierExample(templates, p, scrambled).prompt, 0, 0});
    for (int k = 0; k < options.temperature_samples; ++k) {
      prompts.push_back(ChainPrompt{generator_prompt, 1.0, CombineSeeds(seed, static_cast<uint64_t>(k) + 1)});
    }
  }
  ChainSamplingOptions sampling;
  sampling.max_batch = options.max_batch;
  sampling.max_new_tokens = options.max_new_tokens;
  absl::StatusOr<std::vector<SampleResult>> sampled = SampleChainPrompts(model, tokenizer, prompts, sampling);
  if (!sampled.ok()) return absl::Status(sampled.status().code(), absl::StrCat("eval ", sampled.status().message()));
  const std::vector<SampleResult>& results = *sampled;

  const OutputMarkers& gen_markers = templates.generator.markers();
  // The checker's score of a generator output's proof; sets `format_ok` / `self_score`.
  auto grade = [&](const ChainProblem& p, const SampleResult& r, bool* format_ok, std::optional<double>* self_score) {
    const GeneratorOutput out = SplitGeneratorOutput(r.text, gen_markers, WireFinishReason(r.finish_reason));
    *format_ok = out.has_solution_header && out.self_score.format() == v1::FORMAT_STATUS_OK;
    if (out.self_score.has_value()) *self_score = out.self_score.value();
    return CheckChainProof(p.statement, out.proof).score;
  };

  std::map<std::string, double> m;
  std::vector<double> verifier_truth;
  std::vector<double> meta_truth;
  int t1_samples = 0;
  int citations = 0, faulty = 0, reversed = 0;
  double meta_own_right = 0;
  for (size_t i = 0; i < problems->size(); ++i) {
    const ChainProblem& p = (*problems)[i];
    const size_t base = i * static_cast<size_t>(per_problem);
    bool format_ok = false;
    std::optional<double> self_score;
    const double score = grade(p, results[base], &format_ok, &self_score);
    m["generator_score1_rate"] += score == 1 ? 1 : 0;
    m["generator_mean_score"] += score;
    m["generator_format_ok"] += format_ok ? 1 : 0;
    m["generator_self_agreement"] += format_ok && self_score == score ? 1 : 0;

    const ChainWarmupExample& ver = verifier_examples[i];
    const SampleResult& ver_out = results[base + 1];
    const v1::Score ver_score = ParseScore(ver_out.text, templates.verifier.markers(), WireFinishReason(ver_out.finish_reason));
    const bool ver_ok = ver_score.format() == v1::FORMAT_STATUS_OK;
    m["verifier_format_ok"] += ver_ok ? 1 : 0;
    m["verifier_agreement"] += ver_ok && ver_score.value() == ver.proof_score ? 1 : 0;
    verifier_truth.push_back(ver.proof_score);
    ChainAnalysisMarkers markers;
    markers.evaluation = templates.verifier.markers().evaluation;
    markers.score = templates.verifier.markers().score;
    m["verifier_meta_score"] +=
        AssessChainAnalysis(CheckChainProof(p.statement, ver.proof), ver_out.text, markers).meta_score;

    const ChainWarmupExample& meta = meta_examples[i];
    const SampleResult& meta_out = results[base + 2];
    const v1::Score meta_score =
        ParseScore(meta_out.text, templates.meta_verifier.markers(), WireFinishReason(meta_out.finish_reason));
    const bool meta_ok = meta_score.format() == v1::FORMAT_STATUS_OK;
    m["meta_format_ok"] += meta_ok ? 1 : 0;
    m["meta_agreement"] += meta_ok && meta_score.value() == meta.meta_score ? 1 : 0;
    meta_truth.push_back(meta.meta_score);

    // The look-up: each citation of the scrambled proof against the note's item at its place.
    const ChainLookupTally lookup = TallyChainLookup(scrambled_verdicts[i].citations, results[base + kScrambled].text);
    citations += lookup.citations;
    faulty += lookup.faulty;
    m["verifier_lookup_accuracy"] += lookup.right;
    m["verifier_lookup_recall"] += lookup.faulty_right;
    reversed += lookup.reversed;
    m["verifier_lookup_recall_reversed"] += lookup.reversed_right;

    std::set<double> t1_scores;
    for (int k = 0; k < options.temperature_samples; ++k) {
      bool ok = false;
      std::optional<double> self;
      const double s = grade(p, results[base + kFirstSample + static_cast<size_t>(k)], &ok, &self);
      m["generator_t1_score1_rate"] += s == 1 ? 1 : 0;
      t1_scores.insert(s);
      ++t1_samples;
    }
    m["generator_t1_varied_rate"] += t1_scores.size() > 1 ? 1 : 0;
  }
  // The verifier on the model's own proofs (each problem's first temperature-1 output): the
  // proofs phase 5 asks it to label.
  // And the meta-verifier on a labelled analysis of each of those proofs that reads back as steps:
  // what phase 5 asks it about this generator's proofs.
  std::vector<double> own_truth;
  std::vector<double> own_meta_truth;
  std::map<std::string, double> judged_metrics;  // the meta-verifier on the verifier's sampled analyses (shares already)
  if (options.temperature_samples > 0) {
    std::vector<ChainPrompt> own_prompts;
    std::vector<ChainPrompt> meta_prompts;
    for (size_t i = 0; i < problems->size(); ++i) {
      const ChainProblem& p = (*problems)[i];
      const SampleResult& r = results[i * static_cast<size_t>(per_problem) + kFirstSample];
      const std::string proof = SplitGeneratorOutput(r.text, gen_markers, WireFinishReason(r.finish_reason)).proof;
      const ChainWarmupExample own = MakeChainVerifierExample(templates, p, proof);
      own_truth.push_back(own.proof_score);
      own_prompts.push_back(ChainPrompt{own.prompt, 0, 0});
      if (std::optional<ChainProof> parsed = ParseChainProof(proof)) {
        const ChainWarmupExample meta = MakeChainMetaVerifierExample(templates, p, *parsed, CombineSeeds(options.seed, p.seed) ^ 2);
        own_meta_truth.push_back(meta.meta_score);
        meta_prompts.push_back(ChainPrompt{meta.prompt, 0, 0});
      }
    }
    const size_t own_count = own_prompts.size();
    own_prompts.insert(own_prompts.end(), meta_prompts.begin(), meta_prompts.end());
    const size_t meta_end = own_prompts.size();
    // The verifier's own analyses at temperature 1 of each problem's labelled proof, as phase 3
    // samples them; the meta-verifier judges them below.
    for (size_t i = 0; i < problems->size(); ++i) {
      for (int k = 0; k < options.sampled_analyses; ++k) {
        own_prompts.push_back(ChainPrompt{verifier_examples[i].prompt, 1.0,
                                          CombineSeeds(CombineSeeds(options.seed, (*problems)[i].seed),
                                                       kSampledAnalysisSalt + static_cast<uint64_t>(k))});
      }
    }
    absl::StatusOr<std::vector<SampleResult>> own = SampleChainPrompts(model, tokenizer, own_prompts, sampling);
    if (!own.ok()) return absl::Status(own.status().code(), absl::StrCat("eval ", own.status().message()));
    // The meta-verifier (greedy) on each of those analyses in format; the checker's assessment of
    // each is the truth.
    std::vector<ChainPrompt> judge_prompts;
    std::vector<ChainWarmupExample> experts;
    for (size_t j = meta_end; j < own->size(); ++j) {
      const size_t i = (j - meta_end) / static_cast<size_t>(options.sampled_analyses);
      std::optional<ChainWarmupExample> expert =
          MakeChainMetaVerifierExampleOn(templates, (*problems)[i], verifier_examples[i].proof, (*own)[j].text);
      if (!expert) continue;
      judge_prompts.push_back(ChainPrompt{expert->prompt, 0, 0});
      experts.push_back(*std::move(expert));
    }
    if (!judge_prompts.empty()) {
      absl::StatusOr<std::vector<SampleResult>> judges = SampleChainPrompts(model, tokenizer, judge_prompts, sampling);
      if (!judges.ok()) return absl::Status(judges.status().code(), absl::StrCat("eval ", judges.status().message()));
      std::vector<MetaJudgement> judged;
      for (size_t j = 0; j < judges->size(); ++j) {
        const SampleResult& r = (*judges)[j];
        const v1::Score score =
            ParseScore(r.text, templates.meta_verifier.markers(), WireFinishReason(r.finish_reason));
        MetaJudgement& judgement = judged.emplace_back();
        judgement.truth = std::move(experts[j].assessment);
        if (score.format() == v1::FORMAT_STATUS_OK) judgement.score = score.value();
        judgement.note_right =
            ChainCompletionThroughNote(r.text) == ChainCompletionThroughNote(experts[j].completion);
      }
      judged_metrics = MetaJudgementMetrics(judged);
    }
    for (size_t i = 0; i < meta_end; ++i) {
      const SampleResult& r = (*own)[i];
      const bool is_meta = i >= own_count;
      const v1::Score score = ParseScore(r.text, is_meta ? templates.meta_verifier.markers() : templates.verifier.markers(),
                                         WireFinishReason(r.finish_reason));
      const bool ok = score.format() == v1::FORMAT_STATUS_OK;
      if (is_meta) {
        meta_own_right += ok && score.value() == own_meta_truth[i - own_count] ? 1 : 0;
      } else {
        m["verifier_own_agreement"] += ok && score.value() == own_truth[i] ? 1 : 0;
      }
    }
  }
  const double n = static_cast<double>(problems->size());
  for (auto& [name, value] : m) value /= n;
  m.insert(judged_metrics.begin(), judged_metrics.end());
  if (!own_truth.empty()) m["verifier_own_majority_baseline"] = MajorityShare(own_truth);
  if (!own_meta_truth.empty()) {
    m["meta_own_agreement"] = meta_own_right / static_cast<double>(own_meta_truth.size());
    m["meta_own_majority_baseline"] = MajorityShare(own_meta_truth);
  }
  if (t1_samples > 0) m["generator_t1_score1_rate"] *= n / t1_samples;
  m["verifier_lookup_accuracy"] *= citations > 0 ? n / citations : 0;
  m["verifier_lookup_recall"] *= faulty > 0 ? n / faulty : 0;
  m["verifier_lookup_recall_reversed"] *= reversed > 0 ? n / reversed : 0;
  m["verifier_majority_baseline"] = MajorityShare(verifier_truth);
  m["meta_majority_baseline"] = MajorityShare(meta_truth);
  return m;
}

}  // namespace dsm
