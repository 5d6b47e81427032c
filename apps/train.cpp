// The training tool behind `tstar train`: corpus -> token batches -> AdamW on tstar::Model's own
// forward pass -> evaluation -> a model directory with a model card.
#include "train.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>

#include "tstar/error.h"
#include "tstar/model.h"
#include "tstar/safetensors.h"
#include "tstar/tokenizer.h"

namespace tstar {

namespace {

constexpr int64_t kVocabMultiple = 64;       // embedding rows rounded up, as Qwen pads its vocabulary
constexpr int64_t kChunkBatches = 8;         // batches drawn together and sorted by length
constexpr int64_t kMaxAnswerTokens = 5;      // " ", up to two digits, EOS, one spare
constexpr int64_t kMaxPositions = 512;       // training examples are < 80 tokens; informational for HF

ModelConfig model_config(const TrainOptions& o, const Tokenizer& tokenizer) {
  if (o.hidden_size % o.num_heads != 0 || o.num_heads % o.num_kv_heads != 0) {
    throw Error(fmt::format("train: hidden size {} / {} heads / {} KV heads do not divide evenly", o.hidden_size,
                            o.num_heads, o.num_kv_heads));
  }
  ModelConfig c;
  c.architecture = "Qwen2ForCausalLM";
  c.hidden_size = o.hidden_size;
  c.intermediate_size = o.intermediate_size;
  c.num_layers = o.num_layers;
  c.num_heads = o.num_heads;
  c.num_kv_heads = o.num_kv_heads;
  c.head_dim = o.hidden_size / o.num_heads;
  c.vocab_size = (tokenizer.vocab_size() + kVocabMultiple - 1) / kVocabMultiple * kVocabMultiple;
  c.rope_theta = 10000.0;
  c.max_position_embeddings = kMaxPositions;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = false;
  c.attention_bias = true;
  c.torch_dtype = "float32";
  c.eos_token_id = tokenizer.eos_id();
  return c;
}

// GPT-2 style initialisation from one seeded generator: N(0, 0.02) for matrices and embeddings,
// residual output projections scaled by 1/sqrt(2 * layers), norms at 1, biases at 0.
ParameterMap initial_parameters(const ModelConfig& config, uint64_t seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(config.num_layers));
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  ParameterMap params;
  for (const auto& [name, shape, role, weight, layer] : expected_parameters(config)) {
    torch::Tensor t = torch::empty(shape, torch::kFloat);
    switch (role) {
      case ParameterSpec::Role::kNorm: t.fill_(1.0); break;
      case ParameterSpec::Role::kBias: t.zero_(); break;
      default: {
        const bool residual = ends_with(name, "o_proj.weight") || ends_with(name, "down_proj.weight");
        t.normal_(0.0, residual ? residual_std : 0.02, generator);
      }
    }
    params.add(name, t.requires_grad_(true));
  }
  return params;
}

// One example as token ids with per-token loss weights (the weight of predicting that token).
struct EncodedExample {
  std::vector<int64_t> ids;
  std::vector<float> weights;
};

EncodedExample encode_example(const CorpusExample& example, const Tokenizer& tokenizer, double answer_weight) {
  EncodedExample out;
  out.ids = tokenizer.encode(example.prompt, /*add_special=*/false);
  out.weights.assign(out.ids.size(), 1.0f);
  const float completion_weight = example.answer.empty() ? 1.0f : static_cast<float>(answer_weight);
  for (int64_t id : tokenizer.encode(example.completion, false)) {
    out.ids.push_back(id);
    out.weights.push_back(completion_weight);
  }
  out.ids.push_back(tokenizer.eos_id());
  out.weights.push_back(completion_weight);
  return out;
}

struct Batch {
  torch::Tensor inputs;   // [B, T] int64, right-padded with EOS
  torch::Tensor targets;  // [B, T] int64
  torch::Tensor weights;  // [B, T] fp32, 0 on padding
  int64_t real_tokens = 0;
};

// Right padding is harmless under causal attention: real positions never see the pads after them.
Batch make_batch(const std::vector<EncodedExample>& examples, int64_t pad_id) {
  int64_t T = 0;
  for (const auto& e : examples) T = std::max<int64_t>(T, static_cast<int64_t>(e.ids.size()) - 1);
  const int64_t B = static_cast<int64_t>(examples.size());
  Batch batch;
  batch.inputs = torch::full({B, T}, pad_id, torch::kLong);
  batch.targets = torch::full({B, T}, pad_id, torch::kLong);
  batch.weights = torch::zeros({B, T}, torch::kFloat);
  auto inputs = batch.inputs.accessor<int64_t, 2>();
  auto targets = batch.targets.accessor<int64_t, 2>();
  auto weights = batch.weights.accessor<float, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& e = examples[b];
    for (size_t t = 0; t + 1 < e.ids.size(); ++t) {
      inputs[b][t] = e.ids[t];
      targets[b][t] = e.ids[t + 1];
      weights[b][t] = e.weights[t + 1];
    }
    batch.real_tokens += static_cast<int64_t>(e.ids.size());
  }
  return batch;
}

