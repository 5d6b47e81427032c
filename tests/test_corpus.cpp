// The counting corpus: deterministic, answers correct (checked by re-reading the prompt), and the
// held-out split honest (no held-out combination or notebook prompt in the training stream).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "corpus.h"
#include "tool_runner.h"

namespace tstar {
namespace {

std::vector<int64_t> integers_in(const std::string& text) {
  std::vector<int64_t> out;
  for (size_t i = 0; i < text.size();) {
    if (std::isdigit(static_cast<unsigned char>(text[i]))) {
      size_t j = i;
      while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
      out.push_back(std::stoll(text.substr(i, j - i)));
      i = j;
    } else {
      ++i;
    }
  }
  return out;
}

// The prompts are ASCII apart from the emoji, each one code point: count UTF-8 lead bytes >= 0x80.
int64_t non_ascii_code_points(const std::string& text) {
  int64_t n = 0;
  for (unsigned char c : text) n += (c >= 0x80 && (c & 0xC0) != 0x80);
  return n;
}

// The answer recomputed from the prompt text alone.
int64_t answer_from_prompt(const CorpusExample& example) {
  const auto numbers = integers_in(example.prompt);
  switch (example.task) {
    case CorpusTask::kCountEmoji: return non_ascii_code_points(example.prompt);
    case CorpusTask::kSumTwo:
    case CorpusTask::kSumThree: {
      int64_t sum = 0;
      for (int64_t n : numbers) sum += n;
      return sum;
    }
    case CorpusTask::kSequence: return numbers.back();
    case CorpusTask::kSentence: break;
  }
  return -1;
}

std::set<std::string> notebook_prompts() {
  std::set<std::string> out;
  for (const auto& e : notebook_examples()) out.insert(e.prompt);
  return out;
}

TEST(Corpus, SameSeedSameStreamOtherSeedOther) {
  CorpusGenerator a(7), b(7), c(8);
  int differences = 0;
  for (int i = 0; i < 2000; ++i) {
    const CorpusExample x = a.next_train(), y = b.next_train(), z = c.next_train();
    ASSERT_EQ(training_text(x), training_text(y)) << "example " << i;
    ASSERT_EQ(x.combination, y.combination);
    differences += training_text(x) != training_text(z);
  }
  EXPECT_GT(differences, 1500);
}

TEST(Corpus, AnswersMatchThePrompts) {
  CorpusGenerator generator(3);
  std::map<CorpusTask, int> seen;
  for (int i = 0; i < 5000; ++i) {
    const CorpusExample e = generator.next_train();
    seen[e.task] += 1;
    if (e.task == CorpusTask::kSentence) {
      EXPECT_TRUE(e.answer.empty());
      EXPECT_EQ(training_text(e), e.prompt);
      continue;
    }
    EXPECT_EQ(e.answer, std::to_string(answer_from_prompt(e))) << e.prompt;
    EXPECT_TRUE(e.completion == " " + e.answer || e.completion == " The answer is " + e.answer + ".") << e.completion;
    EXPECT_EQ(training_text(e), e.prompt + e.completion);
  }
  EXPECT_EQ(seen.size(), 5u) << "every task occurs";
}

TEST(Corpus, NotebookExamplesHaveCorrectAnswers) {
  const auto examples = notebook_examples();
  ASSERT_EQ(examples.size(), 4u);
  const std::vector<std::string> expected = {"5", "7", "7", "6"};
  for (size_t i = 0; i < examples.size(); ++i) {
    EXPECT_EQ(examples[i].answer, expected[i]);
    EXPECT_EQ(std::to_string(answer_from_prompt(examples[i])), expected[i]) << examples[i].prompt;
  }
}

TEST(Corpus, NumbersCoverTheirRanges) {
  CorpusGenerator generator(5);
  std::set<int64_t> counts, sequence_ends;
  for (int i = 0; i < 20000; ++i) {
    const CorpusExample e = generator.next_train();
    if (e.task == CorpusTask::kCountEmoji) counts.insert(std::stoll(e.answer));
    if (e.task == CorpusTask::kSequence) sequence_ends.insert(std::stoll(e.answer));
  }
  EXPECT_EQ(*counts.begin(), 1);
  EXPECT_EQ(*counts.rbegin(), 12);
  EXPECT_EQ(counts.size(), 12u);
  EXPECT_EQ(*sequence_ends.begin(), 2);
  EXPECT_EQ(*sequence_ends.rbegin(), 19);
}

TEST(Corpus, TrainingStreamHoldsNoHeldOutPromptOrCombinationOrNotebookPrompt) {
  CorpusGenerator generator(11);
  const auto notebook = notebook_prompts();
  std::set<std::string> train_combinations, train_prompts;
  for (int i = 0; i < 20000; ++i) {
    const CorpusExample e = generator.next_train();
    if (e.task == CorpusTask::kSentence) continue;
    EXPECT_FALSE(is_held_out_combination(e.combination)) << e.combination;
    EXPECT_FALSE(is_held_out_prompt(e.prompt)) << e.prompt;
    EXPECT_EQ(notebook.count(e.prompt), 0u) << e.prompt;
    train_combinations.insert(e.combination);
    train_prompts.insert(e.prompt);
  }
  auto check_common = [&](const std::vector<CorpusExample>& set) {
    std::set<std::string> prompts;
    for (const auto& e : set) {
      EXPECT_EQ(train_prompts.count(e.prompt), 0u) << e.prompt;
      EXPECT_EQ(notebook.count(e.prompt), 0u) << e.prompt;
      EXPECT_EQ(e.completion, " " + e.answer);
      EXPECT_EQ(e.answer, std::to_string(answer_from_prompt(e))) << e.prompt;
      prompts.insert(e.prompt);
    }
    EXPECT_EQ(prompts.size(), set.size()) << "held-out prompts are distinct";
  };
  // Unseen questions: the prompt is new, its combination is trained (with other objects or names).
  const auto questions = held_out_set(500);
  ASSERT_EQ(questions.size(), 500u);
  check_common(questions);
  size_t trained_combination = 0;
  for (const auto& e : questions) {
    EXPECT_TRUE(is_held_out_prompt(e.prompt)) << e.prompt;
    EXPECT_FALSE(is_held_out_combination(e.combination)) << e.combination;
    trained_combination += train_combinations.count(e.combination);
  }
  EXPECT_GT(trained_combination, 450u) << "most combinations of held-out questions occur in 20000 training draws";
  // Unseen combinations: not in training with any object.
  const auto combinations = held_out_combination_set(500);
  ASSERT_EQ(combinations.size(), 500u);
  check_common(combinations);
  for (const auto& e : combinations) {
    EXPECT_TRUE(is_held_out_combination(e.combination)) << e.combination;
    EXPECT_EQ(train_combinations.count(e.combination), 0u) << e.combination;
  }
}

TEST(Corpus, HeldOutSetIsDeterministicAndCoversEveryCountingTask) {
  const auto a = held_out_set(300), b = held_out_set(300);
  std::set<CorpusTask> tasks;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].prompt, b[i].prompt);
    tasks.insert(a[i].task);
  }
  EXPECT_EQ(tasks.size(), 4u);
  EXPECT_NE(held_out_set(50, 1)[0].prompt, held_out_set(50, 2)[0].prompt);
  std::set<CorpusTask> combination_tasks;
  for (const auto& e : held_out_combination_set(300)) combination_tasks.insert(e.task);
  EXPECT_EQ(combination_tasks.size(), 4u);
}

}  // namespace
}  // namespace tstar

// fixtures/prompts/embedded-heldout-256.jsonl is exactly what its recipe (tstar corpus --held-out 256)
// writes today: held-out questions with answers, none of them a training prompt.
TEST(Corpus, CommittedHeldOutPromptSetIsTheRecipesOutput) {
  const std::string committed = "fixtures/prompts/embedded-heldout-256.jsonl";
  const std::string fresh = ::testing::TempDir() + "heldout-256.jsonl";
  const auto result = tstar::testing::run_tool("corpus --held-out 256 --out " + fresh);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto read = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  const std::string text = read(committed);
  EXPECT_EQ(text, read(fresh));
  std::istringstream lines(text);
  size_t count = 0;
  for (std::string line; std::getline(lines, line); ++count) {
    const auto item = nlohmann::json::parse(line);
    EXPECT_FALSE(item.at("answer").get<std::string>().empty());
    EXPECT_TRUE(tstar::is_held_out_prompt(item.at("prompt").get<std::string>()));
  }
  EXPECT_EQ(count, 256u);
  std::remove(fresh.c_str());
}
