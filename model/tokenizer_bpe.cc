#include "model/tokenizer_bpe.h"

#include <nlohmann/json.hpp>
#include <queue>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "model/tokenizer_bytes.h"
#include "model/tokenizer_json.h"

namespace dsm {
namespace {

using nlohmann::json;

// Ids past this are refused: the id -> token table is a dense vector.
constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

// Reads one merge: "a b" (split at the single space) or ["a", "b"].
absl::StatusOr<std::pair<std::string, std::string>> ParseMerge(const json& merge,
                                                               std::size_t index) {
  if (merge.is_string()) {
    const std::vector<std::string> parts = absl::StrSplit(merge.get<std::string>(), ' ');
    if (parts.size() == 2) return std::make_pair(parts[0], parts[1]);
  } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
             merge[1].is_string()) {
    return std::make_pair(merge[0].get<std::string>(), merge[1].get<std::string>());
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("BPE model: merge #%d must be \"a b\" or [\"a\", \"b\"], got %s", index + 1,
                      merge.dump().substr(0, 100)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const json& model) {
  constexpr absl::string_view kWhere = "BPE model";
  std::unique_ptr<BpeModel> bpe(new BpeModel());

  if (!model.is_object() || !model.contains("vocab") || !model["vocab"].is_object()) {
    return absl::InvalidArgumentError("BPE model: missing object field 'vocab'");
  }
  int64_t max_id = -1;
  bpe->vocab_.reserve(model["vocab"].size());
  for (const auto& [token, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxTokenId) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "BPE model: vocab entry '%s' must have an integer id in [0, %d]", token, kMaxTokenId));
    }
    bpe->vocab_.emplace(token, id.get<int32_t>());
    max_id = std::max(max_id, id.get<int64_t>());
  }
  // vocab_ is complete, so pointers to its keys stay valid from here on.
  bpe->id_to_token_.assign(static_cast<std::size_t>(max_id + 1), nullptr);
  for (const auto& [token, id] : bpe->vocab_) {
    if (bpe->id_to_token_[id] == nullptr) bpe->id_to_token_[id] = &token;
  }

  auto dropout = model.find("dropout");
  if (dropout != model.end() && !dropout->is_null() &&
      !(dropout->is_number() && dropout->get<double>() == 0.0)) {
    return absl::UnimplementedError("BPE model: dropout is not supported (ids would be random)");
  }

  auto unk = tokenizer_internal::GetOptionalString(model, "unk_token", kWhere);
  if (!unk.ok()) return unk.status();
  bpe->unk_token_ = *unk;
  auto prefix = tokenizer_internal::GetOptionalString(model, "continuing_subword_prefix", kWhere);
  if (!prefix.ok()) return prefix.status();
  bpe->continuing_subword_prefix_ = *prefix;
  auto suffix = tokenizer_internal::GetOptionalString(model, "end_of_word_suffix", kWhere);
  if (!suffix.ok()) return suffix.status();
  bpe->end_of_word_suffix_ = *suffix;
  for (auto [key, field] : {std::make_pair("fuse_unk", &bpe->fuse_unk_),
                            std::make_pair("byte_fallback", &bpe->byte_fallback_),
                            std::make_pair("ignore_merges", &bpe->ignore_merges_)}) {
    auto value = tokenizer_internal::GetBool(model, key, false, kWhere);
    if (!value.ok()) return value.status();
    *field = *value;
  }

  auto merges = tokenizer_internal::GetArray(model, "merges", kWhere);
  if (!merges.ok()) return merges.status();
  const std::size_t prefix_len =
      bpe->continuing_subword_prefix_ ? bpe->continuing_subword_prefix_->size() : 0;
  bpe->merges_.reserve((*merges)->size());
  uint32_t rank = 0;
  for (std::size_t i = 0; i < (*merges)->size(); ++i) {
    const json& entry = (**merges)[i];
    // The legacy text format may carry a "#version" header line; Hugging Face skips it.
    if (entry.is_string() && entry.get<std::string>().rfind("#version", 0) == 0) continue;
    auto merge = ParseMerge(entry, i);
    if (!merge.ok()) return merge.status();
    const auto& [a, b] = *merge;
    const std::string merged = absl::StrCat(a, b.size() >= prefix_len ? b.substr(prefix_len) : b);
    const auto a_id = bpe->vocab_.find(a);
    const auto b_id = bpe->vocab_.find(b);
    const auto new_id = bpe->vocab_.find(merged);
    for (const auto& [it, text] :
         {std::make_pair(a_id, &a), std::make_pair(b_id, &b), std::make_pair(new_id, &merged)}) {
      if (it == bpe->vocab_.end()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("BPE model: merge #%d ('%s' '%s') uses '%s', which is not in the vocab",
                            i + 1, a, b, *text));
      }
    }
    // A repeated pair keeps its last rank, as Hugging Face's HashMap collect does.
    bpe->merges_[PairKey(a_id->second, b_id->second)] = Merge{rank++, new_id->second};
  }
  bpe->cache_ = std::make_unique<CacheShard[]>(kCacheShards);
  return bpe;
}

