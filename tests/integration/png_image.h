// Test helper: reads an 8-bit, non-interlaced PNG (what Chromium's
// --screenshot writes) into RGBA pixels, with zlib. Other PNG variants are
// reported as errors, not guessed at.
#ifndef DSM_TESTS_INTEGRATION_PNG_IMAGE_H_
#define DSM_TESTS_INTEGRATION_PNG_IMAGE_H_

#include <zlib.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace dsm_test {

struct PngImage {
  uint32_t width = 0;
  uint32_t height = 0;
  std::vector<std::array<uint8_t, 4>> pixels;  // RGBA, row by row

  const std::array<uint8_t, 4>& At(uint32_t x, uint32_t y) const { return pixels[size_t{y} * width + x]; }
};

inline uint32_t PngBigEndian32(const std::string& bytes, size_t at) {
  return (uint32_t{static_cast<uint8_t>(bytes[at])} << 24) | (uint32_t{static_cast<uint8_t>(bytes[at + 1])} << 16) |
         (uint32_t{static_cast<uint8_t>(bytes[at + 2])} << 8) | uint32_t{static_cast<uint8_t>(bytes[at + 3])};
}

inline absl::StatusOr<PngImage> ReadPng(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.compare(0, 8, "\x89PNG\r\n\x1a\n", 8) != 0) return absl::DataLossError(path + ": not a PNG");

  PngImage image;
  int color_type = -1;
  std::string idat;
  for (size_t at = 8; at + 12 <= bytes.size();) {
    const uint32_t length = PngBigEndian32(bytes, at);
    if (at + 12 + size_t{length} > bytes.size()) return absl::DataLossError(path + ": truncated chunk");
    const std::string type = bytes.substr(at + 4, 4);
    if (type == "IHDR") {
      if (length != 13) return absl::DataLossError(path + ": bad IHDR");
      image.width = PngBigEndian32(bytes, at + 8);
      image.height = PngBigEndian32(bytes, at + 12);
      const int depth = static_cast<uint8_t>(bytes[at + 16]);
      color_type = static_cast<uint8_t>(bytes[at + 17]);
      const int interlace = static_cast<uint8_t>(bytes[at + 20]);
      if (depth != 8 || interlace != 0 || (color_type != 0 && color_type != 2 && color_type != 4 && color_type != 6)) {
        return absl::UnimplementedError(absl::StrCat(path, ": PNG depth ", depth, " colour type ", color_type,
                                                     " interlace ", interlace, " is not supported"));
      }
    } else if (type == "IDAT") {
      idat.append(bytes, at + 8, length);
    } else if (type == "IEND") {
      break;
    }
    at += 12 + size_t{length};
  }
  if (color_type < 0 || image.width == 0 || image.height == 0) return absl::DataLossError(path + ": no image header");
  const size_t channels = color_type == 0 ? 1 : color_type == 4 ? 2 : color_type == 2 ? 3 : 4;
  const size_t stride = size_t{image.width} * channels;
  std::vector<uint8_t> raw(size_t{image.height} * (stride + 1));
  uLongf raw_size = raw.size();
  if (uncompress(raw.data(), &raw_size, reinterpret_cast<const Bytef*>(idat.data()), idat.size()) != Z_OK ||
      raw_size != raw.size()) {
    return absl::DataLossError(path + ": image data does not inflate to the expected size");
  }
  // Undo the per-row filters (PNG spec, section 9).
  std::vector<uint8_t> data(size_t{image.height} * stride);
  for (size_t y = 0; y < image.height; ++y) {
    const uint8_t filter = raw[y * (stride + 1)];
    const uint8_t* src = &raw[y * (stride + 1) + 1];
    uint8_t* row = &data[y * stride];
    const uint8_t* up = y > 0 ? &data[(y - 1) * stride] : nullptr;
    for (size_t i = 0; i < stride; ++i) {
      const int a = i >= channels ? row[i - channels] : 0;
      const int b = up != nullptr ? up[i] : 0;
      const int c = (up != nullptr && i >= channels) ? up[i - channels] : 0;
      int predicted = 0;
      switch (filter) {
        case 0: predicted = 0; break;
        case 1: predicted = a; break;
        case 2: predicted = b; break;
        case 3: predicted = (a + b) / 2; break;
        case 4: {
          const int p = a + b - c;
          const int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          predicted = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default: return absl::DataLossError(absl::StrCat(path, ": unknown row filter ", filter));
      }
      row[i] = static_cast<uint8_t>(src[i] + predicted);
    }
  }
  image.pixels.resize(size_t{image.width} * image.height);
  for (size_t p = 0; p < image.pixels.size(); ++p) {
    const uint8_t* px = &data[p * channels];
    image.pixels[p] = channels >= 3 ? std::array<uint8_t, 4>{px[0], px[1], px[2], channels == 4 ? px[3] : uint8_t{255}}
                                    : std::array<uint8_t, 4>{px[0], px[0], px[0], channels == 2 ? px[1] : uint8_t{255}};
  }
  return image;
}

}  // namespace dsm_test

#endif  // DSM_TESTS_INTEGRATION_PNG_IMAGE_H_
