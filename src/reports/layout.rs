//! A layered drawing of a lineage graph, shared by the console's SVG and
//! the PDF dossier's diagram.
//!
//! Nodes go in columns (layers) so that every edge points left to right.
//! An edge that spans several columns passes through a reserved slot in
//! each column it crosses, so no edge is ever drawn through a box; the
//! order inside each column is improved by barycentre sweeps, which is
//! what keeps crossings few. Coordinates are abstract units: the console
//! uses them as pixels, the PDF scales them to millimetres.

use std::collections::{BTreeMap, VecDeque};

/// The sizes a drawing is laid out with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizes {
    pub box_w: f32,
    pub box_h: f32,
    /// Between columns: where edges (and their labels) run.
    pub gap_x: f32,
    /// Between two boxes of a column.
    pub gap_y: f32,
    /// The height of a slot an edge passes a column through.
    pub lane_h: f32,
}

impl Sizes {
    /// The console's sizes, in CSS pixels.
    pub const SCREEN: Sizes = Sizes { box_w: 200.0, box_h: 46.0, gap_x: 150.0, gap_y: 18.0, lane_h: 14.0 };
}

/// A box of the drawing.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    /// The node's index in the input.
    pub node: usize,
    pub layer: usize,
    pub x: f32,
    pub y: f32,
}

/// An edge's path, from the right side of its source's box to the left
/// side of its target's box.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The edge's index in the input.
    pub edge: usize,
    pub points: Vec<(f32, f32)>,
    /// The edge points right to left: it closes a cycle, which an
    /// append-only record can hold.
    pub backwards: bool,
}

/// A laid-out graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub sizes: Sizes,
    /// One per input node, in input order.
    pub boxes: Vec<Placed>,
    /// One per drawn edge (self-loops and edges to unknown nodes are left out).
    pub routes: Vec<Route>,
    pub width: f32,
    pub height: f32,
    /// Input node indices by column, top to bottom.
    pub columns: Vec<Vec<usize>>,
}

/// A slot of a column: a node's box, or a lane an edge passes through.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Node(usize),
    Lane { edge: usize, hop: usize },
}

/// Lays out `node_count` nodes and the `edges` between them (indices).
pub fn layered(node_count: usize, edges: &[(usize, usize)], sizes: Sizes) -> Layout {
    let drawn: Vec<usize> =
        (0..edges.len()).filter(|&i| edges[i].0 != edges[i].1 && edges[i].0.max(edges[i].1) < node_count).collect();
    let backwards = back_edges(node_count, edges, &drawn);
    let forward = |i: usize| if backwards[i] { (edges[i].1, edges[i].0) } else { edges[i] };
    let layer = longest_path_layers(node_count, drawn.iter().map(|&i| forward(i)));
    let columns_n = layer.iter().copied().max().map_or(0, |m| m + 1);

    // Each column's slots: its nodes, then a lane per edge crossing it.
    let mut slots: Vec<Vec<Slot>> = vec![Vec::new(); columns_n];
    for (node, &l) in layer.iter().enumerate() {
        slots[l].push(Slot::Node(node));
    }
    for &i in &drawn {
        let (from, to) = forward(i);
        for (hop, l) in (layer[from] + 1..layer[to]).enumerate() {
            slots[l].push(Slot::Lane { edge: i, hop });
        }
    }
    order_by_barycentre(&mut slots, &drawn, &forward, &layer);

    // Coordinates: columns side by side, each centred on the tallest.
    let slot_h = |s: &Slot| match s {
        Slot::Node(_) => sizes.box_h + sizes.gap_y,
        Slot::Lane { .. } => sizes.lane_h,
    };
    let heights: Vec<f32> = slots.iter().map(|c| c.iter().map(slot_h).sum::<f32>()).collect();
    let height = heights.iter().copied().fold(0.0, f32::max);
    let mut boxes: Vec<Option<Placed>> = vec![None; node_count];
    let mut lanes: BTreeMap<(usize, usize), f32> = BTreeMap::new();
    for (l, column) in slots.iter().enumerate() {
        let x = l as f32 * (sizes.box_w + sizes.gap_x);
        let mut y = (height - heights[l]) / 2.0;
        for slot in column {
            match *slot {
                Slot::Node(node) => {
                    boxes[node] = Some(Placed { node, layer: l, x, y: y + sizes.gap_y / 2.0 });
                }
                Slot::Lane { edge, hop } => {
                    lanes.insert((edge, hop), y + sizes.lane_h / 2.0);
                }
            }
            y += slot_h(slot);
        }
    }
    let boxes: Vec<Placed> = boxes.into_iter().flatten().collect();
    let middle = |node: usize| boxes[node].y + sizes.box_h / 2.0;
    let routes = drawn
        .iter()
        .map(|&i| {
            let (from, to) = forward(i);
            let mut points = vec![(boxes[from].x + sizes.box_w, middle(from))];
            for (hop, l) in (layer[from] + 1..layer[to]).enumerate() {
                let x = l as f32 * (sizes.box_w + sizes.gap_x);
                let y = lanes.get(&(i, hop)).copied().unwrap_or(0.0);
                points.push((x, y));
                points.push((x + sizes.box_w, y));
            }
            points.push((boxes[to].x, middle(to)));
            if backwards[i] {
                points.reverse();
            }
            Route { edge: i, points, backwards: backwards[i] }
        })
        .collect();
    let columns = slots
        .iter()
        .map(|c| c.iter().filter_map(|s| if let Slot::Node(n) = s { Some(*n) } else { None }).collect())
        .collect();
    let width = if columns_n == 0 { 0.0 } else { columns_n as f32 * (sizes.box_w + sizes.gap_x) - sizes.gap_x };
    Layout { sizes, boxes, routes, width, height, columns }
}

