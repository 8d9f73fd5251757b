#include "tasks/chain_warmup_examples.h"

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "tasks/chain_analysis.h"
#include "tasks/chain_checker.h"
#include "tasks/seeded_rng.h"

namespace dsm {
namespace {

constexpr uint64_t kKindSalt = 0x6b696e6473616c74ULL;      // "kindsalt"
constexpr uint64_t kScrambleSalt = 0x736372616d626c65ULL;  // "scramble"

ChainAnalysisMarkers MarkersOf(const PromptTemplate& t) {
  ChainAnalysisMarkers markers;
  markers.evaluation = t.markers().evaluation;
  markers.score = t.markers().score;
  return markers;
}

// The meta-verifier example showing `analysis` of `proof` (whose checker verdict is `verdict`),
// with the checker's `assessment` of it: the target is the expert meta-analysis, the true
// citations of the lines the analysis names, the checker's reason and the meta-score, in the
// meta-verifier template's markers.
ChainWarmupExample MetaVerifierExample(const ChainWarmupTemplates& templates, const ChainProblem& problem,
                                       const std::string& proof, const ChainVerdict& verdict,
                                       const std::string& analysis, ChainAnalysisAssessment assessment) {
  ChainWarmupExample out;
  out.role = PromptRole::kMetaVerifier;
  out.proof = proof;
  out.proof_score = verdict.score;
  out.analysis = analysis;
  out.meta_score = assessment.meta_score;
  out.prompt = templates.meta_verifier.Render(PromptFields{problem.statement.Text(), proof, analysis});
  out.completion = RenderChainAnalysis(assessment.meta_score,
                                       {ChainMetaCheckNote(verdict, assessment.claims.lines), assessment.reason},
                                       MarkersOf(templates.meta_verifier));
  out.assessment = std::move(assessment);
  return out;
}

}  // namespace

absl::StatusOr<ChainWarmupTemplates> ChainWarmupTemplates::Load(const std::string& dir) {
  absl::StatusOr<PromptTemplate> generator = PromptTemplate::LoadRole(dir, PromptRole::kGenerator);
  if (!generator.ok()) return generator.status();
  absl::StatusOr<PromptTemplate> verifier = PromptTemplate::LoadRole(dir, PromptRole::kVerifier);
  if (!verifier.ok()) return verifier.status();
  absl::StatusOr<PromptTemplate> meta = PromptTemplate::LoadRole(dir, PromptRole::kMetaVerifier);
  if (!meta.ok()) return meta.status();
  return ChainWarmupTemplates{*std::move(generator), *std::move(verifier), *std::move(meta)};
}

const PromptTemplate& ChainWarmupTemplates::For(PromptRole role) const {
  switch (role) {
    case PromptRole::kGenerator:
      return generator;
    case PromptRole::kVerifier:
      return verifier;
    case PromptRole::kMetaVerifier:
      return meta_verifier;
    case PromptRole::kRefiner:  // not a warm-up role: dsm eval's refinement answers as the generator
      return generator;
  }
  return generator;
}

ChainWarmupExample MakeChainWarmupExample(const ChainWarmupTemplates& templates, PromptRole role,
                                          const ChainProblem& problem, double correct_fraction,
                                          uint64_t seed) {
  if (role == PromptRole::kGenerator) return MakeChainGeneratorExample(templates, problem, ChainFlaw::kNone, seed);
  const LabelledChainProof proof =
      MakeLabelledChainProof(problem, SampleChainFlaw(seed, correct_fraction), seed);
  if (role == PromptRole::kVerifier) return MakeChainVerifierExample(templates, problem, proof.text);
  return MakeChainMetaVerifierExample(templates, problem, proof.proof, seed);
}

ChainWarmupExample MakeChainGeneratorExample(const ChainWarmupTemplates& templates, const ChainProblem& problem,
                                             ChainFlaw flaw, uint64_t seed, bool overclaims) {
  ChainWarmupExample out;
  out.role = PromptRole::kGenerator;
  const std::string proof = MakeLabelledChainProof(problem, flaw, seed).text;
  const ChainVerdict verdict = CheckChainProof(problem.statement, proof);
  out.prompt = templates.generator.Render(PromptFields{problem.statement.Text(), "", ""});
  const ChainAnalysisMarkers markers = MarkersOf(templates.generator);
  out.completion = RenderChainGeneratorOutput(proof, overclaims ? RenderOverlookingChainAnalysis(verdict, markers)
                                                                 : RenderFaithfulChainAnalysis(verdict, markers));
  out.proof_score = verdict.score;
  return out;
}

ChainProof ScrambledChainProof(const ChainProblem& problem, uint64_t seed, bool leading_on) {
  const ChainStatement& statement = problem.statement;
  const std::vector<char> letters = statement.Letters();
  std::vector<ChainFact> not_given;  // neither way round
  for (char a : letters) {
    for (char b : letters) {
      const ChainFact f{a, b};
      if (a != b && !statement.IsGiven(f) && !statement.IsGiven(f.Reversed())) not_given.push_back(f);
    }
  }
  SeededRng rng(CombineSeeds(seed, kScrambleSalt));
  ChainProof proof = CanonicalChainProof(problem);
  char reached = statement.goal.lhs;
  for (ChainStep& step : proof.steps) {
    const char at = reached;  // where the chain is before this step
    reached = step.conclusion.rhs;
    if (!rng.Chance(0.5)) continue;
    // 0: not given, leading on from `at` with the conclusion that follows from it (the
    // generator's own fault: only the look-up tells it from a given fact); 1 (and 0 without
    // `leading_on`): not given, with the canonical conclusion; 2: a gap; 3: reversed.
    const int way = rng.Uniform(4);
    const bool leads_on = way == 0 && leading_on;
    std::vector<ChainFact> candidates;
    if (leads_on) {
      for (const ChainFact& f : not_given) {
        // Not back to the goal's left letter: "so a=a" would give itself away.
        if (f.lhs == at && f.rhs != statement.goal.lhs) candidates.push_back(rng.Chance(0.5) ? f : f.Reversed());
      }
    } else if (way <= 1) {
      candidates = not_given;
    } else if (way == 2) {
      for (const ChainFact& f : statement.facts) {
        if (f.lhs != at && f.rhs != at) candidates.push_back(f);  // given as written, unlinked
      }
    }
    if (candidates.empty()) {
      step.cited = step.cited.Reversed();
      continue;
    }
    step.cited = candidates[static_cast<size_t>(rng.Uniform(static_cast<int>(candidates.size())))];
    if (leads_on) {
      // The chain goes where this citation leads; the next step (still the canonical one) then
      // has a gap, unless this one jumped to the goal.
      reached = step.cited.Across(at);
      step.conclusion = ChainFact{statement.goal.lhs, reached};
    }
  }
  return proof;
}

ChainWarmupExample MakeChainVerifierExample(const ChainWarmupTemplates& templates, const ChainProblem& problem,
                                            const std::string& proof) {
  const ChainVerdict verdict = CheckChainProof(problem.statement, proof);
  ChainWarmupExample out;
  out.role = PromptRole::kVerifier;
  out.proof = proof;
  out.proof_score = verdict.score;
  out.prompt = templates.verifier.Render(PromptFields{problem.statement.Text(), proof, ""});
  out.completion = RenderFaithfulChainAnalysis(verdict, MarkersOf(templates.verifier));
  return out;
}

ChainWarmupExample MakeChainMetaVerifierExample(const ChainWarmupTemplates& templates, const ChainProblem& problem,
                                                const ChainProof& proof, uint64_t seed) {
  LabelledChainProof shown;
  shown.proof = proof;
  shown.text = proof.Text();
  const ChainVerdict verdict = CheckChainProof(problem.statement, shown.text);
  // The first kind that exists for this proof, from a random start.
  const std::vector<ChainAnalysisKind>& kinds = AllChainAnalysisKinds();
  SeededRng rng(CombineSeeds(seed, kKindSalt));
  const int first = rng.Uniform(static_cast<int>(kinds.size()));
  std::optional<LabelledChainAnalysis> analysis;
  for (size_t k = 0; k < kinds.size() && !analysis; ++k) {
    analysis = MakeLabelledChainAnalysis(problem.statement, shown, kinds[(first + k) % kinds.size()], seed);
  }
  // kFaithful always exists, so `analysis` is set.
  return MetaVerifierExample(templates, problem, shown.text, verdict, analysis->text, analysis->assessment);
}

std::optional<ChainWarmupExample> MakeChainMetaVerifierExampleOn(const ChainWarmupTemplates& templates,
                                                                 const ChainProblem& problem, const std::string& proof,
                                                                 const std::string& analysis) {
  const ChainVerdict verdict = CheckChainProof(problem.statement, proof);
  ChainAnalysisAssessment assessment = AssessChainAnalysis(verdict, analysis, MarkersOf(templates.verifier));
  if (!assessment.claims.format_ok()) return std::nullopt;
  return MetaVerifierExample(templates, problem, proof, verdict, analysis, std::move(assessment));
}

std::string ChainCompletionThroughNote(const std::string& completion, int lines_after) {
  auto line_end = [&](size_t line) {
    const size_t end = completion.find('\n', line);
    return end == std::string::npos ? completion.size() : end + 1;
  };
  for (size_t line = 0; line < completion.size();) {
    size_t end = line_end(line);
    const absl::string_view text = absl::string_view(completion).substr(line, end - line);
    if (absl::StartsWith(text, kChainCitedPrefix) || absl::StartsWith(text, kChainCheckedPrefix)) {
      for (int i = 0; i < lines_after && end < completion.size(); ++i) end = line_end(end);
      return completion.substr(0, end);
    }
    line = end;
  }
  return completion;
}

}  // namespace dsm
