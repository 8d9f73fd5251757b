// Phase 0 for the built-in tiny model (DESIGN.md §5, §6): full-parameter supervised warm-up
// of a freshly initialised model (model/model_init.h, tokenizer from chain_tokenizer.h) on the
// chain domain's three output formats, so that the RL phases start from a model that has some
// skill in each, and room to grow.
//
// Each step draws `batch` fresh TRAIN problems (never an EVAL one) and makes one example per
// problem (chain_warmup_examples.h): generator, verifier and meta-verifier examples in the
// proportions of the role shares, prompts rendered with the templates of `prompts_dir` exactly
// as the pipeline renders them and tokenized as its samplers do (BOS + prompt), completions
// followed by EOS. Loss: mean negative log-likelihood of all completion tokens of the step;
// AdamW on every weight, global-norm clipping, linear warm-up then cosine decay to
// final_lr_fraction × learning_rate at `steps`. Training stops after `steps` steps or once its
// time passes max_seconds; then the held-out skills are measured (chain_warmup_eval.h) and the
// model is written.
//
// Determinism: the same model, options and LibTorch thread count give the same weights on the
// CPU when max_seconds does not cut the run short. LibTorch's thread count is the caller's
// (at::set_num_threads from runtime.threads); this function reseeds LibTorch's default
// generator. Not thread-safe with other LibTorch users of the same generator.
#ifndef DSM_TASKS_CHAIN_WARMUP_H_
#define DSM_TASKS_CHAIN_WARMUP_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/mixed_precision.h"
#include "tasks/chain_domain.h"

