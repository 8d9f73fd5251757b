// The typed configuration of a dsm run, parsed from YAML (configs/*.yaml).
//
// LoadConfig() parses and then validates in one step; every error is one line
// that names the key, the value and what is allowed, e.g.
//   runtime.threads: 0 is out of range [1, 256]
// Structs are plain values with the defaults a user gets when a key is absent.
#ifndef DSM_COMMON_CONFIG_H_
#define DSM_COMMON_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config_reader.h"

namespace dsm {

struct RunOptions {
  std::string name;             // required: runs/<name>/ holds the run's state
  std::string runs_dir = "runs";
  int64_t seed = 1234;          // every random choice in the run derives from it
};

struct LogOptions {
  std::string level = "info";   // trace | debug | info | warn | error
  std::string format = "text";  // text | json (one JSON object per line)
};

struct RuntimeOptions {
  int threads = 2;              // LibTorch intra-op threads (it starts with 1)
};

// Settings shared by every gRPC server dsm starts.
struct ServerOptions {
  std::string host = "127.0.0.1";    // address the gRPC servers bind
  std::string metrics_host;          // address of /metrics; empty = same as host
  int64_t max_message_bytes = 16 << 20;
  double keepalive_time_seconds = 30;    // ping an idle connection this often
  double keepalive_timeout_seconds = 10; // and drop it if the ping is not answered
  double drain_seconds = 2;              // NOT_SERVING this long before stopping
  double shutdown_grace_seconds = 10;    // then in-flight calls get this long
  // Security of every gRPC server (README "Security"). TLS is on when
  // tls_cert_file is set; the bearer token is checked on every call (health and
  // reflection included) when token_file or $DSM_AUTH_TOKEN gives one, and is
  // only accepted over TLS. Both may be off only when `host` is loopback (and
  // worker.learner / worker.coordinator too), unless allow_insecure is true;
  // otherwise the config is rejected with one line naming the key to set.
  // /metrics is not covered (plain HTTP, no token): bind it with metrics_host.
  // LoadConfig checks the files are readable PEM; servers and clients read
  // them again when they start (GrpcServerOptions::From, ChannelOptions::From).
  std::string tls_cert_file;       // PEM certificate chain of the gRPC servers; empty = no TLS
  std::string tls_key_file;        // PEM private key of tls_cert_file (required with it)
  std::string tls_client_ca_file;  // PEM CA; set = mutual TLS: clients must show a certificate it signed
  std::string token_file;          // file holding the shared bearer token (>= 16 printable characters,
                                   // trailing newline ignored); empty = $DSM_AUTH_TOKEN if set
  bool allow_insecure = false;     // allow non-loopback addresses without TLS or token
};

// Address of one service.
struct Endpoint {
  int port = 0;          // gRPC port; 0 = pick a free one
  int metrics_port = 0;  // Prometheus /metrics port; 0 = pick a free one
};

struct ServicesOptions {
  Endpoint coordinator{50051, 9101};
  Endpoint learner{50052, 9102};
  Endpoint worker{50053, 9103};
  Endpoint verifier{50054, 9104};
  Endpoint meta_verifier{50055, 9105};
};

// Client-side policy for every RPC dsm makes.
struct ClientOptions {
  double deadline_seconds = 30;      // every unary RPC has a deadline
  int max_attempts = 4;              // gRPC retry policy on UNAVAILABLE
  double initial_backoff_seconds = 0.2;
  double max_backoff_seconds = 5;
  double backoff_multiplier = 2;
  // TLS of every channel: on when tls_ca_file or server.tls_cert_file is set
  // (a deployment shares one config, so servers with TLS mean clients with
  // TLS). The token of server.token_file / $DSM_AUTH_TOKEN is sent on every
  // call of a TLS channel.
  std::string tls_ca_file;      // PEM CA the servers' certificates are checked against; empty = system roots
  std::string tls_cert_file;    // PEM client certificate for mutual TLS (needs tls_key_file)
  std::string tls_key_file;     // its private key
  std::string tls_server_name;  // name expected in the servers' certificates; empty = the host dialled
};

// Wire limits: requests beyond them are rejected with INVALID_ARGUMENT.
struct LimitsOptions {
  int max_prompt_tokens = 4096;
  int max_completion_tokens = 4096;
  int max_n = 64;                    // completions per request
};

// The base model every role shares.
struct ModelOptions {
  std::string path;                // Hugging Face folder (config.json, safetensors, tokenizer.json)
  std::string dtype = "float32";   // float32 | bfloat16 | float16
  int max_batch = 32;              // sequences decoded together (KV-cache slots)
  int max_len = 2048;              // prompt + completion tokens per sequence
};

// A rollout worker.
struct WorkerOptions {
  // Adapter roles this worker samples with (generator, verifier, meta_verifier).
  std::vector<std::string> roles = {"generator"};
  int keep_versions = 2;           // adapter versions held per role (more while in use)
  std::string learner;             // learner host:port; empty = services.learner on server.host
  std::string coordinator;         // coordinator host:port to pull work from; empty = none
  std::string id;                  // stable worker id; empty = <hostname>-<port> (or -pid<pid>)
  int capacity = 4;                // leases worked on at once
};

// The LoRA adapter of every role.
struct LoraOptions {
  int r = 8;
  double alpha = 16;
  double dropout = 0;
  std::vector<std::string> target_modules = {"q_proj", "k_proj", "v_proj", "o_proj",
                                             "gate_proj", "up_proj", "down_proj"};
};

// GRPO (see METHOD.md); defaults are DeepSeekMath's where it gives them.
struct GrpoConfig {
  double epsilon_low = 0.2;
  double epsilon_high = 0.2;     // DAPO clip-higher: 0.28
  double kl_beta = 0.04;
  bool scale_rewards = true;     // false: Dr.GRPO
  std::string aggregation = "sequence";  // sequence | token (DAPO) | constant (Dr.GRPO)
  bool dynamic_sampling = true;  // drop groups whose rewards are all equal
  // π_old in the ratio: the samplers' log-probabilities of the tokens they sampled (true), or the
  // policy's own, detached (false: the ratio is 1, as TRL's GRPO with one iteration per batch) —
  // then training depends on the sampled tokens alone, never on the samplers' floating point.
  bool importance_correction = true;
};

struct LearnerConfig {
  std::vector<std::string> roles = {"generator", "verifier", "meta_verifier"};
  double learning_rate = 1e-5;
  // Linear learning-rate warm-up over each adapter's first optimizer steps, from
  // learning_rate / warmup_steps up; an adapter that InitAdapter replaces warms up again.
  int warmup_steps = 0;
  double max_grad_norm = 1.0;
  double weight_decay = 0;
  int groups_per_step = 8;       // groups of one role per optimizer step
  int max_policy_lag = 4;        // older samples are dropped and counted
  int max_buffered_groups = 256; // back-pressure window of all SubmitGroups streams
  int micro_batch_tokens = 8192; // gradient accumulation by token budget
  double temperature = 1.0;      // the samplers' temperature (log-probs are of logits / T)
  std::string checkpoint_dir;    // default: <runs_dir>/<run.name>/checkpoints
  int checkpoint_every_steps = 50;
  int keep_checkpoints = 3;
  // Adapter bytes over the learner's plain-TCP bulk endpoint (only when the
  // gRPC server has no TLS); WatchAdapters then carries one offer per version.
  bool bulk_transfer = true;
  int bulk_port = 0;             // 0 = an ephemeral port (offered to subscribers)
  std::string bulk_host;         // host offered; empty = the one the subscriber dialled
  // LibTorch threads of the learner process; 0 = runtime.threads. In lockstep rounds
  // (coordinator.lockstep) the samplers wait while it trains, so it may take every core.
  int threads = 0;
  GrpoConfig grpo;
};

// `coordinator:`: the work queue's leases.
struct CoordinatorConfig {
  double lease_ttl_seconds = 120;       // a lease lives this long without a heartbeat renewing it
  double heartbeat_seconds = 5;         // workers renew their leases this often (< lease_ttl_seconds)
  int max_leases_per_worker = 64;       // caps a worker's Hello.capacity
  int max_attempts = 3;                 // grants per work item before it fails
  // The pipeline (METHOD.md's phases) runs when the run starts. It needs the
  // learner and both scoring services (host:port, or "ipv4:a:p,b:p" /
  // "dns:///name:port" for several replicas).
  bool pipeline = false;
  std::string learner;
  std::string verifier;
  std::string meta_verifier;
  std::string prompts_dir = "configs/prompts";  // generator.txt, verifier.txt, meta_verifier.txt
  int iterations = 1;             // pipeline iterations (phases 3-5 repeat)
  int group_size = 8;             // samples per GRPO group, every phase
  // Passes over the labelled proofs (phase 1) and the labelled analyses (phase 2); each pass
  // samples new groups. Phase 3 makes one pass over both, interleaved.
  int verifier_epochs = 1;
  int meta_verifier_epochs = 1;
  // Phase 0 before phase 1: this many SFT passes over the labelled training data (faithful
  // analyses for the verifier, meta-labels for the meta-verifier, proofs scored 1 for the
  // generator), for a model that has never seen the output formats; tokenized with
  // model.path's tokenizer.json. 0 = none (the built-in default warms its model up itself).
  int warmup_epochs = 0;
  // Phase 3's R_meta: the mean of `enhanced_meta_verifications` meta-verifier scores of each
  // analysis, sampled at `enhanced_meta_temperature` (0 = greedy: the meta-verifier's likeliest
  // judgement, one is enough).
  int enhanced_meta_verifications = 1;
  double enhanced_meta_temperature = 1.0;
  // Phase 3 trains the verifier's adapter on the labelled analyses too (METHOD.md: one adapter
  // for both jobs); false: on the labelled proofs only.
  bool enhanced_analyses = true;
  // Training phases sample and train in lockstep rounds of learner.groups_per_step ×
  // max_policy_lag items: each round sampled by the version the previous round's training
  // published, so the same seed gives the same run (PipelineOptions::lockstep_round). false:
  // sampling runs on while the learner trains (faster where they have cores of their own).
  bool lockstep = false;
  // Phases 1-3 go through their labelled proofs and analyses in an order shuffled from run.seed,
  // a new one each pass (as a trainer's data loader does each epoch); false: import order.
  bool shuffle = true;
  int generator_problems = 64;    // problems per generator phase (per pass)
  int generator_epochs = 1;       // passes over them in phase 4
  int auto_label_problems = 32;   // problems per auto-labelling phase
  // Phase 4's reward R = R_format · (α·s + β·(1 − |s' − s|)·ms): s the mean of `verifications`
  // verifier scores of the proof, ms the mean of `meta_verifications` meta-verifier scores of
  // the self-evaluation.
  int verifications = 4;
  int meta_verifications = 1;
  double alpha = 0.76;
  double beta = 0.24;
  // Phase 5: n verifier analyses per proof, m meta-verifications of each analysis that reports
  // an issue, a label when at least k lowest-score analyses are confirmed.
  int auto_label_n = 8;
  int auto_label_m = 4;
  int auto_label_k = 2;
  // The analyses a label of 1 needs (0: n). A proof all n analyses pass, the one label that no
  // confirmed analysis backs, gets the rest before it is labelled, and each must pass it too:
  // verification compute goes where a missed issue would slip through (BENCHMARKS.md).
  int auto_label_correct_n = 0;
  // Drop a proof whose confirmed analyses disagree on its score (AutoLabelOptions::drop_conflicts);
  // false: METHOD.md's rule, the lowest confirmed score is the label.
  bool auto_label_drop_conflicts = false;
  // Label a proof 1 only when all its analyses give 1 (AutoLabelOptions::unanimous_correct);
  // false: METHOD.md's rule, 1 when no analysis reports an issue the meta-verifier finds real.
  bool auto_label_unanimous_correct = false;
  // Phase 5's sampling temperature for the analyses and the meta-verifications (nothing is
  // learnt from these samples, so it need not be the learner's). Below 1 the n analyses agree
  // more and miss together; above 1 they vary more (BENCHMARKS.md: 0.7 vs 1.2 on the tiny model).
  double auto_label_temperature = 1.0;
  // Each evaluation's size: the verifier grades at most `evaluation_proofs` labelled proofs of
  // evaluation problems (import order), the generator writes one greedy proof for each of at most
  // `evaluation_problems` evaluation problems.
  int evaluation_proofs = 64;
  int evaluation_problems = 64;
  // An exact judge for evaluations (never rewards): "chain" = the built-in
  // domain's checker (tasks/); "" = none (real data has no exact checker).
  std::string grader;
};

// `builtin:`: the built-in default, which `dsm run` prepares before it
// starts the services (DESIGN.md §6): the synthetic chain domain's data
// (tasks/), and — when model.path holds no model yet — a small Llama that
// dsm initialises and warms up itself (phase 0, full-parameter SFT).
struct BuiltinConfig {
  std::string domain;  // "chain" = prepare the built-in default; "" = bring your own model and data
  // The data (tasks/jsonl_export.h), imported into the run.
  int train_problems = 256;
  int eval_problems = 48;
  // Training problems with no labelled proof: new problems for phases 4 and 5 (drawn first).
  int unlabelled_problems = 0;
  int proofs_per_problem = 4;
  // Labelled proofs per problem that the warmed-up model writes itself (temperature 1), graded by
  // the checker: the paper's verifier data are expert-graded proofs of its own generator.
  int own_proofs_per_problem = 1;
  double correct_fraction = 0.4;
  int analyses_per_proof = 1;
  // Difficulty (tasks/chain_domain.h).
  int num_variables = 10;
  int min_chain_length = 2;
  int max_chain_length = 4;
  int min_distractors = 1;
  int max_distractors = 3;
  // The model dsm initialises (model/model_init.h) and its tokenizer.
  int hidden_size = 128;
  int num_hidden_layers = 4;
  int num_attention_heads = 4;
  int num_key_value_heads = 2;
  int intermediate_size = 344;
  int vocab_size = 1024;
  // Std of the normal init of every weight matrix and the embedding (model/model_init.h).
  // Transformers' 0.02 suits wide models; at hidden 128 a look-up-only warm-up never learns the
  // citation look-up from it, and does from 0.088 = 1/sqrt(hidden) (BENCHMARKS.md).
  double initializer_range = 0.02;
  // Mimetic attention (model/model_init.h) in the last `mimetic_layers` layers (0 = all):
  // strength 0 = off.
  double mimetic_attention = 0.7;
  int mimetic_layers = 1;
  // Phase 0: full-parameter SFT on the domain's three output formats.
  int warmup_steps = 300;
  double warmup_max_seconds = 300;  // stops earlier when the time is up
  double warmup_learning_rate = 3e-3;
  int warmup_lr_warmup_steps = 20;
  int warmup_batch = 16;
  // Share of the warm-up's verifier examples, in its second half, that show the model's own
  // temperature-1 proofs graded by the checker (tasks/chain_warmup.h): 0 = made-up flaws only.
  double warmup_own_proof_share = 0.5;
  // Flawless proofs among the warm-up's made-up verifier and meta-verifier examples.
  double warmup_correct_fraction = 0.3;
  // The proof writer the warm-up's generator imitates: this share of its examples shows the
  // canonical proof with the flaw named warmup_generator_flaw put in (tasks/chain_warmup.h).
  std::string warmup_generator_flaw = "none";
  double warmup_generator_flaw_share = 0;
  // Of those flawed proofs, the share whose self-evaluation sees nothing wrong (score 1).
  double warmup_generator_overclaim_share = 0;
  // Share of the warm-up's other verifier examples whose proof has about half its citations
  // changed to facts not given as written (tasks/chain_warmup.h): a drill of the look-up.
  double warmup_scrambled_proof_share = 0;
  // The same among the warm-up's meta-verifier examples: the model's own proofs (from the
  // warm-up's second half) and scrambled ones, each with a labelled analysis to grade, so the
  // meta-verifier can tell a real issue in this generator's proofs from a made-up one.
  double warmup_meta_own_proof_share = 0;
  double warmup_meta_scrambled_proof_share = 0;
  // The warm-up's first steps, all verifier examples on such proofs (tasks/chain_warmup.h):
  // at most warmup_steps.
  int warmup_lookup_drill_steps = 0;
  // After the drill, every this many steps one more drill step, so the look-up stays (0 = none).
  int warmup_lookup_drill_every = 0;
  // Share of those later drill steps' examples for the meta-verifier's look-up (scrambled proofs).
  double warmup_lookup_drill_meta_share = 0;
  // Drill steps' examples end after their citation note: the drill's loss is all on the look-up.
  bool warmup_lookup_drill_note_only = false;
  // With it, the mix's drill steps' examples go one line past the note: the issue the note shows.
  bool warmup_lookup_drill_issue_in_mix = false;
  // The drill and the rest of the warm-up each get the whole learning-rate schedule.
  bool warmup_lr_restart_after_drill = false;
  // Half the not-given citations of the scrambled proofs lead on from where the chain is, with
  // the conclusion that follows, as the generator's own wrong citations do.
  bool warmup_scrambled_leading_on = false;
  // Examples per forward/backward within a warm-up step, longest first (the same gradient; short
  // examples no longer pad to the longest of the step): 0 = the whole step at once (one equal
  // part per replica with warmup_data_parallel).
  int warmup_micro_batch = 0;
  // Model replicas that share each warm-up step's micro-batches, one thread each, gradients
  // summed in a fixed order (deterministic): on 2 cores, 2 replicas take a step in less time
  // than one replica on both cores, whose second thread mostly waits on the small ops. 1 = off.
  int warmup_data_parallel = 1;
  // Also measure the held-out skills every this many warm-up steps (printed, and kept in
  // warmup.json's `curve`): 0 = only at the end.
  int warmup_eval_every = 0;
  // LibTorch threads of the process that runs phase 0 and writes the data (`dsm run`, `dsm
  // prepare`); nothing else runs then, so it may use every core. 0 = runtime.threads.
  int warmup_threads = 0;
  // The warm-up forward's matrix products: "float32", "bfloat16" (autocast; weights and optimizer
  // stay float32) or "auto" (bfloat16 where the CPU has bfloat16 instructions).
  std::string warmup_precision = "float32";
};

struct DsmConfig {
  RunOptions run;
  LogOptions log;
  RuntimeOptions runtime;
  ServerOptions server;
  ServicesOptions services;
  ClientOptions client;
  LimitsOptions limits;
  ModelOptions model;
  WorkerOptions worker;
  LoraOptions lora;
  LearnerConfig learner;
  CoordinatorConfig coordinator;
  BuiltinConfig builtin;
};

// Parses YAML text (`source` names it in errors) and validates the result.
absl::StatusOr<DsmConfig> ParseConfig(const std::string& yaml_text, const std::string& source);
// Reads and parses a file. Errors start with the file's path.
// `text`, when not null, receives the file as read (what `dsm serve` and `dsm start` hand the
// coordinator), so a caller never reads the file a second time.
absl::StatusOr<DsmConfig> LoadConfig(const std::string& path, std::string* text = nullptr);
// The range and consistency checks (ParseConfig calls it), the security rule
// included (see ServerOptions).
absl::Status ValidateConfig(const DsmConfig& config);
// Reads the files the security keys name (PEM, token) and $DSM_AUTH_TOKEN, so
// a bad path or token fails at load time with one line naming the key
// (ParseConfig calls it after ValidateConfig).
absl::Status CheckSecurityFiles(const DsmConfig& config);
// The effective configuration as YAML, every key included (`dsm config show`).
std::string ConfigToYaml(const DsmConfig& config);

}  // namespace dsm

#endif  // DSM_COMMON_CONFIG_H_
