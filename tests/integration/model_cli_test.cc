// `dsm tokenize`, `dsm logits`, `dsm generate` run as processes, checked
// against the in-process runtime and the Python reference fixtures.
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_join.h"
#include "model/sampler.h"
#include "model/safetensors.h"
#include "tests/integration/dsm_process.h"
#include "tests/unit/model/reference_fixtures.h"

namespace dsm {
namespace {

using dsm_test::CountLines;
using dsm_test::RunDsm;
using ::testing::HasSubstr;

TEST(ModelCli, LogitsMatchTheReference) {
  const std::string dir = model_test::ReferenceDir() + "/qwen3_qknorm";
  const torch::Tensor ids = model_test::Expected(dir, "ids");
  const torch::Tensor expected = model_test::Expected(dir, "logits");
  ASSERT_TRUE(ids.defined() && expected.defined());
  std::vector<std::string> parts;
  const torch::Tensor row = ids.reshape({-1, ids.size(-1)})[0];
  for (int64_t i = 0; i < row.size(0); ++i) parts.push_back(std::to_string(row[i].item<int64_t>()));
  const std::string out = ::testing::TempDir() + "/logits.safetensors";
  const auto r = RunDsm("logits --model " + dir + " --ids " + absl::StrJoin(parts, ",") + " --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto file = SafetensorsFile::Open(out);
  ASSERT_TRUE(file.ok()) << file.status();
  auto logits = (*file)->Load("logits");
  ASSERT_TRUE(logits.ok()) << logits.status();
  const torch::Tensor want = expected.reshape({-1, expected.size(-2), expected.size(-1)})[0];
  EXPECT_EQ(logits->sizes(), want.sizes());
  EXPECT_LT(model_test::MaxAbsDiff(*logits, want), 1e-4);
}

TEST(ModelCli, GenerateEqualsTheInProcessSampler) {
  const std::string dir = model_test::ReferenceDir() + "/llama_gqa_tied";
  const auto r = RunDsm("generate --model " + dir + " --prompt-ids 5,17,42,3 --max-tokens 9 --temperature 1.5 --seed 11");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(CountLines(r.out), 1) << r.out;  // no tokenizer.json: ids only

  auto model = LlamaModel::Load(dir);
  ASSERT_TRUE(model.ok());
  SamplerOptions options;
  options.max_batch = 1;
  options.max_len = 13;
  auto sampler = Sampler::Create(model->get(), nullptr, options);
  ASSERT_TRUE(sampler.ok());
  SampleRequest request;
  request.prompt = {5, 17, 42, 3};
  request.params.temperature = 1.5;
  request.params.max_tokens = 9;
  request.params.seed = 11;
  auto results = (*sampler)->Generate({request});
  ASSERT_TRUE(results[0].ok());
  EXPECT_EQ(r.out, absl::StrJoin(results[0]->tokens, ",") + "\n");
}

TEST(ModelCli, BadInputIsExitTwoWithOneLine) {
  const std::string dir = model_test::ReferenceDir() + "/llama_gqa_tied";
  for (const std::string& args : std::vector<std::string>
       {std::string("generate --model /nonexistent --prompt-ids 1,2 --max-tokens 2"),
        "generate --model " + dir + " --prompt-ids 1,x --max-tokens 2",
        "generate --model " + dir + " --prompt hello --max-tokens 2",
        "generate --model " + dir + " --prompt-ids 1,999999 --max-tokens 2",
        "generate --model " + dir + " --prompt-ids 1,2 --top-p 2",
        "logits --model " + dir + " --ids 1,2,-3 --out /tmp/x.safetensors",
        std::string("tokenize --tokenizer /nonexistent/tokenizer.json")}) {
    SCOPED_TRACE(args);
    const auto r = RunDsm(args, "some text");
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(CountLines(r.err), 1) << r.err;
  }
}

}  // namespace
}  // namespace dsm
