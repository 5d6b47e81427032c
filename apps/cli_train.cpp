// `tstar train` (trains the embedded counting model) and `tstar corpus` (writes its training text,
// the input of fixtures/embedded/make_tokenizer.py).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <thread>

#include "cli.h"
#include "corpus.h"
#include "tstar/error.h"
#include "tstar/provenance.h"
#include "train.h"

namespace tstar::cli {

namespace {

bool wants_help(const std::vector<std::string>& argv) {
  for (const auto& arg : argv) {
    if (arg == "--help" || arg == "-h") return true;
  }
  return false;
}

std::string joined_command(const std::vector<std::string>& argv) {
  std::string out = "tstar train";
  for (const auto& arg : argv) out += " " + arg;
  return out;
}

// "Intel Xeon ... (2 logical CPUs), OpenBLAS core SkylakeX", from /proc/cpuinfo where it exists.
// The OpenBLAS kernels (OPENBLAS_CORETYPE) decide the fp32 bits, so they belong to the recipe.
std::string machine_description() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  return fmt::format("{} ({} logical CPUs), OpenBLAS core {}", model, std::thread::hardware_concurrency(),
                     runtime_provenance().at("openblas_core").get<std::string>());
}

}  // namespace

int cmd_corpus(const std::vector<std::string>& argv, std::ostream& out) {
  if (wants_help(argv)) {
    out << "usage: tstar corpus --out FILE [--examples N] [--seed S]\n"
           "       tstar corpus --out FILE --held-out N\n\n"
           "Writes N training texts of the embedded model's corpus, one per line (the input of\n"
           "fixtures/embedded/make_tokenizer.py); with --held-out, N distinct held-out questions the\n"
           "training stream never contains, as JSON Lines {\"prompt\", \"answer\", \"task\"} (a prompt\n"
           "set for bench --prompts whose P(correct) is the model's real accuracy).\n\n"
           "  --out FILE       output file\n"
           "  --examples N     number of training examples (default: 50000)\n"
           "  --seed S         corpus seed (default: 1)\n"
           "  --held-out N     held-out questions instead (fixed held-out seed, as the model card)\n";
    return 0;
  }
  Args args(argv, {"out", "examples", "seed", "held-out"}, {}, "corpus");
  const std::string path = args.required("out");
  if (args.has("held-out")) {
    const int64_t count = args.get_int("held-out", 0);
    if (count <= 0) throw Error(fmt::format("--held-out must be positive, got {}", count));
    std::vector<CorpusExample> questions;  // held-out examples with an answer (plain sentences have none)
    for (CorpusExample& example : held_out_set(std::min<size_t>(5000, static_cast<size_t>(count) * 3))) {
      if (!example.answer.empty() && questions.size() < static_cast<size_t>(count)) questions.push_back(std::move(example));
    }
    if (questions.size() < static_cast<size_t>(count)) {
      throw Error(fmt::format("--held-out {}: only {} distinct held-out questions", count, questions.size()));
    }
    std::ofstream file(path, std::ios::binary);
    for (const CorpusExample& example : questions) {
      file << nlohmann::json{{"prompt", example.prompt}, {"answer", example.answer}, {"task", task_name(example.task)}}
                  .dump()
           << '\n';
    }
    if (!file) throw Error(fmt::format("tstar corpus: cannot write '{}'", path));
    out << fmt::format("wrote {} held-out questions to {}\n", count, path);
    return 0;
  }
  const int64_t count = args.get_int("examples", 50000);
  if (count <= 0) throw Error(fmt::format("--examples must be positive, got {}", count));
  CorpusGenerator generator(static_cast<uint64_t>(args.get_int("seed", 1)));
  std::ofstream file(path, std::ios::binary);
  for (int64_t i = 0; i < count; ++i) file << training_text(generator.next_train()) << '\n';
  if (!file) throw Error(fmt::format("tstar corpus: cannot write '{}'", path));
  out << fmt::format("wrote {} examples to {}\n", count, path);
  return 0;
}