/// Which of the `drawn` edges close a cycle (found by a depth-first walk
/// in input order), so that turning them round leaves a DAG.
fn back_edges(node_count: usize, edges: &[(usize, usize)], drawn: &[usize]) -> Vec<bool> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); node_count];
    for &i in drawn {
        out[edges[i].0].push(i);
    }
    // 0 unvisited, 1 on the current path, 2 done.
    let mut state = vec![0u8; node_count];
    let mut backwards = vec![false; edges.len()];
    for start in 0..node_count {
        if state[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        state[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&i) = out[node].get(*next) {
                *next += 1;
                let target = edges[i].1;
                match state[target] {
                    0 => {
                        state[target] = 1;
                        stack.push((target, 0));
                    }
                    1 => backwards[i] = true,
                    _ => {}
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
    backwards
}

/// Each node's column: the longest path to it from a node with no inputs.
fn longest_path_layers(node_count: usize, edges: impl Iterator<Item = (usize, usize)>) -> Vec<usize> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); node_count];
    let mut incoming = vec![0usize; node_count];
    for (from, to) in edges {
        out[from].push(to);
        incoming[to] += 1;
    }
    let mut layer = vec![0usize; node_count];
    let sources: Vec<usize> = (0..node_count).filter(|&n| incoming[n] == 0).collect();
    let mut ready: VecDeque<usize> = sources.iter().copied().collect();
    while let Some(node) = ready.pop_front() {
        for &to in &out[node] {
            layer[to] = layer[to].max(layer[node] + 1);
            incoming[to] -= 1;
            if incoming[to] == 0 {
                ready.push_back(to);
            }
        }
    }
    // A source sits just before the first node it feeds, not in the first
    // column: an evaluation dataset of a model stays beside the model.
    for &source in &sources {
        if let Some(first) = out[source].iter().map(|&to| layer[to]).min() {
            layer[source] = first.saturating_sub(1);
        }
    }
    layer
}

/// Reorders each column's slots by the mean position of their neighbours
/// in the column before (sweeping right) and after (sweeping left).
fn order_by_barycentre(
    slots: &mut [Vec<Slot>],
    drawn: &[usize],
    forward: &impl Fn(usize) -> (usize, usize),
    layer: &[usize],
) {
    const SWEEPS: usize = 6;
    // A slot's neighbours in the previous and next columns, as slots.
    let chain = |i: usize| -> Vec<Slot> {
        let (from, to) = forward(i);
        let mut c = vec![Slot::Node(from)];
        c.extend((0..layer[to].saturating_sub(layer[from] + 1)).map(|hop| Slot::Lane { edge: i, hop }));
        c.push(Slot::Node(to));
        c
    };
    let mut left: BTreeMap<SlotKey, Vec<SlotKey>> = BTreeMap::new();
    let mut right: BTreeMap<SlotKey, Vec<SlotKey>> = BTreeMap::new();
    for &i in drawn {
        for pair in chain(i).windows(2) {
            let (a, b) = (key(pair[0]), key(pair[1]));
            right.entry(a).or_default().push(b);
            left.entry(b).or_default().push(a);
        }
    }
    for sweep in 0..SWEEPS {
        let rightwards = sweep % 2 == 0;
        let columns: Vec<usize> =
            if rightwards { (1..slots.len()).collect() } else { (0..slots.len().saturating_sub(1)).rev().collect() };
        for l in columns {
            let beside = if rightwards { l - 1 } else { l + 1 };
            let position: BTreeMap<SlotKey, usize> =
                slots[beside].iter().enumerate().map(|(p, s)| (key(*s), p)).collect();
            let neighbours = if rightwards { &left } else { &right };
            let mut scored: Vec<(f32, usize, Slot)> = slots[l]
                .iter()
                .enumerate()
                .map(|(p, s)| {
                    let at: Vec<usize> = neighbours
                        .get(&key(*s))
                        .map(|n| n.iter().filter_map(|k| position.get(k).copied()).collect())
                        .unwrap_or_default();
                    // A slot with no neighbour there keeps its place.
                    let score =
                        if at.is_empty() { p as f32 } else { at.iter().sum::<usize>() as f32 / at.len() as f32 };
                    (score, p, *s)
                })
                .collect();
            scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            slots[l] = scored.into_iter().map(|(_, _, s)| s).collect();
        }
    }
}

