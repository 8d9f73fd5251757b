// model/mixed_precision.h: the precision names, and an autocast scope that runs the matrix
// products inside it in bfloat16, leaves float32 weights and their gradients float32, and
// restores LibTorch's autocast state on exit.
#include "model/mixed_precision.h"

#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>

namespace dsm {
namespace {

TEST(TrainPrecision, ResolvesTheThreeNames) {
  EXPECT_EQ(*ResolveTrainPrecision("float32", torch::kCPU), TrainPrecision::kFloat32);
  EXPECT_EQ(*ResolveTrainPrecision("bfloat16", torch::kCPU), TrainPrecision::kBFloat16);
  EXPECT_EQ(*ResolveTrainPrecision("auto", torch::Device(torch::kCUDA, 0)), TrainPrecision::kBFloat16);
  EXPECT_EQ(*ResolveTrainPrecision("auto", torch::kCPU),
            CpuHasNativeBFloat16() ? TrainPrecision::kBFloat16 : TrainPrecision::kFloat32);
  absl::StatusOr<TrainPrecision> bad = ResolveTrainPrecision("fp16", torch::kCPU);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "precision: \"fp16\" is not one of auto, float32, bfloat16");
  EXPECT_STREQ(TrainPrecisionName(TrainPrecision::kBFloat16), "bfloat16");
  EXPECT_STREQ(TrainPrecisionName(TrainPrecision::kFloat32), "float32");
}

TEST(AutocastScope, MatrixProductsRunInBFloat16OnlyInside) {
  const torch::Tensor x = torch::randn({3, 8});
  const torch::Tensor w = torch::randn({5, 8});
  ASSERT_FALSE(at::autocast::is_cpu_enabled());
  {
    AutocastScope scope(TrainPrecision::kBFloat16, torch::kCPU);
    EXPECT_TRUE(at::autocast::is_cpu_enabled());
    EXPECT_EQ(torch::linear(x, w).scalar_type(), torch::kBFloat16);
    EXPECT_EQ(torch::matmul(x, w.t()).scalar_type(), torch::kBFloat16);
    EXPECT_EQ((x * 2).scalar_type(), torch::kFloat);  // not a matrix product: unchanged
    {
      AutocastScope inner(TrainPrecision::kBFloat16, torch::kCPU);
      EXPECT_EQ(torch::linear(x, w).scalar_type(), torch::kBFloat16);
    }
    EXPECT_TRUE(at::autocast::is_cpu_enabled());  // the inner scope restored the outer one's state
  }
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
  EXPECT_EQ(torch::linear(x, w).scalar_type(), torch::kFloat);
  {
    AutocastScope off(TrainPrecision::kFloat32, torch::kCPU);
    EXPECT_FALSE(at::autocast::is_cpu_enabled());
    EXPECT_EQ(torch::linear(x, w).scalar_type(), torch::kFloat);
  }
}

// One training step of a linear least-squares fit: under the scope the weight and its
// gradient stay float32 and the gradient is the float32 one up to bfloat16's rounding; the
// next step sees the updated weight, not autocast's cached bfloat16 copy of the old one.
TEST(AutocastScope, GradientsStayFloat32AndCloseAndTheCastCacheIsDropped) {
  torch::manual_seed(7);
  const torch::Tensor x = torch::randn({64, 32});
  const torch::Tensor y = torch::randn({64, 16});
  const torch::Tensor w0 = torch::randn({16, 32}) * 0.1;
  auto grad_of = [&](const torch::Tensor& start, TrainPrecision precision) {
    torch::Tensor w = start.clone().requires_grad_(true);
    torch::Tensor out;
    {
      AutocastScope scope(precision, torch::kCPU);
      out = torch::linear(x, w);
    }
    (out.to(torch::kFloat) - y).pow(2).mean().backward();
    return w.grad();
  };
  const torch::Tensor exact = grad_of(w0, TrainPrecision::kFloat32);
  const torch::Tensor mixed = grad_of(w0, TrainPrecision::kBFloat16);
  EXPECT_EQ(mixed.scalar_type(), torch::kFloat);
  const double rel = ((mixed - exact).norm() / exact.norm()).item<double>();
  EXPECT_LT(rel, 2e-2);
  EXPECT_GT(rel, 0.0);  // bfloat16 products did run
  // The optimizer changes the weight in place between steps: the next scope's products see the
  // new weight, not autocast's cached bfloat16 cast of the old one.
  torch::Tensor w = w0.clone().requires_grad_(true);
  torch::Tensor first;
  {
    AutocastScope scope(TrainPrecision::kBFloat16, torch::kCPU);
    first = torch::linear(x, w).to(torch::kFloat);
  }
  {
    torch::NoGradGuard no_grad;
    w.add_(1.0);
  }
  torch::Tensor second;
  {
    AutocastScope scope(TrainPrecision::kBFloat16, torch::kCPU);
    second = torch::linear(x, w).to(torch::kFloat);
  }
  const torch::Tensor want = torch::linear(x, w.detach());
  EXPECT_LT(((second - want).norm() / want.norm()).item<double>(), 2e-2);
  EXPECT_GT(((first - want).norm() / want.norm()).item<double>(), 0.5);
}

}  // namespace
}  // namespace dsm
