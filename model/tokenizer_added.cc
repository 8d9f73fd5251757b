#include "model/tokenizer_added.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <utility>

#include "model/tokenizer_bytes.h"
#include "model/tokenizer_normalizer.h"

namespace dsm {
namespace {

using tokenizer_internal::DecodeUtf8At;
using tokenizer_internal::IsUnicodeWhiteSpace;

// Rust regex's \w: Alphabetic, Mark, Decimal_Number, Connector_Punctuation, Join_Control.
bool IsWordChar(char32_t cp) {
  const auto c = static_cast<UChar32>(cp);
  const int32_t mask = U_GET_GC_MASK(c);
  return u_hasBinaryProperty(c, UCHAR_ALPHABETIC) ||
         (mask & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0 ||
         u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL);
}

// Code point of the last character of `text` (non-empty, well-formed).
char32_t LastChar(absl::string_view text) {
  std::size_t pos = text.size() - 1;
  while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) --pos;
  std::size_t len = 0;
  return DecodeUtf8At(text, pos, &len);
}

}  // namespace

void AddedVocabulary::Trie::Add(absl::string_view pattern, int32_t token_index) {
  if (pattern.empty()) return;
  first_byte_[static_cast<unsigned char>(pattern[0])] = true;
  int32_t node = 0;
  for (const char c : pattern) {
    const auto [it, inserted] = edges_.try_emplace(EdgeKey(node, static_cast<unsigned char>(c)),
                                                   static_cast<int32_t>(terminal_.size()));
    if (inserted) terminal_.push_back(-1);
    node = it->second;
  }
  if (terminal_[node] < 0) terminal_[node] = token_index;  // the first token wins
}

bool AddedVocabulary::Trie::FindLeftmostLongest(absl::string_view text, std::size_t start,
                                                std::size_t* match_begin, std::size_t* match_end,
                                                int32_t* token_index) const {
  for (std::size_t pos = start; pos < text.size(); ++pos) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) continue;
    int32_t node = 0;
    int32_t best = -1;
    for (std::size_t j = pos; j < text.size(); ++j) {
      const auto it = edges_.find(EdgeKey(node, static_cast<unsigned char>(text[j])));
      if (it == edges_.end()) break;
      node = it->second;
      if (terminal_[node] >= 0) {
        best = terminal_[node];
        *match_end = j + 1;
      }
    }
    if (best >= 0) {
      *match_begin = pos;
      *token_index = best;
      return true;
    }
  }
  return false;
}

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens,
                                 const TokenizerNormalizer* normalizer)
    : tokens_(std::move(tokens)) {
  // Hugging Face puts special tokens before the others in its tries; among equal contents
  // the first one wins.
  std::vector<std::size_t> order(tokens_.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_partition(order.begin(), order.end(),
                        [&](std::size_t i) { return tokens_[i].special; });
  for (const std::size_t i : order) {
    const AddedToken& token = tokens_[i];
    by_id_.emplace(token.id, i);
    by_content_.emplace(token.content, token.id);
    if (token.special) special_contents_.insert(token.content);
    if (token.normalized) {
      normalized_trie_.Add(
          normalizer != nullptr ? normalizer->Normalize(token.content) : token.content,
          static_cast<int32_t>(i));
    } else {
      raw_trie_.Add(token.content, static_cast<int32_t>(i));
    }
  }
}

std::vector<AddedVocabulary::Segment> AddedVocabulary::Split(absl::string_view text,
                                                             bool normalized) const {
  if (text.empty()) return {{0, 0, -1}};
  const Trie& trie = normalized ? normalized_trie_ : raw_trie_;
  std::vector<Segment> segments;
  std::size_t start_offset = 0;  // end of the last accepted token
  std::size_t search_from = 0;   // the matcher's position: past every match, kept or not
  std::size_t begin = 0, end = 0;
  int32_t index = 0;
  while (trie.FindLeftmostLongest(text, search_from, &begin, &end, &index)) {
    search_from = end;
    const AddedToken& token = tokens_[index];
    if (token.single_word) {
      const bool space_before = begin == 0 || !IsWordChar(LastChar(text.substr(0, begin)));
      std::size_t len = 0;
      const bool space_after = end == text.size() || !IsWordChar(DecodeUtf8At(text, end, &len));
      if (!space_before || !space_after) continue;
    }
    if (token.lstrip) {
      std::size_t new_begin = begin;
      while (new_begin > 0) {
        std::size_t prev = new_begin - 1;
        while (prev > 0 && (static_cast<unsigned char>(text[prev]) & 0xC0) == 0x80) --prev;
        std::size_t len = 0;
        if (!IsUnicodeWhiteSpace(DecodeUtf8At(text, prev, &len))) break;
        new_begin = prev;
      }
      begin = std::max(new_begin, start_offset);
    }
    if (token.rstrip) {
      std::size_t len = 0;
      while (end < text.size() && IsUnicodeWhiteSpace(DecodeUtf8At(text, end, &len))) end += len;
    }
    if (start_offset < begin) segments.push_back({start_offset, begin, -1});
    segments.push_back({begin, end, token.id});
    start_offset = end;
  }
  if (start_offset != text.size()) segments.push_back({start_offset, text.size(), -1});
  return segments;
}

const AddedToken* AddedVocabulary::FindById(int32_t id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocabulary::FindByContent(absl::string_view content) const {
  const auto it = by_content_.find(content);
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

}  // namespace dsm