// The next kChunkBatches batches: examples drawn in order, sorted by length (less padding), split.
std::vector<Batch> next_chunk(CorpusGenerator& corpus, const Tokenizer& tokenizer, const TrainOptions& o,
                              int64_t* examples_seen) {
  std::vector<EncodedExample> encoded;
  for (int64_t i = 0; i < o.batch_size * kChunkBatches; ++i) {
    encoded.push_back(encode_example(corpus.next_train(), tokenizer, o.answer_weight));
  }
  *examples_seen += static_cast<int64_t>(encoded.size());
  std::stable_sort(encoded.begin(), encoded.end(),
                   [](const EncodedExample& a, const EncodedExample& b) { return a.ids.size() < b.ids.size(); });
  std::vector<Batch> batches;
  for (int64_t k = 0; k < kChunkBatches; ++k) {
    std::vector<EncodedExample> part(encoded.begin() + k * o.batch_size, encoded.begin() + (k + 1) * o.batch_size);
    batches.push_back(make_batch(part, tokenizer.eos_id()));
  }
  return batches;
}

double learning_rate_at(const TrainOptions& o, int64_t step) {
  if (step < o.warmup_steps) return o.learning_rate * static_cast<double>(step + 1) / o.warmup_steps;
  const double progress = static_cast<double>(step - o.warmup_steps) / std::max<int64_t>(1, o.steps - o.warmup_steps);
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
  return o.learning_rate * (o.min_lr_fraction + (1.0 - o.min_lr_fraction) * cosine);
}

torch::optim::AdamW make_optimizer(ParameterMap& params, const ModelConfig& config, const TrainOptions& o) {
  std::vector<torch::Tensor> decayed, plain;
  const auto specs = expected_parameters(config);
  for (const auto& spec : specs) {
    const bool decay = spec.role == ParameterSpec::Role::kMatrix || spec.role == ParameterSpec::Role::kEmbedding;
    (decay ? decayed : plain).push_back(params.at(spec.name));
  }
  auto options = [&](double weight_decay) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(o.learning_rate).betas({0.9, 0.95}).eps(1e-8).weight_decay(weight_decay));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decayed, options(o.weight_decay));
  groups.emplace_back(plain, options(0.0));
  return torch::optim::AdamW(groups, torch::optim::AdamWOptions(o.learning_rate));
}

torch::Tensor weighted_loss(const Model& model, const Batch& batch) {
  auto logits = model.sequence_logits(batch.inputs);  // [B, T, V]
  const int64_t V = logits.size(-1);
  auto losses = torch::nn::functional::cross_entropy(
      logits.reshape({-1, V}), batch.targets.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));  // [B * T]
  auto weights = batch.weights.reshape({-1});
  return (losses * weights).sum() / weights.sum();
}

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\n");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\n") - first + 1);
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw Error(fmt::format("cannot write '{}'", path.string()));
}

