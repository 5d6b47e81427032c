// `tstar tokenize`: text to token ids (and back) with a Hugging Face tokenizer.json.
#include <nlohmann/json.hpp>

#include "cli.h"
#include "tstar/error.h"
#include "tstar/tokenizer.h"

namespace tstar::cli {

namespace {

const char* kTokenizeHelp = R"(usage: tstar tokenize --tokenizer DIR_OR_FILE --text "..." [--no-special] [--decode]

Prints JSON {"ids": [...]} with the token ids of the text, exactly as Hugging Face
`tokenizers` would encode it (byte-level BPE tokenizer.json files: Qwen2/2.5/3,
DeepSeek-R1-Distill-Qwen, Llama 3, GPT-2 style).

  --tokenizer PATH     tokenizer.json, or a directory holding it (tokenizer_config.json
                       beside it is read too: add_bos_token, bos_token, eos_token)
  --text "..."         UTF-8 text to encode
  --no-special         do not add special tokens (BOS/EOS from the post-processor)
  --decode             also print "decoded": the ids decoded back to text
  --help               this text
)";

}  // namespace

int cmd_tokenize(const std::vector<std::string>& argv, std::ostream& out) {
  const Args args(argv, {"tokenizer", "text"}, {"no-special", "decode", "help"}, "tokenize");
  if (args.flag("help")) {
    out << kTokenizeHelp;
    return 0;
  }
  const Tokenizer tokenizer = Tokenizer::load(args.required("tokenizer"));
  const std::vector<int64_t> ids = tokenizer.encode(args.required("text"), !args.flag("no-special"));
  nlohmann::json result;
  result["ids"] = ids;
  if (args.flag("decode")) result["decoded"] = tokenizer.decode(ids);
  out << result.dump() << "\n";
  return 0;
}

}  // namespace tstar::cli