std::optional<int32_t> BpeModel::TokenToId(absl::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= id_to_token_.size()) return nullptr;
  return id_to_token_[id];
}

void BpeModel::Tokenize(absl::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  CacheShard* shard = nullptr;
  if (cacheable) {
    shard = &cache_[absl::Hash<absl::string_view>()(word) % kCacheShards];
    std::lock_guard<std::mutex> lock(shard->mu);
    const auto it = shard->words.find(word);
    if (it != shard->words.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> merged = MergeWord(word);
  ids->insert(ids->end(), merged.begin(), merged.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(shard->mu);
    if (shard->words.size() >= kCacheWordsPerShard) shard->words.clear();
    shard->words.emplace(std::string(word), std::move(merged));
  }
}

std::vector<int32_t> BpeModel::MergeWord(absl::string_view word) const {
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  std::optional<int32_t> pending_unk;  // an unknown run not yet emitted
  const std::optional<int32_t> unk_id = unk_token_ ? TokenToId(*unk_token_) : std::nullopt;
  std::string buffer;
  for (std::size_t pos = 0; pos < word.size();) {
    const std::size_t len = tokenizer_internal::Utf8Length(static_cast<unsigned char>(word[pos]));
    const bool is_first = pos == 0;
    const bool is_last = pos + len >= word.size();
    absl::string_view piece = word.substr(pos, len);
    pos += len;
    if ((!is_first && continuing_subword_prefix_) || (is_last && end_of_word_suffix_)) {
      buffer.clear();
      if (!is_first && continuing_subword_prefix_) buffer += *continuing_subword_prefix_;
      absl::StrAppend(&buffer, piece);
      if (is_last && end_of_word_suffix_) buffer += *end_of_word_suffix_;
      piece = buffer;
    }
    const auto it = vocab_.find(piece);
    if (it != vocab_.end()) {
      if (pending_unk) symbols.push_back(*pending_unk);
      pending_unk.reset();
      symbols.push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      std::vector<int32_t> bytes;
      for (const char c : piece) {
        const auto byte_it =
            vocab_.find(absl::StrFormat("<0x%02X>", static_cast<unsigned char>(c)));
        if (byte_it == vocab_.end()) break;
        bytes.push_back(byte_it->second);
      }
      if (bytes.size() == piece.size()) {
        // Like Hugging Face, a pending unknown run is not flushed before the bytes.
        symbols.insert(symbols.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    if (unk_id) {
      if (pending_unk && !fuse_unk_) symbols.push_back(*pending_unk);
      pending_unk = unk_id;
    }
  }
  if (pending_unk) symbols.push_back(*pending_unk);
  MergeAll(&symbols);
  return symbols;
}

void BpeModel::MergeAll(std::vector<int32_t>* ids) const {
  const int n = static_cast<int>(ids->size());
  if (n < 2) return;
  struct Symbol {
    int32_t id;
    int prev;
    int next;
    bool alive;
  };
  std::vector<Symbol> symbols(n);
  for (int i = 0; i < n; ++i) symbols[i] = {(*ids)[i], i - 1, i + 1 < n ? i + 1 : -1, true};

  struct Candidate {
    uint32_t rank;
    int pos;
    int32_t new_id;
  };
  const auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> queue(later);
  const auto push_pair = [&](int left) {
    const int right = symbols[left].next;
    if (right < 0) return;
    const auto it = merges_.find(PairKey(symbols[left].id, symbols[right].id));
    if (it != merges_.end()) queue.push({it->second.rank, left, it->second.new_id});
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    // Skip entries made stale by an earlier merge of either symbol.
    const auto it = merges_.find(PairKey(left.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  ids->clear();
  for (const Symbol& s : symbols) {
    if (s.alive) ids->push_back(s.id);
  }
}

}  // namespace dsm
