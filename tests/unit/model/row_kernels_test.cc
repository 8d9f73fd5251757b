#include "model/row_kernels.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/attention.h"
#include "model/cached_attention.h"

namespace dsm {
namespace {

// Row `r` of `x` computed inside every batch in `batches` (row r of x placed at each position of
// each), compared bit for bit with the row computed alone.
template <typename Fn>
void ExpectRowInvariant(const torch::Tensor& x, Fn fn) {
  const int64_t rows = x.size(0);
  for (int64_t r = 0; r < rows; r += 3) {
    const torch::Tensor alone = fn(x.narrow(0, r, 1));
    for (int64_t batch : {2, 3, 4, 5, 8, 17, 64}) {
      for (int64_t at : {int64_t{0}, batch / 2, batch - 1}) {
        torch::Tensor crowd = torch::randn({batch, x.size(1)});
        crowd[at].copy_(x[r]);
        const torch::Tensor y = fn(crowd);
        ASSERT_TRUE(torch::equal(y.narrow(0, at, 1), alone))
            << "row " << r << " at " << at << " of " << batch << ": max diff "
            << (y.narrow(0, at, 1) - alone).abs().max().item<float>();
      }
    }
  }
}

TEST(RowLinear, AgreesWithTorchLinear) {
  torch::manual_seed(1);
  for (int64_t in : {5, 8, 32, 128, 133}) {
    for (int64_t out : {1, 7, 128, 702}) {
      for (int64_t rows : {1, 3, 4, 9, 64}) {
        SCOPED_TRACE(testing::Message() << in << " -> " << out << ", " << rows << " rows");
        const torch::Tensor x = torch::randn({rows, in});
        const torch::Tensor w = torch::randn({out, in});
        const torch::Tensor bias = torch::randn({out});
        EXPECT_TRUE(torch::allclose(RowLinear(x, w), torch::linear(x, w), 1e-4, 1e-4));
        EXPECT_TRUE(torch::allclose(RowLinear(x, w, bias), torch::linear(x, w, bias), 1e-4, 1e-4));
      }
    }
  }
  // Leading dimensions are kept, strided inputs are read right.
  const torch::Tensor x = torch::randn({2, 5, 16}).transpose(0, 1);
  const torch::Tensor w = torch::randn({6, 16});
  const torch::Tensor y = RowLinear(x, w);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{5, 2, 6}));
  EXPECT_TRUE(torch::allclose(y, torch::linear(x, w), 1e-4, 1e-4));
}

// The point of the kernels: OpenBLAS's per-row results move with the batch, these do not.
TEST(RowLinear, ARowGetsTheSameBitsInAnyBatch) {
  torch::manual_seed(2);
  for (int64_t in : {128, 131}) {
    SCOPED_TRACE(in);
    const torch::Tensor w = torch::randn({344, in});
    const torch::Tensor bias = torch::randn({344});
    ExpectRowInvariant(torch::randn({10, in}), [&](const torch::Tensor& x) { return RowLinear(x, w, bias); });
  }
  // Nor with the thread count.
  const torch::Tensor x = torch::randn({200, 128});
  const torch::Tensor w = torch::randn({128, 128});
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const torch::Tensor one = RowLinear(x, w);
  at::set_num_threads(2);
  const torch::Tensor two = RowLinear(x, w);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one, two));
}

TEST(RowRmsNorm, AgreesWithRmsNormAndIsRowInvariant) {
  torch::manual_seed(3);
  for (int64_t n : {8, 30, 128}) {
    SCOPED_TRACE(n);
    const torch::Tensor x = torch::randn({6, n}) * 3;
    const torch::Tensor weight = torch::rand({n}) + 0.5;
    EXPECT_TRUE(torch::allclose(RowRmsNorm(x, weight, 1e-5), RmsNorm(x, weight, 1e-5), 1e-5, 1e-5));
    ExpectRowInvariant(x, [&](const torch::Tensor& rows) { return RowRmsNorm(rows, weight, 1e-5); });
  }
}

TEST(RowExp, AgreesWithExpAndGivesAnElementTheSameBitsWhereverItSits) {
  torch::manual_seed(6);
  const torch::Tensor x = torch::cat({torch::randn({1000}) * 20, torch::tensor({0.0f, -87.0f, 88.0f, -100.0f,
                                                                               -std::numeric_limits<float>::infinity()})});
  const torch::Tensor got = RowExp(x);
  EXPECT_TRUE(torch::allclose(got, x.exp(), 3e-7, 1e-37));  // 0 where e^x is subnormal
  EXPECT_EQ(got[-2].item<float>(), 0.0f);  // below the normal floats
  EXPECT_EQ(got[-1].item<float>(), 0.0f);  // e^-inf
  EXPECT_EQ(got[1000].item<float>(), 1.0f);
  for (int64_t from : {1, 5, 13}) {
    for (int64_t n : {3, 8, 29}) {
      EXPECT_TRUE(torch::equal(RowExp(x.narrow(0, from, n)), got.narrow(0, from, n))) << from << "+" << n;
    }
  }
}

