"""Draw a model's layer graph as SVG or PNG from plain data (no TensorFlow, Keras or graphviz).

Simplified Sugiyama layout: row = longest path from an input; an edge skipping rows gets a waypoint (a lane
between boxes) in each row it crosses; barycenter sweeps order the rows; x = least-squares fit towards the
neighbours, boxes kept apart (pool adjacent violators). Deterministic: the same nodes give the same bytes.
"""

from __future__ import annotations

import html
import io
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnctl.pictures import font as pillow_font
from cnnctl.pictures import write_atomic

FORMATS = (".svg", ".png")
FONT, TITLE_FONT, LINE_H = 12, 15, 15  # layout units (SVG px)
CHAR_W = 7.2  # a generous estimate of one character's advance at FONT, in a sans-serif font
PAD_X, BOX_H, ROW_H, COL_GAP, MARGIN, TITLE_H = 10, 38, 74, 22, 20, 30  # ROW_H: box and gap below
PORT_STEP, ARROW_LEN, ARROW_HALF, LANE_WEIGHT = 12, 8, 4, 0.25
PNG_SCALE = 2.0  # PNG pixels per layout unit, unless the picture would be larger than the limits below
MAX_PNG_SIDE, MAX_PNG_PIXELS = 32_000, 30_000_000  # what viewers open (Pillow itself warns above 89 M pixels)
MIN_TEXT_PX = 10  # text lower than this in a PNG is not legible: render_graph says so and recommends .svg
FONT_FAMILY = "Helvetica, Arial, 'DejaVu Sans', sans-serif"
FILL = {"input": "#d4efd4", "output": "#fddcb8", "layer": "#e3ebf7"}
STROKE, EDGE, INK = "#3f4f66", "#6a7a90", "#1b1b1b"
Point = tuple[float, float]
Edge = tuple[str, str, list[Point], list[Point]]  # source name, target name, polyline, arrowhead
Adjacency = dict[int, list[int]]  # vertex -> its neighbours in the row above (preds) or below (succs)


@dataclass
class Box:
    """A node's rounded box: centre x, top y, width, kind ("input", "output" or "layer"), two lines of text."""

    name: str
    kind: str
    lines: tuple[str, str]
    row: int
    w: float
    x: float = 0.0
    y: float = 0.0


@dataclass
class Scene:
    width: float
    height: float
    title: str
    boxes: list[Box]
    edges: list[Edge]


