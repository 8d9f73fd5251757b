// UTF-8 helpers and the GPT-2 byte-level alphabet shared by the tokenizer's parts.
// Everything here is a pure function or an immutable table: thread-safe.
#ifndef DSM_MODEL_TOKENIZER_BYTES_H_
#define DSM_MODEL_TOKENIZER_BYTES_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace dsm::tokenizer_internal {

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF).
bool IsValidUtf8(absl::string_view text);

// Rust's String::from_utf8_lossy (and the WHATWG decoder): every maximal ill-formed
// subsequence becomes one U+FFFD; well-formed text comes back unchanged.
std::string Utf8Lossy(absl::string_view bytes);

// Appends the UTF-8 encoding of code point `cp` (which must be a Unicode scalar value).
void AppendUtf8(char32_t cp, std::string* out);

// Length in bytes of the UTF-8 sequence that starts with `lead` in well-formed text.
inline std::size_t Utf8Length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// Decodes the code point at text[pos] of well-formed text; sets *len to its byte length.
char32_t DecodeUtf8At(absl::string_view text, std::size_t pos, std::size_t* len);

// Unicode's White_Space property (what Rust's char::is_whitespace and regex \s test).
bool IsUnicodeWhiteSpace(char32_t cp);

// GPT-2's bytes_to_unicode(): the printable character (as UTF-8) that stands for `byte`
// in byte-level BPE vocabularies, e.g. ' ' -> "Ġ", '\n' -> "Ċ".
const std::string& ByteToUnicode(unsigned char byte);

// The inverse of ByteToUnicode: the byte for code point `cp`, or -1 if `cp` stands for none.
int UnicodeToByte(char32_t cp);

// Maps every byte of `text` through ByteToUnicode.
std::string ByteLevelEncode(absl::string_view text);

}  // namespace dsm::tokenizer_internal

#endif  // DSM_MODEL_TOKENIZER_BYTES_H_
