#include "model/tokenizer_cli.h"

#include <cstdint>
#include <istream>
#include <iterator>
#include <ostream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "model/tokenizer.h"

namespace dsm {

int RunTokenizeCommand(const std::string& tokenizer_path, bool decode, std::istream& in,
                       std::ostream& out, std::ostream& err) {
  auto tokenizer = Tokenizer::FromFile(tokenizer_path);
  if (!tokenizer.ok()) {
    err << "tokenize: cannot load tokenizer: " << tokenizer.status().message() << "\n";
    return 2;
  }
  const std::string input((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!decode) {
    out << absl::StrJoin((*tokenizer)->Encode(input, /*add_special_tokens=*/false), " ") << "\n";
    return out.good() ? 0 : 1;
  }
  std::vector<int32_t> ids;
  for (const absl::string_view field :
       absl::StrSplit(input, absl::ByAnyChar(" \t\r\n\v\f,"), absl::SkipEmpty())) {
    int64_t id = 0;
    if (!absl::SimpleAtoi(field, &id)) {
      err << "tokenize: '" << field.substr(0, 40) << "' is not an integer token id\n";
      return 2;
    }
    if (id < 0 || id > INT32_MAX || !(*tokenizer)->IdToToken(static_cast<int32_t>(id))) {
      err << "tokenize: token id " << id << " is out of range (the tokenizer has "
          << (*tokenizer)->vocab_size() << " ids)\n";
      return 2;
    }
    ids.push_back(static_cast<int32_t>(id));
  }
  out << (*tokenizer)->Decode(ids, /*skip_special_tokens=*/false);
  return out.good() ? 0 : 1;
}

}  // namespace dsm
