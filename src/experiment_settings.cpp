// Experiment settings: defaults (the notebook's), validation, their record in results.json, prompt
// files, and the table of flags that set them.
#include "tstar/experiments.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tstar/error.h"
#include "tstar/parse.h"

namespace tstar {

std::vector<std::string> notebook_prompts() {
  return {"Count the eggs: 🥚🥚🥚🥚🥚. How many eggs are there?",
          "I have 3 apples and 4 oranges. How many fruits in total?",
          "Count: 1, 2, 3, 4, 5, 6, 7. What's the last number?",
          "There are 2 cats, 3 dogs, and 1 bird. How many animals?"};
}

std::vector<std::string> notebook_evolution_prompts() {
  return {"Count from 1 to 10: 1, 2,", "The capital of France is", "def fibonacci(n):\n    if n <= 1:"};
}

std::vector<double> notebook_scales() { return {0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05}; }

PromptSet read_prompt_set(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("prompt file '{}' cannot be read", path.string()));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  PromptSet set;
  auto take = [&](const nlohmann::json& item, const std::string& where) {
    if (item.is_string()) {
      set.prompts.push_back(item.get<std::string>());
      set.answers.emplace_back();
    } else if (item.is_object() && item.contains("prompt") && item.at("prompt").is_string()) {
      set.prompts.push_back(item.at("prompt").get<std::string>());
      const auto answer = item.find("answer");
      if (answer != item.end() && !answer->is_string() && !answer->is_null()) {
        throw Error(fmt::format("{}: \"answer\" must be a string", where));
      }
      set.answers.push_back(answer != item.end() && answer->is_string() ? answer->get<std::string>() : "");
    } else {
      throw Error(fmt::format("{}: expected a prompt string or an object with a string \"prompt\"", where));
    }
    if (set.prompts.back().empty()) throw Error(fmt::format("{}: empty prompt", where));
  };
  const auto whole = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!whole.is_discarded() && whole.is_array()) {
    for (size_t i = 0; i < whole.size(); ++i) take(whole[i], fmt::format("{}: item {}", path.string(), i));
  } else {
    std::istringstream lines(text);
    std::string line;
    for (size_t number = 1; std::getline(lines, line); ++number) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const auto item = nlohmann::json::parse(line, nullptr, false);
      const std::string where = fmt::format("{}: line {}", path.string(), number);
      if (item.is_discarded()) throw Error(where + ": not valid JSON (expected a JSON array or JSON Lines)");
      take(item, where);
    }
  }
  if (set.prompts.empty()) throw Error(fmt::format("prompt file '{}' holds no prompts", path.string()));
  return set;
}

void ExperimentSettings::validate() const {
  if (prompts.empty()) throw Error("experiments: no prompts");
  if (!answers.empty() && answers.size() != prompts.size()) {
    throw Error(fmt::format("experiments: {} answers for {} prompts", answers.size(), prompts.size()));
  }
  if (batch_size < 1) throw Error("experiments: batch size must be at least 1");
  if (evolution_prompts.empty()) throw Error("experiments: no evolution prompts");
  if (seeds.empty()) throw Error("experiments: no seeds");
  if (scales.empty() && detail_scales.empty()) throw Error("experiments: no noise scales");
  validate_noise(noise, reference);
  for (double s : scales) validate_scale(s);
  for (double s : detail_scales) validate_scale(s);
  if (layer_prompt >= prompts.size()) {
    throw Error(fmt::format("experiments: layer prompt {} but only {} prompts", layer_prompt, prompts.size()));
  }
  if (evolution_steps < 1) throw Error("experiments: evolution needs at least one step");
  if (!(t_lo > 0 && t_lo < 1 && t_hi > 1)) {
    throw Error(fmt::format("experiments: bad temperature search bounds [{}, {}] (need lo < 1 < hi)", t_lo, t_hi));
  }
}

std::filesystem::path ExperimentSettings::tokenizer_path() const {
  if (!tokenizer.empty()) return tokenizer;
  const std::filesystem::path dir(model);
  if (std::filesystem::is_directory(dir) && std::filesystem::exists(dir / "tokenizer.json")) return dir / "tokenizer.json";
  throw Error(fmt::format("model '{}' has no tokenizer.json: pass --tokenizer PATH (a tokenizer.json or its directory)",
                          model));
}

std::string ExperimentSettings::reference_name() const {
  return noise.mode == noise_kernels::Mode::kAdditive ? scale_reference_name(reference) : "none (weight-relative noise)";
}

nlohmann::json ExperimentSettings::to_json() const {
  return {{"model", model},
          {"tokenizer", tokenizer},
          {"dtype", dtype_name(dtype)},
          {"logits_dtype", logits_dtype_name(logits)},
          {"device", device.str()},
          {"prompts", prompts},
          {"answers", answers},
          {"batch_size", batch_size},
          {"evolution_prompts", evolution_prompts},
          {"evolution_steps", evolution_steps},
          {"layer_prompt", layer_prompt},
          {"seeds", seeds},
          {"scales", scales},
          {"detail_scales", detail_scales},
          {"noise", noise_type_name(noise)},
          {"reference", reference_name()},
          {"exclude", exclude},
          {"exclusion", exclusion},
          {"depth_groups", depth_groups_name(depth_groups)},
          {"temperature_search", {{"lo", t_lo}, {"hi", t_hi},
                                  {"method", "root of the mean KL's slope in 1/T (safeguarded Newton); T = 1 kept "
                                             "when no worse"}}},
          {"predictor_pooling", "ratio of sums over (seed, prompt) pairs, as the mean KL pools them"},
          {"common_random_numbers", "one unit-noise draw per (seed, tensor), reused across scales"}};
}


