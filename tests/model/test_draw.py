"""cnnctl.model.draw: layer graphs as SVG and PNG, from plain data."""

from __future__ import annotations

import bisect
import itertools
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from cnnctl.model import draw
from cnnctl.model.draw import render_graph

SVG = "{http://www.w3.org/2000/svg}"


def node(name: str, *inputs: str, cls: str = "Dense", shape: tuple = (4,), params: int = 0) -> dict:
    return {"name": name, "class": cls, "output_shape": list(shape), "params": params, "inputs": list(inputs)}


def inception_like() -> list[dict]:
    """Two inputs, a four-branch block merged by a Concatenate, a side output and a late merge."""
    return [
        node("image", cls="InputLayer", shape=(32, 32, 3)),
        node("meta", cls="InputLayer", shape=(4,)),
        node("stem", "image", cls="Conv2D", shape=(16, 16, 8), params=224),
        node("b1_1x1", "stem", cls="Conv2D", shape=(16, 16, 4), params=36),
        node("b2_reduce", "stem", cls="Conv2D", shape=(16, 16, 4), params=36),
        node("b2_3x3", "b2_reduce", cls="Conv2D", shape=(16, 16, 4), params=148),
        node("b3_pool", "stem", cls="MaxPooling2D", shape=(16, 16, 8)),
        node("b3_proj", "b3_pool", cls="Conv2D", shape=(16, 16, 4), params=36),
        node("mixed", "b1_1x1", "b2_3x3", "b3_proj", cls="Concatenate", shape=(16, 16, 12)),
        node("gap", "mixed", cls="GlobalAveragePooling2D", shape=(12,)),
        node("with_meta", "gap", "meta", cls="Concatenate", shape=(16,)),
        node("logits", "with_meta", shape=(10,), params=170),
        node("aux", "stem", cls="Dense", shape=(None, 2), params=18),
    ]


def chain_with_skips(n: int) -> list[dict]:
    """A chain of n layers where every third one also adds the output from three back, ResNet style."""
    nodes = [node("n0", cls="InputLayer", shape=(8, 8, 3))]
    for i in range(1, n):
        inputs = [f"n{i - 1}", f"n{i - 3}"] if i % 3 == 0 else [f"n{i - 1}"]
        nodes.append(node(f"n{i}", *inputs, cls="Add" if len(inputs) > 1 else "Conv2D", shape=(8, 8, 16), params=i))
    return nodes


def parse(path: Path) -> tuple[ET.Element, dict[str, tuple[float, float, float, float]], list[dict]]:
    """The SVG root, each node's box (x, y, width, height) by name, and each edge's ends and polyline."""
    root = ET.parse(path).getroot()
    boxes = {}
    for g in root.iter(f"{SVG}g"):
        if "node" in g.get("class", "").split():
            rect = g.find(f"{SVG}rect")
            boxes[g.get("data-name")] = tuple(float(rect.get(k)) for k in ("x", "y", "width", "height"))
    edges = [{"from": g.get("data-from"), "to": g.get("data-to"),
              "points": [tuple(map(float, p.split(","))) for p in g.find(f"{SVG}polyline").get("points").split()]}
             for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]
    return root, boxes, edges


def overlap(a: tuple, b: tuple) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def test_svg_has_a_box_per_node_an_edge_per_input_and_every_name(tmp_path):
    nodes = inception_like()
    render_graph(nodes, tmp_path / "g.svg", title="inception-like")
    root, boxes, edges = parse(tmp_path / "g.svg")
    assert root.tag == f"{SVG}svg" and len(root.get("viewBox").split()) == 4
    assert list(boxes) == [n["name"] for n in nodes]
    assert sorted((e["from"], e["to"]) for e in edges) == sorted((i, n["name"]) for n in nodes for i in n["inputs"])
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "inception-like" in texts
    assert "stem: Conv2D" in texts and "(16, 16, 8) · 224 params" in texts
    assert "(16, 16, 8)" in texts  # b3_pool: no parameters, no count
    assert "(None, 2) · 18 params" in texts and "(4,)" in texts


def test_inputs_and_outputs_are_marked(tmp_path):
    render_graph(inception_like(), tmp_path / "g.svg")
    root, _, _ = parse(tmp_path / "g.svg")
    kinds = {g.get("data-name"): g.get("class").split()[1] for g in root.iter(f"{SVG}g") if g.get("data-name")}
    assert [n for n, k in kinds.items() if k == "input"] == ["image", "meta"]
    assert [n for n, k in kinds.items() if k == "output"] == ["logits", "aux"]
    fills = {g.get("class"): g.find(f"{SVG}rect").get("fill") for g in root.iter(f"{SVG}g") if g.get("data-name")}
    assert sorted(fills) == ["node input", "node layer", "node output"] and len(set(fills.values())) == 3