std::string model_card(const TrainOptions& o, const TrainResult& r, const std::vector<CorpusExample>& notebook);

void save_model_dir(const TrainOptions& o, const Model& model, const TrainResult& result) {
  const auto& dir = o.out_dir;
  std::filesystem::create_directories(dir);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& [name, tensor] : model.parameters().entries()) tensors.emplace_back(name, tensor.detach());
  write_safetensors(dir / "model.safetensors", tensors,
                    {{"format", "pt"}, {"producer", "tstar train"}, {"seed", std::to_string(o.seed)}});
  write_text(dir / "config.json", result.config.to_json().dump(2) + "\n");
  for (const char* file : {"tokenizer.json", "tokenizer_config.json"}) {
    const auto source = o.tokenizer_dir / file;
    if (!std::filesystem::exists(source)) throw Error(fmt::format("train: '{}' does not exist", source.string()));
    std::filesystem::copy_file(source, dir / file, std::filesystem::copy_options::overwrite_existing);
  }
  write_text(dir / "MODEL_CARD.md", model_card(o, result, notebook_examples()));
}

std::string accuracy_line(const std::string& label, int64_t correct, int64_t total) {
  return fmt::format("| {} | {} / {} | {:.1f}% |\n", label, correct, total, total ? 100.0 * correct / total : 0.0);
}

std::string accuracy_section(const std::string& title, const CountingEval& eval) {
  std::string section = fmt::format("\n## {} (greedy, {} examples)\n\n| task | correct | accuracy |\n|---|---:|---:|\n",
                                    title, eval.total);
  for (const auto& [task, counts] : eval.per_task) section += accuracy_line(task, counts.first, counts.second);
  section += accuracy_line("**all**", eval.correct, eval.total);
  section += fmt::format("\nMean probability of the most likely first digit (after \" \"): {:.3f}\n",
                         eval.mean_digit_confidence);
  return section;
}

