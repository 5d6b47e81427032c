"""The provenance table of the summary, and the run's compute profile."""

import os

from .common import count_text, list_text, seeds_of, table
from .spread import cpu_spread_text


def compute_profile(experiments, context):
    """'reference', 'native', or None when the run does not say (results.json provenance, else the
    tstar_compute_profile context key of benchmark.json)."""
    prov = experiments.doc.get("provenance", {})
    profile = prov.get("compute_profile") if isinstance(prov, dict) else None
    profile = profile if profile is not None else context.get("tstar_compute_profile")
    return str(profile) if profile is not None else None


def compute_profile_text(profile, cpu_spread):
    if profile == "reference":
        return ("reference: statistics are bit-identical on any x86-64-v3 CPU"
                + ("; the CPU spread columns apply to native runs only" if cpu_spread else ""))
    if profile == "native":
        return ("native: statistics move between CPUs"
                + (" by up to the CPU spread shown beside α and best T" if cpu_spread else
                   "; rerun with --compute reference for bit-identical numbers"))
    return "n/a" if profile is None else profile


def provenance_section(experiments, run_dir, context, cpu_spread=None):
    doc = experiments.doc
    prov = doc.get("provenance", {}) if isinstance(doc.get("provenance"), dict) else {}
    model = prov.get("model", {}) if isinstance(prov.get("model"), dict) else {}
    blas = prov.get("blas_libraries")
    digests = (doc.get("weights_digest_before"), doc.get("weights_digest_after"))
    settings = doc.get("settings", {})
    rows = [
        ("run", os.path.basename(os.path.abspath(run_dir))),
        ("date / host", f"{context.get('date', 'n/a')} / {context.get('host_name', 'n/a')}"),
        ("model", f"{model.get('model', 'n/a')} ({model.get('architecture', '?')}, "
                  f"{count_text(model.get('parameters'))} parameters)"),
        ("dtype / device", f"{model.get('dtype', 'n/a')}"
                           + (f" (logits {settings['logits_dtype']})" if settings.get("logits_dtype") else "")
                           + f" / {model.get('device', 'n/a')}"),
        ("noise / reference", f"{prov.get('noise', 'n/a')} / {prov.get('reference', 'n/a')}"),
    ]
    if settings.get("exclusion") or settings.get("depth_groups"):
        rows.append(("exclusion / depth groups", f"{settings.get('exclusion', 'n/a')} / "
                                                 f"{settings.get('depth_groups', 'n/a')}"))
    rows += [
        ("seeds", ", ".join(str(s) for s in seeds_of(experiments)) or "n/a"),
        ("scales / detail scales", f"{list_text(prov.get('scales'))} / {list_text(prov.get('detail_scales'))}"),
        ("tstar commit / version", f"{prov.get('tstar_commit', 'n/a')} / {prov.get('tstar_version', 'n/a')}"),
        ("threads", prov.get("threads", "n/a")),
        ("CPU", prov.get("cpu_model", context.get("tstar_cpu_model", "n/a"))),
        ("compute profile", compute_profile_text(compute_profile(experiments, context), cpu_spread)),
        ("CPU spread", cpu_spread_text(cpu_spread)),
        ("BLAS", f"{', '.join(blas) if isinstance(blas, list) else 'n/a'} (OpenBLAS core "
                 f"{prov.get('openblas_core', 'n/a')})"),
        ("libtorch / cuRAND / CUDA available", f"{prov.get('libtorch_version', 'n/a')} / "
                                               f"{prov.get('curand_version', 'n/a')} / {prov.get('cuda_available', 'n/a')}"),
        ("weights restored", "yes (digest before = after)" if digests[0] and digests[0] == digests[1]
         else f"NO or unknown (before {digests[0]}, after {digests[1]})"),
    ]
    return ["## Provenance", ""] + table(("item", "value"), rows) + [""]