def test_a_repeated_input_draws_one_edge(tmp_path):
    render_graph([node("x"), node("double", "x", "x", cls="Add")], tmp_path / "g.svg")
    assert [(e["from"], e["to"]) for e in parse(tmp_path / "g.svg")[2]] == [("x", "double")]


def test_names_are_xml_escaped(tmp_path):
    render_graph([node("in<&>\"put'"), node("out", "in<&>\"put'", cls="My<Layer>")], tmp_path / "g.svg", title="a&b")
    text = (tmp_path / "g.svg").read_text()
    assert "in&lt;&amp;&gt;" in text and "My&lt;Layer&gt;" in text and "a&amp;b" in text and "<&>" not in text
    root, boxes, edges = parse(tmp_path / "g.svg")
    assert list(boxes) == ["in<&>\"put'", "out"]
    assert edges[0]["from"] == "in<&>\"put'"
    assert "out: My<Layer>" in [t.text for t in root.iter(f"{SVG}text")]


def test_diamond_puts_the_branches_on_one_row_and_the_merge_below_both(tmp_path):
    render_graph([node("a"), node("b", "a"), node("c", "a"), node("d", "b", "c", cls="Add")], tmp_path / "g.svg")
    _, boxes, edges = parse(tmp_path / "g.svg")
    (ax, ay, aw, ah), (bx, by, bw, _), (cx, cy, cw, ch), (dx, dy, dw, _) = (boxes[k] for k in "abcd")
    assert by == cy > ay + ah and dy > by + ch
    assert bx + bw < cx or cx + cw < bx  # side by side
    assert min(bx, cx) < dx + dw / 2 < max(bx + bw, cx + cw)  # d sits between them, a above them too
    assert min(bx, cx) < ax + aw / 2 < max(bx + bw, cx + cw)
    for e in edges:  # from the bottom of the source to the top of the target, pointing down
        (sx, sy, sw, sh), (tx, ty, tw, _) = boxes[e["from"]], boxes[e["to"]]
        (x0, y0), (x1, y1) = e["points"][0], e["points"][-1]
        assert y0 == pytest.approx(sy + sh) and sx <= x0 <= sx + sw
        assert sy + sh < y1 < ty and tx <= x1 <= tx + tw


def test_a_180_node_graph_with_skips_fits_its_viewbox_without_overlaps(tmp_path):
    nodes = chain_with_skips(180)
    render_graph(nodes, tmp_path / "big.svg")
    root, boxes, edges = parse(tmp_path / "big.svg")
    _, _, width, height = map(float, root.get("viewBox").split())
    assert len(boxes) == 180 and len(edges) == sum(len(n["inputs"]) for n in nodes)
    assert all(x >= 0 and y >= 0 and x + w <= width and y + h <= height for x, y, w, h in boxes.values())
    assert not [(a, b) for a, b in itertools.combinations(boxes.values(), 2) if overlap(a, b)]
    rows: dict[float, list[tuple]] = {}
    for box in boxes.values():
        rows.setdefault(box[1], []).append(box)
    tops = sorted(rows)
    for e in edges:  # skip connections go round boxes, not through them
        for (x0, y0), (x1, y1) in itertools.pairwise(e["points"]):
            for t in (i / 8 for i in range(9)):
                px, py = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
                row = rows[tops[bisect.bisect_right(tops, py) - 1]] if py >= tops[0] else []
                assert not any(x + 1 < px < x + w - 1 and y + 1 < py < y + h - 1 for x, y, w, h in row), e


def test_png_opens_and_is_drawn(tmp_path):
    render_graph(inception_like(), tmp_path / "g.png", title="inception-like")
    with Image.open(tmp_path / "g.png") as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert image.width > 100 and image.height > 100
        assert image.getextrema() != ((255, 255), (255, 255), (255, 255))  # not all white
        assert image.getpixel((0, 0)) == (255, 255, 255)


def test_a_tall_png_is_scaled_down(tmp_path):
    render_graph(chain_with_skips(180), tmp_path / "big.png")
    with Image.open(tmp_path / "big.png") as image:
        assert max(image.size) <= draw.MAX_PNG_SIDE


