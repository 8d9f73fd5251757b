#include "model/tokenizer_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/tokenizer_bytes.h"

namespace dsm {
namespace {

// Oniguruma's \s is the Unicode White_Space property; PCRE2's \s (with UCP) also matches
// U+180E. These are the White_Space code points, to sit inside a character class.
constexpr absl::string_view kWhiteSpaceClassBody =
    "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";
// Oniguruma (Ruby syntax) reads \h as a hex digit; PCRE2 as horizontal white space.
constexpr absl::string_view kHexClassBody = "0-9A-Fa-f";

// Rewrites the escapes whose meaning differs between Oniguruma and PCRE2 (see the header).
// \S and \H inside a character class are left alone: PCRE2 cannot negate a set in a class,
// and no tokenizer we know writes them there.
std::string TranslateOnigurumaEscapes(absl::string_view p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char n = p[i + 1];
      if (n == 'Q') {  // \Q...\E quotes everything up to \E
        const std::size_t end = p.find("\\E", i + 2);
        const std::size_t stop = end == absl::string_view::npos ? p.size() : end + 2;
        absl::StrAppend(&out, p.substr(i, stop - i));
        i = stop - 1;
        continue;
      }
      const absl::string_view body = (n == 's' || n == 'S') ? kWhiteSpaceClassBody : kHexClassBody;
      if (n == 's' || n == 'h') {
        if (in_class) {
          absl::StrAppend(&out, body);
        } else {
          absl::StrAppend(&out, "[", body, "]");
        }
        ++i;
        continue;
      }
      if ((n == 'S' || n == 'H') && !in_class) {
        absl::StrAppend(&out, "[^", body, "]");
        ++i;
        continue;
      }
      out.push_back(c);
      out.push_back(n);
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      std::size_t j = i + 1;
      if (j < p.size() && p[j] == '^') out.push_back(p[j++]);
      if (j < p.size() && p[j] == ']') out.push_back(p[j++]);  // a leading ] is literal
      i = j - 1;
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // [:alpha:]
      const std::size_t end = p.find(":]", i + 2);
      if (end != absl::string_view::npos) {
        absl::StrAppend(&out, p.substr(i, end + 2 - i));
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out.push_back(c);
  }
  return out;
}

// Per-thread match scratch: match data for the whole match only, and a JIT stack large
// enough that the tokenizer patterns never run out of it on long inputs.
struct MatchScratch {
  MatchScratch()
      : data(pcre2_match_data_create(1, nullptr)),
        context(pcre2_match_context_create(nullptr)),
        jit_stack(pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr)) {
    if (jit_stack != nullptr) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~MatchScratch() {
    pcre2_match_data_free(data);
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(jit_stack);
  }
  MatchScratch(const MatchScratch&) = delete;
  MatchScratch& operator=(const MatchScratch&) = delete;

  pcre2_match_data* data;
  pcre2_match_context* context;
  pcre2_jit_stack* jit_stack;
};

MatchScratch& Scratch() {
  thread_local MatchScratch scratch;
  return scratch;
}

std::string Pcre2ErrorText(int code) {
  PCRE2_UCHAR buffer[256];
  const int n = pcre2_get_error_message(code, buffer, sizeof(buffer));
  return n < 0 ? absl::StrCat("PCRE2 error ", code)
               : std::string(reinterpret_cast<const char*>(buffer), n);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TokenizerRegex>> TokenizerRegex::Compile(absl::string_view pattern,
                                                                        bool literal) {
  if (!tokenizer_internal::IsValidUtf8(pattern)) {
    return absl::InvalidArgumentError("regex pattern is not valid UTF-8");
  }
  const std::string translated =
      literal ? std::string(pattern) : TranslateOnigurumaEscapes(pattern);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  // Oniguruma (Ruby syntax) anchors ^ and $ at every line, as PCRE2_MULTILINE does.
  // PCRE2_LITERAL refuses the other options, which only matter for real patterns anyway.
  const uint32_t options =
      literal ? (PCRE2_UTF | PCRE2_LITERAL) : (PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()),
                                   translated.size(), options, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bad regex /%s/: %s at offset %d of the PCRE2 pattern /%s/", pattern,
                        Pcre2ErrorText(error_code), error_offset, translated));
  }
  // Without JIT (an unsupported platform) pcre2_match falls back to the interpreter.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return std::unique_ptr<TokenizerRegex>(new TokenizerRegex(std::string(pattern), code));
}

TokenizerRegex::~TokenizerRegex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

bool TokenizerRegex::Find(absl::string_view text, std::size_t start, Span* match) const {
  static const char kEmpty[] = "";
  MatchScratch& scratch = Scratch();
  const char* subject = text.empty() ? kEmpty : text.data();
  const int rc =
      pcre2_match(static_cast<const pcre2_code*>(code_), reinterpret_cast<PCRE2_SPTR>(subject),
                  text.size(), start, PCRE2_NO_UTF_CHECK, scratch.data, scratch.context);
  if (rc < 0) return false;  // no match, or a resource limit (documented in the header)
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.data);
  *match = {ovector[0], ovector[1] < ovector[0] ? ovector[0] : ovector[1]};
  return true;
}

std::vector<TokenizerRegex::Span> TokenizerRegex::FindAll(absl::string_view text) const {
  std::vector<Span> matches;
  std::size_t last_end = 0;
  bool have_last = false;
  std::size_t last_match_end = 0;
  Span m;
  while (last_end <= text.size() && Find(text, last_end, &m)) {
    if (m.first == m.second) {
      // Step over one character so the search progresses; skip an empty match that
      // touches the previous match, as Rust does.
      last_end = m.second < text.size() ? m.second + tokenizer_internal::Utf8Length(
                                                         static_cast<unsigned char>(text[m.second]))
                                        : m.second + 1;
      if (have_last && last_match_end == m.second) continue;
    } else {
      last_end = m.second;
    }
    have_last = true;
    last_match_end = m.second;
    matches.push_back(m);
  }
  return matches;
}

}  // namespace dsm