def render_graph(nodes: list[dict[str, Any]], path: str | os.PathLike[str], title: str = "") -> list[str]:
    """Write a picture of a layer graph; the format follows the suffix: .svg or .png. Returns warnings: a PNG
    whose text could not be drawn legibly within the size limits (an SVG has none: it scales)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: cannot draw a {suffix or 'suffix-less'!r} file; supported formats: .svg, .png")
    scene = layout(nodes, title)
    if suffix == ".svg":
        write_atomic(path, _svg(scene).encode())
        return []
    scale = png_scale(scene)
    write_atomic(path, _png(scene, scale))
    if FONT * scale >= MIN_TEXT_PX:
        return []
    return [f"{path}: this graph ({len(scene.boxes)} nodes) is too large for a legible PNG: drawn "
            f"{round(scene.width * scale)}x{round(scene.height * scale)} pixels, its text is "
            f"{FONT * scale:.0f} px high; draw it as .svg instead (sharp at any zoom, any size)"]


def png_scale(scene: Scene) -> float:
    """PNG pixels per layout unit: PNG_SCALE, or less for a graph whose picture would exceed MAX_PNG_SIDE or
    MAX_PNG_PIXELS; the text is FONT * scale pixels high."""
    return min(PNG_SCALE, MAX_PNG_SIDE / max(scene.width, scene.height),
               (MAX_PNG_PIXELS / (scene.width * scene.height)) ** 0.5)


def layout(nodes: list[dict[str, Any]], title: str = "") -> Scene:
    """Place the boxes and route the edges, in layout units (SVG px)."""
    boxes, parents = _boxes(nodes)
    row_of, chains, preds, succs = _graph(parents, [box.row for box in boxes])
    rows = [[v for v, r in enumerate(row_of) if r == row] for row in range(max(row_of) + 1)]
    _order(rows, preds, succs)
    widths = [box.w for box in boxes] + [0.0] * (len(row_of) - len(boxes))  # waypoints: zero-wide lanes
    x = _place(rows, preds, succs, widths)
    left = min(v - w / 2 for v, w in zip(x, widths, strict=True))
    right = max(v + w / 2 for v, w in zip(x, widths, strict=True))
    width = max(right - left, len(title) * CHAR_W * TITLE_FONT / FONT) + 2 * MARGIN
    x = [v + (width - right - left) / 2 for v in x]  # centred
    top = MARGIN + (TITLE_H if title else 0)
    for i, box in enumerate(boxes):
        box.x, box.y = x[i], top + box.row * ROW_H
    ports = _ports(chains, x, boxes)
    edges = [_route(chain, row_of, x, boxes, ends) for chain, ends in zip(chains, ports, strict=True)]
    return Scene(width, top + max(row_of) * ROW_H + BOX_H + MARGIN, title, boxes, edges)


def _boxes(nodes: list[dict[str, Any]]) -> tuple[list[Box], list[list[int]]]:
    """A box per node, in the row of its longest path from an input; each node's parents as indices."""
    if not nodes:
        raise ValueError("nothing to draw: the graph has no nodes")
    index: dict[str, int] = {}
    parents: list[list[int]] = []
    for node in nodes:
        name = str(node["name"])
        if name in index:
            raise ValueError(f"two nodes are named {name!r}")
        if bad := [src for src in node.get("inputs") or [] if src not in index]:
            raise ValueError(f"node {name!r} reads {bad[0]!r}, which is not an earlier node")
        parents.append(list(dict.fromkeys(index[src] for src in node.get("inputs") or [])))
        index[name] = len(index)
    ranks: list[int] = []
    for ps in parents:
        ranks.append(1 + max((ranks[p] for p in ps), default=-1))
    read = {p for ps in parents for p in ps}
    boxes = []
    for i, node in enumerate(nodes):
        kind, lines = "input" if not parents[i] else "layer" if i in read else "output", _label(node)
        boxes.append(Box(str(node["name"]), kind, lines, ranks[i], max(map(len, lines)) * CHAR_W + 2 * PAD_X))
    return boxes, parents


def _label(node: dict[str, Any]) -> tuple[str, str]:
    params = int(node.get("params") or 0)
    shape = _shape(node.get("output_shape"))
    return f"{node['name']}: {node['class']}", f"{shape} · {params:,} param{'s' * (params != 1)}" if params else shape


def _shape(shape: Any) -> str:
    if isinstance(shape, (list, tuple)):
        items = [_shape(d) for d in shape]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    return "None" if shape is None else str(shape)


def _graph(parents: list[list[int]], ranks: list[int]) -> tuple[list[int], list[list[int]], Adjacency, Adjacency]:
    """Vertices are the nodes, then the waypoints: their rows, each edge's chain of vertices, and neighbours."""
    row_of, chains, preds, succs = list(ranks), [], {}, {}
    for child, ps in enumerate(parents):
        for p in ps:
            chain = [p, *range(len(row_of), len(row_of) + ranks[child] - ranks[p] - 1), child]
            row_of += range(ranks[p] + 1, ranks[child])  # one waypoint per row the edge skips
            for a, b in itertools.pairwise(chain):
                succs.setdefault(a, []).append(b)
                preds.setdefault(b, []).append(a)
            chains.append(chain)
    return row_of, chains, preds, succs


def _order(rows: list[list[int]], preds: Adjacency, succs: Adjacency, sweeps: int = 2) -> None:
    """Barycenter sweeps to reduce crossings: down (order by parents), up (by children), ..., down."""
    for sweep in range(2 * sweeps + 1):
        down = sweep % 2 == 0
        for r in range(1, len(rows)) if down else range(len(rows) - 2, -1, -1):
            _barycenter(rows[r], rows[r - 1] if down else rows[r + 1], preds if down else succs)


