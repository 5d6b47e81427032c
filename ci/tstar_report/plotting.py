"""matplotlib for the figures, and the axis helpers the sections share."""

import os
import sys

from .common import finite, spans_decades

# Debian's python3-matplotlib is installed for Debian's interpreter; another python3 earlier on
# PATH (pyenv) cannot import it, so the script re-runs itself there once (the variable stops loops).
DEBIAN_PYTHON = "/usr/bin/python3"
REEXEC_MARK = "TSTAR_REPORT_REEXEC"

DPI = 150
PREDICTOR_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def import_pyplot(script):
    """matplotlib.pyplot on the Agg backend, re-running `script` (the entry point, with this
    process's arguments) under Debian's python3 when the current interpreter lacks matplotlib."""
    try:
        import matplotlib
    except ImportError:
        if (not os.environ.get(REEXEC_MARK) and os.access(DEBIAN_PYTHON, os.X_OK)
                and os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON)):
            os.environ[REEXEC_MARK] = "1"
            sys.stdout.flush()
            os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON, os.path.abspath(script)] + sys.argv[1:])
        print("report: matplotlib is not installed for this python3 (Debian: apt-get install "
              "python3-matplotlib)", file=sys.stderr)
        sys.exit(1)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": 10, "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 8,
                         "axes.titlesize": 11})
    return plt


def save(plt, fig, path):
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def marker(index):
    return PREDICTOR_MARKERS[index % len(PREDICTOR_MARKERS)]


def scale_axis_label(experiments):
    reference = experiments.doc.get("settings", {}).get("reference", "")
    return f"weight noise scale (σ_noise / {reference or 'reference'})"


def set_log_if_spanning(ax, axis, values):
    if spans_decades(values):
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        return True
    return False


def keep_for_axes(xs, ys, xlog, ylog):
    """Indices of points drawable on the chosen axes (a log axis cannot show 0 or negatives)."""
    return [i for i, (x, y) in enumerate(zip(xs, ys))
            if finite(x) and finite(y) and (not xlog or x > 0) and (not ylog or y > 0)]


def log_safe_lower(values, errors, log):
    """Lower error-bar lengths; on a log axis a bar may not reach 0."""
    return [min(err, 0.9 * v) if log else err for v, err in zip(values, errors)]


def omitted_note(count):
    return f"\n({count} point(s) not drawn: 0 on a log axis, or not a number)" if count else ""


def legend_headroom(ax, fraction=0.3):
    """Raise the top of a linear y axis so a legend in the upper corner covers no data."""
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, top + fraction * (top - bottom))
