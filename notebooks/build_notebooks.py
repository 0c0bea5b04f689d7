"""Writes the notebooks from plain Python cells (keeps diffs reviewable). Run after editing."""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parent


def notebook(cells: list[tuple[str, str]]) -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbf.v4.new_markdown_cell(s) if k == "md" else nbf.v4.new_code_cell(s) for k, s in cells]
    return nb


DATA = [
    ("md", "# 01 — The simulated X-ray data\n\nSample images of every class and every scanner "
           "profile, rendered by `atr.xray` from physics (spekpy spectra, xraydb attenuation, a "
           "two-layer detector). The tests execute this notebook."),
    ("code", "import tempfile\nfrom pathlib import Path\n\nimport matplotlib\nmatplotlib.use('Agg')\n"
             "import matplotlib.pyplot as plt\nimport numpy as np\nfrom PIL import Image\n\n"
             "from atr.config import compose, conf_dir\nfrom atr.data.manifest import read_dataset\n"
             "from atr.data.synth import make_dataset\nfrom atr.taxonomy import default_taxonomy\n"
             "from atr.xray import ClassMix, ScannerProfile, XraySimulator\n\n"
             "work = Path(tempfile.mkdtemp())\ntaxonomy = default_taxonomy()\n"
             "SCANNERS = sorted(p.stem for p in (conf_dir() / 'scanner').glob('*.yaml'))\nSCANNERS"),
    ("md", "## One example of each class\n\nA small dataset from the default scanner; for each "
           "class the first item that contains it, with its box."),
    ("code", "ds = read_dataset(make_dataset(work / 'parcels', count=150, image_size=192, seed=11))\n"
             "df = ds.manifest\nfig, axes = plt.subplots(2, 8, figsize=(20, 5.6))\n"
             "import json\nfound = []\n"
             "for ax, name in zip(axes.flat, taxonomy.names):\n"
             "    rows = df[df[name] == 1]\n    ax.axis('off')\n"
             "    if rows.empty:\n        ax.set_title(f'{name}: none'); continue\n"
             "    row = rows.iloc[0]\n    found.append(name)\n"
             "    ax.imshow(Image.open(ds.root / row.image))\n"
             "    for b in json.loads(row.boxes):\n"
             "        if b['label'] == name:\n            x0, y0, x1, y1 = b['xyxy']\n"
             "            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color='red'))\n"
             "    ax.set_title(f\"{name} ({taxonomy.spec(name).group})\")\nplt.tight_layout()\n"
             "print(f'{len(found)}/{len(taxonomy.names)} classes shown')"),
    ("md", "## The same parcel through each scanner profile\n\nSame scene seed; the profile "
           "changes the spectrum, detector, noise, blur, pixel pitch and palette. The letter "
           "scanner (≤ 80 kV) shows paper with more contrast."),
    ("code", "fig, axes = plt.subplots(3, len(SCANNERS), figsize=(5 * len(SCANNERS), 14))\n"
             "mix = ClassMix.from_dict(dict(compose('synth').mix))\n"
             "for col, scanner in enumerate(SCANNERS):\n"
             "    profile = ScannerProfile.from_yaml(conf_dir() / 'scanner' / f'{scanner}.yaml')\n"
             "    sim = XraySimulator(profile, taxonomy, mix, image_size=256)\n"
             "    item = sim.render(2024)\n"
             "    axes[0, col].imshow(item.rgb); axes[0, col].set_title(f'{scanner}: pseudo-colour')\n"
             "    axes[1, col].imshow(item.low, cmap='gray'); axes[1, col].set_title('low-energy (16-bit)')\n"
             "    axes[2, col].imshow(item.high, cmap='gray'); axes[2, col].set_title('high-energy (16-bit)')\n"
             "for ax in axes.flat: ax.axis('off')\nplt.tight_layout()"),
    ("md", "## Class balance of the default mix\n\nImbalance is the norm in real data "
           "(SIXray is about 1:118); the default synthetic mix is richer in threats so a model "
           "can be trained in minutes on a CPU, and the policy is calibrated on held-out data."),
    ("code", "summary = df[taxonomy.names + ['paper_only']].mean().sort_values(ascending=False)\n"
             "summary.round(3).to_frame('share of items')"),
]

if __name__ == "__main__":
    nbf.write(notebook(DATA), HERE / "01_data.ipynb")
