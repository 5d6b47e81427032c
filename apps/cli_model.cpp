// `tstar logits`, `tstar generate`, `tstar params`: the model-facing subcommands.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>

#include "cli.h"
#include "tstar/error.h"
#include "tstar/model.h"
#include "tstar/noise.h"
#include "tstar/safetensors.h"
#include "tstar/tokenizer.h"

namespace tstar::cli {

namespace {

// The presets listed from the preset table, so the help cannot fall behind it.
std::string model_options_help() {
  const std::string indent(23, ' ');
  std::string presets, line;
  for (const std::string& name : preset_names()) {
    if (!line.empty() && line.size() + name.size() > 72) {
      presets += line + ",\n" + indent;
      line.clear();
    }
    line += (line.empty() ? "" : ", ") + name;
  }
  return fmt::format(R"(  --model DIR|PRESET   checkpoint directory (config.json + safetensors) or shape preset
                       (default: the embedded default model; presets, with random weights:
                       {}{})
  --dtype fp32|bf16|fp16  weight and activation dtype (default: fp32; fp16 needs CUDA)
  --device cpu|cuda    device (default: cpu; cuda needs a CUDA-enabled libtorch)
)", presets, line);
}

const char* kInputHelp = R"(  --text "..."         prompt text, encoded with the tokenizer
  --ids 1,2,3          prompt as token ids instead of text
  --tokenizer PATH     tokenizer.json or its directory (default: the model directory's)
  --no-special         do not add special tokens (BOS) when encoding --text
)";

struct ModelAndInput {
  Model model;
  std::optional<Tokenizer> tokenizer;
  std::vector<int64_t> ids;
};

// --model, else the embedded default model (written to its cache directory only when needed).
std::string model_argument(const Args& args) { return args.has("model") ? args.get("model", "") : default_model(); }

Model open_model(const Args& args) {
  LoadOptions options;
  options.dtype = parse_dtype(args.get("dtype", "fp32"));
  options.device = torch::Device(args.get("device", "cpu"));
  if (options.device.is_cuda() && !torch::cuda::is_available()) {
    throw Error("--device cuda: this libtorch has no CUDA support or no GPU is visible");
  }
  return Model::open(model_argument(args), options);
}

std::optional<Tokenizer> open_tokenizer(const Args& args, const Model& model) {
  if (args.has("tokenizer")) return Tokenizer::load(args.get("tokenizer", ""));
  if (!model.source_dir().empty() && std::filesystem::exists(model.source_dir() / "tokenizer.json")) {
    return Tokenizer::load(model.source_dir());
  }
  return std::nullopt;
}

std::vector<int64_t> parse_ids(const std::string& text) {
  std::vector<int64_t> ids;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    size_t used = 0;
    try {
      ids.push_back(std::stoll(item, &used));
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size()) throw Error(fmt::format("--ids: '{}' is not an integer", item));
  }
  if (ids.empty()) throw Error("--ids: no token ids given");
  return ids;
}

ModelAndInput open_model_and_input(const Args& args) {
  if (args.has("text") == args.has("ids")) throw Error("give exactly one of --text and --ids");
  ModelAndInput result{open_model(args), std::nullopt, {}};
  result.tokenizer = open_tokenizer(args, result.model);
  if (args.has("ids")) {
    result.ids = parse_ids(args.get("ids", ""));
  } else {
    if (!result.tokenizer) {
      throw Error("--text needs a tokenizer: the model has no tokenizer.json; pass --tokenizer PATH or --ids");
    }
    result.ids = result.tokenizer->encode(args.get("text", ""), !args.flag("no-special"));
    if (result.ids.empty()) throw Error("--text encodes to no tokens");
  }
  return result;
}

nlohmann::json describe_model(const Args& args, const Model& model) {
  return {{"model", model_argument(args)},
          {"architecture", model.config().architecture},
          {"dtype", dtype_name(model.dtype())},
          {"device", model.device().str()}};
}

}  // namespace

