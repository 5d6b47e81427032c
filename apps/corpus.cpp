// The counting corpus: tables of objects and phrasings, one drawing function per task, and the
// held-out split. See corpus.h for the format and the split rule.
#include "corpus.h"

#include <fmt/format.h>

#include <limits>
#include <set>

#include "tstar/error.h"
#include "tstar/experiments.h"
#include "tstar/philox.h"

namespace tstar {

namespace {

struct EmojiObject {
  const char* plural;
  const char* emoji;  // a single code point, no variation selector
};

const std::vector<EmojiObject>& emoji_objects() {
  static const std::vector<EmojiObject> objects = {
      {"eggs", "🥚"},    {"apples", "🍎"},  {"bananas", "🍌"}, {"grapes", "🍇"}, {"lemons", "🍋"},
      {"cookies", "🍪"}, {"cakes", "🎂"},   {"pizzas", "🍕"},  {"cats", "🐱"},   {"dogs", "🐶"},
      {"fish", "🐟"},    {"birds", "🐦"},   {"ducks", "🦆"},   {"bees", "🐝"},   {"trees", "🌳"},
      {"flowers", "🌸"}, {"stars", "⭐"},   {"moons", "🌙"},   {"cars", "🚗"},   {"rockets", "🚀"},
      {"balls", "⚽"},   {"books", "📚"},   {"shoes", "👟"},   {"hats", "🎩"}};
  return objects;
}

struct Noun {
  const char* singular;
  const char* plural;
};

struct Category {
  const char* name;  // what the objects are together: "fruits", "animals", ...
  std::vector<Noun> members;
};

const std::vector<Category>& categories() {
  static const std::vector<Category> table = {
      {"fruits",
       {{"apple", "apples"}, {"orange", "oranges"}, {"banana", "bananas"}, {"pear", "pears"},
        {"lemon", "lemons"}, {"plum", "plums"}, {"peach", "peaches"}, {"mango", "mangoes"}}},
      {"animals",
       {{"cat", "cats"}, {"dog", "dogs"}, {"bird", "birds"}, {"cow", "cows"}, {"horse", "horses"},
        {"duck", "ducks"}, {"rabbit", "rabbits"}, {"goat", "goats"}}},
      {"toys", {{"ball", "balls"}, {"doll", "dolls"}, {"kite", "kites"}, {"block", "blocks"}, {"robot", "robots"}}},
      {"vehicles",
       {{"car", "cars"}, {"bike", "bikes"}, {"bus", "buses"}, {"truck", "trucks"}, {"train", "trains"},
        {"boat", "boats"}}},
      {"flowers", {{"rose", "roses"}, {"tulip", "tulips"}, {"daisy", "daisies"}, {"lily", "lilies"}}}};
  return table;
}

const std::vector<std::string>& names() {
  static const std::vector<std::string> table = {"Tom", "Anna", "Sam", "Lily", "Max",
                                                 "Emma", "Ben", "Mia", "Leo", "Zoe"};
  return table;
}

std::string quantity(int64_t n, const Noun& noun) {
  return fmt::format("{} {}", n, n == 1 ? noun.singular : noun.plural);
}

std::string repeated(const std::string& piece, int64_t n) {
  std::string out;
  for (int64_t i = 0; i < n; ++i) out += piece;
  return out;
}

// "s, s+1, ..., e"
std::string number_sequence(int64_t start, int64_t end) {
  std::string out;
  for (int64_t i = start; i <= end; ++i) out += (i == start ? "" : ", ") + std::to_string(i);
  return out;
}

// FNV-1a, 64 bit (philox.h's, the noise streams' name hash): fixed, where std::hash is
// implementation-defined.
uint64_t fnv1a(const std::string& text) { return philox::fnv1a64(text.data(), text.size()); }

bool is_notebook_prompt(const std::string& prompt) {
  for (const auto& example : notebook_examples()) {
    if (example.prompt == prompt) return true;
  }
  return false;
}

}  // namespace

const char* task_name(CorpusTask task) {
  switch (task) {
    case CorpusTask::kCountEmoji: return "count_emoji";
    case CorpusTask::kSumTwo: return "sum_two";
    case CorpusTask::kSumThree: return "sum_three";
    case CorpusTask::kSequence: return "sequence";
    case CorpusTask::kSentence: return "sentence";
  }
  return "unknown";
}

std::string training_text(const CorpusExample& example) { return example.prompt + example.completion; }

bool is_held_out_combination(const std::string& combination) { return fnv1a(combination) % 10 == 0; }

bool is_held_out_prompt(const std::string& prompt) { return fnv1a("prompt/" + prompt) % 10 == 0; }

std::vector<CorpusExample> notebook_examples() {
  const std::vector<std::string> prompts = notebook_prompts();  // the experiments' own four, in order
  return {
      {CorpusTask::kCountEmoji, prompts.at(0), "5", " 5", "count/t0/5"},
      {CorpusTask::kSumTwo, prompts.at(1), "7", " 7", "sum2/t0/3+4"},
      {CorpusTask::kSequence, prompts.at(2), "7", " 7", "seq/t0/1-7"},
      {CorpusTask::kSumThree, prompts.at(3), "6", " 6", "sum3/t0/2+3+1"},
  };
}

// Rejection sampling on the full 64-bit output: unbiased and fixed by the standard's mt19937_64.
uint64_t CorpusGenerator::below(uint64_t n) {
  TSTAR_CHECK(n > 0);
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
  uint64_t x = rng_();
  while (x >= limit) x = rng_();
  return x % n;
}

int64_t CorpusGenerator::between(int64_t lo, int64_t hi) {
  return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo + 1)));
}

