// `dsm tokenize`: the tokenizer on the command line, for checking prompts and ids by hand.
#ifndef DSM_MODEL_TOKENIZER_CLI_H_
#define DSM_MODEL_TOKENIZER_CLI_H_

#include <iosfwd>
#include <string>

namespace dsm {

// Loads the tokenizer.json at `tokenizer_path`, then:
//  - encode (decode=false): reads all of `in` as UTF-8 text and writes its ids (no special
//    tokens added) to `out`, space-separated, on one line;
//  - decode: reads ids separated by whitespace and/or commas from `in` and writes their text
//    (special tokens kept) to `out`, with nothing appended.
// Returns 0 on success, or 2 after writing one line to `err` when the file cannot be loaded or
// an id is not an integer or names no token.
int RunTokenizeCommand(const std::string& tokenizer_path, bool decode, std::istream& in,
                       std::ostream& out, std::ostream& err);

}  // namespace dsm

#endif  // DSM_MODEL_TOKENIZER_CLI_H_