def _barycenter(row: list[int], ref: list[int], nbrs: Adjacency) -> None:
    """Sort the vertices with neighbours in ref by their mean position there; the others keep their places."""
    pos = {v: i for i, v in enumerate(ref)}
    moved = iter(sorted((v for v in row if v in nbrs), key=lambda v: sum(pos[u] for u in nbrs[v]) / len(nbrs[v])))
    row[:] = [next(moved) if v in nbrs else v for v in row]


def _place(rows: list[list[int]], preds: Adjacency, succs: Adjacency, widths: list[float]) -> list[float]:
    """Centre x of every vertex: rows centred, then pulled under their parents, over their children, and back."""
    x = [0.0] * len(widths)
    for row in rows:
        _pack(row, widths, x, [0.0] * len(row))
    for nbrs, sweep in ((preds, rows), (succs, rows[::-1]), (preds, rows)):
        for row in sweep:
            _pack(row, widths, x, [_target(v, nbrs, x, widths) for v in row])
    return x


def _target(v: int, nbrs: Adjacency, x: list[float], widths: list[float]) -> float:
    """The weighted mean x of v's neighbours (or x[v] if none). Beside one box, lanes weigh less, so a chain of boxes
    stays straight past a skip; where branches meet (two boxes or more), every branch weighs the same, so a merge sits
    under the middle of its branches rather than drifting towards the boxes (GoogLeNet's modules, one per row)."""
    boxes = sum(1 for u in nbrs.get(v, []) if widths[u])
    weights = [1.0 if widths[u] or boxes > 1 else LANE_WEIGHT for u in nbrs.get(v, [])]
    return sum(x[u] * w for u, w in zip(nbrs[v], weights, strict=True)) / sum(weights) if weights else x[v]


def _pack(row: list[int], widths: list[float], x: list[float], targets: list[float]) -> None:
    """Weighted least-squares x near targets, in row order, COL_GAP apart: isotonic regression by PAV."""
    offsets = [0.0]
    for a, b in itertools.pairwise(row):
        offsets.append(offsets[-1] + (widths[a] + widths[b]) / 2 + COL_GAP)
    blocks: list[tuple[float, float, int]] = []  # weighted sum of (target - offset), weight, count
    for v, t, o in zip(row, targets, offsets, strict=True):
        w = 1.0 if widths[v] else LANE_WEIGHT
        s, c = w * (t - o), 1
        while blocks and blocks[-1][0] / blocks[-1][1] > s / w:
            ps, pw, pc = blocks.pop()  # the block to the left would sit further right: merge them
            s, w, c = s + ps, w + pw, c + pc
        blocks.append((s, w, c))
    i = 0
    for s, w, c in blocks:
        for _ in range(c):
            x[row[i]] = s / w + offsets[i]
            i += 1


def _ports(chains: list[list[int]], x: list[float], boxes: list[Box]) -> list[list[float]]:
    """x where each edge leaves its source and enters its target: spread along the box, ordered by direction."""
    ends = [[0.0, 0.0] for _ in chains]
    for side, (at, near) in enumerate(((0, 1), (-1, -2))):
        order = sorted(range(len(chains)), key=lambda k, a=at, n=near: (chains[k][a], x[chains[k][n]]))
        for v, group in itertools.groupby(order, key=lambda k, a=at: chains[k][a]):
            ks = list(group)
            step = min(PORT_STEP, boxes[v].w * 0.6 / max(len(ks) - 1, 1))
            for j, k in enumerate(ks):
                ends[k][side] = x[v] + (j - (len(ks) - 1) / 2) * step
    return ends


def _route(chain: list[int], row_of: list[int], x: list[float], boxes: list[Box], ends: list[float]) -> Edge:
    """An edge from its source's bottom, straight down its lane in each row it skips, to its target's top."""
    src, dst = boxes[chain[0]], boxes[chain[-1]]
    points = [(ends[0], src.y + BOX_H)]
    for v in chain[1:-1]:
        y = src.y + (row_of[v] - src.row) * ROW_H
        points += [(x[v], y), (x[v], y + BOX_H)]
    (px, py), (tx, ty) = points[-1], (ends[1], dst.y)
    length = max(((tx - px) ** 2 + (ty - py) ** 2) ** 0.5, 1e-9)
    ux, uy = (tx - px) / length, (ty - py) / length
    bx, by = tx - ux * ARROW_LEN, ty - uy * ARROW_LEN
    arrow = [(tx, ty), (bx - uy * ARROW_HALF, by + ux * ARROW_HALF), (bx + uy * ARROW_HALF, by - ux * ARROW_HALF)]
    return src.name, dst.name, [*points, (bx, by)], arrow