CorpusExample CorpusGenerator::draw_count_emoji() {
  const EmojiObject& object = pick(emoji_objects());
  const int64_t n = between(1, 12);
  const int64_t form = between(0, 3);
  const std::string p = object.plural, e = repeated(object.emoji, n);
  std::string prompt;
  switch (form) {
    case 0: prompt = fmt::format("Count the {}: {}. How many {} are there?", p, e, p); break;
    case 1: prompt = fmt::format("Look at the {}: {}. How many {} do you see?", p, e, p); break;
    case 2: prompt = fmt::format("Here are some {}: {}. How many {} are there?", p, e, p); break;
    default: prompt = fmt::format("{} How many {} are in the picture?", e, p); break;
  }
  return {CorpusTask::kCountEmoji, prompt, std::to_string(n), " " + std::to_string(n), fmt::format("count/t{}/{}", form, n)};
}

CorpusExample CorpusGenerator::draw_sum_two() {
  const Category& category = pick(categories());
  const uint64_t i = below(category.members.size());
  const uint64_t j = (i + 1 + below(category.members.size() - 1)) % category.members.size();  // j != i
  const int64_t a = between(1, 9), b = between(1, 9);
  const int64_t form = between(0, 3);
  const std::string x = quantity(a, category.members[i]), y = quantity(b, category.members[j]);
  const std::string c = category.name;
  std::string prompt;
  switch (form) {
    case 0: prompt = fmt::format("I have {} and {}. How many {} in total?", x, y, c); break;
    case 1: prompt = fmt::format("There are {} and {}. How many {} are there?", x, y, c); break;
    case 2: {
      const std::string& name = pick(names());
      prompt = fmt::format("{} has {} and {}. How many {} does {} have?", name, x, y, c, name);
      break;
    }
    default: prompt = fmt::format("In the picture there are {} and {}. How many {} in total?", x, y, c); break;
  }
  return {CorpusTask::kSumTwo, prompt, std::to_string(a + b), " " + std::to_string(a + b), fmt::format("sum2/t{}/{}+{}", form, a, b)};
}

CorpusExample CorpusGenerator::draw_sum_three() {
  const Category& category = pick(categories());
  // Three distinct members: a random start and two distinct steps around the table.
  const uint64_t m = category.members.size();
  const uint64_t i = below(m);
  const uint64_t step_j = 1 + below(m - 1);
  uint64_t step_k = 1 + below(m - 2);
  if (step_k >= step_j) step_k += 1;
  const int64_t a = between(1, 6), b = between(1, 6), d = between(1, 6);
  const int64_t form = between(0, 2);
  const std::string x = quantity(a, category.members[i]), y = quantity(b, category.members[(i + step_j) % m]),
                    z = quantity(d, category.members[(i + step_k) % m]);
  const std::string c = category.name;
  std::string prompt;
  switch (form) {
    case 0: prompt = fmt::format("There are {}, {}, and {}. How many {}?", x, y, z, c); break;
    case 1: prompt = fmt::format("I have {}, {}, and {}. How many {} in total?", x, y, z, c); break;
    default: {
      const std::string& name = pick(names());
      prompt = fmt::format("{} has {}, {}, and {}. How many {} does {} have?", name, x, y, z, c, name);
      break;
    }
  }
  return {CorpusTask::kSumThree, prompt, std::to_string(a + b + d),
          " " + std::to_string(a + b + d), fmt::format("sum3/t{}/{}+{}+{}", form, a, b, d)};
}

