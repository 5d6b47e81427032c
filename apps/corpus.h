// Deterministic generator of the short English counting and arithmetic text that the embedded
// default model (fixtures/models/tstar-counting) is trained on, in the notebook's style:
//   "Count the eggs: 🥚🥚🥚. How many eggs are there? 3"
//   "I have 3 apples and 4 oranges. How many fruits in total? 7"
//   "Count: 1, 2, 3. What's the last number? 3"
//   "There are 2 cats, 3 dogs, and 1 bird. How many animals? 6"
// plus plain sentences. Every draw comes from std::mt19937_64 (whose output the C++ standard fixes)
// through a bounded draw written here, so the corpus is identical on every platform and library.
//
// Split, at two levels, each by a fixed FNV-1a hash (about one in ten):
//  - held-out prompts: prompts the training stream never contains, although their combination
//    (below) is trained with other objects and names. Accuracy on them is the model's held-out
//    accuracy (unseen questions).
//  - held-out combinations: an example's *combination* is its task, template and numbers (objects
//    and names are not part of it). The training stream never contains a held-out combination with
//    any object, so these measure the harder generalisation to an unseen phrasing x number pair.
// The notebook's four prompts are in no set.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace tstar {

enum class CorpusTask { kCountEmoji, kSumTwo, kSumThree, kSequence, kSentence };
const char* task_name(CorpusTask task);

struct CorpusExample {
  CorpusTask task = CorpusTask::kSentence;
  std::string prompt;       // the question, or the whole text of a plain sentence
  std::string answer;       // the number as text ("7"); empty for plain sentences
  std::string completion;   // what follows the prompt in training text: " 7", sometimes " The answer is 7."
  std::string combination;  // split key: task, template and numbers, e.g. "sum2/t0/3+4"
};

// What the model is trained on: prompt + completion (EOS is appended as a token id by the trainer).
// One training answer in five is phrased " The answer is N." so that the distribution after the
// question is not a single certain token (as a real LM's is not); greedy decoding still answers " N".
std::string training_text(const CorpusExample& example);

// True for combinations that belong to the held-out combinations (a fixed FNV-1a hash, ~10%).
bool is_held_out_combination(const std::string& combination);
// True for prompts that belong to the held-out prompts (a fixed FNV-1a hash, ~10%).
bool is_held_out_prompt(const std::string& prompt);

// The notebook's four prompts with their correct answers (5, 7, 7, 6).
std::vector<CorpusExample> notebook_examples();

// An endless, seeded stream of examples.
class CorpusGenerator {
 public:
  explicit CorpusGenerator(uint64_t seed) : rng_(seed) {}
  // Next training example: never a held-out prompt or combination, never a notebook prompt.
  CorpusExample next_train();
  // Next held-out question: a held-out prompt of a trained combination, never a notebook prompt.
  CorpusExample next_held_out();
  // Next example of a held-out combination (any prompt of it), never a notebook prompt.
  CorpusExample next_held_out_combination();

 private:
  CorpusExample draw_any();  // one example of any task, before the split
  CorpusExample draw_counting();
  CorpusExample draw_count_emoji();
  CorpusExample draw_sum_two();
  CorpusExample draw_sum_three();
  CorpusExample draw_sequence();
  CorpusExample draw_sentence();
  uint64_t below(uint64_t n);                      // uniform in [0, n)
  int64_t between(int64_t lo, int64_t hi);         // uniform in [lo, hi]
  template <typename T>
  const T& pick(const std::vector<T>& items) { return items[below(items.size())]; }

  std::mt19937_64 rng_;
};

// `count` distinct held-out questions (distinct prompts), deterministic for a seed. The model card
// and the tests use the default seed.
constexpr uint64_t kHeldOutSeed = 0x68656c64;
std::vector<CorpusExample> held_out_set(size_t count, uint64_t seed = kHeldOutSeed);
// The same for held-out combinations.
std::vector<CorpusExample> held_out_combination_set(size_t count, uint64_t seed = kHeldOutSeed);

}  // namespace tstar
