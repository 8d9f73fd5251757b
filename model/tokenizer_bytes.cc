#include "model/tokenizer_bytes.h"

#include <array>

#include "absl/strings/str_cat.h"

namespace dsm::tokenizer_internal {
namespace {

constexpr char32_t kReplacement = 0xFFFD;

// The byte length of a sequence led by `lead` and the allowed range of its second byte
// (Unicode Table 3-7); length 0 when `lead` can never start a sequence.
struct LeadInfo {
  int length;
  unsigned char second_lo;
  unsigned char second_hi;
};

LeadInfo InfoForLead(unsigned char lead) {
  if (lead >= 0xC2 && lead <= 0xDF) return {2, 0x80, 0xBF};
  if (lead == 0xE0) return {3, 0xA0, 0xBF};
  if (lead == 0xED) return {3, 0x80, 0x9F};
  if (lead >= 0xE1 && lead <= 0xEF) return {3, 0x80, 0xBF};
  if (lead == 0xF0) return {4, 0x90, 0xBF};
  if (lead >= 0xF1 && lead <= 0xF3) return {4, 0x80, 0xBF};
  if (lead == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// Length of the well-formed sequence at text[pos], or 0 with *bad_len set to the length of
// the maximal ill-formed subpart to replace by one U+FFFD.
std::size_t ScanSequence(absl::string_view text, std::size_t pos, std::size_t* bad_len) {
  const auto lead = static_cast<unsigned char>(text[pos]);
  if (lead < 0x80) return 1;
  const LeadInfo info = InfoForLead(lead);
  if (info.length == 0) {
    *bad_len = 1;
    return 0;
  }
  std::size_t j = pos + 1;
  for (int k = 1; k < info.length; ++k, ++j) {
    const unsigned char lo = k == 1 ? info.second_lo : 0x80;
    const unsigned char hi = k == 1 ? info.second_hi : 0xBF;
    if (j >= text.size() || static_cast<unsigned char>(text[j]) < lo ||
        static_cast<unsigned char>(text[j]) > hi) {
      *bad_len = j - pos;
      return 0;
    }
  }
  return info.length;
}

struct ByteTables {
  std::array<std::string, 256> to_unicode;
  std::array<int, 324> to_byte;  // code points used are all below 256 + 68
};

ByteTables MakeByteTables() {
  ByteTables t;
  t.to_byte.fill(-1);
  int next_extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const char32_t cp = printable ? static_cast<char32_t>(b) : 256 + next_extra++;
    AppendUtf8(cp, &t.to_unicode[b]);
    t.to_byte[cp] = b;
  }
  return t;
}

const ByteTables& Tables() {
  static const ByteTables* const tables = new ByteTables(MakeByteTables());
  return *tables;
}

}  // namespace

bool IsValidUtf8(absl::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    std::size_t bad_len = 0;
    const std::size_t len = ScanSequence(text, pos, &bad_len);
    if (len == 0) return false;
    pos += len;
  }
  return true;
}

std::string Utf8Lossy(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    std::size_t bad_len = 0;
    const std::size_t len = ScanSequence(bytes, pos, &bad_len);
    if (len > 0) {
      absl::StrAppend(&out, bytes.substr(pos, len));
      pos += len;
    } else {
      AppendUtf8(kReplacement, &out);
      pos += bad_len;
    }
  }
  return out;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

char32_t DecodeUtf8At(absl::string_view text, std::size_t pos, std::size_t* len) {
  const auto lead = static_cast<unsigned char>(text[pos]);
  *len = Utf8Length(lead);
  if (*len == 1) return lead;
  char32_t cp = lead & (0xFF >> (*len + 1));
  for (std::size_t k = 1; k < *len; ++k) {
    cp = (cp << 6) | (static_cast<unsigned char>(text[pos + k]) & 0x3F);
  }
  return cp;
}

bool IsUnicodeWhiteSpace(char32_t cp) {
  return (cp >= 0x9 && cp <= 0xD) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

const std::string& ByteToUnicode(unsigned char byte) { return Tables().to_unicode[byte]; }

int UnicodeToByte(char32_t cp) {
  const auto& to_byte = Tables().to_byte;
  return cp < to_byte.size() ? to_byte[cp] : -1;
}

std::string ByteLevelEncode(absl::string_view text) {
  const auto& tables = Tables();
  std::string out;
  out.reserve(text.size() * 2);
  for (const char c : text) out += tables.to_unicode[static_cast<unsigned char>(c)];
  return out;
}

}  // namespace dsm::tokenizer_internal