int cmd_train(const std::vector<std::string>& argv, std::ostream& out) {
  TrainOptions o;
  if (wants_help(argv)) {
    out << fmt::format(
        "usage: tstar train --out DIR --tokenizer DIR [options]\n\n"
        "Trains the embedded counting model (a small Qwen2) and writes DIR/config.json,\n"
        "model.safetensors, tokenizer files and MODEL_CARD.md. Progress goes to stderr.\n\n"
        "  --out DIR            output model directory\n"
        "  --tokenizer DIR      tokenizer made by fixtures/embedded/make_tokenizer.py\n"
        "  --seed S             initialisation and corpus seed (default: {})\n"
        "  --steps N            optimizer steps (default: {})\n"
        "  --batch N            examples per step (default: {})\n"
        "  --threads N          torch intra-op threads; results depend on it (default: {})\n"
        "  --lr X               peak learning rate (default: {})\n"
        "  --warmup N           warm-up steps (default: {})\n"
        "  --answer-weight X    loss weight of answer tokens (default: {})\n"
        "  --hidden N --intermediate N --layers N --heads N --kv-heads N   shape (default: {} {} {} {} {})\n"
        "  --log-every N        progress interval in steps (default: {})\n"
        "  --held-out N         held-out examples evaluated at the end (default: {})\n",
        o.seed, o.steps, o.batch_size, o.threads, o.learning_rate, o.warmup_steps, o.answer_weight, o.hidden_size,
        o.intermediate_size, o.num_layers, o.num_heads, o.num_kv_heads, o.log_every, o.held_out_examples);
    return 0;
  }
  Args args(argv,
            {"out", "tokenizer", "seed", "steps", "batch", "threads", "lr", "warmup", "answer-weight", "hidden",
             "intermediate", "layers", "heads", "kv-heads", "log-every", "held-out"},
            {}, "train");
  o.out_dir = args.required("out");
  o.tokenizer_dir = args.required("tokenizer");
  o.seed = static_cast<uint64_t>(args.get_int("seed", static_cast<int64_t>(o.seed)));
  o.steps = args.get_int("steps", o.steps);
  o.batch_size = args.get_int("batch", o.batch_size);
  o.threads = args.get_int("threads", o.threads);
  o.learning_rate = args.get_double("lr", o.learning_rate);
  o.warmup_steps = args.get_int("warmup", o.warmup_steps);
  o.answer_weight = args.get_double("answer-weight", o.answer_weight);
  o.hidden_size = args.get_int("hidden", o.hidden_size);
  o.intermediate_size = args.get_int("intermediate", o.intermediate_size);
  o.num_layers = args.get_int("layers", o.num_layers);
  o.num_heads = args.get_int("heads", o.num_heads);
  o.num_kv_heads = args.get_int("kv-heads", o.num_kv_heads);
  o.log_every = args.get_int("log-every", o.log_every);
  o.held_out_examples = args.get_int("held-out", o.held_out_examples);
  o.command_line = joined_command(argv);
  o.machine = machine_description();

  TrainResult r = train_counting_model(o, [](const TrainProgress& p) {
    std::cerr << fmt::format("step {:>5}/{}  loss {:.4f}  lr {:.2e}  {:.0f} tok/s  eta {:.0f} s\n", p.step, p.steps,
                             p.loss, p.learning_rate, p.tokens_per_second, p.eta_seconds);
  });
  out << fmt::format(
      "{} parameters; {:.0f} s, {:.0f} tok/s; final loss {:.4f}; held-out questions {:.3f} ({}/{}); "
      "held-out combinations {:.3f} ({}/{}); notebook {}/{}\nwrote {}\n",
      r.num_parameters, r.train_seconds, r.tokens_per_second, r.curve.empty() ? 0.0 : r.curve.back().loss,
      r.held_out.accuracy(), r.held_out.correct, r.held_out.total, r.held_out_combinations.accuracy(),
      r.held_out_combinations.correct, r.held_out_combinations.total, r.notebook.correct, r.notebook.total,
      o.out_dir.string());
  return 0;
}

}  // namespace tstar::cli
