// Experiment 2: which weights matter: one noise group at a time (all, attention, mlp, lm_head,
// early, middle, late, layer:N) on the layer prompt, at each of --detail-scales. The prompt is
// forwarded alone, clean and noised, as the notebook does: a batch of every prompt would cost
// (prompts) times the forward for one statistic.
#include "common.h"

namespace tstar::experiments {
namespace {

ExperimentResult layer(ExperimentSuite& suite, const std::string& group, double scale) {
  const auto& settings = suite.settings();
  const PromptSelection prompt = settings.layer_prompt;
  const torch::Tensor& clean = clean_statistics(suite, prompt);  // [1, V]
  stats::TemperatureObjective objective;
  std::vector<double> seed_alpha;
  std::vector<double> model_dtype_alpha;
  std::vector<double> pre_softcap_alpha;  // before final soft-capping (models that cap)
  for (uint64_t seed : settings.seeds) {
    const UnitResult& noisy = suite.unit(suite.noisy_unit(group, scale, seed, prompt));
    objective.add(clean[0], unit_tensor(noisy, "statistics")[0]);
    seed_alpha.push_back(objective.noise().back().alpha);
    model_dtype_alpha.push_back(unit_double(noisy, "model_dtype_alpha", 0));
    if (noisy.tensors.count("pre_softcap_alpha")) pre_softcap_alpha.push_back(unit_double(noisy, "pre_softcap_alpha", 0));
  }
  const auto report = stats::report_temperature(objective, settings.t_lo, settings.t_hi);
  const UnitResult& injection = suite.unit(suite.noisy_unit(group, scale, settings.seeds[0], prompt));

  ExperimentResult result;
  add_temperature_counters(report, result);
  result.counters["alpha_ci95"] = half_width(stats::t_interval(seed_alpha));
  result.counters["alpha_model_logits"] = stats::spread(model_dtype_alpha).mean;
  if (!pre_softcap_alpha.empty()) result.counters["alpha_pre_softcap"] = stats::spread(pre_softcap_alpha).mean;
  result.counters["top1_match"] = top1_rate(objective.noise());
  result.counters["tensors"] = static_cast<double>(unit_int(injection, "injection_counts", 0));
  result.counters["params"] = static_cast<double>(unit_int(injection, "injection_counts", 1));
  result.counters["changed_fraction"] = unit_double(injection, "injection", 0);
  result.counters["realized_ratio"] = unit_double(injection, "injection", 1);
  result.counters["scale"] = scale;
  result.details["seed_alpha"] = seed_alpha;
  result.details["tensors"] = injection.meta.at("targets");
  return result;
}

ExperimentFamily layer_family() {
  ExperimentFamily family;
  family.name = "Layer";
  family.order = 2;
  family.pattern = "Layer/<group>/scale:<s>";
  family.description = "exp. 2: one noise group at a time (all, attention, mlp, lm_head, early, middle, late, layer:N)";
  family.report_section = "layer";
  family.instances = [](const ExperimentSuite& suite) {
    std::vector<ExperimentInstance> instances;
    const uint64_t timing_seed = suite.settings().seeds.front();
    const PromptSelection prompt = suite.settings().layer_prompt;
    for (double scale : suite.settings().detail_scales) {
      for (const std::string& group : suite.groups()) {
        instances.push_back({"Layer/" + group + "/scale:" + format_scale(scale), "Layer",
                             {{"group", group}, {"scale", scale}},
                             [group, scale](ExperimentSuite& s) { return layer(s, group, scale); },
                             [group, scale, timing_seed, prompt](ExperimentSuite& s) {
                               s.forward_cycle(group, scale, timing_seed, prompt);
                             },
                             seed_units(suite, group, scale, prompt)});
      }
    }
    return instances;
  };
  return family;
}

TSTAR_REGISTER_EXPERIMENT(layer_family());

}  // namespace
}  // namespace tstar::experiments