def test_output_is_deterministic(tmp_path):
    for suffix in (".svg", ".png"):
        render_graph(inception_like(), tmp_path / f"1{suffix}")
        render_graph(inception_like(), tmp_path / f"2{suffix}")
        assert (tmp_path / f"1{suffix}").read_bytes() == (tmp_path / f"2{suffix}").read_bytes()


@pytest.mark.parametrize("name", ["g.pdf", "g.jpg", "graph"])
def test_an_unknown_suffix_names_the_supported_formats(tmp_path, name):
    with pytest.raises(ValueError, match=r"supported formats: \.svg, \.png"):
        render_graph(inception_like(), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_upper_case_suffixes_work(tmp_path):
    render_graph(inception_like(), tmp_path / "G.SVG")
    assert parse(tmp_path / "G.SVG")[1]


@pytest.mark.parametrize(("nodes", "message"), [
    ([], "no nodes"),
    ([node("a"), node("b", "nowhere")], "'nowhere', which is not an earlier node"),
    ([node("b", "a"), node("a")], "'a', which is not an earlier node"),
    ([node("a"), node("a")], "two nodes are named 'a'"),
])
def test_bad_graphs_are_rejected(tmp_path, nodes, message):
    with pytest.raises(ValueError, match=message):
        render_graph(nodes, tmp_path / "g.svg")
    assert list(tmp_path.iterdir()) == []


def test_writes_atomically_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "g.svg"
    target.write_text("old")
    render_graph(inception_like(), target)
    render_graph(inception_like(), tmp_path / "g.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png", "g.svg"]
    assert target.read_text().startswith("<svg")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(draw.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        render_graph([node("other")], target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png", "g.svg"]
    assert "other" not in target.read_text()  # the old picture is intact


def test_the_module_imports_neither_tensorflow_nor_keras():
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('draw', {draw.__file__!r})\n"
            "module = importlib.util.module_from_spec(spec); sys.modules['draw'] = module\n"
            "spec.loader.exec_module(module)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'PIL')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"  # Pillow too: only PNG output loads it


def inception_chain(modules: int) -> list[dict]:
    """``modules`` GoogLeNet-style modules in a row: four branches of unequal length, merged by a Concatenate."""
    nodes = [node("m0", cls="InputLayer", shape=(28, 28, 192))]
    for m in range(1, modules + 1):
        prev = f"m{m - 1}"
        nodes += [node(f"b1_{m}", prev, cls="Conv2D"),
                  node(f"b2r_{m}", prev, cls="Conv2D"), node(f"b2_{m}", f"b2r_{m}", cls="Conv2D"),
                  node(f"b3r_{m}", prev, cls="Conv2D"), node(f"b3_{m}", f"b3r_{m}", cls="Conv2D"),
                  node(f"b4p_{m}", prev, cls="MaxPooling2D"), node(f"b4_{m}", f"b4p_{m}", cls="Conv2D"),
                  node(f"m{m}", f"b1_{m}", f"b2_{m}", f"b3_{m}", f"b4_{m}", cls="Concatenate")]
    return nodes


def test_a_chain_of_inception_modules_does_not_drift_sideways():
    scene = draw.layout(inception_chain(9))
    merges = [box.x for box in scene.boxes if box.name.startswith("m") and box.name != "m0"]
    assert max(merges) - min(merges) < 1  # each merge under the middle of its branches, one above the other
    widest = max(sum(b.w for b in scene.boxes if b.row == r) + 7 * draw.COL_GAP for r in range(4))
    assert scene.width <= widest + 2 * draw.MARGIN + 1  # no room taken by drift


def test_a_png_too_large_for_legible_text_warns_and_recommends_svg(tmp_path):
    nodes = chain_with_skips(700)
    warnings = render_graph(nodes, tmp_path / "huge.png")
    assert len(warnings) == 1 and "huge.png" in warnings[0] and ".svg" in warnings[0] and "700 nodes" in warnings[0]
    with Image.open(tmp_path / "huge.png") as image:
        assert max(image.size) <= draw.MAX_PNG_SIDE and image.width * image.height <= draw.MAX_PNG_PIXELS
    assert render_graph(nodes, tmp_path / "huge.svg") == []  # an SVG scales


def test_a_png_of_a_large_but_legible_graph_keeps_its_text_size(tmp_path):
    assert render_graph(chain_with_skips(180), tmp_path / "big.png") == []
    scene = draw.layout(chain_with_skips(180))
    assert draw.FONT * draw.png_scale(scene) >= draw.MIN_TEXT_PX
    with Image.open(tmp_path / "big.png") as image:  # ResNet-50's 180 layers were drawn with 7 px text
        assert image.height == round(scene.height * draw.png_scale(scene))