namespace dsm {

struct ChainWarmupOptions {
  // The problems trained on and evaluated (the tiny default's domain; see configs/tiny.yaml).
  ChainDomainOptions domain;
  int steps = 400;           // optimizer steps: 1..1000000
  double max_seconds = 0;    // training time limit (evaluations excluded); 0 = none
  double learning_rate = 3e-3;  // peak AdamW rate: (0, 1]
  int lr_warmup_steps = 30;     // linear warm-up: 0..steps
  double final_lr_fraction = 0.1;  // cosine decay ends at this share of the peak: [0, 1]
  int batch = 24;               // examples per step: 1..4096
  // Relative shares of the roles among a step's examples (>= 0, not all 0). The generator gets
  // half: writing a proof means finding each next fact in the prompt, the slowest skill to come
  // (measured, built-in model, 900 steps of 16: 1:1:1 left no held-out proof correct; 2:1:1
  // gave 10% correct with the verifier and meta-verifier still at 0.73 and 0.96 agreement).
  double generator_share = 2;
  double verifier_share = 1;
  double meta_verifier_share = 1;
  // Flawless proofs among the verifier's and meta-verifier's examples: [0, 1].
  double correct_fraction = 0.3;
  // The proof writer the generator imitates. A pretrained model has imitated imperfect human
  // proofs, and RL then has habits to change that its verifier sees; a generator taught only
  // flawless proofs makes none, and its one kind of mistake, a wrong fact look-up on a problem it
  // has not seen, GRPO on other problems does not mend (measured: BENCHMARKS.md). This share of
  // the generator's examples shows the canonical proof with `generator_flaw` put in (where and how
  // drawn from the example's seed, as MakeLabelledChainProof does), with its faithful
  // self-evaluation. [0, 1]; 0 or kNone: a flawless writer.
  ChainFlaw generator_flaw = ChainFlaw::kNone;
  double generator_flaw_share = 0;
  // And its self-evaluations: of the writer's flawed proofs, this share come with the
  // self-evaluation of one who sees nothing wrong (score 1), not the faithful one. A pretrained
  // model claims its proofs correct when they are not (METHOD.md's "wrong but claims 1"), which
  // phase 4's self-verification reward is there to change; a generator taught only faithful
  // self-evaluations has nothing there to change but the look-up (measured: BENCHMARKS.md).
  // [0, 1]; 0: an honest writer.
  double generator_overclaim_share = 0;
  // The model's own proofs among the verifier's examples. Phase 5 asks the verifier to label this
  // generator's proofs, whose mistakes (an extra step, a fact cited twice, a chain that wanders)
  // are mostly not the made-up flaws of chain_domain.h; the paper's verifier, likewise, learns
  // from expert-graded proofs its own generator wrote. From step own_proof_start × steps on, this
  // share of the verifier's examples shows a proof the model itself wrote at temperature 1 for a
  // train problem, with the checker's faithful analysis as the target. The pool of own proofs
  // (own_proof_pool fresh train problems) is resampled every own_proof_refresh_steps steps, from
  // the later of that step and the look-up drill's end.
  double own_proof_share = 0;        // [0, 1]; 0 = made-up flaws only
  double own_proof_start = 0.5;      // [0, 1)
  int own_proof_pool = 64;           // 1..4096
  int own_proof_refresh_steps = 50;  // 1..
  // Share of the other verifier examples (not own proofs) whose proof is ScrambledChainProof's:
  // a drill of the look-up "is this cited fact given as written". With the made-up flaws alone
  // at most one citation in ~14 is faulty, and a model that answers "given" to every citation
  // loses almost nothing; it then calls its own proofs' made-up citations correct. [0, 1].
  double scrambled_proof_share = 0;
  // Half the not-given citations of scrambled proofs lead on from where the chain is, with the
  // conclusion that follows (ScrambledChainProof's `leading_on`): only the look-up shows them.
  bool scrambled_leading_on = false;
  // The same two kinds of proof among the meta-verifier's examples, each shown with a labelled
  // analysis of it (MakeChainMetaVerifierExample): phase 5 asks the meta-verifier whether an
  // issue its verifier found in a proof of this generator is real, which it cannot tell from
  // made-up flaws alone (measured: it called "Step 3 cites c=b, which is not given" on its own
  // proofs "not faulty", so phase 5 labelled such faulty proofs 1; BENCHMARKS.md). An own proof
  // is shown only when the checker can read it back as steps (ParseChainProof), else a made-up
  // one. [0, 1] each; the own share applies once a pool exists, as above.
  double meta_own_proof_share = 0;
  double meta_scrambled_proof_share = 0;
  // The first lookup_drill_steps steps are all verifier examples on ScrambledChainProof's proofs:
  // the look-up needs many faulty citations before it forms at all (a late, sudden step), far
  // more than a mixed step holds. 0..steps.
  int lookup_drill_steps = 0;
  // After the drill, every lookup_drill_every-th step is a drill step again (0 = none): in the
  // mix a step holds about one scrambled proof, and the look-up the drill formed wears off
  // (measured: recall 0.82 at the drill's end, 0.66-0.73 after 1000 mixed steps; BENCHMARKS.md).
  int lookup_drill_every = 0;
  // Share of those later drill steps' examples that are meta-verifier examples on scrambled
  // proofs (kScrambledMetaVerifier), the rest verifier ones: the meta-verifier's check note is
  // the same look-up, and phase 5 drops a real issue its meta-verifier misreads (measured: "c=f
  // not given" checked as "c=f gap", "not faulty"; BENCHMARKS.md). [0, 1].
  double lookup_drill_meta_share = 0;
  // Drill steps' examples end after their citation note (the verifier's `Cited:` line, the
  // meta-verifier's `Checked:` line; no EOS): the loss of a drill step is then all on the look-up
  // and on reading the citations off the proof, not spread over the rest of the analysis, and
  // the step is shorter (measured: BENCHMARKS.md).
  bool lookup_drill_note_only = false;
  // With lookup_drill_note_only, the drill steps in the mix (after the first lookup_drill_steps)
  // end one line later: after the line that follows the note, where the verifier names the issue
  // the note shows (the meta-verifier judges the line the analysis names). The first drill's notes
  // form the look-up; without this no drill example shows what the note says about the issue to
  // name, and the warmed-up verifier named a line the note did not show in 0.27 of its held-out
  // analyses (0.11 with whole drill examples; BENCHMARKS.md).
  bool lookup_drill_issue_in_mix = false;
  // The drill and the steps after it each get the whole learning-rate schedule (warm-up, then
  // cosine to final_lr_fraction), instead of one schedule over all steps: a long drill then
  // leaves the mix, where the generator learns, its peak rate (measured: BENCHMARKS.md).
  bool lr_restart_after_drill = false;
  // Weight of the prompt tokens' NLL relative to the completion tokens' (0 = completions only).
  // Verifier and meta-verifier prompts hold proofs, so a weight > 0 also teaches proof writing.
  double prompt_loss_weight = 0;  // [0, 1]
  double weight_decay = 0;      // decoupled: [0, 1)
  double max_grad_norm = 1;     // global L2 clip; 0 = none
  // Examples per forward/backward (gradient accumulation, longest first); 0 = the whole step
  // (with data_parallel > 1: the step in that many equal parts, one per replica).
  int micro_batch = 0;
  // Model replicas a step's micro-batches are shared out between, each on a thread of its own
  // with LibTorch single-threaded there; their gradients are summed in replica order, so a run
  // stays deterministic (and matches data_parallel 1 up to float rounding). On a CPU whose
  // small matrix products leave a second LibTorch thread mostly waiting, two replicas take a
  // step in less time than one replica on two threads (BENCHMARKS.md). 1..64; 1 = the caller's
  // threads do every micro-batch in turn.
  int data_parallel = 1;
  // The forward's matrix products in bfloat16 under autocast (model/mixed_precision.h); the
  // weights and the optimizer stay float32.
  TrainPrecision precision = TrainPrecision::kFloat32;
  uint64_t seed = 0;
  std::string prompts_dir = "configs/prompts/tiny";
  int eval_problems = 64;            // held-out problems: 1..10000
  int eval_temperature_samples = 4;  // temperature-1 generator outputs per problem: 0..64
  // Also measure the held-out skills every this many steps (ChainWarmupResult::curve); 0 = only
  // at the end.
  int eval_every = 0;

