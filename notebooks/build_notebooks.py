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
             "from atr.data.synth import make_dataset\nfrom atr.policy.taxonomy import default_taxonomy\n"
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

MONITORING = [
    ("md", "# 02 — Drift monitoring and the label queue\n\nA small model is trained on "
           "scanner A; the line then sees scanner A and a new scanner B. Every decision is "
           "stored as serving stores it (scores, embedding, image statistics, image). "
           "`atr monitor` compares each scanner's recent window with the model's reference "
           "(its validation set) in an Evidently report, and the label queue ranks what "
           "analysts should label first. The tests execute this notebook."),
    ("code", "import tempfile\nfrom pathlib import Path\n\nimport numpy as np\n"
             "import pandas as pd\nfrom IPython.display import IFrame, display\n\n"
             "from atr.config import compose\nfrom atr.data.dataset_writer import encode_png\n"
             "from atr.data.synth import item_seed, make_dataset\n"
             "from atr.evaluation.job import run as evaluate\n"
             "from atr.package.image_stats import image_stats\n"
             "from atr.package.onnx_scorer import OnnxScorer\n"
             "from atr.store.image_store import ImageStore\n"
             "from atr.store.prediction_store import Feedback, Prediction, ensure_store\n"
             "from atr.policy.taxonomy import default_taxonomy\nfrom atr.train import run as train\n"
             "from atr.xray import ClassMix, XraySimulator, load_profile\n\n"
             "work = Path(tempfile.mkdtemp())\ntaxonomy = default_taxonomy()\n"
             "rt = [f'paths.root={work}/rt', f'paths.data_dir={work}/data', "
             "f'paths.artifacts_dir={work}/art']"),
    ("md", "## A small model on scanner A\n\nTiny on purpose (minutes on a CPU); the "
           "policy targets are relaxed because the calibration split is small."),
    ("code", "ds = make_dataset(work / 'base', count=400, image_size=64, seed=1)\n"
             "train(compose('train', [*rt, f'data.dir={ds}', 'trainer.max_epochs=2', "
             "'model.preprocess.input_size=64', 'data.num_workers=0']))\n"
             "relaxed = ['policy.leak_rate_target=0.3', 'policy.confidence=0.8', "
             "'policy.min_threat_positives=1', 'policy.threat_recall_target=0.8']\n"
             "evaluate(compose('evaluate', [*rt, f'data.dir={ds}', *relaxed]))\n"
             "package = work / 'art' / 'model'\n"
             "pd.read_parquet(package / 'reference.parquet').filter(like='score_').describe()"
             ".round(3)"),
    ("md", "## The line: scanner A, then scanner B\n\nEach parcel is scored and stored the "
           "way `atr serve` does it."),
    ("code", "scorer = OnnxScorer(package)\nsessions = ensure_store(f'sqlite:///{work}/store.db')\n"
             "images = ImageStore(work / 'images')\n"
             "mix = ClassMix.from_dict(dict(compose('synth').mix))\n"
             "def stream(scanner, n, seed):\n"
             "    sim = XraySimulator(load_profile(scanner), taxonomy, mix, image_size=64)\n"
             "    items = [sim.render(item_seed(seed, i)) for i in range(n)]\n"
             "    scores, emb = scorer.score_images([it.rgb for it in items])\n"
             "    decisions, reasons = scorer.policy.decide(scores)\n"
             "    with sessions.begin() as s:\n"
             "        for i, it in enumerate(items):\n"
             "            s.add(Prediction(request_id=f'{scanner}-{i}', item_id=f'{scanner}-{i}',\n"
             "                scanner_id=scanner, model_name='nb', model_version='1',\n"
             "                decision=str(decisions[i]), reason=reasons[i],\n"
             "                scores=dict(zip(scorer.outputs, map(float, scores[i]))),\n"
             "                embedding=emb[i, :256].tolist(), image_stats=image_stats(it.rgb),\n"
             "                image_ref=images.put(encode_png(it.rgb), 'parcel.png')))\n"
             "    return items\n"
             "line_a = stream('parcel_160kv', 300, seed=7)\nline_b = stream('parcel_140kv', 300, seed=8)\n"
             "with sessions() as s:\n"
             "    print(pd.read_sql('select scanner_id, decision, count(*) n from predictions "
             "group by 1, 2', s.bind))"),
    ("md", "## `atr monitor`: one pass over the store\n\nMMD on the embeddings, normed "
           "Wasserstein on scores and image statistics, Jensen–Shannon on the decision mix; "
           "the rule fires when a signal stays over its threshold for consecutive windows."),
    ("code", "summary = __import__('atr.monitor.job', fromlist=['run']).run(compose('monitor', [*rt,\n"
             "    f'monitor.prediction_db=sqlite:///{work}/store.db',\n"
             "    f'monitor.reference_path={package}/reference.parquet',\n"
             "    'monitor.window_size=200', 'monitor.log_to_mlflow=false']))\n"
             "table = pd.DataFrame(summary['scanners']).T\n"
             "table[['drift', 'kind', 'embedding', 'scores', 'decisions', 'image_stats']]"),
    ("code", "report = summary['scanners']['parcel_140kv']['report']\nprint(report)\n"
             "display(IFrame(report, width='100%', height=500))"),
    ("md", "## The label queue\n\nItems without feedback are ranked by the value of a "
           "label: REVIEW decisions, scores near the policy thresholds, and scanners with "
           "unhandled drift come first. Inspection outcomes close tasks."),
    ("code", "from datetime import UTC, datetime\n"
             "from atr.labels.label_queue import open_tasks, refresh_queue\n"
             "from atr.labels.labelstudio import labelling_config\n"
             "with sessions.begin() as s:  # two parcels were opened at inspection\n"
             "    for i in range(2):\n"
             "        s.add(Feedback(item_id=f'parcel_160kv-{i}', labels={**line_a[i].labels,\n"
             "              'paper_only': line_a[i].paper_only}, source='inspection',\n"
             "              who='officer-7', at=datetime.now(UTC)))\n"
             "print(refresh_queue(sessions, scorer.policy))\n"
             "with sessions() as s:\n"
             "    top = [(t.item_id, p.scanner_id, p.decision, round(t.priority, 3), t.reason)\n"
             "           for t, p in open_tasks(s, 10)]\n"
             "queue = pd.DataFrame(top, columns=['item', 'scanner', 'decision', 'priority', 'reason'])\n"
             "queue"),
    ("code", "print(labelling_config(taxonomy))"),
]

if __name__ == "__main__":
    nbf.write(notebook(DATA), HERE / "01_data.ipynb")
    nbf.write(notebook(MONITORING), HERE / "02_monitoring.ipynb")