// ---------------------------------------------------------------------------------------------
// The flags

namespace {

double parse_number(const std::string& text, const std::string& flag) {
  if (auto value = parse_double(text)) return *value;
  throw Error(fmt::format("--{} expects numbers, got '{}'", flag, text));
}

std::vector<double> parse_scales(const std::string& text, const std::string& flag) {
  std::vector<double> scales;
  for (const auto& item : split_commas(text)) {
    scales.push_back(parse_number(item, flag));
    validate_scale(scales.back());
  }
  if (scales.empty()) throw Error(fmt::format("--{} lists no scales", flag));
  return scales;
}

PromptSet read_prompt_flag(const std::string& path, const std::string& flag) {
  try {
    return read_prompt_set(path);
  } catch (const Error& e) {
    throw Error(fmt::format("--{}: {}", flag, e.what()));
  }
}

std::vector<SettingFlag> make_setting_flags() {
  using S = ExperimentSettings;
  return {
      {"model", "DIR|PRESET", "model of the experiments (default: the embedded default model)",
       [](const std::string& v, S& s) { s.model = v; }},
      {"tokenizer", "PATH", "tokenizer.json or its directory (default: the model directory's)",
       [](const std::string& v, S& s) { s.tokenizer = v; }},
      {"dtype", "fp32|bf16|fp16", "experiment weight dtype (default: bf16, as the notebook)",
       [](const std::string& v, S& s) { s.dtype = parse_dtype(v); }},
      {"logits-dtype", "fp32|model",
       "precision of the final norm and lm_head (default: fp32, so bf16 rounding\n"
       "of the logits puts no floor under alpha; model: as HF computes them).\n"
       "WeightNoise and Layer also report alpha_model_logits, alpha on the\n"
       "model-dtype logits from the same forward",
       [](const std::string& v, S& s) { s.logits = parse_logits_dtype(v); }},
      {"device", "cpu|cuda", "device (default: cpu)", [](const std::string& v, S& s) { s.device = torch::Device(v); }},
      {"prompts", "FILE",
       "prompts: a JSON array of strings or of {\"prompt\", \"answer\"} objects, or JSON\n"
       "Lines of either (default: the notebook's four); with answers, P(answer) and\n"
       "accuracy are reported (fixtures/prompts/ has a 256-question set for the\n"
       "embedded model and a 128-prompt general set)",
       [](const std::string& v, S& s) {
         const PromptSet set = read_prompt_flag(v, "prompts");
         s.prompts = set.prompts;
         bool any_answer = false;
         for (const auto& answer : set.answers) any_answer = any_answer || !answer.empty();
         s.answers = any_answer ? set.answers : std::vector<std::string>{};
       }},
      {"evolution-prompts", "FILE", "prompts for Evolution, same formats (default: the notebook's three)",
       [](const std::string& v, S& s) { s.evolution_prompts = read_prompt_flag(v, "evolution-prompts").prompts; }},
      {"seeds", "N", "noise seeds 0..N-1 per scale (default: 8)",
       [](const std::string& v, S& s) {
         const auto count = parse_integer(v);
         if (!count || *count < 1) throw Error(fmt::format("--seeds expects a positive integer, got '{}'", v));
         s.seeds.clear();
         for (int64_t seed = 0; seed < *count; ++seed) s.seeds.push_back(static_cast<uint64_t>(seed));
       }},
      {"scales", "A,B,...", "WeightNoise scales (default: 0,0.001,0.002,0.005,0.01,0.02,0.05)",
       [](const std::string& v, S& s) { s.scales = parse_scales(v, "scales"); }},
      {"detail-scales", "A,...", "Layer/Evolution/TempSweep scales (default: 0.01)",
       [](const std::string& v, S& s) { s.detail_scales = parse_scales(v, "detail-scales"); }},
      {"noise", "TYPE", "gaussian|uniform|laplace|multiplicative (default: gaussian)",
       [](const std::string& v, S& s) { s.noise = parse_noise_type(v); }},
      {"reference", "REF", "tensor_std|row_std|abs_max (default: tensor_std)",
       [](const std::string& v, S& s) { s.reference = parse_scale_reference(v); }},
      {"exclude", "CONVENTION",
       "parameters never noised: notebook (default: the notebook's rule, \"weight\" in\n"
       "the name and none of layernorm/ln/embed, so the final norm and lm_head are\n"
       "noised, biases, embeddings and per-layer norms are not) or all-norms (also\n"
       "skips model.norm.weight); tstar params --groups lists each group's tensors",
       [](const std::string& v, S& s) {
         s.exclude = exclusion_convention(v);
         s.exclusion = v;
       }},
      {"depth-groups", "notebook|thirds",
       "early/middle/late: the notebook's layers 0-7/8-23/24-31 cut at the\n"
       "model's depth (default), or thirds of the depth",
       [](const std::string& v, S& s) { s.depth_groups = parse_depth_groups(v); }},
  };
}

}  // namespace

const std::vector<SettingFlag>& setting_flags() {
  static const std::vector<SettingFlag> table = make_setting_flags();
  return table;
}

ExperimentSettings settings_from_flags(const std::map<std::string, std::string>& given) {
  ExperimentSettings settings;
  if (given.count("model") == 0) settings.model = default_model();
  for (const auto& flag : setting_flags()) {
    if (auto it = given.find(flag.name); it != given.end()) flag.apply(it->second, settings);
  }
  for (const auto& [name, value] : given) {
    bool known = false;
    for (const auto& flag : setting_flags()) known = known || flag.name == name;
    if (!known) throw Error(fmt::format("unknown experiment setting --{}", name));
  }
  return settings;
}

}  // namespace tstar