  // One line naming the field and the limit, e.g. "batch: 0 is outside 1..4096".
  absl::Status Validate() const;
};

struct ChainWarmupEvaluation {
  int step = 0;
  double seconds = 0;  // training time at that step
  double loss = 0;     // mean loss of the last (up to) 10 steps
  std::map<std::string, double> held_out;  // EvaluateChainSkills's metrics
};

struct ChainWarmupProgress {
  int step = 0;         // steps done
  int total_steps = 0;  // options.steps
  double loss = 0;      // this step's loss
  double elapsed_seconds = 0;  // training time so far
  double learning_rate = 0;    // this step's
  // The evaluation made after this step (eval_every), else null; valid during the call.
  const ChainWarmupEvaluation* evaluation = nullptr;
};

struct ChainWarmupResult {
  int steps = 0;            // steps taken
  double final_loss = 0;    // mean loss of the last (up to) 10 steps
  double seconds = 0;       // training time (evaluations excluded)
  double eval_seconds = 0;  // time of all evaluations
  // Own-proof pools sampled, their proofs the checker scored 1, and the time it took (included
  // in `seconds`).
  int own_proof_pools = 0;
  double own_proof_score1_rate = 0;  // over all pools
  double own_proof_seconds = 0;
  // The final evaluation's metrics (chain_warmup_eval.h lists them).
  std::map<std::string, double> held_out;
  // Every evaluation, in step order; the last one is `held_out`'s.
  std::vector<ChainWarmupEvaluation> curve;
};

// Full-parameter SFT of the model in `model_dir` (HF folder: config.json, model.safetensors,
// tokenizer.json, optionally tokenizer_config.json) on the chain domain's three formats;
// writes the warmed model as an HF folder to `out_dir` (a temp folder beside it, then a rename;
// an existing `out_dir` is replaced). `progress` (may be empty) is called after every step.
// Errors: invalid options (InvalidArgument), unreadable model or templates, LibTorch errors
// (Internal, with what was being done), write failures.
absl::StatusOr<ChainWarmupResult> WarmUpChainModel(const std::string& model_dir, const std::string& out_dir,
                                                   const ChainWarmupOptions& options,
                                                   const std::function<void(const ChainWarmupProgress&)>& progress);

}  // namespace dsm

#endif  // DSM_TASKS_CHAIN_WARMUP_H_