CorpusExample CorpusGenerator::draw_sequence() {
  // Half of the sequences start at 1, as the notebook's prompt does.
  const int64_t start = below(2) == 0 ? 1 : between(2, 8);
  const int64_t end = start + between(1, 11);
  const int64_t form = between(0, 2);
  const std::string seq = number_sequence(start, end);
  std::string prompt;
  switch (form) {
    case 0: prompt = fmt::format("Count: {}. What's the last number?", seq); break;
    case 1: prompt = fmt::format("Here is a list: {}. What is the last number?", seq); break;
    default: prompt = fmt::format("Numbers: {}. Which number comes last?", seq); break;
  }
  return {CorpusTask::kSequence, prompt, std::to_string(end), " " + std::to_string(end), fmt::format("seq/t{}/{}-{}", form, start, end)};
}

CorpusExample CorpusGenerator::draw_sentence() {
  static const std::vector<std::pair<const char*, const char*>> capitals = {
      {"France", "Paris"}, {"Italy", "Rome"},     {"Spain", "Madrid"},  {"Germany", "Berlin"},
      {"Japan", "Tokyo"},  {"Egypt", "Cairo"},    {"Peru", "Lima"},     {"Kenya", "Nairobi"},
      {"Norway", "Oslo"},  {"Canada", "Ottawa"}};
  static const std::vector<std::string> adjectives = {"small", "big", "happy", "little", "brown", "white", "old", "young"};
  static const std::vector<std::string> actions = {"sits on the mat", "runs in the park", "sleeps under the tree",
                                                   "eats an apple", "plays with a ball", "looks at the sky",
                                                   "walks to the river", "jumps over the fence"};
  const Category& category = pick(categories());
  const Noun& noun = pick(category.members);
  std::string text;
  switch (below(5)) {
    case 0: {
      const auto& [country, city] = pick(capitals);
      text = fmt::format("The capital of {} is {}.", country, city);
      break;
    }
    case 1: {
      const int64_t from = between(1, 3), to = from + between(3, 9);
      text = fmt::format("Count from {} to {}: {}.", from, to, number_sequence(from, to));
      break;
    }
    case 2: text = fmt::format("The {} {} {}.", pick(adjectives), noun.singular, pick(actions)); break;
    case 3: text = fmt::format("{} likes {}.", pick(names()), noun.plural); break;
    default: text = fmt::format("{} are {}.", noun.plural, category.name); break;
  }
  text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(text[0])));
  return {CorpusTask::kSentence, text, "", "", "sentence"};
}

CorpusExample CorpusGenerator::draw_counting() {
  // Task mix (of the counting tasks): 35% emoji, 28% two groups, 22% three groups, 15% sequences.
  const uint64_t roll = below(100);
  if (roll < 35) return draw_count_emoji();
  if (roll < 63) return draw_sum_two();
  if (roll < 85) return draw_sum_three();
  return draw_sequence();
}

CorpusExample CorpusGenerator::draw_any() { return below(100) < 12 ? draw_sentence() : draw_counting(); }

CorpusExample CorpusGenerator::next_train() {
  while (true) {
    CorpusExample example = draw_any();
    if (example.task != CorpusTask::kSentence &&
        (is_held_out_combination(example.combination) || is_held_out_prompt(example.prompt) ||
         is_notebook_prompt(example.prompt))) {
      continue;
    }
    if (!example.answer.empty() && below(5) == 0) example.completion = " The answer is " + example.answer + ".";
    return example;
  }
}

CorpusExample CorpusGenerator::next_held_out() {
  while (true) {
    CorpusExample example = draw_counting();
    if (is_held_out_prompt(example.prompt) && !is_held_out_combination(example.combination) &&
        !is_notebook_prompt(example.prompt)) {
      return example;
    }
  }
}

CorpusExample CorpusGenerator::next_held_out_combination() {
  while (true) {
    CorpusExample example = draw_counting();
    if (is_held_out_combination(example.combination) && !is_notebook_prompt(example.prompt)) return example;
  }
}

namespace {

std::vector<CorpusExample> distinct_examples(size_t count, uint64_t seed, CorpusExample (CorpusGenerator::*next)()) {
  CorpusGenerator generator(seed);
  std::vector<CorpusExample> out;
  std::set<std::string> seen;
  // The held-out combinations allow thousands of distinct prompts (objects vary freely).
  constexpr size_t kMaxDistinct = 5000;
  if (count > kMaxDistinct) throw Error(fmt::format("held_out_set: at most {} examples, asked for {}", kMaxDistinct, count));
  while (out.size() < count) {
    CorpusExample example = (generator.*next)();
    if (seen.insert(example.prompt).second) out.push_back(std::move(example));
  }
  return out;
}

}  // namespace

std::vector<CorpusExample> held_out_set(size_t count, uint64_t seed) {
  return distinct_examples(count, seed, &CorpusGenerator::next_held_out);
}

std::vector<CorpusExample> held_out_combination_set(size_t count, uint64_t seed) {
  return distinct_examples(count, seed, &CorpusGenerator::next_held_out_combination);
}

}  // namespace tstar
