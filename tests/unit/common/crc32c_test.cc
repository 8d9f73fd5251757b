#include "common/crc32c.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace dsm {
namespace {

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(Crc32c("", 0), 0u);
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);  // the standard check value
  const std::vector<unsigned char> zeros(32, 0);
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);  // RFC 3720 B.4
  const std::vector<unsigned char> ones(32, 0xFF);
  EXPECT_EQ(Crc32c(ones.data(), ones.size()), 0x62A8AB43u);
}

TEST(Crc32c, ExtendEqualsOneShotAtEverySplit) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data += static_cast<char>(i * 7 + 3);
  const uint32_t whole = Crc32c(data.data(), data.size());
  for (std::size_t split : {0u, 1u, 7u, 8u, 9u, 500u, 999u, 1000u}) {
    const uint32_t first = Crc32c(data.data(), split);
    EXPECT_EQ(Crc32cExtend(first, data.data() + split, data.size() - split), whole) << split;
  }
}

// Bit by bit, as the definition reads: the reference for the fast paths.
uint32_t Reference(const std::string& data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : data) {
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

TEST(Crc32c, LongBuffersMatchTheBitwiseDefinition) {
  // Lengths around the three-block steps (3 x 8192 and 3 x 256 bytes), at
  // every alignment of the start.
  std::string data;
  for (int i = 0; i < 80000; ++i) data += static_cast<char>((i * 2654435761u) >> 13);
  for (std::size_t length : {255u, 767u, 768u, 769u, 24575u, 24576u, 24577u, 24576u + 768u + 13u, 79990u}) {
    for (std::size_t start : {0u, 1u, 3u, 7u}) {
      const std::string piece = data.substr(start, length);
      EXPECT_EQ(Crc32c(piece.data(), piece.size()), Reference(piece)) << length << " from " << start;
    }
  }
  const uint32_t first = Crc32c(data.data(), 30000);
  EXPECT_EQ(Crc32cExtend(first, data.data() + 30000, data.size() - 30000), Reference(data));
}

TEST(Crc32c, DetectsASingleFlippedBit) {
  std::string data(4096, 'x');
  const uint32_t before = Crc32c(data.data(), data.size());
  data[2048] ^= 0x10;
  EXPECT_NE(Crc32c(data.data(), data.size()), before);
}

}  // namespace
}  // namespace dsm