std::string model_card(const TrainOptions& o, const TrainResult& r, const std::vector<CorpusExample>& notebook) {
  const ModelConfig& c = r.config;
  std::string card = fmt::format(R"(# tstar-counting: the embedded default model

A small Qwen2-architecture causal LM that tstar trains itself, so that the quick start shows a
language model's behaviour (peaked logits, correct answers to the notebook's counting prompts)
with nothing downloaded. It is the default `--model` of `tstar` and `bench`.

## How it was made

    {}

- Trainer: `tstar train` (apps/train.cpp), libtorch C++ autograd through tstar::Model's own forward
  pass; AdamW (betas 0.9/0.95, weight decay {} on matrices and embeddings), peak learning rate {},
  {} warm-up steps then cosine decay to {}x, gradient clipping at 1.0, fp32.
- Seed {}, {} threads (at::set_num_threads), {} steps of {} examples (right-padded batches,
  examples sorted by length within chunks of {} batches).
- Loss: next-token cross-entropy on every token; tokens of the answer (and its EOS) weigh {}x.
- Machine: {}.
- Wall time {:.0f} s ({:.1f} min); {:.0f} real tokens/s; {} examples, {} tokens seen.

## Architecture

Qwen2ForCausalLM: hidden {}, intermediate {}, {} layers, {} attention heads and {} KV heads
(GQA, head_dim {}), q/k/v bias, untied lm_head, RoPE theta {}, RMSNorm eps {}, vocabulary {}
(tokenizer {} tokens rounded up to a multiple of 64; EOS id {}). {} parameters, stored as fp32
safetensors.

## Data

Generated on the fly by apps/corpus.cpp (`tstar corpus` writes it out), seeded mt19937_64 with a
hand-written bounded draw. Tasks (of counting examples): counting emoji (1-12 of 24 objects, 4
phrasings) 35%, two groups of objects (1-9 each, 5 categories, 4 phrasings) 28%, three groups (1-6
each, 3 phrasings) 22%, the last number of a counting sequence (3 phrasings) 15%; plus 12% plain
sentences (capitals, "Count from A to B: ...", simple sentences). One answer in five is phrased
" The answer is N." instead of " N".

Held-out split, at two levels (apps/corpus.h), each by an FNV-1a hash (0 mod 10): held-out prompts
never occur in training, though their combination does with other objects and names (the held-out
questions); held-out combinations, an example's (task, phrasing, numbers) with objects and names
excluded, never occur in training with any object (the harder test). The notebook's four prompts
are in no set.

Tokenizer: byte-level BPE in the Qwen2 format trained by fixtures/embedded/make_tokenizer.py with
HF tokenizers on the corpus written by `tstar corpus` (see tokenizer_provenance.json beside it).

## Loss curve

| step | loss | seconds |
|---:|---:|---:|
)",
                                 o.command_line, o.weight_decay, o.learning_rate, o.warmup_steps, o.min_lr_fraction,
                                 o.seed, o.threads, o.steps, o.batch_size, kChunkBatches, o.answer_weight, o.machine,
                                 r.train_seconds, r.train_seconds / 60.0, r.tokens_per_second, r.examples_seen,
                                 r.tokens_seen, c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads,
                                 c.num_kv_heads, c.head_dim, c.rope_theta, c.rms_norm_eps, c.vocab_size,
                                 r.tokenizer_size, c.eos_token_id, r.num_parameters);
  for (const auto& point : r.curve) card += fmt::format("| {} | {:.4f} | {:.0f} |\n", point.step, point.loss, point.seconds);
  card += accuracy_section("Held-out accuracy: unseen questions", r.held_out);
  card += accuracy_section("Held-out combinations: unseen phrasing x numbers (harder)", r.held_out_combinations);
  card += "\n## The notebook's prompts (greedy)\n\n| prompt | expected | generated |\n|---|---:|---|\n";
  for (size_t i = 0; i < notebook.size(); ++i) {
    card += fmt::format("| {} | {} | `{}` |\n", notebook[i].prompt, notebook[i].answer, r.notebook.generated.at(i));
  }
  return card;
}

}  // namespace

CountingEval evaluate_counting(const Model& model, const Tokenizer& tokenizer,
                               const std::vector<CorpusExample>& examples, int64_t batch_size) {
  const std::vector<int64_t> space = tokenizer.encode(" ", false);
  if (space.size() != 1) throw Error("evaluate_counting: the tokenizer does not encode \" \" as one token");
  CountingEval eval;
  double confidence_sum = 0.0;
  for (size_t begin = 0; begin < examples.size(); begin += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(examples.size(), begin + static_cast<size_t>(batch_size));
    std::vector<std::vector<int64_t>> prompts, with_space;
    for (size_t i = begin; i < end; ++i) {
      prompts.push_back(tokenizer.encode(examples[i].prompt, false));
      with_space.push_back(prompts.back());
      with_space.back().push_back(space.front());
    }
    const auto generated = model.generate_greedy(prompts, kMaxAnswerTokens, tokenizer.eos_id());
    // How sure the model is of the first digit once the answer has started (" " then digits).
    auto digit_probs = torch::softmax(model.last_logits(with_space), -1);  // [b, V]
    confidence_sum += std::get<0>(digit_probs.max(-1)).sum().item<double>();
    for (size_t i = begin; i < end; ++i) {
      const std::string text = tokenizer.decode(generated[i - begin], /*skip_special=*/true);
      const bool ok = text.size() > 1 && text[0] == ' ' && trim(text) == examples[i].answer;
      auto& [correct, total] = eval.per_task[task_name(examples[i].task)];
      total += 1;
      correct += ok;
      eval.total += 1;
      eval.correct += ok;
      eval.generated.push_back(text);
    }
  }
  eval.mean_digit_confidence = examples.empty() ? 0.0 : confidence_sum / static_cast<double>(examples.size());
  return eval;
}