def _svg(scene: Scene) -> str:
    e, w, h = html.escape, _num(scene.width), _num(scene.height)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'font-family="{FONT_FAMILY}" font-size="{FONT}">',
           f'<rect class="background" x="0" y="0" width="{w}" height="{h}" fill="white"/>']
    if scene.title:
        out.append(f'<text class="title" x="{MARGIN}" y="{_num(MARGIN + TITLE_H / 2 - 6)}" dy="0.35em" '
                   f'font-size="{TITLE_FONT}" font-weight="bold" fill="{INK}">{e(scene.title)}</text>')
    for src, dst, line, arrow in scene.edges:
        out.append(f'<g class="edge" data-from="{e(src)}" data-to="{e(dst)}">'
                   f'<polyline points="{_points(line)}" fill="none" stroke="{EDGE}" stroke-width="1.3"/>'
                   f'<polygon points="{_points(arrow)}" fill="{EDGE}"/></g>')
    for box in scene.boxes:
        out.append(f'<g class="node {box.kind}" data-name="{e(box.name)}" data-row="{box.row}"><title>{e(box.name)}'
                   f'</title><rect x="{_num(box.x - box.w / 2)}" y="{_num(box.y)}" width="{_num(box.w)}" '
                   f'height="{BOX_H}" rx="6" fill="{FILL[box.kind]}" stroke="{STROKE}"/>')
        out += [f'<text x="{_num(box.x)}" y="{_num(y)}" dy="0.35em" text-anchor="middle" fill="{INK}">{e(t)}</text>'
                for t, y in _text_rows(box)]
        out.append("</g>")
    return "\n".join([*out, "</svg>\n"])


def _text_rows(box: Box) -> list[tuple[str, float]]:
    """Each line of a box with the y of its middle, the lines centred vertically."""
    return [(t, box.y + BOX_H / 2 + (i - 0.5) * LINE_H) for i, t in enumerate(box.lines)]


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _points(points: list[Point]) -> str:
    return " ".join(f"{_num(px)},{_num(py)}" for px, py in points)


def _png(scene: Scene, s: float) -> bytes:
    from PIL import Image, ImageDraw  # a dependency of tensorboard; only PNG needs it

    image = Image.new("RGB", (max(1, round(scene.width * s)), max(1, round(scene.height * s))), "white")
    draw = ImageDraw.Draw(image)
    for _, _, line, arrow in scene.edges:
        draw.line([(px * s, py * s) for px, py in line], fill=EDGE, width=max(1, round(1.3 * s)), joint="curve")
        draw.polygon([(px * s, py * s) for px, py in arrow], fill=EDGE)
    for box in scene.boxes:
        draw.rounded_rectangle([(box.x - box.w / 2) * s, box.y * s, (box.x + box.w / 2) * s, (box.y + BOX_H) * s],
                               radius=6 * s, fill=FILL[box.kind], outline=STROKE, width=max(1, round(s)))
        for text, y in _text_rows(box):
            _draw_text(draw, text, (box.x * s, y * s), FONT * s, (box.w - PAD_X) * s, centred=True)
    if scene.title:
        _draw_text(draw, scene.title, (MARGIN * s, (MARGIN + TITLE_H / 2 - 6) * s), TITLE_FONT * s, scene.width * s)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _draw_text(draw: Any, text: str, at: Point, size: float, room: float, *, centred: bool = False) -> None:
    """Text with its middle at y (and at x if centred, else starting at x), shrunk to fit into room."""
    font = pillow_font(max(1, round(size)))
    if draw.textlength(text, font=font) > room:
        font = pillow_font(max(1, round(size * room / draw.textlength(text, font=font))))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text((at[0] - (left + right) / 2 if centred else at[0], at[1] - (top + bottom) / 2), text, INK, font)