/// A totally ordered name for a slot (maps keyed by it stay deterministic).
type SlotKey = (u8, usize, usize);

fn key(slot: Slot) -> SlotKey {
    match slot {
        Slot::Node(n) => (0, n, 0),
        Slot::Lane { edge, hop } => (1, edge, hop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Sizes = Sizes::SCREEN;

    fn inside(p: (f32, f32), b: &Placed) -> bool {
        p.0 > b.x + 0.5 && p.0 < b.x + S.box_w - 0.5 && p.1 > b.y + 0.5 && p.1 < b.y + S.box_h - 0.5
    }

    /// Samples each segment of every route; none may pass through a box
    /// other than at its own ends.
    fn assert_no_edge_through_a_box(layout: &Layout) {
        for route in &layout.routes {
            for pair in route.points.windows(2) {
                for step in 1..40 {
                    let t = step as f32 / 40.0;
                    let p = (pair[0].0 + t * (pair[1].0 - pair[0].0), pair[0].1 + t * (pair[1].1 - pair[0].1));
                    for b in &layout.boxes {
                        assert!(!inside(p, b), "edge {} passes through node {}", route.edge, b.node);
                    }
                }
            }
        }
    }

    #[test]
    fn every_edge_points_right_and_long_edges_pass_between_boxes() {
        // 0 -> 1 -> 2 -> 3 and a long edge 0 -> 3, plus 4 -> 2.
        let edges = [(0, 1), (1, 2), (2, 3), (0, 3), (4, 2)];
        let layout = layered(5, &edges, S);
        let layer: Vec<usize> = layout.boxes.iter().map(|b| b.layer).collect();
        assert_eq!(layer, vec![0, 1, 2, 3, 1]);
        for route in &layout.routes {
            let xs: Vec<f32> = route.points.iter().map(|p| p.0).collect();
            assert!(xs.windows(2).all(|w| w[0] <= w[1]), "route {route:?} goes backwards");
        }
        let long = layout.routes.iter().find(|r| r.edge == 3).unwrap();
        assert_eq!(long.points.len(), 2 + 2 * 2, "two columns crossed, two points each");
        assert_no_edge_through_a_box(&layout);
    }

    #[test]
    fn a_cycle_is_drawn_without_looping_forever() {
        let layout = layered(3, &[(0, 1), (1, 2), (2, 0), (1, 1), (0, 9)], S);
        assert_eq!(layout.boxes.len(), 3);
        assert_eq!(layout.routes.len(), 3, "the self-loop and the unknown node are left out");
        assert_eq!(layout.routes.iter().filter(|r| r.backwards).count(), 1);
    }

    #[test]
    fn a_wide_graph_keeps_boxes_apart_and_edges_out_of_them() {
        // Twenty datasets into five runs into five models, with long edges.
        let mut edges = Vec::new();
        for d in 0..20 {
            edges.push((d, 20 + d % 5));
            edges.push((d, 25 + (d * 3) % 5));
        }
        for r in 0..5 {
            edges.push((20 + r, 25 + r));
        }
        let layout = layered(30, &edges, S);
        for a in &layout.boxes {
            for b in &layout.boxes {
                if a.node != b.node && a.layer == b.layer {
                    assert!((a.y - b.y).abs() >= S.box_h, "{a:?} overlaps {b:?}");
                }
            }
        }
        assert_no_edge_through_a_box(&layout);
        assert!(layout.width > 0.0 && layout.height > 0.0);
    }

    #[test]
    fn barycentre_ordering_removes_a_needless_crossing() {
        // 0 -> 3 and 1 -> 2 cross when columns keep input order.
        let layout = layered(4, &[(0, 3), (1, 2)], S);
        let y = |n: usize| layout.boxes[n].y;
        assert_eq!(y(0) < y(1), y(3) < y(2), "targets follow their sources' order");
    }
}