int cmd_logits(const std::vector<std::string>& argv, std::ostream& out) {
  Args args(argv, {"model", "dtype", "device", "text", "ids", "tokenizer", "top", "out"}, {"no-special", "help"},
            "logits");
  if (args.flag("help")) {
    out << "usage: tstar logits --text \"...\" [options]\n\n"
           "Prints JSON with the prompt ids and the top-k last-position logits.\n\n"
        << model_options_help() << kInputHelp
        << "  --top K              how many top logits to print (default: 10)\n"
           "  --out FILE           also write all last-position logits as float32 safetensors\n"
           "                       (one tensor named 'logits', shape [vocab])\n";
    return 0;
  }
  const int64_t top = args.get_int("top", 10);
  if (top < 0) throw Error(fmt::format("--top must be >= 0, got {}", top));
  ModelAndInput run = open_model_and_input(args);
  torch::Tensor logits = run.model.last_logits({run.ids}).squeeze(0).to(torch::kCPU);  // [V]
  const int64_t k = std::min<int64_t>(top, logits.size(0));
  auto [values, indices] = logits.topk(k);
  nlohmann::json result = describe_model(args, run.model);
  result["ids"] = run.ids;
  nlohmann::json entries = nlohmann::json::array();
  for (int64_t i = 0; i < k; ++i) {
    const int64_t id = indices[i].item<int64_t>();
    nlohmann::json entry = {{"id", id}, {"logit", values[i].item<float>()}};
    if (run.tokenizer) entry["text"] = run.tokenizer->decode({id});  // "" for ids it cannot spell
    entries.push_back(entry);
  }
  result["top"] = entries;
  if (args.has("out")) {
    write_safetensors(args.get("out", ""), {{"logits", logits.contiguous()}},
                      {{"ids", nlohmann::json(run.ids).dump()}});
    result["out"] = args.get("out", "");
  }
  out << result.dump(2) << "\n";
  return 0;
}

int cmd_generate(const std::vector<std::string>& argv, std::ostream& out) {
  Args args(argv, {"model", "dtype", "device", "text", "ids", "tokenizer", "max-new"},
            {"no-special", "no-stop", "help"}, "generate");
  if (args.flag("help")) {
    out << "usage: tstar generate --text \"...\" --max-new N [options]\n\n"
           "Greedy continuation with the KV cache; prints JSON with the new ids and their text.\n\n"
        << model_options_help() << kInputHelp
        << "  --max-new N          number of tokens to generate (default: 16)\n"
           "  --no-stop            keep going past the end-of-sequence token\n";
    return 0;
  }
  const int64_t max_new = args.get_int("max-new", 16);
  if (max_new < 0) throw Error(fmt::format("--max-new must be >= 0, got {}", max_new));
  ModelAndInput run = open_model_and_input(args);
  int64_t stop = -1;
  if (!args.flag("no-stop")) stop = run.tokenizer ? run.tokenizer->eos_id() : run.model.config().eos_token_id;
  std::vector<int64_t> generated = run.model.generate_greedy({run.ids}, max_new, stop).front();
  nlohmann::json result = describe_model(args, run.model);
  result["prompt_ids"] = run.ids;
  result["ids"] = generated;
  if (run.tokenizer) result["text"] = run.tokenizer->decode(generated, /*skip_special=*/true);
  out << result.dump(2) << "\n";
  return 0;
}

int cmd_params(const std::vector<std::string>& argv, std::ostream& out) {
  Args args(argv, {"model", "dtype", "device", "exclude", "depth-groups"}, {"groups", "help"}, "params");
  if (args.flag("help")) {
    out << "usage: tstar params [options]\n\n"
           "Prints JSON with every parameter's HF name, shape and dtype, and the total count.\n\n"
        << model_options_help()
        << "  --groups             instead, the tensors each noise group selects\n"
           "  --exclude notebook|all-norms  with --groups: the exclusion convention (default: notebook, whose\n"
           "                       rule noises the final norm and lm_head but no per-layer norm, embedding\n"
           "                       or bias; all-norms also skips the final norm)\n"
           "  --depth-groups notebook|thirds  with --groups: early/middle/late as the notebook's layers\n"
           "                       0-7/8-23/24-31 (default) or thirds of the depth\n";
    return 0;
  }
  Model model = open_model(args);
  if (args.flag("groups")) {
    out << describe_groups(model, exclusion_convention(args.get("exclude", "notebook")),
                           parse_depth_groups(args.get("depth-groups", "notebook")))
               .dump(2)
        << "\n";
    return 0;
  }
  nlohmann::json result = describe_model(args, model);
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [name, tensor] : model.parameters().entries()) {
    list.push_back({{"name", name}, {"shape", tensor.sizes().vec()}, {"dtype", dtype_name(tensor.scalar_type())}});
  }
  result["parameters"] = list;
  result["total"] = model.parameters().num_elements();
  result["tied_lm_head"] = model.config().tie_word_embeddings;
  out << result.dump(2) << "\n";
  return 0;
}

}  // namespace tstar::cli
