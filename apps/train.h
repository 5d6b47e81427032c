// Trains the embedded default model: a small Qwen2-architecture decoder (q/k/v bias, GQA, untied
// lm_head) on the counting corpus (corpus.h), with libtorch's autograd through tstar::Model itself,
// so the model that is trained is exactly the code path that later loads and runs it.
// Deterministic for a given seed and thread count (at::set_num_threads is set from the options).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tstar/config.h"
#include "corpus.h"

namespace tstar {

class Model;
class Tokenizer;

struct TrainOptions {
  std::filesystem::path out_dir;        // receives config.json, model.safetensors, tokenizer files, MODEL_CARD.md
  std::filesystem::path tokenizer_dir;  // tokenizer.json (+ tokenizer_config.json) made by make_tokenizer.py
  uint64_t seed = 1;
  int64_t steps = 700;
  int64_t batch_size = 96;
  int64_t threads = 2;
  double learning_rate = 4e-3;   // peak; linear warm-up, then cosine decay to min_lr_fraction of it
  double min_lr_fraction = 0.05;
  int64_t warmup_steps = 50;
  double weight_decay = 0.05;    // matrices and embeddings only
  double answer_weight = 3.0;    // loss weight of completion tokens relative to prompt tokens
  int64_t hidden_size = 128;
  int64_t intermediate_size = 384;
  int64_t num_layers = 4;
  int64_t num_heads = 4;
  int64_t num_kv_heads = 2;
  int64_t log_every = 50;
  int64_t held_out_examples = 400;
  std::string command_line;      // recorded in the model card
  std::string machine;           // recorded in the model card (CPU model, cores)
};

struct LossPoint {
  int64_t step = 0;
  double loss = 0.0;       // mean weighted loss over the last log_every steps
  double seconds = 0.0;    // since the start of training
};

// Accuracy of greedy answers on a set of examples (answer = the generated text up to EOS, trimmed).
struct CountingEval {
  int64_t total = 0;
  int64_t correct = 0;
  std::map<std::string, std::pair<int64_t, int64_t>> per_task;  // task -> (correct, total)
  double mean_digit_confidence = 0.0;  // mean max-probability of the first answer digit
  std::vector<std::string> generated;  // per example, the decoded greedy completion
  double accuracy() const { return total ? static_cast<double>(correct) / total : 0.0; }
};
CountingEval evaluate_counting(const Model& model, const Tokenizer& tokenizer,
                               const std::vector<CorpusExample>& examples, int64_t batch_size = 64);

struct TrainProgress {
  int64_t step = 0, steps = 0;
  double loss = 0.0, learning_rate = 0.0, tokens_per_second = 0.0, eta_seconds = 0.0;
};

struct TrainResult {
  ModelConfig config;
  int64_t num_parameters = 0;
  int64_t tokenizer_size = 0;      // tokens in tokenizer.json (the embedding has vocab_size >= this rows)
  std::vector<LossPoint> curve;
  double train_seconds = 0.0;
  double tokens_per_second = 0.0;  // real (non-padding) tokens
  int64_t examples_seen = 0;
  int64_t tokens_seen = 0;
  CountingEval held_out;               // held-out questions (unseen prompts of trained combinations)
  CountingEval held_out_combinations;  // unseen phrasing x number combinations
  CountingEval notebook;
};

// Trains, evaluates and writes the model directory. `progress` (may be empty) is called every
// log_every steps; the library itself prints nothing.
TrainResult train_counting_model(const TrainOptions& options,
                                 const std::function<void(const TrainProgress&)>& progress = {});

}  // namespace tstar