TEST(RowSiluMul, AgreesWithSiluTimesUpAndIsRowInvariant) {
  torch::manual_seed(7);
  const torch::Tensor gate = torch::randn({5, 344}) * 4;
  const torch::Tensor up = torch::randn({5, 344});
  EXPECT_TRUE(torch::allclose(RowSiluMul(gate, up), torch::silu(gate) * up, 1e-6, 1e-6));
  const torch::Tensor all = RowSiluMul(gate, up);
  for (int64_t r = 0; r < 5; ++r) {
    EXPECT_TRUE(torch::equal(RowSiluMul(gate.narrow(0, r, 1), up.narrow(0, r, 1)), all.narrow(0, r, 1))) << r;
  }
}

// A cache of `slots` slots filled with random keys and values.
struct Cache {
  torch::Tensor keys, values;
  Cache(int64_t slots, int64_t kv_heads, int64_t max_len, int64_t head_dim)
      : keys(torch::randn({slots, kv_heads, max_len, head_dim})), values(torch::randn({slots, kv_heads, max_len, head_dim})) {}
};

TEST(CachedAttention, AgreesWithGroupedQueryAttention) {
  torch::manual_seed(4);
  // 16: the kernel with the query held in registers; 24: the plain one.
  for (int64_t head_dim : {16, 24}) {
    SCOPED_TRACE(head_dim);
    const int64_t heads = 4, kv_heads = 2, max_len = 40, len = 5;
    const Cache cache(6, kv_heads, max_len, head_dim);
    // Three rows: a prefill of 5 in slot 4, a decode step in slot 0 after 20 tokens, 3 new tokens
    // in slot 2 after 7.
    const std::vector<int64_t> slots{4, 0, 2}, starts{0, 20, 7}, counts{5, 1, 3};
    const torch::Tensor q = torch::randn({3, len, heads, head_dim}).transpose(1, 2);  // strided like the model's
    const torch::Tensor got = CachedAttention(q, cache.keys, cache.values, slots, starts, counts);
    ASSERT_EQ(got.sizes(), (std::vector<int64_t>{3, len, heads * head_dim}));
    for (size_t b = 0; b < slots.size(); ++b) {
      SCOPED_TRACE(b);
      const int64_t keys = starts[b] + counts[b];
      const torch::Tensor k = cache.keys[slots[b]].narrow(1, 0, keys).unsqueeze(0);
      const torch::Tensor v = cache.values[slots[b]].narrow(1, 0, keys).unsqueeze(0);
      const torch::Tensor qb = q[b].narrow(1, 0, counts[b]).unsqueeze(0);
      const torch::Tensor positions = torch::arange(counts[b]) + starts[b];
      const torch::Tensor allowed = (torch::arange(keys).view({1, keys}) <= positions.view({-1, 1})).unsqueeze(0);
      const torch::Tensor want = GroupedQueryAttention(qb, k, v, allowed)[0];
      EXPECT_TRUE(torch::allclose(got[b].narrow(0, 0, counts[b]), want, 1e-5, 1e-5));
      if (counts[b] < len) {
        EXPECT_EQ(got[b].narrow(0, counts[b], len - counts[b]).abs().max().item<float>(), 0.0f);
      }
    }
  }
}

TEST(CachedAttention, ARowGetsTheSameBitsWhateverItsNeighbours) {
  torch::manual_seed(5);
  const int64_t heads = 4, kv_heads = 4, head_dim = 32, max_len = 300;
  const Cache cache(64, kv_heads, max_len, head_dim);
  const torch::Tensor probe = torch::randn({heads, 1, head_dim});
  auto run = [&](int64_t batch, int64_t at, int64_t slot) {
    torch::Tensor q = torch::randn({batch, heads, 1, head_dim});
    q[at].copy_(probe);
    std::vector<int64_t> slots, starts, counts(static_cast<size_t>(batch), 1);
    for (int64_t b = 0; b < batch; ++b) {
      slots.push_back(b == at ? slot : (slot + 1 + b) % 64);
      starts.push_back(b == at ? 187 : (b * 37) % 290);  // neighbours shorter and longer
    }
    return CachedAttention(q, cache.keys, cache.values, slots, starts, counts)[at].clone();
  };
  const torch::Tensor alone = run(1, 0, 9);
  for (int64_t batch : {2, 7, 33, 63}) {
    for (int64_t at : {int64_t{0}, batch - 1}) {
      EXPECT_TRUE(torch::equal(run(batch, at, 9), alone)) << at << " of " << batch;
    }
  }
}

}  // namespace
}  // namespace dsm
