//! The lineage graph as inline SVG, drawn from [`crate::reports::layout`]
//! (the PDF dossier's diagram uses the same layout). Every piece of text
//! from the record is escaped here: the SVG is the one part of a page not
//! written by the auto-escaping templates.

use std::fmt::Write;

use crate::governance::lineage::Graph;
use crate::reports::layout::{self, Layout, Sizes};

/// Characters of a reference that fit in a box at the label's size.
const LABEL_CHARS: usize = 23;
const PAD: f32 = 16.0;

/// Escapes `text` for SVG/HTML text and attribute values.
pub use crate::reports::escape_markup as escape;

/// The entity page of `r`.
pub fn entity_href(r: &str) -> String {
    format!("/ui/entities/{}", super::page::urlencode(r))
}

/// The shape class of an entity type: the four kinds a reader tells apart
/// (by outline as well as colour), and everything else.
pub fn shape_class(entity_type: &str) -> &'static str {
    match entity_type {
        "dataset" => "dataset",
        "run" => "run",
        "model" => "model",
        "deployment" => "deployment",
        _ => "other",
    }
}

/// The outline of a box of `class`, `w` by `h`, at the origin.
pub fn shape(class: &str, w: f32, h: f32) -> String {
    match class {
        // A pill: data at rest.
        "dataset" => format!(r#"<rect class="shape dataset" width="{w}" height="{h}" rx="{}"/>"#, h / 2.0),
        // A hexagon: a process.
        "run" => format!(
            r#"<polygon class="shape run" points="12,0 {},0 {w},{} {},{h} 12,{h} 0,{}"/>"#,
            w - 12.0,
            h / 2.0,
            w - 12.0,
            h / 2.0
        ),
        // A parallelogram: something running somewhere.
        "deployment" => {
            format!(r#"<polygon class="shape deployment" points="14,0 {w},0 {},{h} 0,{h}"/>"#, w - 14.0)
        }
        "model" => format!(r#"<rect class="shape model" width="{w}" height="{h}" rx="3"/>"#),
        _ => format!(r#"<rect class="shape other" width="{w}" height="{h}" rx="3"/>"#),
    }
}

/// Lays out `graph`.
pub fn layout_of(graph: &Graph) -> Layout {
    let index: std::collections::HashMap<&str, usize> =
        graph.nodes.iter().enumerate().map(|(i, n)| (n.ref_.as_str(), i)).collect();
    let edges: Vec<(usize, usize)> = graph
        .edges
        .iter()
        .map(|e| (index.get(e.source.as_str()).copied(), index.get(e.target.as_str()).copied()))
        .map(|(s, t)| (s.unwrap_or(usize::MAX), t.unwrap_or(usize::MAX)))
        .collect();
    layout::layered(graph.nodes.len(), &edges, Sizes::SCREEN)
}

/// `graph` drawn as an inline SVG element.
pub fn lineage(graph: &Graph) -> String {
    let laid = layout_of(graph);
    let s = laid.sizes;
    let (width, height) = (laid.width + 2.0 * PAD, laid.height + 2.0 * PAD);
    let mut out = String::with_capacity(600 + graph.nodes.len() * 700 + graph.edges.len() * 300);
    let _ = write!(
        out,
        r#"<svg class="lineage" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="group" aria-label="{}">"#,
        escape(&format!(
            "Lineage of {}: {} nodes, {} edges, {}",
            graph.node,
            graph.nodes.len(),
            graph.edges.len(),
            graph.direction
        ))
    );
    out.push_str(
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>"##,
    );
    let _ = write!(out, r#"<g transform="translate({PAD},{PAD})">"#);
    for route in &laid.routes {
        let edge = &graph.edges[route.edge];
        let mut d = String::new();
        for (i, (x, y)) in route.points.iter().enumerate() {
            let _ = write!(d, "{}{x:.1},{y:.1} ", if i == 0 { "M" } else { "L" });
        }
        let ended = edge.ended_seq.map(|e| format!(", ended by #{e}")).unwrap_or_default();
        let label = format!("{} #{}{ended}", edge.kind, edge.seq);
        let dash = if edge.ended_seq.is_some() { r#" stroke-dasharray="5 4""# } else { "" };
        let _ = write!(
            out,
            r#"<g class="edge-group"><path class="edge" d="{}" marker-end="url(#arrow)"{dash}><title>{}</title></path>"#,
            d.trim_end(),
            escape(&format!("{} → {}: {label}", edge.source, edge.target))
        );
        // The label sits on the last stretch between columns, where the
        // edge is alone with the others entering the same column.
        if let [.., (x1, y1), (x2, y2)] = route.points[..] {
            let (lx, ly) = (x1 + (x2 - x1) * 0.5, y1 + (y2 - y1) * 0.5 - 4.0);
            let _ = write!(
                out,
                r#"<text class="edge-label" x="{lx:.1}" y="{ly:.1}" text-anchor="middle">{}</text>"#,
                escape(&label)
            );
        }
        out.push_str("</g>");
    }
    for placed in &laid.boxes {
        let node = &graph.nodes[placed.node];
        let class = shape_class(&node.entity_type);
        // A long reference is squeezed into the box rather than cut: the
        // link's name is its visible text, the type and the whole reference.
        let squeeze = if node.ref_.chars().count() > LABEL_CHARS {
            format!(r#" textLength="{:.0}" lengthAdjust="spacingAndGlyphs""#, s.box_w - 46.0)
        } else {
            String::new()
        };
        let focus = if node.ref_ == graph.node { " focus" } else { "" };
        let _ = write!(
            out,
            r#"<a href="{}" data-ref="{}"><g class="node{focus}" transform="translate({:.1},{:.1})"><title>{}</title>{}<text class="type" x="20" y="17">{}</text><text class="label" x="20" y="35"{squeeze}>{}</text></g></a>"#,
            escape(&entity_href(&node.ref_)),
            escape(&node.ref_),
            placed.x,
            placed.y,
            escape(&format!("{} ({})", node.ref_, node.status)),
            shape(class, s.box_w, s.box_h),
            escape(&node.entity_type),
            escape(&node.ref_)
        );
    }
    out.push_str("</g></svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::lineage::{Edge, Node};

    fn node(r: &str) -> Node {
        let (t, _) = r.split_once(':').unwrap();
        Node {
            ref_: r.into(),
            entity_type: t.into(),
            name: r.into(),
            version: None,
            project: None,
            status: "active".into(),
            seq: 1,
        }
    }

    #[test]
    fn hostile_references_are_drawn_as_text() {
        let evil = "dataset:<script>alert(1)</script>\"><img src=x onerror=alert(2)>";
        let graph = Graph {
            node: "model:m@1".into(),
            direction: "upstream",
            depth: 1,
            as_of_seq: None,
            nodes: vec![node("model:m@1"), node(evil)],
            edges: vec![Edge {
                source: evil.into(),
                target: "model:m@1".into(),
                seq: 2,
                ended_seq: None,
                kind: "<b>x</b>".into(),
            }],
            truncated: false,
            node_limit: 500,
            omitted_nodes: 0,
            hidden_nodes: 0,
        };
        let svg = lineage(&graph);
        assert!(!svg.contains("<script"), "{svg}");
        assert!(!svg.contains("<img"), "{svg}");
        assert!(!svg.contains("<b>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
        assert_eq!(svg.matches("<a href=").count(), 2);
    }
}