TrainResult train_counting_model(const TrainOptions& o, const std::function<void(const TrainProgress&)>& progress) {
  if (o.steps <= 0 || o.batch_size <= 0 || o.threads <= 0 || o.log_every <= 0) {
    throw Error("train: steps, batch size, threads and log interval must be positive");
  }
  at::set_num_threads(static_cast<int>(o.threads));
  // Denormals flushed to zero: a guard against the slow x86 denormal path when Adam's moments get
  // tiny. Measured: no speed effect on the committed recipe (300-step A/B, 6.8-7.3 k tok/s either
  // way, same loss); the 3x training speed-up came from OPENBLAS_CORETYPE (see MODEL_CARD.md). It is
  // part of the recipe that made the committed model, so it stays for bit-reproducibility. The
  // setting is undone on the way out, errors included.
  at::globalContext().setFlushDenormal(true);
  struct DenormalsRestored {
    ~DenormalsRestored() { at::globalContext().setFlushDenormal(false); }
  } denormals_restored;
  const Tokenizer tokenizer = Tokenizer::load(o.tokenizer_dir);
  if (tokenizer.eos_id() < 0) throw Error(fmt::format("train: tokenizer in '{}' has no EOS token", o.tokenizer_dir.string()));

  TrainResult result;
  result.config = model_config(o, tokenizer);
  result.tokenizer_size = tokenizer.vocab_size();
  Model model = Model::from_parameters(result.config, initial_parameters(result.config, o.seed), LoadOptions{});
  result.num_parameters = model.parameters().num_elements();
  torch::optim::AdamW optimizer = make_optimizer(model.parameters(), result.config, o);
  std::vector<torch::Tensor> all_params;
  for (const auto& entry : model.parameters().entries()) all_params.push_back(entry.second);
  CorpusGenerator corpus(o.seed);

  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  std::vector<Batch> chunk;
  double loss_sum = 0.0;
  for (int64_t step = 0; step < o.steps; ++step) {
    if (step % kChunkBatches == 0) chunk = next_chunk(corpus, tokenizer, o, &result.examples_seen);
    const Batch& batch = chunk[static_cast<size_t>(step % kChunkBatches)];
    const double lr = learning_rate_at(o, step);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    optimizer.zero_grad();
    torch::Tensor loss = weighted_loss(model, batch);
    loss.backward();
    torch::nn::utils::clip_grad_norm_(all_params, 1.0);
    optimizer.step();
    loss_sum += loss.item<double>();
    result.tokens_seen += batch.real_tokens;
    if ((step + 1) % o.log_every == 0 || step + 1 == o.steps) {
      const int64_t window = (step % o.log_every) + 1;
      const double seconds = elapsed();
      result.curve.push_back({step + 1, loss_sum / static_cast<double>(window), seconds});
      loss_sum = 0.0;
      if (progress) {
        progress({step + 1, o.steps, result.curve.back().loss, lr, result.tokens_seen / seconds,
                  seconds / static_cast<double>(step + 1) * static_cast<double>(o.steps - step - 1)});
      }
    }
  }
  result.train_seconds = elapsed();
  result.tokens_per_second = static_cast<double>(result.tokens_seen) / result.train_seconds;

  for (size_t i = 0; i < model.parameters().size(); ++i) model.parameters().tensor(i).requires_grad_(false);
  result.held_out = evaluate_counting(model, tokenizer, held_out_set(static_cast<size_t>(o.held_out_examples)));
  result.held_out_combinations =
      evaluate_counting(model, tokenizer, held_out_combination_set(static_cast<size_t>(o.held_out_examples)));
  result.notebook = evaluate_counting(model, tokenizer, notebook_examples());
  save_model_dir(o, model, result);
  return result;
}

}  // namespace tstar
