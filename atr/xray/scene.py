"""Composing a postal item: container, paper products, goods, threats, concealment.

The scene decides what is in the item, places every object (position,
rotation) and rasterises it into per-material thickness images. Labels are
recorded as objects are drawn: a class is present iff an object of it put
at least one pixel into the image, however occluded it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from atr.policy.taxonomy import Taxonomy
from atr.xray.class_mix import TRICKS, ClassMix, pick
from atr.xray.materials import MATERIAL_NAMES
from atr.xray.shapes import Shape, ShapeContext, rect, scale_shape, shape_family
from atr.xray.thickness_map import Placement, draw

ENVELOPE_THREATS = {"narcotics", "lithium_battery", "knife", "ammunition"}


@dataclass
class Scene:
    thickness: np.ndarray  # (M, H, W) cm
    labels: dict[str, int]
    boxes: list[dict]
    kind: str  # paper_only | goods | threat
    container: str
    concealment: list[str] = field(default_factory=list)


class SceneComposer:
    def __init__(self, taxonomy: Taxonomy, mix: ClassMix, image_size: int, px_per_cm: float):
        mix.check_against(taxonomy.names)
        self.tax, self.mix, self.size, self.k = taxonomy, mix, image_size, px_per_cm
        self.family = {c.name: c.shape for c in taxonomy.classes}
        for name, fam in self.family.items():
            try:
                shape_family(fam)
            except KeyError as exc:
                raise ValueError(f"taxonomy class {name!r}: {exc.args[0]}") from None
        self.boxed = set(taxonomy.goods) | set(taxonomy.threats)

    def _hosts(self, fam: str) -> list[str]:
        return [n for n, f in self.family.items() if f == fam]

    def _shape(self, rng: np.random.Generator, cls: str, ctx: ShapeContext) -> Shape:
        return shape_family(self.family[cls])(rng, ctx)

    def compose(self, rng: np.random.Generator) -> Scene:
        mix, tax = self.mix, self.tax
        u = rng.random()
        kind = "threat" if u < mix.p_threat else (
            "paper_only" if u < mix.p_threat + mix.p_paper_only else "goods")
        lo, hi = mix.paper_items
        n_paper = int(rng.integers(max(lo, 1), hi + 1)) if kind == "paper_only" else int(
            rng.integers(0, hi + 1))
        n_goods = 0 if kind == "paper_only" else int(
            rng.integers(*mix.clutter_items, endpoint=True))
        if kind == "goods":
            n_goods = max(n_goods, 1)
        n_threat = 0 if kind != "threat" else 1 + int(rng.random() < mix.p_second_threat)

        threats = [pick(rng, tax.threats, mix.threat_weights) for _ in range(n_threat)]
        # Only flat things travel in envelopes: a pistol or a shoe means a parcel.
        envelope = (rng.random() < mix.p_envelope and n_goods <= 2
                    and all(self.family[c] in ENVELOPE_THREATS for c in threats))
        ctx = ShapeContext(flat=envelope)
        paper = [(c, self._shape(rng, c, ctx)) for c in
                 (pick(rng, tax.paper, mix.paper_weights) for _ in range(n_paper))]
        n_goods = n_goods if tax.goods else 0
        goods = [(c, self._shape(rng, c, ctx)) for c in
                 (pick(rng, tax.goods, mix.goods_weights) for _ in range(n_goods))]
        if envelope and not all(s.flat for _, s in paper + goods):
            envelope = False
        container = shape_family("envelope" if envelope else "parcel_box")(rng, ctx)

        stack = np.zeros((len(MATERIAL_NAMES), self.size, self.size), dtype=np.float32)
        scene = Scene(stack, {n: 0 for n in tax.names}, [], kind,
                      "envelope" if envelope else "parcel")
        frame = self._place_container(rng, container)
        draw(stack, container.prims, frame)
        for cls, shape in paper + goods:
            self._put(scene, cls, *self._inside(rng, frame, container, shape))
        for cls in threats:
            self._put_threat(rng, scene, cls, frame, container, envelope)
        paper = stack[MATERIAL_NAMES.index("paper")]
        np.maximum(paper, 0.0, out=paper)  # cut-outs (only ever paper) never go negative
        return scene

    # -- placement -----------------------------------------------------------------
    def _place_container(self, rng: np.random.Generator, box: Shape) -> Placement:
        fov = self.size / self.k  # cm across the image
        ang = rng.uniform(-0.4, 0.4)
        c, s = abs(np.cos(ang)), abs(np.sin(ang))
        ext_w, ext_h = c * box.half_w + s * box.half_h, s * box.half_w + c * box.half_h
        f = min(1.0, 0.47 * fov / ext_w, 0.47 * fov / ext_h)  # the whole container in view
        box.prims[:] = scale_shape(box, f).prims
        box.half_w, box.half_h = box.half_w * f, box.half_h * f
        slack_x, slack_y = max(0.48 * fov - ext_w * f, 0), max(0.48 * fov - ext_h * f, 0)
        cx = self.size / 2 + self.k * rng.uniform(-slack_x, slack_x)
        cy = self.size / 2 + self.k * rng.uniform(-slack_y, slack_y)
        return Placement(cx, cy, ang, self.k)

    def _inside(self, rng: np.random.Generator, frame: Placement, box: Shape, item: Shape,
                near: tuple[float, float] | None = None) -> tuple[Placement, Shape]:
        f = min(1.0, 0.95 * max(box.half_w, box.half_h) / max(item.half_w, item.half_h))
        item = scale_shape(item, f) if f < 1.0 else item
        if near is None:
            # Items sit mostly inside the box; big ones may bulge over a wall.
            u = rng.uniform(-1, 1) * max(box.half_w - 0.8 * item.half_w, 0.5)
            v = rng.uniform(-1, 1) * max(box.half_h - 0.8 * item.half_h, 0.5)
        else:
            u, v = near[0] + rng.normal(0, 2.0), near[1] + rng.normal(0, 2.0)
        c, s = np.cos(frame.angle), np.sin(frame.angle)
        where = Placement(frame.cx + self.k * (c * u - s * v), frame.cy + self.k * (s * u + c * v),
                          rng.uniform(0, 2 * np.pi), self.k)
        return where, item

    def _put(self, scene: Scene, cls: str, where: Placement, item: Shape) -> Placement:
        box = draw(scene.thickness, item.prims, where)
        if box is not None:
            scene.labels[cls] = 1
            if cls in self.boxed:
                scene.boxes.append({"label": cls, "xyxy": [int(b) for b in box]})
        return where

    # -- threats and concealment ------------------------------------------------------
    def _put_threat(self, rng: np.random.Generator, scene: Scene, cls: str, frame: Placement,
                    container: Shape, envelope: bool) -> None:
        mix, fam = self.mix, self.family[cls]
        small = rng.random() < mix.p_small_threat
        trick = None
        if rng.random() < mix.p_concealed and mix.tricks:
            names = [t for t in mix.tricks if TRICKS[t]["threats"] is None
                     or (fam in TRICKS[t]["threats"] and self._hosts(TRICKS[t]["host"]))]
            trick = pick(rng, names, mix.tricks) if names else None
        if trick is None or trick == "under_clutter":
            shape = self._shape(rng, cls, ShapeContext(small=small, flat=envelope))
            where = self._put(scene, cls, *self._inside(rng, frame, container, shape))
            if trick == "under_clutter" and self.tax.goods:
                u, v = self._frame_coords(frame, where)
                for _ in range(int(rng.integers(2, 5))):
                    g = pick(rng, self.tax.goods, mix.goods_weights)
                    gs = self._shape(rng, g, ShapeContext())
                    self._put(scene, g, *self._inside(rng, frame, container, gs, near=(u, v)))
                scene.concealment.append(f"{cls}:under_clutter")
            return
        host_cls = self._hosts(TRICKS[trick]["host"])[int(rng.integers(
            len(self._hosts(TRICKS[trick]["host"]))))]
        host = self._shape(rng, host_cls, ShapeContext(flat=envelope))
        threat = self._shape(rng, cls, ShapeContext(small=True, flat=True))
        cav = host.cavity or (0.0, 0.0, host.half_w * 0.8, host.half_h * 0.8, 1.0)
        f = min(1.0, cav[2] / threat.half_w, cav[3] / threat.half_h)
        threat = scale_shape(threat, f, cav[0], cav[1])
        if host.cavity is not None and self.family[host_cls] == "book":
            # Pages cut out to make room: less paper exactly where the pack sits.
            depth = min(threat.max_thickness, cav[4])
            host.prims.append(rect("paper", -depth, cav[0], cav[1], 2 * threat.half_w,
                                   2 * threat.half_h))
        unscaled = host.half_w
        where, host = self._inside(rng, frame, container, host)
        self._put(scene, host_cls, where, host)
        # The threat shares the host's frame (scaled with it if the host was shrunk).
        g = host.half_w / unscaled
        self._put(scene, cls, where, scale_shape(threat, g) if g < 1 else threat)
        if trick == "between_documents":  # a second document on top
            self._put(scene, host_cls, where, self._shape(rng, host_cls, ShapeContext(flat=True)))
        scene.concealment.append(f"{cls}:{trick}")

    @staticmethod
    def _frame_coords(frame: Placement, where: Placement) -> tuple[float, float]:
        c, s = np.cos(frame.angle), np.sin(frame.angle)
        dx, dy = (where.cx - frame.cx) / frame.px_per_cm, (where.cy - frame.cy) / frame.px_per_cm
        return c * dx + s * dy, -s * dx + c * dy
